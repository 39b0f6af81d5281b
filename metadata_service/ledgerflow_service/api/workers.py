"""Several server processes on one port (``ledgerflow service --workers N``).

One Python process runs one thread at a time, and a busy service spends most of its
CPU in Python (decoding requests, checking events, building rows). Worker processes
share the listening port through SO_REUSEPORT, so the kernel spreads incoming
connections over them, and each runs on its own core. They need nothing from each
other: the database serializes their appends (one global order of positions) and
tells every worker's watchers about the others' events (Postgres NOTIFY; SQLite
watchers poll).

The parent forks the workers before anything has created a gRPC object or a database
connection (neither survives a fork), relays SIGTERM/SIGINT to them, and stops them
all when one dies. When the parent itself dies (kill -9 included), the kernel sends
each worker SIGTERM: no worker goes on serving the port unsupervised.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Binds (without listening) a SO_REUSEPORT socket, so that port 0 resolves to one
    port for every worker and no other program takes it meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"could not listen on {host}:{port}: {error.strerror}") from None
    return sock, int(sock.getsockname()[1])


class Workers:
    """The forked worker processes of one service."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pids: list[int] = []
        self._stopping = threading.Event()

    def start(self, serve: Callable[[Callable[[], None]], None], timeout: float = 60.0) -> None:
        """Forks the workers, each calling ``serve(ready)`` (`ready()` says it is
        listening), and returns once all are ready. Raises OSError, with every worker
        stopped, when one of them dies first."""
        read_end, write_end = os.pipe()
        parent = os.getpid()
        for _ in range(self.count):
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                os._exit(_run_worker(serve, write_end, parent))  # never the parent's cleanup
            self.pids.append(pid)
        os.close(write_end)
        ready = 0
        deadline = time.monotonic() + timeout
        try:
            while ready < self.count:
                if any(_has_exited(pid) for pid in self.pids) or time.monotonic() > deadline:
                    self.stop()
                    raise OSError("a worker process failed to start; see the messages above")
                if select.select([read_end], [], [], 0.2)[0]:
                    ready += len(os.read(read_end, self.count))
        finally:
            os.close(read_end)

    def supervise(self) -> int:
        """Relays SIGTERM/SIGINT to the workers and waits for them all. When one exits
        on its own the others are stopped too, and the status is 1."""

        def relay(_signum: int, _frame: object) -> None:
            self._stopping.set()
            self._signal_all(signal.SIGTERM)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, relay)
        status = 0
        remaining = set(self.pids)
        while remaining:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            remaining.discard(pid)
            if not self._stopping.is_set():
                code = os.waitstatus_to_exitcode(wait_status)
                print(f"ledgerflow: worker {pid} exited ({code}); stopping the others",
                      file=sys.stderr)  # fmt: skip
                status = 1
                self._stopping.set()
                self._signal_all(signal.SIGTERM)
        return status

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every worker; SIGKILL to those still running after `timeout`."""
        self._stopping.set()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            while not _has_exited(pid):
                if time.monotonic() > deadline:
                    _signal(pid, signal.SIGKILL)
                    break
                time.sleep(0.05)

    def _signal_all(self, signum: int) -> None:
        for pid in self.pids:
            _signal(pid, signum)


def _run_worker(serve: Callable[[Callable[[], None]], None], ready_fd: int, parent_pid: int) -> int:
    def ready() -> None:
        os.write(ready_fd, b".")

    if not _stop_with_parent(parent_pid):
        return 1
    try:
        serve(ready)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException as error:  # reported, then the worker ends
        print(f"ledgerflow: worker {os.getpid()}: {error}", file=sys.stderr)
        return 1
    return 0


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with_parent(parent_pid: int) -> bool:
    """In a just-forked worker: have the kernel send it SIGTERM (a graceful drain) when
    the parent dies. False when the parent died already. Linux only; elsewhere the
    worker is left to the parent's relaying alone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent_pid


def _has_exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:  # already reaped
        return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has exited already
        os.kill(pid, signum)
