"""What a backend does: launch one task attempt with its resources, report its exit,
kill it. Everything else (leases, events, logs, outcomes) is the executor's, so a new
place to run tasks is one small class."""

from __future__ import annotations

import abc
import math
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ledgerflow.engine import TaskOutcome

# Where an executor keeps its attempts' folders (one folder per executor in it). The
# slurm backend's nodes must see it at the same path.
WORKROOT = Path("/tmp/ledgerflow-executor")
# The executor's own settings that its tasks (user code) must not inherit: its token
# acts for other users' runs.
PRIVATE_VARIABLES = frozenset({"LEDGERFLOW_TOKEN"})


def inherited_environment(environ: dict[str, str]) -> dict[str, str]:
    """What a task started as the executor's child process inherits from it."""
    return {name: value for name, value in environ.items() if name not in PRIVATE_VARIABLES}


class BackendError(Exception):
    """A backend cannot run here (say, its container engine is missing)."""


@dataclass(frozen=True)
class Launch:
    """One attempt to start: the command (the task entry point), where it runs and
    writes its output, and the resources its step asked for."""

    name: str  # unique per attempt; a container is named after it
    command: list[str]
    workdir: str
    stdout_path: str
    stderr_path: str
    cpu: float
    memory_mb: int
    gpu: int
    env: dict[str, str] = field(default_factory=dict)
    # Folders the task must reach at the same path (the datastore, the work folder).
    mounts: tuple[str, ...] = ()
    image: str = ""
    # @timeout, for backends whose engine enforces it (0: none).
    timeout_seconds: float = 0
    # The task and attempt, "Flow/run/step/task.attempt", to name jobs after.
    task: str = ""
    # The executor's GPU slots for this attempt (indexes, as CUDA_VISIBLE_DEVICES names
    # them): the devices themselves unless the backend's engine assigns GPUs.
    gpu_ids: tuple[int, ...] = ()
    # The task entry point's parts (`command` runs FLOW_FILE task --spec SPEC --result
    # RESULT), for backends that run attempts their own way (a warm task server).
    flow_file: str | None = None
    # The key of the run's code package in the datastore (the flow file's origin), for
    # backends whose attempts fetch it themselves (a Kubernetes pod).
    code_package: str = ""
    spec_path: str = ""
    result_path: str = ""
    # The metadata service the attempt's lease is from, as its executor reaches it: an
    # engine shared by executors of several services tells their attempts apart by it.
    service: str = ""
    # Who the run is for (Run.user): a warm container never takes attempts of two users.
    owner: str = ""


@dataclass(frozen=True)
class Leftover:
    """An attempt the backend's engine runs, as its labels name it: this executor's, or
    one a dead executor left (Executor._sweep_leftovers tells them apart)."""

    handle: str  # the engine's name for it, for kill_leftover
    task: str  # Flow/run/step/task
    attempt: int
    lease_id: str
    service: str  # the metadata service its lease is from (Launch.service)


class Backend(abc.ABC):
    name = ""
    # Whether the engine picks an attempt's GPUs and names them to it (Slurm's gres, a
    # Kubernetes device plugin): then the executor does not set CUDA_VISIBLE_DEVICES.
    assigns_gpus = False
    # Whether the engine may hold a started attempt back (a scheduler's queue): then its
    # TaskStarted is recorded once it has begun (`begun`), not when it is handed over,
    # so that time pending in the queue does not count as running.
    holds_attempts_back = False

    def __init__(self) -> None:
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        # Set when an attempt exits, for backends that learn of exits as they happen.
        self.on_exit: threading.Event | None = None

    def _popen(self, launch: Launch) -> subprocess.Popen[bytes]:
        """Starts the process that runs (or supervises) the attempt: for backends whose
        attempts are local processes (the others override start and poll)."""
        raise NotImplementedError(f"{type(self).__name__} starts attempts its own way")

    @abc.abstractmethod
    def kill(self, handle: int) -> None:
        """Kills the attempt; poll reports its exit."""

    def start(self, launch: Launch) -> int:
        """Starts the attempt; returns its handle for poll and kill."""
        process = self._popen(launch)
        self._processes[process.pid] = process
        return process.pid

    def start_gang(self, launches: list[Launch]) -> list[int]:
        """Starts the attempts of a @parallel gang together (node 0 first); returns
        their handles, in order. Here: each on this machine, where they reach node 0
        on loopback (current.parallel.main_ip's default). Backends whose engine starts
        a gang as one unit override it (a Slurm job of N tasks, a Kubernetes indexed
        Job). Raises, having killed those it started, when it cannot start them all."""
        handles: list[int] = []
        try:
            for launch in launches:
                handles.append(self.start(launch))
        except Exception:
            for handle in handles:
                self.kill(handle)
            raise
        return handles

    def poll(self) -> list[tuple[int, int]]:
        """(handle, exit code) of each attempt that exited since the last call (a
        negative code: killed by that signal)."""
        exited = []
        for handle, process in list(self._processes.items()):
            code = process.poll()
            if code is not None:
                del self._processes[handle]
                exited.append((handle, code))
        return exited

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        """For an attempt that just exited without reporting an outcome: the engine's
        own account, as a failed outcome of the right kind (its time limit, out of its
        `memory_mb`, a failed node, an engine that could not start it), or None when
        the engine knows no more than the exit code."""
        return None

    def begun(self, handle: int) -> bool:
        """Whether a started attempt runs yet (its TaskStarted is recorded once it does:
        a job pending in a scheduler's queue is not running)."""
        return True

    def never_began(self, handle: int, exit_code: int) -> TaskOutcome | None:
        """For an attempt held back that ended before it was seen to begin: the engine's
        account when it never began at all (an image it could not pull), as an
        infrastructure failure; None when it may have run (a job too short to be seen
        running). Then no TaskStarted is recorded for it, but TaskNotStarted."""
        return None

    def start_trouble(self, handle: int) -> TaskOutcome | None:
        """Why an attempt held back cannot begin now (an image the engine cannot pull, a
        pod no node can take), as an infrastructure failure; None while it just waits
        its turn. One in trouble for the executor's --start-timeout is given back."""
        return None

    def waiting(self, handle: int) -> str:
        """Why a started attempt does not run yet (say, pending in a scheduler's queue);
        empty once it runs."""
        return ""

    def handle_of(self, launch: Launch) -> str:
        """The engine's name for an attempt, recorded in its TaskStarted: where to find
        it once its executor is gone. Empty: it dies with its executor (a local
        process)."""
        return ""

    def leftovers(self) -> list[Leftover]:
        """The attempts the engine runs that any executor started (this one's too), for
        engines whose work outlives its executor (a container, a Slurm job)."""
        return []

    def kill_leftover(self, leftover: Leftover) -> None:  # noqa: B027 - optional
        """Kills an attempt another executor started (see leftovers)."""

    def capacity(self) -> tuple[float, int, int] | None:
        """(cpus, memory MB, GPUs) the backend's engine offers, when it knows better than
        this machine (a cluster); None: this machine's."""
        return None

    def close(self) -> None:  # noqa: B027 - optional
        """Releases what the backend holds."""


def cpu_count_for(cpu: float) -> int:
    """Whole cores for a fractional CPU request (at least one)."""
    return max(1, math.ceil(cpu))
