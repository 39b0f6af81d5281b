"""Where an executor runs its tasks (see base.py for what a backend does)."""

from __future__ import annotations

from ledgerflow_executor.backends.base import Backend, BackendError, Launch
from ledgerflow_executor.backends.container import ContainerBackend
from ledgerflow_executor.backends.local import LocalBackend
from ledgerflow_executor.backends.slurm import SlurmBackend

NAMES = ("local", "podman", "docker", "slurm")


def open_backend(name: str, image: str = "", partition: str = "") -> Backend:
    if name == "local":
        return LocalBackend()
    if name in ("podman", "docker"):
        return ContainerBackend(name, image)
    if name == "slurm":
        return SlurmBackend(image, partition)
    raise BackendError(f"unknown backend {name!r}: use one of {', '.join(NAMES)}")


__all__ = ["NAMES", "Backend", "BackendError", "Launch", "open_backend"]
