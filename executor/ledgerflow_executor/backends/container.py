"""The podman and docker backends: each attempt in a container of its own, with the
step's CPU quota (--cpus), memory limit (--memory, no swap beyond it), a pids limit,
and its GPUs as devices. The datastore and the attempt's work folder are mounted at
the same paths, and the host network reaches the service on loopback.

The image is --image, or the step's own; podman without one runs the host's root
filesystem under an overlay (``--rootfs /:O``), which holds this very installation:
no registry and no image build needed. An exit of 137 is an OOM kill only where the
engine recorded one (podman's conmon leaves a file named ``oom`` in the attempt's
folder, its working folder; docker's State.OOMKilled, read before the container is
removed); otherwise someone killed it.

An attempt begins once the engine has created its container (its image found or
pulled): the engine writes the container's id to a file then (``--cidfile``), and the
attempt's TaskStarted is recorded when that file is seen. An attempt that ends with the
engine's exit 125, its container never seen and no outcome reported, never began (an
image the engine could not pull, an option it refused; podman from 4.4 removes the file
with the container, so what was seen is remembered): its lease is given back
(TaskNotStarted), with the engine's words. Until it begins it is in trouble for the
executor's --start-timeout (a pull that hangs): then the engine's client is killed.

The attempt's environment (the datastore's settings, the AWS_* credentials the executor
passes on) never appears on the engine's command line, where any local user sees it in
``ps`` and ``podman inspect`` shows it in the container's create command: it goes in an
env file (``--env-file``), made 0600 in a private (0700) temporary folder and removed
when the attempt ends (or the executor closes the backend). A value an env file cannot
hold (a newline in it) is passed by name alone (``--env NAME``), its value in the engine
client's own environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.backends.base import Backend, BackendError, Launch, Leftover

log = logging.getLogger(__name__)

PIDS_LIMIT = 4096
# Each attempt's container says whose it is ("Flow/run/step/task.attempt"), so that a
# replacement executor finds what a dead one left running (Backend.leftovers).
ATTEMPT_LABEL = "ledgerflow.attempt"
SERVICE_LABEL = "ledgerflow.service"  # whose lease it runs under (Launch.service)
# The file in the attempt's folder where the engine writes its container's id once it
# created it: the attempt has begun.
CID_FILE = "container-id"
# What a CUDA program opens besides its GPU's own device (those present here).
NVIDIA_CONTROL_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
# Each env file's private folder, in the temporary folder.
ENV_FOLDER_PREFIX = "ledgerflow-env-"
# A folder of an executor's that no process holds is removed by the next one that starts
# (remove_unheld_folders) once it is this old.
UNHELD_FOLDER_SECONDS = 60.0
# The env files this process wrote and has not removed, with their folders' locks.
_held_env_folders: dict[Path, int] = {}
_held_lock = threading.Lock()


def env_file_holds(value: str) -> bool:
    """Whether an env file (podman's and docker's: NAME=VALUE a line, taken literally)
    can hold a value: not one with a line break in it."""
    return "\n" not in value and "\r" not in value


def write_env_file(env: dict[str, str]) -> Path:
    """The variables an env file can hold, in a new file only this user can read, in a
    new private folder (remove_env_file removes both), which this process holds (see
    hold_folder) until then."""
    folder = Path(tempfile.mkdtemp(prefix=ENV_FOLDER_PREFIX))  # 0700
    held = hold_folder(folder)
    path = folder / "env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in env.items() if env_file_holds(v))
    if held is not None:
        with _held_lock:
            _held_env_folders[path] = held
    return path


def read_tail(path: Path, size: int = 4096) -> str:
    """The last `size` bytes of a file, as text ('' when it cannot be read)."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - size))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def engine_words(path: Path) -> str:
    """What an engine said last in a file (at most 300 characters): its last line that
    names an error (docker follows its error with a hint to run --help), else its last
    non-empty line, or ''."""
    lines = [line.strip() for line in read_tail(path).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:300]


def client_environment(env: dict[str, str]) -> dict[str, str] | None:
    """The engine client's environment for a container of `env`: this process's, with
    the values an env file cannot hold (passed by name on the command line); None when
    there are none (this process's, unchanged)."""
    by_name = {name: value for name, value in env.items() if not env_file_holds(value)}
    return {**os.environ, **by_name} if by_name else None


def remove_env_file(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
    with _held_lock:
        held = _held_env_folders.pop(path, None)
    if held is not None:
        os.close(held)


def hold_folder(folder: Path) -> int | None:
    """An exclusive lock on `folder` (its open descriptor), which this process holds
    until it removes the folder and which the kernel lets go of when the process dies,
    even by kill -9; None when another process holds it (or it cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_unheld_folders(
    prefix: str, in_use: Callable[[Path], bool] = lambda folder: False
) -> None:
    """Removes this user's folders named `prefix`* in the temporary folder that no
    process holds (hold_folder) and that are not `in_use`: what an executor killed with
    -9 left. One younger than UNHELD_FOLDER_SECONDS may be a folder just made, not yet
    held, and is kept."""
    now = time.time()
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            found = folder.lstat()
        except OSError:
            continue
        if (
            not stat.S_ISDIR(found.st_mode)
            or found.st_uid != os.getuid()
            or now - found.st_mtime < UNHELD_FOLDER_SECONDS
            or in_use(folder)
        ):
            continue
        unheld = hold_folder(folder)
        if unheld is not None:
            shutil.rmtree(folder, ignore_errors=True)
            os.close(unheld)


def gpu_device_args(gpu_ids: tuple[int, ...]) -> list[str]:
    """--device flags for an attempt's GPUs: each /dev/nvidiaN given, and the driver's
    control devices, so the container sees exactly these GPUs and no others."""
    if not gpu_ids:
        return []
    devices = [f"/dev/nvidia{index}" for index in gpu_ids]
    devices += [path for path in NVIDIA_CONTROL_DEVICES if Path(path).exists()]
    return [arg for device in devices for arg in ("--device", device)]


class ContainerBackend(Backend):
    holds_attempts_back = True  # until its container exists: the image may be pulled

    def __init__(self, engine: str, image: str = "", extra_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.name = engine
        self.binary = shutil.which(engine)
        if self.binary is None:
            raise BackendError(
                f"--backend {engine}: `{engine}` is not installed here (scripts/setup installs "
                "podman; or use --backend local)"
            )
        if engine == "docker" and not image:
            raise BackendError("--backend docker needs --image (an image with ledgerflow in it)")
        self.image = image
        self.extra_args = extra_args
        # The env files of containers an executor killed with -9 had not started.
        remove_unheld_folders(ENV_FOLDER_PREFIX)
        self._containers: dict[int, _Container] = {}  # by handle, until the attempt ends
        self._oom_killed: dict[int, bool | None] = {}  # by handle, from its exit to why_ended
        self._last_words: dict[int, str] = {}  # by handle: what the engine said, likewise
        self._never_began: dict[int, TaskOutcome] = {}  # by handle: why, till never_began

    def command(
        self, launch: Launch, env_file: Path | None = None, *, extra: tuple[str, ...] = ()
    ) -> list[str]:
        """The engine's `run` command for one attempt (`extra`: more of run's options).
        Its environment is named, never valued, on it: the variables are in `env_file`
        (those it can hold; the others passed by name, from the engine's environment),
        or, with none, all passed by name from the environment the command runs in."""
        args = [
            str(self.binary),
            "run",
            *extra,
            # docker's record of an OOM kill goes with the container: kept until read.
            *(["--rm"] if self.name == "podman" else []),
            "--name",
            launch.name,
            "--network",
            "host",
            "--cpus",
            f"{launch.cpu:g}",
            "--memory",
            f"{launch.memory_mb}m",
            "--memory-swap",
            f"{launch.memory_mb}m",
            "--pids-limit",
            str(PIDS_LIMIT),
            "--workdir",
            launch.workdir,
            "--cidfile",
            str(Path(launch.workdir) / CID_FILE),
            "--label",
            f"{ATTEMPT_LABEL}={launch.task}",
            "--label",
            f"{SERVICE_LABEL}={launch.service}",
            *self.extra_args,
        ]
        for folder in dict.fromkeys((launch.workdir, *launch.mounts)):
            args += ["--volume", f"{folder}:{folder}"]
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        for name, value in launch.env.items():
            if env_file is None or not env_file_holds(value):
                args += ["--env", name]
        args += gpu_device_args(launch.gpu_ids)
        image = launch.image or self.image
        if image:  # its own interpreter, the first `python` on its PATH
            return [*args, image, "python", *launch.command[1:]]
        # podman only (checked above): this host's root, read-only underneath
        return [*args, "--rootfs", "/:O", *launch.command]

    def _popen(self, launch: Launch) -> subprocess.Popen[bytes]:
        env_file = write_env_file(launch.env)
        try:
            with open(launch.stdout_path, "wb") as out, open(launch.stderr_path, "wb") as err:
                process = subprocess.Popen(
                    self.command(launch, env_file),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    # podman's conmon writes a file named "oom" into its working folder
                    # when the container is killed for memory: the attempt's folder, not
                    # the folder the executor was started from.
                    cwd=launch.workdir,
                    env=client_environment(launch.env),
                )
        except BaseException:
            remove_env_file(env_file)
            raise
        self._containers[process.pid] = _Container(
            launch.name, Path(launch.workdir), env_file, Path(launch.stderr_path),
            Path(launch.result_path), launch.image or self.image,
        )  # fmt: skip
        return process

    def kill(self, handle: int) -> None:
        container = self._containers.get(handle)
        if container is None:
            return
        if self.begun(handle):
            self._kill_container(container.name)
        else:  # no container yet (the image still pulling): stop the engine's client
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle, signal.SIGKILL)

    def _kill_container(self, name: str) -> None:
        """Kills it (docker: and removes it, as it runs without --rm)."""
        args = ["kill", name] if self.name == "podman" else ["rm", "--force", name]
        try:
            subprocess.run([str(self.binary), *args], capture_output=True, check=False,
                           timeout=30)  # fmt: skip
        except subprocess.SubprocessError as error:  # a stuck engine: tried again later
            log.warning("%s %s: %s", self.name, " ".join(args), error)

    def _was_oom_killed(self, container: _Container) -> bool | None:
        """The engine's own record of an OOM kill: podman's conmon leaves a file named
        "oom" in its working folder (the attempt's); docker keeps State.OOMKilled with
        the container, removed once read."""
        if self.name == "podman":
            return (container.workdir / "oom").exists()
        try:
            inspected = subprocess.run(
                [str(self.binary), "inspect", "--format", "{{.State.OOMKilled}}",
                 container.name],
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            self._kill_container(container.name)
        except subprocess.SubprocessError:  # a stuck engine: a sweep removes it later
            return None
        return inspected.stdout.strip() == "true"

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        oom_killed = self._oom_killed.pop(handle, None)
        said = self._last_words.pop(handle, "")
        return container_ending(self.name, exit_code, memory_mb, oom_killed=oom_killed,
                                engine_said=said)  # fmt: skip

    def begun(self, handle: int) -> bool:
        """Once the engine created its container (or it ended: then never_began says)."""
        container = self._containers.get(handle)
        if container is None or container.created:
            return True
        container.created = (container.workdir / CID_FILE).exists()
        return container.created

    def _source_waited_on(self, handle: int) -> str | None:
        """What the engine is making the attempt's container from, while the attempt has
        not begun (None once it has, or for an attempt it does not know)."""
        container = self._containers.get(handle)
        if container is None or self.begun(handle):
            return None
        return container.source

    def waiting(self, handle: int) -> str:
        if self._source_waited_on(handle) is None:
            return ""
        return f"{self.name} is getting the image and creating the container"

    def start_trouble(self, handle: int) -> TaskOutcome | None:
        """Not created yet: a pull that takes longer than --start-timeout is given up."""
        source = self._source_waited_on(handle)
        if source is None:
            return None
        return failed(
            "ImagePullError",
            f"{self.name} did not create the attempt's container from {source}: the image "
            "is still being pulled, or the engine hangs",
            records_pb2.FAILURE_KIND_INFRASTRUCTURE,
        )

    def never_began(self, handle: int, exit_code: int) -> TaskOutcome | None:
        return self._never_began.pop(handle, None)

    def handle_of(self, launch: Launch) -> str:
        return f"{socket.gethostname()}/{launch.name}"

    def leftovers(self) -> list[Leftover]:
        """The containers of attempts on this host's engine: named ledgerflow-LEASE,
        labelled with their task and attempt and with their lease's service."""

        def label(name: str) -> str:
            if self.name == "podman":
                return f'{{{{index .Labels "{name}"}}}}'
            return f'{{{{.Label "{name}"}}}}'

        every = ["--all"] if self.name == "docker" else []  # ended, not yet removed
        template = "\t".join(["{{.Names}}", label(ATTEMPT_LABEL), label(SERVICE_LABEL)])
        listed = subprocess.run(
            [str(self.binary), "ps", *every, "--filter", f"label={ATTEMPT_LABEL}", "--format",
             template],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        found = []
        for line in listed.stdout.splitlines():
            name, attempt_of, service = [*line.split("\t"), "", ""][:3]
            task, _, attempt = attempt_of.rpartition(".")
            if name.startswith("ledgerflow-") and task and attempt.isdigit():
                lease_id = name.removeprefix("ledgerflow-")
                found.append(Leftover(name, task, int(attempt), lease_id, service))
        return found

    def kill_leftover(self, leftover: Leftover) -> None:
        self._kill_container(leftover.handle)

    def _never_created(self, container: _Container, exit_code: int) -> bool:
        """Whether the engine's exit ended an attempt whose container it never created:
        its exit 125, no container seen (podman from 4.4 removes the id file with the
        container) and no outcome reported."""
        return (
            exit_code == 125
            and not container.created
            and not (container.workdir / CID_FILE).exists()
            and not container.result.exists()
        )

    def _image_present(self, image: str) -> bool:
        """Whether the engine has the image here (asked only when a container could not
        be created: then it tells a failed pull from the engine's other refusals)."""
        if not image:
            return True  # this host's root filesystem
        asked = ["image", "exists", image] if self.name == "podman" else ["image", "inspect", image]
        try:
            found = subprocess.run([str(self.binary), *asked], capture_output=True,
                                   check=False, timeout=60)  # fmt: skip
        except subprocess.SubprocessError:
            return True  # unknown: the engine's words say more
        return found.returncode == 0

    def _why_not_created(self, image: str, exit_code: int, said: str) -> TaskOutcome:
        """The engine exited before it created the attempt's container from `image`:
        its words (`said`), and whether it lacks the image (then it could not pull it)."""
        pulling = not self._image_present(image)
        return failed(
            "ImagePullError" if pulling else "ContainerEngineError",
            f"{self.name} could not create the attempt's container from "
            f"{source_of(image)} (exit {exit_code}): "
            f"{said or 'it said nothing'}",
            records_pb2.FAILURE_KIND_INFRASTRUCTURE,
        )

    def poll(self) -> list[tuple[int, int]]:
        exited = super().poll()
        for handle, code in exited:
            container = self._containers.pop(handle, None)
            # A handle is a process id: what an earlier attempt with it left goes.
            for kept in (self._never_began, self._oom_killed, self._last_words):
                kept.pop(handle, None)
            if container is not None:
                remove_env_file(container.env_file)
                if self._never_created(container, code):
                    self._never_began[handle] = self._why_not_created(
                        container.image, code, engine_words(container.stderr)
                    )
                    continue
                self._oom_killed[handle] = self._was_oom_killed(container)
                self._last_words[handle] = engine_words(container.stderr)
        return exited

    def close(self) -> None:
        for container in self._containers.values():
            remove_env_file(container.env_file)
        self._containers.clear()


@dataclass
class _Container:
    """A running attempt's container: its name, its folder, its env file, its stderr,
    where its outcome goes, its image (empty: this host's root filesystem), and whether
    the engine was seen to create it."""

    name: str
    workdir: Path
    env_file: Path
    stderr: Path
    result: Path
    image: str
    created: bool = False

    @property
    def source(self) -> str:
        return source_of(self.image)


def source_of(image: str) -> str:
    """What a container is made from, for messages (no image: this host's root)."""
    return image or "the root filesystem of this host"


def container_ending(
    engine: str,
    exit_code: int,
    memory_mb: int,
    *,
    oom_killed: bool | None = None,
    engine_said: str = "",
) -> TaskOutcome | None:
    """What a container engine's exit code says, for a container it created: 125, the
    engine could not run it (its runtime refused: `engine_said`, the engine's last error
    line, says why), an infrastructure failure; 137, it was killed: for memory where the engine's
    own record (`oom_killed`) says so, else by someone's SIGKILL; with no record (None),
    a kill under a memory limit is taken as one for memory."""
    if exit_code == 125:
        why = f": {engine_said}" if engine_said else "; its own message is in the stderr"
        return failed(
            "ContainerEngineError",
            f"{engine} could not start the attempt's container (exit 125){why}",
            records_pb2.FAILURE_KIND_INFRASTRUCTURE,
        )
    if exit_code in (137, -9):
        return died_outcome(exit_code, memory_mb=0 if oom_killed is False else memory_mb)
    return None
