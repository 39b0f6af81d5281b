"""Launchers: how a task attempt gets a process of its own.

A launcher only starts an attempt, tells when it has exited, and kills it; the
runtime does everything else (what to run next, retries, timeouts, events), and the
attempt reports its outcome through a result file whatever launched it. So a new
way to run tasks (a container, a batch job) is one small class.

- :class:`ForkServerLauncher` (runtime/fork_server.py) forks each attempt from a fork
  of the runtime made before its first task: no interpreter start and no re-import, a
  task costs milliseconds. The default for local runs.
- :class:`CommandLauncher` runs the task entry point, ``python FLOW_FILE task --spec
  SPEC --result RESULT``, as a new process: exactly what a container or an executor
  runs, so the entry point is exercised by the same runs and tests.
"""

from __future__ import annotations

import abc
import contextlib
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ledgerflow.runtime.orphans import die_with_parent
from ledgerflow.runtime.task import TaskRequest

# Signals the runtime handles itself (and holds back while it launches or reaps a
# task); a task process gets the default handling.
INTERRUPTS = {signal.SIGINT, signal.SIGTERM}
# Tells the task entry point which process launched it (see task_process).
PARENT_PID_VARIABLE = "LEDGERFLOW_LAUNCHER_PID"


@dataclass(frozen=True)
class AttemptFiles:
    """Where an attempt reports: its outcome, and its captured stdout and stderr."""

    result: str
    stdout: str
    stderr: str

    @classmethod
    def under(cls, base: str) -> AttemptFiles:
        return cls(base + ".result", base + ".out", base + ".err")


def read_output(path: str | os.PathLike[str]) -> bytes:
    """What an attempt wrote to one of its output files so far (nothing yet: empty)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return b""


def output_size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


class Launcher(abc.ABC):
    """Starts attempts as processes and reports their exits (see the module doc).
    Handles are the launcher's numbers for its attempts."""

    @abc.abstractmethod
    def launch(self, request: TaskRequest, files: AttemptFiles) -> int:
        """Starts one attempt; returns a handle that :meth:`wait` reports when it exits."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        """Waits up to `timeout` seconds; returns (handle, exit code) of every attempt
        that exited (a negative code: killed by that signal)."""

    @abc.abstractmethod
    def kill(self, handle: int) -> None:
        """Kills an attempt; :meth:`wait` reports its exit."""

    @abc.abstractmethod
    def stop(self, handle: int) -> None:
        """Kills an attempt and waits for it here; :meth:`wait` will not report it."""

    def close(self) -> None:  # noqa: B027 - optional
        """Releases what the launcher holds (no attempt runs any more)."""


class ChildLauncher(Launcher):
    """Attempts that are this process's own children (the handle is the pid), watched
    through pidfds."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    @abc.abstractmethod
    def _start(self, request: TaskRequest, files: AttemptFiles) -> int:
        """Starts the attempt's process; returns its pid."""

    def launch(self, request: TaskRequest, files: AttemptFiles) -> int:
        pid = self._start(request, files)
        pidfd = os.pidfd_open(pid)
        self._selector.register(pidfd, selectors.EVENT_READ, pid)
        return pid

    def _reap(self, pid: int) -> int:
        """Collects an exited process; returns its exit code (negative: killed by
        that signal)."""
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def wait(self, timeout: float) -> list[tuple[int, int]]:
        exited = []
        for key, _ in self._selector.select(timeout=max(0.0, timeout)):
            self._forget(key.fd)
            exited.append((key.data, self._reap(key.data)))
        return exited

    def kill(self, handle: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle, signal.SIGKILL)

    def stop(self, handle: int) -> None:
        self.kill(handle)
        self._reap(handle)
        for key in list(self._selector.get_map().values()):
            if key.data == handle:
                self._forget(key.fd)

    def _forget(self, pidfd: int) -> None:
        self._selector.unregister(pidfd)
        os.close(pidfd)

    def close(self) -> None:
        self._selector.close()


class CommandLauncher(ChildLauncher):
    """Each attempt as ``python FLOW_FILE task --spec SPEC --result RESULT``, a new
    interpreter that imports the flow file: the task entry point containers run."""

    def __init__(self, flow_file: str | Path, python: Sequence[str] = (sys.executable,)) -> None:
        super().__init__()
        self.flow_file = str(flow_file)
        self.python = list(python)
        # Reaped through their Popen objects, so that subprocess never reaps them
        # behind our back.
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def command(self, spec_path: str, result_path: str) -> list[str]:
        return [*self.python, self.flow_file, "task", "--spec", spec_path, "--result", result_path]

    def _start(self, request: TaskRequest, files: AttemptFiles) -> int:
        spec_path = files.result + ".spec.json"
        Path(spec_path).write_text(request.to_json())
        # No Python runs between fork and exec (gRPC's fork handlers and threads make
        # that unsafe): the entry point itself ties its life to ours (see task_process).
        with open(files.stdout, "wb") as out, open(files.stderr, "wb") as err:
            process = subprocess.Popen(
                self.command(spec_path, files.result),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, PARENT_PID_VARIABLE: str(os.getpid())},
            )
        self._processes[process.pid] = process
        return process.pid

    def _reap(self, pid: int) -> int:
        return self._processes.pop(pid).wait()


def task_process() -> None:
    """At the start of the task entry point: die with the process that launched it
    (named by PARENT_PID_VARIABLE), and take the interrupts it held back while
    launching (an exec keeps the signal mask; it resets the handlers itself)."""
    parent = os.environ.get(PARENT_PID_VARIABLE, "")
    if parent.isdigit():
        _become_task_of(int(parent))


def run_forked_attempt(
    parent: int,
    run_child: Callable[[TaskRequest, AttemptFiles], Any],
    request: TaskRequest,
    files: AttemptFiles,
) -> NoReturn:
    """In a process just forked by `parent` for an attempt: the default handling of the
    interrupts, death with `parent`, then `run_child` (which ends the process)."""
    for signum in INTERRUPTS:
        signal.signal(signum, signal.SIG_DFL)
    _become_task_of(parent)
    run_child(request, files)
    os._exit(1)  # unreachable unless run_child returned


def _become_task_of(parent: int) -> None:
    """Dies with `parent`, and takes the interrupts it held back while launching."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    die_with_parent(parent)
