"""The local backend: each attempt a plain process, for machines without a container
engine. Its limits are an address-space rlimit (the step's memory on top of what the
warm process had mapped when it forked: an allocation beyond it fails inside the task,
as MemoryError; for an attempt with GPUs, a data-segment rlimit, since CUDA reserves far
more address space than it uses) and CPU affinity (as many cores as the step asks for,
round-robin). Each attempt sees only its GPUs (CUDA_VISIBLE_DEVICES, from the executor).
So it has nothing to add to an exit code (Backend.why_ended): a SIGKILL here came from
someone else, not from a memory limit.

Attempts run warm: one task server per flow file (``python FLOW_FILE task-server``,
see ledgerflow/runtime/task_server.py) imports the flow once and forks a child per attempt,
which applies its own limits. An attempt then costs a fork, not an interpreter start
and an import of the flow.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from ledgerflow.runtime.launcher import PARENT_PID_VARIABLE

from ledgerflow_executor.backends.base import (
    Backend,
    BackendError,
    Launch,
    cpu_count_for,
    inherited_environment,
)


@dataclass
class _TaskServer:
    """A warm task server and what it said."""

    process: subprocess.Popen[str]
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

    def _pick_cores(self, cpu: float) -> list[int]:
        count = min(cpu_count_for(cpu), len(self._cores))
        with self._lock:
            picked = {self._cores[(self._next_core + i) % len(self._cores)] for i in range(count)}
            self._next_core = (self._next_core + count) % len(self._cores)
        return sorted(picked)

    def start(self, launch: Launch) -> int:
        if launch.flow_file is None:
            raise BackendError("the local backend runs task entry points: a flow file is needed")
        server = self._server_for(launch)
        ask = {
            "spec": launch.spec_path, "result": launch.result_path,
            "stdout": launch.stdout_path, "stderr": launch.stderr_path,
            "memory_bytes": launch.memory_mb * 1024 * 1024,
            "cores": self._pick_cores(launch.cpu), "env": launch.env,
            "gpus": len(launch.gpu_ids),
        }  # fmt: skip
        assert server.process.stdin is not None
        try:
            server.process.stdin.write(json.dumps(ask) + "\n")
            server.process.stdin.flush()
            pid = server.started.get(timeout=60)
        except (OSError, queue.Empty) as error:
            raise BackendError(f"the task server of {launch.flow_file} is gone: {error}") from None
        server.running.add(pid)
        return pid

    def _server_for(self, launch: Launch) -> _TaskServer:
        assert launch.flow_file is not None
        server = self._servers.get(launch.flow_file)
        if server is not None and server.process.poll() is None:
            return server
        process = subprocess.Popen(
            [sys.executable, launch.flow_file, "task-server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
            env={**inherited_environment(dict(os.environ)), **launch.env,
                 PARENT_PID_VARIABLE: str(os.getpid())},
            cwd=os.path.dirname(launch.flow_file),
        )  # fmt: skip
        server = self._servers[launch.flow_file] = _TaskServer(process)
        threading.Thread(target=self._listen, args=(server,), daemon=True).start()
        return server

    def _listen(self, server: _TaskServer) -> None:
        """Relays what a task server says; when it dies, so did its attempts."""
        assert server.process.stdout is not None
        for line in server.process.stdout:
            message = json.loads(line)
            if "started" in message:
                server.started.put(int(message["started"]))
            else:
                pid = int(message["exited"])
                with self._lock:
                    server.running.discard(pid)
                    self._exited.append((pid, int(message["code"])))
                if self.on_exit is not None:
                    self.on_exit.set()
        with self._lock:
            self._exited.extend((pid, -signal.SIGKILL) for pid in server.running)
            server.running.clear()

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            exited, self._exited = self._exited, []
        return exited

    def kill(self, handle: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle, signal.SIGKILL)

    def close(self) -> None:
        for server in self._servers.values():
            with contextlib.suppress(OSError):
                if server.process.stdin is not None:
                    server.process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=10)
