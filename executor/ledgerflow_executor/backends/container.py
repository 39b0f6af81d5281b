"""The podman and docker backends: each attempt in a container of its own, with the
step's CPU quota (--cpus), memory limit (--memory, no swap beyond it), a pids limit,
and its GPUs as devices. The datastore and the attempt's work folder are mounted at
the same paths, and the host network reaches the service on loopback.

The image is --image, or the step's own; podman without one runs the host's root
filesystem under an overlay (``--rootfs /:O``), which holds this very installation:
no registry and no image build needed. ``podman inspect`` does not report OOM kills
reliably here, so an exit of 137 under a memory limit is taken as one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.backends.base import Backend, BackendError, Launch

PIDS_LIMIT = 4096
# What a CUDA program opens besides its GPU's own device (those present here).
NVIDIA_CONTROL_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


def gpu_device_args(gpu_ids: tuple[int, ...]) -> list[str]:
    """--device flags for an attempt's GPUs: each /dev/nvidiaN given, and the driver's
    control devices, so the container sees exactly these GPUs and no others."""
    if not gpu_ids:
        return []
    devices = [f"/dev/nvidia{index}" for index in gpu_ids]
    devices += [path for path in NVIDIA_CONTROL_DEVICES if Path(path).exists()]
    return [arg for device in devices for arg in ("--device", device)]


class ContainerBackend(Backend):
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
        self._names: dict[int, str] = {}

    def command(self, launch: Launch) -> list[str]:
        """The engine's `run` command for one attempt."""
        args = [
            str(self.binary),
            "run",
            "--rm",
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
            *self.extra_args,
        ]
        for folder in dict.fromkeys((launch.workdir, *launch.mounts)):
            args += ["--volume", f"{folder}:{folder}"]
        for name, value in launch.env.items():
            args += ["--env", f"{name}={value}"]
        args += gpu_device_args(launch.gpu_ids)
        image = launch.image or self.image
        if image:  # its own interpreter, the first `python` on its PATH
            return [*args, image, "python", *launch.command[1:]]
        # podman only (checked above): this host's root, read-only underneath
        return [*args, "--rootfs", "/:O", *launch.command]

    def _popen(self, launch: Launch) -> subprocess.Popen[bytes]:
        with open(launch.stdout_path, "wb") as out, open(launch.stderr_path, "wb") as err:
            process = subprocess.Popen(
                self.command(launch),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                # podman's conmon writes a file named "oom" into its working folder when
                # the container is killed for memory: the attempt's folder, not the
                # folder the executor was started from.
                cwd=launch.workdir,
            )
        self._names[process.pid] = launch.name
        return process

    def kill(self, handle: int) -> None:
        name = self._names.get(handle)
        if name is not None:
            subprocess.run(
                [str(self.binary), "kill", name], capture_output=True, check=False, timeout=30
            )

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        return container_ending(self.name, exit_code, memory_mb)

    def poll(self) -> list[tuple[int, int]]:
        exited = super().poll()
        for handle, _ in exited:
            self._names.pop(handle, None)
        return exited


def container_ending(engine: str, exit_code: int, memory_mb: int) -> TaskOutcome | None:
    """What a container engine's exit code says: 125, the engine could not run the
    container (an image it cannot find or pull, a bad option); 137, the kernel killed
    it, here for memory."""
    if exit_code == 125:
        return failed(
            "ContainerEngineError",
            f"{engine} could not start the attempt's container (exit 125); its own "
            "message is at the end of the attempt's stderr",
            records_pb2.FAILURE_KIND_INFRASTRUCTURE,
        )
    if exit_code in (137, -9):
        return died_outcome(exit_code, memory_mb=memory_mb)
    return None
