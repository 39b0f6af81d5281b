"""Warm podman containers (``--backend podman --warm-containers``): an attempt runs in
a container that an earlier attempt of the same kind ran in, instead of a container of
its own, so it costs a fork, not a container start, an interpreter start and an import
of the flow.

Each warm container runs a task server (``python FLOW_FILE task-server``, see
ledgerflow/runtime/task_server.py) on the engine's attached stdin and stdout, made with
the step's CPUs, memory (its limit holds the server and the attempt together), GPUs and
pids limit, exactly as a container of one attempt would be. It runs one attempt at a
time, and takes only attempts of the same code package, image, resources and user
(`_PoolKey`): attempts of different users never share one. Between attempts it is reset
the way the task server resets itself: the attempt's process group is killed when it
exits, and each attempt gets its own temporary folder (TMPDIR, in its work folder); what
an attempt writes elsewhere in the container's overlay stays until the container goes.

A container waits, idle, for its next attempt at most IDLE_SECONDS, and at most
IDLE_LIMIT of them wait at once (the oldest goes first). An attempt's kill is the task
server's (its process group); one killed for memory is told by the kernel's count of
OOM kills in the container's memory cgroup. The containers end with the executor: when
it exits (or dies), the engine's client closes the server's stdin, and the server kills
what still runs and exits, which removes the container (``--rm``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledgerflow.engine import TaskOutcome, died_outcome

from ledgerflow_executor.backends.base import BackendError, Launch
from ledgerflow_executor.backends.cgroups import oom_kills_of
from ledgerflow_executor.backends.container import (
    ContainerBackend,
    container_ending,
    engine_words,
    env_file_holds,
    remove_env_file,
    source_of,
    write_env_file,
)
from ledgerflow_executor.backends.task_server_channel import TaskServerChannel, TaskServerGone

log = logging.getLogger(__name__)

IDLE_SECONDS = 120.0
IDLE_LIMIT = 8
WARM_LABEL = "ledgerflow.warm"  # on each warm container: the service its executor serves


@dataclass(frozen=True)
class _PoolKey:
    """What an attempt needs its container to be: a container serves only attempts
    with the same key."""

    flow_file: str
    image: str
    cpu: float
    memory_mb: int
    gpu_ids: tuple[int, ...]
    mounts: tuple[str, ...]
    owner: str


@dataclass
class _Warm:
    """A warm container: its task server's channel, its folder (the engine client's
    working folder, where conmon leaves its "oom" file), its env file and stderr, the
    attempt it runs (None: idle since `idle_since`), and the OOM kills counted so far."""

    name: str
    key: _PoolKey
    folder: Path
    env_file: Path
    channel: TaskServerChannel | None = None
    attempt: _WarmAttempt | None = None
    idle_since: float = 0.0
    oom_kills: int = 0
    host_pid: int | None = None  # the server's process id on this host, once asked
    # Once the container ended: the engine's exit code, its last words, and whether
    # conmon recorded an OOM kill.
    ending: tuple[int, str, bool] | None = None

    @property
    def gone(self) -> bool:
        return self.ending is not None

    @property
    def stderr(self) -> Path:
        return self.folder / "stderr"


@dataclass
class _WarmAttempt:
    handle: int
    warm: _Warm
    memory_mb: int
    pid: int | None = None  # in the container, once the server forked it
    ended: bool = False


@dataclass
class _Endings:
    """What the backend learned of ended attempts, by handle, until the executor asks."""

    oom_killed: set[int] = field(default_factory=set)
    container_exits: dict[int, tuple[int, str, bool]] = field(default_factory=dict)
    never_began: dict[int, TaskOutcome] = field(default_factory=dict)


class WarmContainerBackend(ContainerBackend):
    """The podman backend, with its containers kept warm between attempts."""

    def __init__(self, engine: str = "podman", image: str = "") -> None:
        if engine != "podman":
            raise BackendError(
                "--warm-containers: podman only (a warm container must end when its "
                "executor does, which podman's attached client ensures)"
            )
        super().__init__(engine, image)
        self._lock = threading.Lock()
        self._idle: list[_Warm] = []
        self._all: list[_Warm] = []
        self._attempts: dict[int, _WarmAttempt] = {}
        self._exited: list[tuple[int, int]] = []
        self._endings = _Endings()
        self._handles = itertools.count(1 << 40)  # never a process id
        self._names = itertools.count(1)

    # ---- starting ------------------------------------------------------------------------

    def start(self, launch: Launch) -> int:
        if launch.flow_file is None:
            raise BackendError("warm containers run task entry points: a flow file is needed")
        key = _PoolKey(
            launch.flow_file, launch.image or self.image, launch.cpu, launch.memory_mb,
            launch.gpu_ids, launch.mounts, launch.owner,
        )  # fmt: skip
        tmp = Path(launch.workdir) / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        ask = {
            "spec": launch.spec_path, "result": launch.result_path,
            "stdout": launch.stdout_path, "stderr": launch.stderr_path,
            "memory_bytes": 0,  # the container's limit bounds it
            "cgroup": "", "cores": [], "gpus": len(launch.gpu_ids),
            "env": {**launch.env, "TMPDIR": str(tmp)}, "cwd": launch.workdir,
        }  # fmt: skip
        warm = self._take_idle(key)
        if warm is None:
            warm = self._new_container(launch, key)
        attempt = _WarmAttempt(next(self._handles), warm, launch.memory_mb)
        with self._lock:
            warm.attempt = attempt
            self._attempts[attempt.handle] = attempt
            self._end_with_container(warm)  # when it is gone already
        assert warm.channel is not None
        # When the server is gone, its channel says so and the attempt ends with it.
        with contextlib.suppress(TaskServerGone):
            warm.channel.ask(ask)
        return attempt.handle

    def _take_idle(self, key: _PoolKey) -> _Warm | None:
        with self._lock:
            for warm in self._idle:
                if warm.key == key and not warm.gone:
                    self._idle.remove(warm)
                    return warm
        return None

    def _new_container(self, launch: Launch, key: _PoolKey) -> _Warm:
        """Starts a container whose task server waits for attempts like `launch`."""
        assert launch.flow_file is not None
        folder = Path(tempfile.mkdtemp(prefix="ledgerflow-warm-"))
        name = f"ledgerflow-warm-{folder.name.rsplit('-', 1)[-1]}-{next(self._names)}"
        server = dataclasses.replace(
            launch,
            name=name,
            command=[sys.executable, launch.flow_file, "task-server"],
            workdir=str(folder),
            task="",
            # every attempt's work folder is in the executor's folder
            mounts=(str(Path(launch.workdir).parent), *launch.mounts),
        )
        env_file = write_env_file(launch.env)
        by_name = {k: v for k, v in launch.env.items() if not env_file_holds(v)}
        extra = ("--interactive", "--label", f"{WARM_LABEL}={launch.service}")
        warm = _Warm(name, key, folder, env_file)
        try:
            with open(warm.stderr, "w") as err:
                process = subprocess.Popen(
                    self.command(server, env_file, extra=extra),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                    start_new_session=True, cwd=folder,
                    env={**os.environ, **by_name} if by_name else None,
                )  # fmt: skip
        except BaseException:
            remove_env_file(env_file)
            raise
        warm.channel = TaskServerChannel(
            process,
            on_started=lambda pid: self._started(warm, pid),
            on_exited=lambda pid, code: self._attempt_exited(warm, pid, code),
            on_gone=lambda: self._container_gone(warm),
        )
        with self._lock:
            self._all.append(warm)
        warm.channel.listen()
        return warm

    # ---- what the servers say (on their channels' threads) ------------------------------

    def _started(self, warm: _Warm, pid: int) -> None:
        with self._lock:
            if warm.attempt is not None:
                warm.attempt.pid = pid

    def _attempt_exited(self, warm: _Warm, pid: int, code: int) -> None:
        with self._lock:
            attempt = warm.attempt
            if attempt is None or attempt.pid != pid:
                return
            attempt.ended = True
            self._exited.append((attempt.handle, code))
        if self.on_exit is not None:
            self.on_exit.set()

    def _container_gone(self, warm: _Warm) -> None:
        """The server ended (the container did): so did its attempt, if it had one."""
        assert warm.channel is not None
        code = warm.channel.process.wait()
        with self._lock:
            warm.ending = (code, engine_words(warm.stderr), (warm.folder / "oom").exists())
            self._end_with_container(warm)
        if self.on_exit is not None:
            self.on_exit.set()

    def _end_with_container(self, warm: _Warm) -> None:
        """Ends the attempt of a container that is gone (under the lock): with the
        engine's exit code when it never began, else as killed."""
        attempt = warm.attempt
        if attempt is None or attempt.ended or warm.ending is None:
            return
        attempt.ended = True
        code = warm.ending[0]
        began = attempt.pid is not None
        self._exited.append((attempt.handle, code if code > 0 or not began else -9))
        self._endings.container_exits[attempt.handle] = warm.ending

    # ---- the executor's loop -------------------------------------------------------------

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            exited, self._exited = self._exited, []
        for handle, code in exited:
            attempt = self._attempts.pop(handle, None)
            if attempt is None:
                continue
            warm = attempt.warm
            if attempt.pid is None and handle in self._endings.container_exits:
                said = self._endings.container_exits.pop(handle)[1]
                self._endings.never_began[handle] = self._why_not_created(
                    warm.key.image, code, said
                )
            elif not warm.gone and self._oom_killed_in(warm):
                self._endings.oom_killed.add(handle)
            with self._lock:
                warm.attempt = None
                if not warm.gone:  # ready for the next attempt of its kind
                    warm.idle_since = time.monotonic()
                    self._idle.append(warm)
        self._release_idle()
        self._forget_gone()
        return exited

    def _oom_killed_in(self, warm: _Warm) -> bool:
        """Whether the kernel killed for memory in the container since last asked."""
        if warm.host_pid is None:
            warm.host_pid = self._host_pid(warm.name)
        kills = oom_kills_of(warm.host_pid) if warm.host_pid else None
        if kills is None or kills <= warm.oom_kills:
            return False
        warm.oom_kills = kills
        return True

    def _host_pid(self, name: str) -> int | None:
        try:
            inspected = subprocess.run(
                [str(self.binary), "inspect", "--format", "{{.State.Pid}}", name],
                capture_output=True, text=True, check=False, timeout=30,
            )  # fmt: skip
        except subprocess.SubprocessError:
            return None
        pid = inspected.stdout.strip()
        return int(pid) if pid.isdigit() and int(pid) > 0 else None

    def _release_idle(self) -> None:
        """Closes the containers idle too long, and the oldest beyond IDLE_LIMIT."""
        now = time.monotonic()
        with self._lock:
            self._idle.sort(key=lambda warm: warm.idle_since)
            stale = [w for w in self._idle if now - w.idle_since > IDLE_SECONDS]
            fresh = [w for w in self._idle if now - w.idle_since <= IDLE_SECONDS]
            over = max(0, len(fresh) - IDLE_LIMIT)
            closing, self._idle = stale + fresh[:over], fresh[over:]
        for warm in closing:
            self._close(warm, wait_seconds=0)

    def _forget_gone(self) -> None:
        with self._lock:
            gone = [w for w in self._all if w.gone and w.attempt is None]
            self._all = [w for w in self._all if w not in gone]
            self._idle = [w for w in self._idle if not w.gone]
        for warm in gone:
            self._close(warm, wait_seconds=0)

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        if handle in self._endings.oom_killed:
            self._endings.oom_killed.discard(handle)
            return died_outcome(exit_code, memory_mb=memory_mb)
        container = self._endings.container_exits.pop(handle, None)
        if container is None:
            return None  # the attempt's own exit, in a container that lives on
        code, said, oom = container
        return container_ending(self.name, code, memory_mb, oom_killed=oom, engine_said=said)

    def begun(self, handle: int) -> bool:
        attempt = self._attempts.get(handle)
        return attempt is None or attempt.pid is not None or attempt.ended

    def _source_waited_on(self, handle: int) -> str | None:
        attempt = self._attempts.get(handle)
        if attempt is None or self.begun(handle):
            return None
        return source_of(attempt.warm.key.image)

    def never_began(self, handle: int, exit_code: int) -> TaskOutcome | None:
        return self._endings.never_began.pop(handle, None)

    def handle_of(self, launch: Launch) -> str:
        return ""  # it ends with this executor (module docstring)

    def kill(self, handle: int) -> None:
        attempt = self._attempts.get(handle)
        if attempt is None or attempt.ended:
            return
        warm = attempt.warm
        if attempt.pid is not None and warm.channel is not None:
            try:
                warm.channel.ask({"kill": attempt.pid})
                return
            except TaskServerGone:
                pass
        # Not begun (the engine may still be pulling the image), or its server does not
        # listen: the engine's client and the container go, and the attempt with them.
        if warm.channel is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(warm.channel.process.pid, signal.SIGKILL)
        self._kill_container(warm.name)

    def close(self) -> None:
        with self._lock:
            every, self._all, self._idle = self._all, [], []
        for warm in every:
            self._close(warm, wait_seconds=10)
        super().close()

    def _close(self, warm: _Warm, wait_seconds: float) -> None:
        """Closes the server's stdin: it exits, and the engine removes its container."""
        if warm.channel is not None:
            if wait_seconds:
                warm.channel.close(wait_seconds)
            else:
                threading.Thread(target=warm.channel.close, daemon=True).start()
        remove_env_file(warm.env_file)
        # the folder goes once the engine's client is done with it
        threading.Thread(target=_remove_when_done, args=(warm,), daemon=True).start()


def _remove_when_done(warm: _Warm) -> None:
    if warm.channel is not None:
        try:
            warm.channel.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            return
    shutil.rmtree(warm.folder, ignore_errors=True)
