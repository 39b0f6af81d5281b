"""How ``run`` and ``resume`` start a run: on this machine (the local runtime), or
submitted to the service and followed (``--remote``); and the settings, ledger and
datastore every command of a flow file shares (:class:`Session`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledgerflow._flow_decorators import flow_project
from ledgerflow._flowspec import FlowSpecBase
from ledgerflow._graph import FlowGraph
from ledgerflow._graph_message import StepDefaults
from ledgerflow._parameters import (
    Recorded,
    parameters_as_json,
)
from ledgerflow.config import Config, ConfigError, load_config, open_datastore
from ledgerflow.engine.projects import (
    ProjectError,
    branch_of,
    is_production_branch,
    project_tags,
)
from ledgerflow.runtime.code_package import DEFAULT_SUFFIXES, save_package
from ledgerflow.v1 import records_pb2

if TYPE_CHECKING:
    from ledgerflow.metadata_client import MetadataClient
    from ledgerflow.runtime.resume import ResumeOrigin


class Session:
    """What every command needs: settings, the ledger, the datastore."""

    def __init__(
        self,
        flow_class: type[FlowSpecBase],
        graph: FlowGraph,
        metadata: str | None,
        datastore: str | None,
    ) -> None:
        self.flow_class, self.graph = flow_class, graph
        try:
            self.config: Config = load_config(metadata=metadata, datastore=datastore)
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        self._metadata: MetadataClient | None = None
        self._store: Any = None
        self.package_suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
        # @project's branch (`--branch`, `--production`); None without @project.
        self.project = flow_project(flow_class)
        self.branch: str | None = None
        self.branch_choice: tuple[str | None, bool] = (None, False)
        # The flow's configs: as given before the command (--config, --config-value),
        # and their values by name once loaded (cli/flow_configs.py).
        self.config_options: tuple[tuple[tuple[str, str], ...], ...] = ((), ())
        self.config_values: dict[str, Any] = {}

    def choose_branch(self, branch: str | None, production: bool) -> None:
        """Sets the @project branch runs and deployments of this command belong to."""
        self.branch_choice = (branch, production)
        if self.project is None:
            if branch is not None or production:
                option = "--production" if production else "--branch"
                raise click.UsageError(
                    f"{option} needs @project on the flow class (e.g. "
                    f"@project(name='pricing')): without it there are no branches"
                )
            return
        try:
            self.branch = branch_of(self.config.username, branch, production)
        except ProjectError as error:
            raise click.UsageError(str(error)) from None

    @property
    def project_is_production(self) -> bool:
        return self.branch is not None and is_production_branch(self.branch)

    @property
    def project_tags(self) -> list[str]:
        """The system tags of this command's runs: the project and its branch."""
        if self.project is None or self.branch is None:
            return []
        return project_tags(self.project, self.branch)

    @property
    def metadata(self) -> MetadataClient:
        if self._metadata is None:
            from ledgerflow.metadata_client import connect

            self._metadata = connect(self.config)
        return self._metadata

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = open_datastore(self.config)
        return self._store


def check_run_id_file(run_id_file: str | None) -> None:
    """Stops before the run starts when --run-id-file cannot be written where it says:
    found only once the run has an id, the mistake would cost a started run."""
    if run_id_file and not Path(run_id_file).absolute().parent.is_dir():
        raise click.BadParameter(
            f"{run_id_file}: its folder does not exist", param_hint="--run-id-file"
        )


def execute_here(
    session: Session,
    parameters: dict[str, Any],
    params: Mapping[str, Recorded],
    max_workers: int,
    tags: tuple[str, ...],
    defaults: StepDefaults,
    launcher: str,
    code_package: bool,
    origin: ResumeOrigin | None = None,
    run_id_file: str | None = None,
) -> None:
    from ledgerflow.runtime.launcher import CommandLauncher
    from ledgerflow.runtime.scheduler import LocalRuntime

    check_run_id_file(run_id_file)

    flow_file = sys.modules[session.flow_class.__module__].__file__
    package_key = (
        save_package(session.store, Path(str(flow_file)), session.package_suffixes)
        if code_package
        else ""
    )
    runtime = LocalRuntime(
        session.flow_class,
        session.graph,
        session.metadata,
        session.store,
        username=session.config.username,
        parameters=parameters,
        parameters_json=parameters_as_json(parameters, params, session.store),
        max_workers=max_workers,
        tags=tags,
        step_defaults=defaults,
        origin=origin,
        metadata_kind=session.config.metadata,
        launcher=CommandLauncher(str(flow_file)) if launcher == "command" else None,
        code_package_key=package_key,
        project_tags=session.project_tags,
        run_id_file=run_id_file,
    )
    result = runtime.run()
    session.metadata.close()
    sys.exit(0 if result.succeeded else 1)


# Options that shape how this process runs a flow's tasks, which a remote run's
# executors do not read.
LOCAL_ONLY_OPTIONS = {"launcher": "--launcher"}


def _given(ctx: click.Context, name: str) -> bool:
    """Whether option `name` was given (on the command line or by its variable)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _warn_of_local_options(ctx: click.Context) -> None:
    """Says so when an option of a local run is given with --remote (it used to be
    ignored silently): the executors launch a remote run's tasks their own way."""
    for name, flag in LOCAL_ONLY_OPTIONS.items():
        if _given(ctx, name):
            click.echo(f"ledgerflow: warning: {flag} applies to local runs; the executors "
                       "launch a remote run's tasks their own way", err=True)  # fmt: skip


def remote_queue_policy(
    remote: bool, max_workers: int, priority: int | None, queue_timeout: int | None
) -> records_pb2.QueuePolicy:
    """How the service's queue treats a remote run's tasks: --priority, --queue-timeout,
    and --max-workers when given (at most that many of the run's tasks leased or running
    at once, across all executors; without it a remote run is bounded by the executors'
    capacity alone). Both of the first go with --remote only."""
    ctx = click.get_current_context()
    if not remote:
        for name, value in (("--priority", priority), ("--queue-timeout", queue_timeout)):
            if value is not None:
                raise click.UsageError(f"{name} goes with --remote (the service's queue)")
        return records_pb2.QueuePolicy()
    return records_pb2.QueuePolicy(
        priority=priority or 0,
        max_workers=max_workers if _given(ctx, "max_workers") else 0,
        queue_timeout_seconds=queue_timeout or 0,
    )


def submit_and_follow(
    session: Session,
    parameters: dict[str, Any],
    params: Mapping[str, Recorded],
    tags: tuple[str, ...],
    defaults: StepDefaults,
    detach: bool,
    origin: ResumeOrigin | None = None,
    run_id_file: str | None = None,
    policy: records_pb2.QueuePolicy | None = None,
) -> None:
    """run --remote (and resume --remote, given the origin): submits the run under its
    queue `policy`, then follows it (or returns at once). `run_id_file` gets the run id
    once it is submitted."""
    from ledgerflow.runtime.identity import write_run_id
    from ledgerflow.runtime.progress import RunReporter
    from ledgerflow.runtime.remote import follow, submit

    check_run_id_file(run_id_file)
    _warn_of_local_options(click.get_current_context())

    if session.config.metadata != "service":
        raise click.UsageError(
            "run --remote needs a metadata service that executors reach: set "
            "LEDGERFLOW_SERVICE=HOST:PORT (and start executors with `ledgerflow executor`)"
        )
    flow_file = Path(str(sys.modules[session.flow_class.__module__].__file__))
    run_id = submit(
        session.metadata, session.store, session.flow_class, session.graph, flow_file,
        username=session.config.username,
        parameters_json=parameters_as_json(parameters, params, session.store),
        tags=tags, package_suffixes=session.package_suffixes,
        step_defaults=defaults,
        origin=origin, project_tags=session.project_tags, queue_policy=policy,
    )  # fmt: skip
    if run_id_file:
        write_run_id(run_id_file, run_id)
    flow = session.graph.name
    if detach:
        click.echo(run_id)
        sys.exit(0)
    reporter = RunReporter()
    reporter.run_started(flow, run_id, session.config.username, "remote on executors via service")
    try:
        ok = follow(session.metadata, flow, run_id, reporter)
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped following; {flow}/{run_id} goes on on the executors. Stop it with "
            f"`ledgerflow cancel {flow}/{run_id}`.",
            err=True,
        )
        sys.exit(130)
    session.metadata.close()
    sys.exit(0 if ok else 1)
