"""Warm podman containers (``--backend podman --warm-containers``): an attempt runs in
a container that an earlier attempt of the same kind ran in, instead of a container of
its own, so it costs a fork, not a container start, an interpreter start and an import
of the flow.

Each warm container runs a task server (``python FLOW_FILE task-server``, see
ledgerflow/runtime/task_server.py) on the engine's attached stdin and stdout, made with
the step's CPUs, memory (its limit holds the server and the attempt together), GPUs and
pids limit, exactly as a container of one attempt would be. It runs one attempt at a
time, and takes only attempts of the same code package, image, resources and user
(`_PoolKey`): attempts of different users never share one, and a container mounts only
its user's attempt folders (the executor keeps one folder per user), never another
user's. Between attempts it is reset the way the task server resets itself as a
container's init: when an attempt exits, every other process in the container is
killed, and each attempt gets its own temporary folder (TMPDIR, in its work folder);
what an attempt writes elsewhere in the container's overlay stays until the container
goes.

A container waits, idle, for its next attempt at most IDLE_SECONDS, and at most
IDLE_LIMIT of them wait at once (the oldest goes first). An attempt's kill is the task
server's; one killed for memory is told by the kernel's count of OOM kills in the
container's memory cgroup. A container that ends before its server forked the attempt
(the flow's import failed, say) ends the attempt as a process that died, its server's
words in the attempt's stderr; only the engine's own refusal (exit 125: an image it
cannot get) means the attempt never began. The containers end with the executor: when
it exits (or dies), the engine's client closes the server's stdin, and the server kills
what still runs and exits, which removes the container (``--rm``); the folders of the
containers of an executor killed with -9 go when the next warm backend on the host
starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
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
    client_environment,
    container_ending,
    engine_words,
    hold_folder,
    read_tail,
    remove_env_file,
    remove_unheld_folders,
    source_of,
    write_env_file,
)
from ledgerflow_executor.backends.task_server_channel import (
    TaskServerChannel,
    TaskServerGone,
    attempt_request,
)

IDLE_SECONDS = 120.0
IDLE_LIMIT = 8
WARM_LABEL = "ledgerflow.warm"  # on each warm container: the service its executor serves
# Each container's folder (its server's stderr, the engine's cid and oom files), in the
# temporary folder: ledgerflow-warm-RANDOM (see _container_name).
FOLDER_PREFIX = "ledgerflow-warm-"
ENGINE_REFUSED = 125  # podman's exit when it could not create or start the container
CLOSE_SECONDS = 10.0  # how long close() waits for the containers to end by themselves


@dataclass(frozen=True)
class _PoolKey:
    """What an attempt needs its container to be: a container serves only attempts
    with the same key."""

    flow_file: str
    image: str
    cpu: float
    memory_mb: int
    gpu_ids: tuple[int, ...]
    mounts: tuple[str, ...]  # its user's attempt folders first
    owner: str


@dataclass
class _WarmAttempt:
    handle: int
    warm: _Warm
    stderr: Path  # the attempt's own stderr file
    pid: int | None = None  # in the container, once the server forked it
    ended: bool = False
    killed: bool = False  # by the executor
    # When its container ended with it: the engine's exit code, last words, and whether
    # conmon recorded an OOM kill (the container's `ending`).
    container_ending: tuple[int, str, bool] | None = None


@dataclass
class _Warm:
    """A warm container: its task server's channel, its folder (the engine client's
    working folder, where conmon leaves its "oom" file, and its stderr), its env file
    until the container exists, the attempt it runs (None: idle since `idle_since`),
    and the OOM kills counted so far."""

    name: str
    key: _PoolKey
    folder: Path
    env_file: Path | None
    channel: TaskServerChannel | None = None
    attempt: _WarmAttempt | None = None
    idle_since: float = 0.0
    oom_kills: int = 0
    host_pid: int | None = None  # the server's process id on this host, once asked
    folder_lock: int | None = None  # see container.hold_folder
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
class _Endings:
    """What the backend learned of the attempts that ended, by handle, for the
    executor's questions in the same turn of its loop (cleared at the next poll)."""

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
        self._all: list[_Warm] = []  # every container not yet closed
        self._closing: list[_Warm] = []  # closed, their folders not yet removed
        self._attempts: dict[int, _WarmAttempt] = {}
        self._exited: list[tuple[int, int]] = []
        self._endings = _Endings()
        self._handles = itertools.count(1 << 40)  # never a process id
        self._names = itertools.count(1)
        self._remove_stale_folders()

    def _remove_stale_folders(self) -> None:
        """Removes this user's container folders that no executor holds and no
        container uses, left by an executor that was killed (-9) before it could remove
        them. A folder its executor holds is kept however old: its container may still
        be starting (podman pulls the image first, for up to --start-timeout)."""
        try:
            listed = subprocess.run(
                [str(self.binary), "ps", "--all", "--filter", f"label={WARM_LABEL}",
                 "--format", "{{.Names}}"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return  # the engine cannot say which are in use: none is removed
        if listed.returncode != 0:
            return
        in_use = listed.stdout.split()
        remove_unheld_folders(
            FOLDER_PREFIX, in_use=lambda folder: any(_of_folder(n, folder) for n in in_use)
        )

    # ---- starting ------------------------------------------------------------------------

    def start(self, launch: Launch) -> int:
        if launch.flow_file is None:
            raise BackendError("warm containers run task entry points: a flow file is needed")
        key = _PoolKey(
            launch.flow_file, launch.image or self.image, launch.cpu, launch.memory_mb,
            launch.gpu_ids, (str(Path(launch.workdir).parent), *launch.mounts), launch.owner,
        )  # fmt: skip
        tmp = Path(launch.workdir) / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        ask = attempt_request(
            launch, memory_bytes=0,  # the container's limit bounds it
            env={**launch.env, "TMPDIR": str(tmp)}, cwd=launch.workdir,
        )  # fmt: skip
        warm = self._take_idle(key) or self._new_container(launch, key)
        attempt = _WarmAttempt(next(self._handles), warm, Path(launch.stderr_path))
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
        folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        lock = hold_folder(folder)
        name = _container_name(folder, next(self._names))
        server = dataclasses.replace(
            launch,
            name=name,
            command=[sys.executable, launch.flow_file, "task-server"],
            workdir=str(folder),
            task="",
            mounts=key.mounts,
        )
        env_file = write_env_file(launch.env)
        extra = ("--interactive", "--label", f"{WARM_LABEL}={launch.service}")
        warm = _Warm(name, key, folder, env_file, folder_lock=lock)
        try:
            with open(warm.stderr, "w") as err:
                process = subprocess.Popen(
                    self.command(server, env_file, extra=extra),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                    start_new_session=True, cwd=folder, env=client_environment(launch.env),
                )  # fmt: skip
        except BaseException:
            _remove_folder(warm)  # and its env file
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
            env_file, warm.env_file = warm.env_file, None
        if env_file is not None:  # its first attempt: the container exists
            remove_env_file(env_file)  # the engine read it
            # Asked here, on the channel's thread, not in the executor's loop: where to
            # count the container's OOM kills (this attempt's exit is told after it).
            warm.host_pid = self._host_pid(warm.name)

    def _attempt_exited(self, warm: _Warm, pid: int, code: int) -> None:
        with self._lock:
            attempt = warm.attempt
            if attempt is None or attempt.pid != pid or attempt.ended:
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
        engine's exit code when the server never forked it, else as killed; before
        the fork, the server's last words go into the attempt's stderr."""
        attempt = warm.attempt
        if attempt is None or attempt.ended or warm.ending is None:
            return
        attempt.ended = True
        code = warm.ending[0]
        if attempt.pid is None:
            with contextlib.suppress(OSError), open(attempt.stderr, "a") as stderr:
                stderr.write(read_tail(warm.stderr, 16384))
        self._exited.append((attempt.handle, code if attempt.pid is None else -signal.SIGKILL))
        attempt.container_ending = warm.ending

    # ---- the executor's loop -------------------------------------------------------------

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            exited, self._exited = self._exited, []
        self._endings = _Endings()  # the executor asked what it needed last turn
        for handle, code in exited:
            attempt = self._attempts.pop(handle, None)
            if attempt is None:
                continue
            warm, ending = attempt.warm, attempt.container_ending
            refused = code == ENGINE_REFUSED and not attempt.killed and attempt.pid is None
            if ending is not None and refused:
                self._endings.never_began[handle] = self._why_not_created(
                    warm.key.image, code, ending[1]
                )
            elif ending is not None:
                self._endings.container_exits[handle] = ending
            elif self._oom_killed_in(warm):
                self._endings.oom_killed.add(handle)
            with self._lock:
                warm.attempt = None
                if not warm.gone:  # ready for the next attempt of its kind
                    warm.idle_since = time.monotonic()
                    self._idle.append(warm)
        self._release_idle()
        self._remove_closed_folders()
        return exited

    def _oom_killed_in(self, warm: _Warm) -> bool:
        """Whether the kernel killed for memory in the container since last asked."""
        if warm.host_pid is None:  # not known when the container started
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
        except (OSError, subprocess.SubprocessError):
            return None
        pid = inspected.stdout.strip()
        return int(pid) if pid.isdigit() and int(pid) > 0 else None

    def _release_idle(self) -> None:
        """Closes the containers idle too long, and the oldest beyond IDLE_LIMIT, and
        forgets those that ended."""
        now = time.monotonic()
        with self._lock:
            self._idle = sorted((w for w in self._idle if not w.gone),
                                key=lambda warm: warm.idle_since)  # fmt: skip
            fresh = [w for w in self._idle if now - w.idle_since <= IDLE_SECONDS]
            over = max(0, len(fresh) - IDLE_LIMIT)
            keep = fresh[over:]
            closing = [
                w for w in self._all
                if w not in keep and w.attempt is None and (w.gone or w in self._idle)
            ]  # fmt: skip
            self._idle = keep
            self._all = [w for w in self._all if w not in closing]
            self._closing.extend(closing)
        for warm in closing:
            if warm.channel is not None:
                warm.channel.close_stdin()

    def _remove_closed_folders(self) -> None:
        """The folders (and env files) of closed containers whose engine client ended."""
        with self._lock:
            done = [w for w in self._closing
                    if w.channel is None or w.channel.process.poll() is not None]  # fmt: skip
            self._closing = [w for w in self._closing if w not in done]
        for warm in done:
            _remove_folder(warm)

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        if handle in self._endings.oom_killed:
            return died_outcome(exit_code, memory_mb=memory_mb)
        container = self._endings.container_exits.get(handle)
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
        return source_of(attempt.warm.key.image) + " (or the flow's import in it)"

    def never_began(self, handle: int, exit_code: int) -> TaskOutcome | None:
        return self._endings.never_began.get(handle)

    def handle_of(self, launch: Launch) -> str:
        return ""  # it ends with this executor (module docstring)

    def kill(self, handle: int) -> None:
        attempt = self._attempts.get(handle)
        if attempt is None or attempt.ended:
            return
        attempt.killed = True
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
        """Closes every server's stdin at once, waits for the containers to end (at
        most CLOSE_SECONDS in all), kills those that did not, removes their folders."""
        with self._lock:
            every = [*self._all, *self._closing]
            self._all, self._idle, self._closing = [], [], []
        for warm in every:
            if warm.channel is not None:
                warm.channel.close_stdin()
        deadline = time.monotonic() + CLOSE_SECONDS
        for warm in every:
            channel = warm.channel
            if channel is not None and not channel.exited_within(deadline - time.monotonic()):
                self._kill_container(warm.name)
                channel.process.kill()
                channel.exited_within(5)
            _remove_folder(warm)
        super().close()


def _remove_folder(warm: _Warm) -> None:
    if warm.env_file is not None:
        remove_env_file(warm.env_file)
    shutil.rmtree(warm.folder, ignore_errors=True)
    if warm.folder_lock is not None:
        os.close(warm.folder_lock)
        warm.folder_lock = None


def _container_name(folder: Path, number: int) -> str:
    """A container's name: its folder's, and its number among that executor's."""
    return f"{folder.name}-{number}"


def _of_folder(name: str, folder: Path) -> bool:
    return name.startswith(f"{folder.name}-")
