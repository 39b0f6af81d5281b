"""``ledgerflow executor``: start an executor that runs remote runs' tasks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
from ledgerflow.cli.errors import friendly_errors
from ledgerflow.config import ConfigError, load_config, open_datastore
from ledgerflow.metadata_client import GrpcMetadata

from ledgerflow_executor.backends import (
    DEFAULT_RUN_AS_USER,
    NAMES,
    Backend,
    BackendError,
    BackendOptions,
    open_backend,
)
from ledgerflow_executor.executor import Capacity, Executor, ExecutorSettings
from ledgerflow_executor.image import build_image
from ledgerflow_executor.metrics import Metrics, MetricsUnavailable, PrometheusMetrics


def _physical_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 20))


def _default_memory_mb() -> int:
    return int(_physical_memory_mb() * 0.8)


@click.group(invoke_without_command=True)
@click.option(
    "--service",
    envvar="LEDGERFLOW_SERVICE",
    metavar="HOST:PORT",
    help="The metadata service (default: $LEDGERFLOW_SERVICE).",
)
@click.option(
    "--backend",
    type=click.Choice(NAMES),
    default="local",
    show_default=True,
    help="Where tasks run: processes (each in a memory cgroup where one can be made), "
    "containers, Slurm jobs, or Kubernetes Jobs.",
)
@click.option(
    "--cpus",
    type=click.FloatRange(min=0.1),
    default=float(os.cpu_count() or 1),
    show_default="this machine's cores; slurm: the cluster's",
    help="CPU cores to hand out.",
)
@click.option(
    "--memory",
    "memory_mb",
    type=click.IntRange(min=64),
    default=_default_memory_mb,
    show_default="80% of this machine's; slurm: the cluster's",
    help="Memory (MB) to hand out.",
)
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    default=0,
    show_default="0; slurm: the cluster's",
    help="GPUs to hand out (each task sees its own as CUDA_VISIBLE_DEVICES).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="A queue to serve (repeatable; default: the default queue).",
)
@click.option(
    "--image",
    default="",
    help="Container image for tasks whose step names none (podman default: this "
    "host's root filesystem under an overlay).",
)
@click.option(
    "--partition",
    default="",
    help="slurm: the partition to submit to and take the capacity of (default: Slurm's).",
)
@click.option(
    "--slurm-steps",
    is_flag=True,
    help="slurm: hold each node with one job and start attempts as job steps in it "
    "(~0.1 s an attempt instead of ~1 s a job).",
)
@click.option(
    "--warm-containers",
    is_flag=True,
    help="podman: run an attempt in an idle container left by an earlier attempt of the "
    "same code, image, resources and user (a fork, not a container start: ~tens of ms "
    "instead of ~0.4 s); never shared between users.",
)
@click.option(
    "--namespace",
    default="",
    help="kubernetes: the namespace of the Jobs (default: the kubeconfig context's, else "
    "'default').",
)
@click.option("--service-account", default="", help="kubernetes: the pods' service account.")
@click.option(
    "--kube-context", default="", help="kubernetes: the kubeconfig context (default: current)."
)
@click.option(
    "--pod-service",
    default="",
    metavar="HOST:PORT",
    help="kubernetes: the metadata service's address as the pods reach it (default: "
    "--service, which on loopback a pod cannot reach).",
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default="IfNotPresent",
    show_default=True,
    help="kubernetes: the pods' imagePullPolicy.",
)
@click.option(
    "--image-pull-secret",
    "image_pull_secrets",
    multiple=True,
    metavar="NAME",
    help="kubernetes: a Secret in the namespace that pulls the images (repeatable).",
)
@click.option(
    "--run-as-user",
    type=click.IntRange(min=1),
    default=DEFAULT_RUN_AS_USER,
    show_default=True,
    help="kubernetes: the pods' user id (never root: Pod Security 'restricted').",
)
@click.option(
    "--lease-seconds",
    type=click.IntRange(5, 3600),
    default=30,
    show_default=True,
    help="How long a lease lasts without a heartbeat.",
)
@click.option(
    "--start-timeout",
    "start_timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds an attempt may be unable to begin (an image the engine cannot pull, a "
    "pod no node can take) before the executor gives its lease back; the service queues "
    "it again on the infrastructure's retry budget, then fails the run with the reason.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="How often to ask for work when the watch stream is quiet.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics at http://ADDRESS:PORT/metrics (0: a free port, said "
    "on start); off by default. Needs prometheus_client (the executor extra).",
)
@click.option(
    "--metrics-address",
    default="127.0.0.1",
    show_default=True,
    help="The address --metrics-port listens on.",
)
@click.pass_context
@friendly_errors
def executor(
    ctx: click.Context,
    service: str | None,
    backend: str,
    cpus: float,
    memory_mb: int,
    gpus: int,
    queues: tuple[str, ...],
    image: str,
    partition: str,
    slurm_steps: bool,
    warm_containers: bool,
    namespace: str,
    service_account: str,
    kube_context: str,
    pod_service: str,
    image_pull_policy: str,
    image_pull_secrets: tuple[str, ...],
    run_as_user: int,
    lease_seconds: int,
    start_timeout: float,
    poll_seconds: float,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Run the tasks of remote runs (`run --remote`) submitted to SERVICE.

    The executor leases queued tasks that fit its free capacity, runs each with the
    resources its step asks for, renews the leases while they run, and records every
    outcome. SIGTERM drains it: no new leases, running tasks finish (a second signal
    kills them; the service queues them again). The datastore is the one the runs use
    (LEDGERFLOW_DATASTORE, LEDGERFLOW_DATASTORE_ROOT): a shared folder or S3.
    `ledgerflow executor image build` makes a task image without a registry.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not service:
        raise click.UsageError(
            "name the metadata service: --service HOST:PORT (or set LEDGERFLOW_SERVICE)"
        )
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        config = load_config()  # the datastore and who we are; the service is --service
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    try:
        if backend == "kubernetes":
            _warn_of_a_loopback_pod_service(service, pod_service)
        engine = open_backend(
            backend,
            BackendOptions(
                image=image,
                partition=partition,
                slurm_steps=slurm_steps,
                warm_containers=warm_containers,
                namespace=namespace,
                service_account=service_account,
                context=kube_context,
                service=pod_service or service,
                datastore=config.datastore,
                pull_policy=image_pull_policy,
                pull_secrets=image_pull_secrets,
                run_as_user=run_as_user,
            ),
        )
    except BackendError as error:
        raise click.UsageError(str(error)) from None
    cpus, memory_mb, gpus = _capacity(ctx, engine, cpus, memory_mb, gpus)
    metadata = GrpcMetadata(service, config.username, config.token, timeout=30.0)
    store = open_datastore(config)
    datastore_env = {
        "LEDGERFLOW_DATASTORE": config.datastore,
        "LEDGERFLOW_DATASTORE_ROOT": config.datastore_root,
        **(
            {"LEDGERFLOW_S3_ENDPOINT_URL": config.s3_endpoint_url} if config.s3_endpoint_url else {}
        ),
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        # A step's client API (current.trigger.run, Flow(...)) reads this service's
        # ledger. Its token is the executor's, not the step's: a step that needs one
        # (bearer auth) is given its own, e.g. with @environment.
        "LEDGERFLOW_SERVICE": service,
    }
    mounts = (str(Path(config.datastore_root).resolve()),) if config.datastore == "local" else ()
    metrics = _metrics(metrics_port)
    settings = ExecutorSettings(
        capacity=Capacity(cpu=cpus, memory_mb=memory_mb, gpu=gpus),
        queues=queues or ("",),
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        image=image,
        start_timeout_seconds=start_timeout,
    )
    worker = Executor(
        metadata,
        store,
        engine,
        settings,
        datastore_env=datastore_env,
        datastore_mounts=mounts,
        say=lambda text: click.echo(text, err=True),
        metrics=metrics,
    )
    worker.check_service()
    _serve_metrics(metrics, worker, metrics_address, metrics_port)
    click.echo(
        f"executor {settings.executor_id}: {backend}"
        f"{' (warm containers)' if warm_containers else ''}, cpu={cpus:g} memory={memory_mb} MB "
        f"gpu={gpus}, queues {', '.join(q or 'default' for q in settings.queues)}; "
        f"service {service}",
        err=True,
    )
    worker.serve()
    metrics.close()
    metadata.close()


def _metrics(port: int | None) -> Metrics:
    """The executor's metrics: Prometheus's when they are served, else none."""
    if port is None:
        return Metrics()
    try:
        return PrometheusMetrics()
    except MetricsUnavailable as error:
        raise click.UsageError(f"--metrics-port: {error}") from None


def _serve_metrics(metrics: Metrics, worker: Executor, address: str, port: int | None) -> None:
    if port is None or not isinstance(metrics, PrometheusMetrics):
        return
    metrics.watch(lambda: len(worker.running), worker.free, worker.settings.capacity)
    try:
        port = metrics.serve(address, port)
    except OSError as error:
        raise click.ClickException(f"cannot serve metrics on {address}:{port}: {error}") from None
    shown = f"[{address}]" if ":" in address else address
    click.echo(f"executor metrics on http://{shown}:{port}/metrics", err=True)


def _warn_of_a_loopback_pod_service(service: str, pod_service: str) -> None:
    """Pods are told --pod-service, else --service: said when that is loopback, which
    inside a pod is the pod itself (it works only where pods share this machine's
    network)."""
    from ledgerflow_executor.backends.kubernetes import is_loopback

    if not pod_service and is_loopback(service):
        click.echo(f"ledgerflow executor: warning: the pods are told the service is at {service}, "
                   "a loopback address, which inside a pod is the pod itself: give "
                   "--pod-service HOST:PORT, an address of the service the pods reach",
                   err=True)  # fmt: skip


def _capacity(
    ctx: click.Context, engine: Backend, cpus: float, memory_mb: int, gpus: int
) -> tuple[float, int, int]:
    """What to hand out: the flags given, and for the rest what the backend's engine
    offers (a cluster's totals), else this machine's."""
    try:
        offered = engine.capacity()
    except BackendError as error:
        raise click.ClickException(str(error)) from None
    if offered is None:
        _warn_past_this_machine(cpus, memory_mb)
        return cpus, memory_mb, gpus
    given = [
        ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        for name in ("cpus", "memory_mb", "gpus")
    ]
    chosen = [mine if flag else theirs for mine, theirs, flag in
              zip((cpus, memory_mb, gpus), offered, given, strict=True)]  # fmt: skip
    return float(chosen[0]), int(chosen[1]), int(chosen[2])


def _warn_past_this_machine(cpus: float, memory_mb: int) -> None:
    """Says so when the capacity handed out is more than this machine has (allowed: a
    team may overcommit on purpose), since tasks then get less than they asked for."""
    cores = os.cpu_count() or 1
    if cpus > cores:
        click.echo(f"ledgerflow executor: warning: --cpus {cpus:g} is more than this machine's "
                   f"{cores} cores: tasks will share them and run slower than they asked",
                   err=True)  # fmt: skip
    physical_mb = _physical_memory_mb()
    if memory_mb > physical_mb:
        click.echo(f"ledgerflow executor: warning: --memory {memory_mb} (MB) is more than this "
                   f"machine's {physical_mb} MB: tasks that use what they asked for may be "
                   "killed by the kernel", err=True)  # fmt: skip


@executor.group()
def image() -> None:
    """Task images for the podman and docker backends."""


@image.command("build")
@click.option("--tag", default="localhost/ledgerflow-task:latest", show_default=True,
              help="The image's name.")  # fmt: skip
@click.option("--engine", type=click.Choice(["podman", "docker"]), default="podman",
              show_default=True, help="Which container engine gets the image.")  # fmt: skip
@click.option("--suite", default="bookworm", show_default=True, help="The Debian release.")
@click.option("--mirror", default=None, help="A Debian mirror (default: the one apt uses).")
@friendly_errors
def build(tag: str, engine: str, suite: str, mirror: str | None) -> None:
    """Build a Debian image with this Ledgerflow in it (debootstrap and local wheels, no
    registry): a few minutes. Then: ledgerflow executor --backend podman --image TAG."""
    try:
        build_image(tag, engine=engine, suite=suite, mirror=mirror,
                    say=lambda text: click.echo(text, err=True))  # fmt: skip
    except BackendError as error:
        raise click.ClickException(str(error)) from None
