"""Where an executor runs its tasks (see base.py for what a backend does)."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow_executor.backends.base import Backend, BackendError, Launch
from ledgerflow_executor.backends.container import ContainerBackend
from ledgerflow_executor.backends.kubernetes import DEFAULT_RUN_AS_USER
from ledgerflow_executor.backends.local import LocalBackend
from ledgerflow_executor.backends.slurm import SlurmBackend, SlurmStepsBackend
from ledgerflow_executor.backends.warm_containers import WarmContainerBackend

NAMES = ("local", "podman", "docker", "slurm", "kubernetes")


@dataclass(frozen=True)
class BackendOptions:
    """The executor's flags that some backend takes."""

    image: str = ""
    partition: str = ""  # slurm, and the one below
    slurm_steps: bool = False
    warm_containers: bool = False  # podman
    namespace: str = ""  # kubernetes, and those below
    service_account: str = ""
    context: str = ""
    service: str = ""  # the metadata service, as tasks reach it
    datastore: str = ""  # the executor's: kubernetes refuses all but "s3"
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()
    run_as_user: int = DEFAULT_RUN_AS_USER


def open_backend(name: str, options: BackendOptions | None = None) -> Backend:
    options = options or BackendOptions()
    if options.warm_containers and name != "podman":
        raise BackendError(f"--warm-containers is for --backend podman, not {name}")
    if name == "local":
        return LocalBackend()
    if name in ("podman", "docker"):
        if options.warm_containers:
            return WarmContainerBackend(name, options.image)
        return ContainerBackend(name, options.image)
    if name == "slurm":
        if options.slurm_steps:
            return SlurmStepsBackend(options.image, options.partition)
        return SlurmBackend(options.image, options.partition)
    if name == "kubernetes":  # imported here: the kubernetes client is an extra
        from ledgerflow_executor.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(
            options.image,
            namespace=options.namespace,
            service_account=options.service_account,
            context=options.context,
            service=options.service,
            datastore=options.datastore,
            pull_policy=options.pull_policy,
            pull_secrets=options.pull_secrets,
            run_as_user=options.run_as_user,
        )
    raise BackendError(f"unknown backend {name!r}: use one of {', '.join(NAMES)}")


__all__ = [
    "DEFAULT_RUN_AS_USER",
    "NAMES",
    "Backend",
    "BackendError",
    "BackendOptions",
    "Launch",
    "open_backend",
]
