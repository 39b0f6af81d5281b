"""The local backend: each attempt a plain process, for machines without a container
engine. Its memory bound is a cgroup per attempt where the machine allows one (cgroup
v2 or v1, under the executor's own cgroup: see cgroups.py): the kernel bounds what the
attempt keeps resident to the step's memory, kills it when it goes over (reported as
out of memory, Backend.why_ended) and, when it ends, whatever it left running.
Elsewhere (no writable memory cgroup, or LEDGERFLOW_LOCAL_MEMORY=rlimit) it falls back
to an address-space rlimit, said once as the backend starts: the step's memory on top
of what the warm process had mapped when it forked, so an allocation beyond it fails
inside the task, as MemoryError, but so does a thread's stack reservation (for an
attempt with GPUs, a data-segment rlimit, since CUDA reserves far more address space
than it uses). CPUs: affinity (as many cores as the step asks for, round-robin). Each
attempt sees only its GPUs (CUDA_VISIBLE_DEVICES, from the executor).

Attempts run warm: one task server per flow file (``python FLOW_FILE task-server``,
see ledgerflow/runtime/task_server.py) imports the flow once and forks a child per attempt,
which joins its cgroup (or applies its rlimit) itself. An attempt then costs a fork, not
an interpreter start and an import of the flow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ledgerflow.engine import TaskOutcome, died_outcome
from ledgerflow.runtime.launcher import PARENT_PID_VARIABLE

from ledgerflow_executor.backends.base import (
    Backend,
    BackendError,
    Launch,
    cpu_count_for,
    inherited_environment,
)
from ledgerflow_executor.backends.cgroups import MemoryCgroups, NoMemoryCgroup, open_memory_cgroups
from ledgerflow_executor.backends.task_server_channel import (
    TaskServerChannel,
    TaskServerGone,
    attempt_request,
)

log = logging.getLogger(__name__)

# "rlimit": bound attempts by address space even where a memory cgroup could be made
# (for a machine whose cgroups another tool manages).
MEMORY_VARIABLE = "LEDGERFLOW_LOCAL_MEMORY"


@dataclass
class _TaskServer:
    """A warm task server, the attempts it runs, and the pids it said it started."""

    channel: TaskServerChannel
    started: queue.Queue[int] = field(default_factory=queue.Queue)
    running: set[int] = field(default_factory=set)


class LocalBackend(Backend):
    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._cores = sorted(os.sched_getaffinity(0))
        self._next_core = 0
        self._servers: dict[str, _TaskServer] = {}
        self._exited: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        # An attempt's cgroup (by handle) until it ends; those that would not go yet; the
        # handles the kernel killed for memory, until why_ended is asked.
        self._cgroups = _memory_cgroups()
        self._attempt_cgroups: dict[int, Path] = {}
        self._leftovers: list[Path] = []
        self._oom_killed: set[int] = set()

    def _pick_cores(self, cpu: float) -> list[int]:
        count = min(cpu_count_for(cpu), len(self._cores))
        with self._lock:
            picked = {self._cores[(self._next_core + i) % len(self._cores)] for i in range(count)}
            self._next_core = (self._next_core + count) % len(self._cores)
        return sorted(picked)

    def start(self, launch: Launch) -> int:
        if launch.flow_file is None:
            raise BackendError("the local backend runs task entry points: a flow file is needed")
        cgroup = self._create_cgroup(launch)
        try:
            server = self._server_for(launch)
            ask = attempt_request(
                launch, memory_bytes=launch.memory_mb * 1024 * 1024, cgroup=str(cgroup or ""),
                cores=self._pick_cores(launch.cpu),
            )  # fmt: skip
            try:
                server.channel.ask(ask)
                pid = server.started.get(timeout=60)
            except (TaskServerGone, queue.Empty) as error:
                raise BackendError(
                    f"the task server of {launch.flow_file} is gone: {error}"
                ) from None
        except BaseException:
            if cgroup is not None and self._cgroups is not None:
                self._cgroups.remove(cgroup)
            raise
        server.running.add(pid)
        if cgroup is not None:
            self._attempt_cgroups[pid] = cgroup
        return pid

    def _create_cgroup(self, launch: Launch) -> Path | None:
        """The attempt's memory cgroup (None: bounded by rlimit instead)."""
        if self._cgroups is None:
            return None
        try:
            return self._cgroups.create(launch.name, launch.memory_mb)
        except OSError as error:
            raise BackendError(f"cannot make the memory cgroup of {launch.name}: {error}") from None

    def _server_for(self, launch: Launch) -> _TaskServer:
        assert launch.flow_file is not None
        server = self._servers.get(launch.flow_file)
        if server is not None and server.channel.alive():
            return server
        process = subprocess.Popen(
            [sys.executable, launch.flow_file, "task-server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
            env={**inherited_environment(dict(os.environ)), **launch.env,
                 PARENT_PID_VARIABLE: str(os.getpid())},
            cwd=os.path.dirname(launch.flow_file),
        )  # fmt: skip
        started: queue.Queue[int] = queue.Queue()
        new = _TaskServer(
            TaskServerChannel(
                process,
                on_started=started.put,
                on_exited=lambda pid, code: self._exited_from(new, pid, code),
                on_gone=lambda: self._server_gone(new),
            ),
            started,
        )
        self._servers[launch.flow_file] = new
        new.channel.listen()
        return new

    def _exited_from(self, server: _TaskServer, pid: int, code: int) -> None:
        with self._lock:
            server.running.discard(pid)
            self._exited.append((pid, code))
        if self.on_exit is not None:
            self.on_exit.set()

    def _server_gone(self, server: _TaskServer) -> None:
        """When a task server dies, so did its attempts."""
        with self._lock:
            self._exited.extend((pid, -signal.SIGKILL) for pid in server.running)
            server.running.clear()

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            exited, self._exited = self._exited, []
        if self._cgroups is not None:
            # Those that would not go before are tried again without waiting: the loop
            # that polls must not stall on a process that will not die.
            self._leftovers = [
                c for c in self._leftovers if not self._cgroups.remove(c, patience=0)
            ]
            for handle, _ in exited:  # read before the cgroup goes, for why_ended
                cgroup = self._attempt_cgroups.pop(handle, None)
                if cgroup is None:
                    continue
                if self._cgroups.oom_killed(cgroup):
                    self._oom_killed.add(handle)
                if not self._cgroups.remove(cgroup):
                    self._leftovers.append(cgroup)
        return exited

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        """Out of memory when the kernel killed a process of the attempt's cgroup for
        its limit; otherwise a SIGKILL came from someone else (under the rlimit, an
        allocation beyond it fails inside the task, which reports it)."""
        if handle in self._oom_killed:
            self._oom_killed.discard(handle)
            return died_outcome(exit_code, memory_mb=memory_mb)
        return None

    def kill(self, handle: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle, signal.SIGKILL)
        cgroup = self._attempt_cgroups.get(handle)
        if cgroup is not None and self._cgroups is not None:
            self._cgroups.kill(cgroup)  # its children that left its process group too

    def close(self) -> None:
        for server in self._servers.values():
            server.channel.close()
        if self._cgroups is not None:
            for cgroup in [*self._attempt_cgroups.values(), *self._leftovers]:
                self._cgroups.remove(cgroup)
            self._attempt_cgroups.clear()
            self._leftovers.clear()
            if not self._cgroups.close():
                log.warning("could not remove the cgroups in %s", self._cgroups.root)


def _memory_cgroups() -> MemoryCgroups | None:
    """The attempts' memory cgroups, or None (then the rlimit, said here, once)."""
    if os.environ.get(MEMORY_VARIABLE, "") == "rlimit":
        why = f"{MEMORY_VARIABLE}=rlimit"
    else:
        try:
            return open_memory_cgroups()
        except NoMemoryCgroup as error:
            why = f"no memory cgroup can be made here: {error}"
    log.warning(
        "the local backend bounds each attempt's address space, not its memory (%s): "
        "thread stacks and mappings count against @resources(memory=...) as if resident",
        why,
    )
    return None
