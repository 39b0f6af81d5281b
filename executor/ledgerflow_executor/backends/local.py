"""The local backend: each attempt a plain process, for machines without a container
engine. Its limits are rlimits and CPU affinity, applied by util-linux's ``prlimit``
and ``taskset`` (no Python runs between fork and exec, which gRPC's threads make
unsafe): the address space bounded by the step's memory (an allocation beyond it fails
inside the task, as MemoryError), and the process pinned to as many cores as the step
asks for, taken round-robin."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading

from ledgerflow_executor.backends.base import Backend, Launch, cpu_count_for

# The interpreter and its libraries map memory they never touch: the address-space
# limit is the step's memory plus this.
_ADDRESS_SPACE_HEADROOM_MB = 512


_PRLIMIT = shutil.which("prlimit") or "prlimit"
_TASKSET = shutil.which("taskset") or "taskset"


class LocalBackend(Backend):
    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._cores = sorted(os.sched_getaffinity(0))
        self._next_core = 0
        self._lock = threading.Lock()

    def _pick_cores(self, cpu: float) -> set[int]:
        count = min(cpu_count_for(cpu), len(self._cores))
        with self._lock:
            picked = {self._cores[(self._next_core + i) % len(self._cores)] for i in range(count)}
            self._next_core = (self._next_core + count) % len(self._cores)
        return picked

    def command(self, launch: Launch) -> list[str]:
        """The attempt's command under its limits."""
        cores = ",".join(str(c) for c in sorted(self._pick_cores(launch.cpu)))
        limit = (launch.memory_mb + _ADDRESS_SPACE_HEADROOM_MB) * 1024 * 1024
        return [_PRLIMIT, f"--as={limit}", _TASKSET, "--cpu-list", cores, *launch.command]

    def _popen(self, launch: Launch) -> subprocess.Popen[bytes]:
        env = {**os.environ, **launch.env}
        if launch.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in launch.gpu_ids)
        with open(launch.stdout_path, "wb") as out, open(launch.stderr_path, "wb") as err:
            return subprocess.Popen(
                self.command(launch),
                cwd=launch.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )

    def kill(self, handle: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle, signal.SIGKILL)
