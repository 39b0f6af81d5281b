"""The local runtime's default launcher: a fork server, forked from the runtime just
before its first task, forks every attempt.

Why not fork the runtime for each attempt, as it used to: on a foreach of thousands of
small tasks the kernel's share was most of a task's cost, and it fell on the one thread
that must also record every event. A fork copies the forking process's page tables,
and afterwards every page the process writes while a child still shares it is copied
at a fault: the runtime, busy between forks, took ~800 such faults a task (~3.5 ms of
system time a task on this VM), which capped a run near 200 tasks a second. The server
does nothing between forks, so its pages stay shared and clean, and its forks run on
another core while the runtime goes on.

An attempt gets the same process as before: a fork of the runtime as it was when the
run began (the flow imported, the run's graph, parameters and datastore), running
`run_child(request, files)`. What an attempt needs beyond that travels in its request.

The protocol, over two pipes: the runtime sends frames (kind, handle, length, then
the pickled (request, files) of a launch), LAUNCH or KILL; the server answers each
exit with (handle, exit code). The server is the attempts' parent, so it reaps them
and a KILL it has not reaped can never hit a reused pid. The server dies with the
runtime (even by kill -9) and its attempts with it; when it dies alone, its attempts
(killed with it) are reported as killed and the next launch starts another.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import selectors
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ledgerflow.runtime.launcher import (
    INTERRUPTS,
    AttemptFiles,
    Launcher,
    run_forked_attempt,
)
from ledgerflow.runtime.orphans import die_with_parent
from ledgerflow.runtime.task import TaskRequest

_FRAME = struct.Struct("<BQQ")  # kind, handle, payload length
_EXIT = struct.Struct("<Qi")  # handle, exit code
_LAUNCH, _KILL = 1, 2
_PIPE_BYTES = 1024 * 1024  # fewer wake-ups for large requests (a join's inputs)
_F_SETPIPE_SZ = 1031  # linux/fcntl.h

RunChild = Callable[[TaskRequest, AttemptFiles], Any]


class ForkServerLauncher(Launcher):
    """Attempts forked by a fork server (see the module doc); `run_child` runs one in
    its process and must never return."""

    def __init__(self, run_child: RunChild) -> None:
        self._run_child = run_child
        self._server: _Server | None = None
        self._next_handle = 0
        self._running: set[int] = set()
        self._exited: list[tuple[int, int]] = []  # read, not yet reported
        self._stopped: set[int] = set()  # exits no one is to be told of

    def launch(self, request: TaskRequest, files: AttemptFiles) -> int:
        if self._server is None:
            self._server = _Server.start(self._run_child)
        self._next_handle += 1
        handle = self._next_handle
        payload = pickle.dumps((request, files), protocol=pickle.HIGHEST_PROTOCOL)
        self._server.send(_LAUNCH, handle, payload)
        self._running.add(handle)
        return handle

    def wait(self, timeout: float) -> list[tuple[int, int]]:
        if not self._exited and self._server is not None:
            self._read_exits(timeout)
        exited, self._exited = self._exited, []
        return exited

    def kill(self, handle: int) -> None:
        if handle in self._running and self._server is not None:
            self._server.send(_KILL, handle)

    def stop(self, handle: int) -> None:
        self.kill(handle)
        self._stopped.add(handle)
        while handle in self._running and self._server is not None:
            self._read_exits(None)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _read_exits(self, timeout: float | None) -> None:
        """Takes the exits the server reports within `timeout` seconds (None: at least
        one); when the server has died, every attempt it held exits as killed."""
        assert self._server is not None
        exits = self._server.exits(timeout)
        if exits is None:
            exits = [(handle, -signal.SIGKILL) for handle in self._running]
            self._server.close()
            self._server = None
        for handle, code in exits:
            self._running.discard(handle)
            if handle in self._stopped:
                self._stopped.discard(handle)
            else:
                self._exited.append((handle, code))


class _Server:
    """The runtime's end of one fork server: its pid and the two pipes."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid = pid
        self._requests = requests
        self._replies = replies
        self._pending = b""
        self._pidfd = os.pidfd_open(pid)
        self._selector = selectors.DefaultSelector()
        self._selector.register(replies, selectors.EVENT_READ, "replies")
        self._selector.register(self._pidfd, selectors.EVENT_READ, "server")

    @classmethod
    def start(cls, run_child: RunChild) -> _Server:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        for fd in (requests_write, replies_write):
            with contextlib.suppress(OSError):  # a bigger pipe only saves wake-ups
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        sys.stdout.flush()  # nothing buffered here is written again by the server
        sys.stderr.flush()
        runtime = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(requests_write)
            os.close(replies_read)
            _serve(runtime, requests_read, replies_write, run_child)
        os.close(requests_read)
        os.close(replies_write)
        return cls(pid, requests_write, replies_read)

    def send(self, kind: int, handle: int, payload: bytes = b"") -> None:
        data = memoryview(_FRAME.pack(kind, handle, len(payload)) + payload)
        while data:
            try:
                data = data[os.write(self._requests, data) :]
            except BrokenPipeError:
                return  # the server died: its exits say so

    def exits(self, timeout: float | None) -> list[tuple[int, int]] | None:
        """The (handle, exit code) pairs the server reported within `timeout` seconds
        (None: waits for at least one); None when the server has died."""
        while True:
            exits: list[tuple[int, int]] = []
            died = False
            for key, _ in self._selector.select(None if timeout is None else max(0.0, timeout)):
                if key.data == "server":
                    died = True
                    continue
                data = os.read(self._replies, 64 * 1024)
                self._pending += data
                whole = len(self._pending) - len(self._pending) % _EXIT.size
                exits += list(_EXIT.iter_unpack(self._pending[:whole]))
                self._pending = self._pending[whole:]
            if died and not exits:
                return None
            if exits or timeout is not None:
                return exits

    def close(self) -> None:
        """Ends the server (its end of the requests pipe closes) and reaps it."""
        self._selector.close()
        with contextlib.suppress(OSError):
            os.close(self._requests)
        os.close(self._replies)
        os.close(self._pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(runtime: int, requests: int, replies: int, run_child: RunChild) -> NoReturn:
    """The fork server's loop (in the forked process; never returns): forks an attempt
    for each LAUNCH, kills on KILL, reports each exit, and ends when the runtime closes
    the requests pipe (killing what still runs)."""
    die_with_parent(runtime)
    for signum in INTERRUPTS:  # the runtime decides what an interrupt stops
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    me = os.getpid()
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ, None)
    attempts: dict[int, int] = {}  # handle -> pid, until reaped
    pending = b""
    try:
        while True:
            for key, _ in selector.select():
                if key.data is not None:  # an attempt's pidfd: it exited
                    handle, pid = key.data
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    _, status = os.waitpid(pid, 0)
                    del attempts[handle]
                    os.write(replies, _EXIT.pack(handle, os.waitstatus_to_exitcode(status)))
                    continue
                data = os.read(requests, 1024 * 1024)
                if not data:  # the runtime is done
                    for pid in attempts.values():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    os._exit(0)
                pending += data
                while len(pending) >= _FRAME.size:
                    kind, handle, length = _FRAME.unpack_from(pending)
                    if len(pending) < _FRAME.size + length:
                        break
                    payload = pending[_FRAME.size : _FRAME.size + length]
                    pending = pending[_FRAME.size + length :]
                    if kind == _KILL:
                        if handle in attempts:
                            os.kill(attempts[handle], signal.SIGKILL)
                        continue
                    pid = os.fork()
                    if pid == 0:
                        for other in list(selector.get_map().values()):
                            if other.data is not None:  # a sibling attempt's pidfd
                                os.close(other.fd)
                        selector.close()
                        os.close(requests)
                        os.close(replies)
                        request, files = pickle.loads(payload)
                        run_forked_attempt(me, run_child, request, files)
                    attempts[handle] = pid
                    selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (handle, pid))
    except BaseException:  # the server must never return into the runtime's code
        os._exit(1)
