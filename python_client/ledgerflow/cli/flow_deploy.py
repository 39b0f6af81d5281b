"""``python flow.py deploy``: hand the flow to the metadata service, which runs it on
its ``@schedule`` (and whenever someone triggers it) through the executors.

A deployment records everything a run needs without this machine: the code package,
the graph with each step's resources and rules, the parameter values, the tags and the
namespace its runs go to (``production:NAME``). Deploying the same name again records
its next version.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ledgerflow._flow_decorators import flow_notify, flow_schedule, flow_triggers
from ledgerflow._graph_message import StepDefaults, graph_message
from ledgerflow._parameters import Recorded, parameters_as_json
from ledgerflow.cli.flow_run import Session
from ledgerflow.engine.deployments import (
    deployment_name,
    production_namespace,
    upstream_deployment,
)
from ledgerflow.engine.schedules import zone
from ledgerflow.engine.triggers import describe_notify, describe_triggers
from ledgerflow.runtime.code_package import save_package
from ledgerflow.runtime.identity import run_system_tags, write_run_id
from ledgerflow.v1 import events_pb2, records_pb2


def deployment_spec(
    session: Session,
    parameters: dict[str, Any],
    params: Mapping[str, Recorded],
    tags: tuple[str, ...],
    defaults: StepDefaults,
    notify: list[records_pb2.Notify] | None = None,
    policy: records_pb2.QueuePolicy | None = None,
) -> events_pb2.DeploymentCreated:
    """What the service needs to run the flow by itself: stores the code package.
    `notify`: receivers given on the command line, after the flow's own @notify;
    `policy`: how the service's queue treats each run's tasks (deploy --priority, ...)."""
    flow_file = Path(str(sys.modules[session.flow_class.__module__].__file__))
    name = deployment_name(session.graph.name, session.project or "", session.branch or "")
    spec = events_pb2.DeploymentCreated(
        name=name,
        flow_name=session.graph.name,
        project=session.project or "",
        branch=session.branch or "",
        production=session.project_is_production,
        code_package_key=save_package(session.store, flow_file, session.package_suffixes),
        graph=graph_message(session.flow_class, session.graph, defaults),
        parameters=parameters_as_json(parameters, params, session.store),
        tags=list(tags),
        # Its runs are production's, not the deployer's: a namespace of their own.
        system_tags=run_system_tags(
            None, "deployment", [production_namespace(name), *session.project_tags]
        ),
        user=session.config.username,
    )
    schedule = flow_schedule(session.flow_class)
    if schedule is not None:
        spec.schedule.CopyFrom(schedule)
    upstream_flows, events = flow_triggers(session.flow_class)
    spec.trigger_on_finish.extend(
        upstream_deployment(flow, spec.project, spec.branch) for flow in upstream_flows
    )
    spec.trigger_on_events.extend(events)
    spec.notify.extend([*flow_notify(session.flow_class), *(notify or [])])
    if policy is not None and policy.ByteSize():
        spec.queue_policy.CopyFrom(policy)
    return spec


def describe_schedule(deployment: records_pb2.Deployment) -> str:
    """ "0 3 * * * (Europe/Helsinki), next run 2026-12-07 03:00 EET (01:00 UTC)"."""
    if not deployment.HasField("schedule"):
        return "no schedule: runs start with `ledgerflow deployments trigger`"
    schedule = deployment.schedule
    text = f"{schedule.cron} ({schedule.timezone or 'UTC'})"
    if schedule.catchup:
        text += ", catching up missed due times"
    if deployment.paused:
        return text + ", paused"
    if not deployment.HasField("next_run_at"):
        return text
    when = datetime.fromtimestamp(deployment.next_run_at.ToMicroseconds() / 1e6, UTC)
    local = when.astimezone(zone(schedule))
    text += f", next run {local:%Y-%m-%d %H:%M %Z}"
    if schedule.timezone:
        text += f" ({when:%H:%M} UTC)"
    return text


def deploy(
    session: Session,
    parameters: dict[str, Any],
    params: Mapping[str, Recorded],
    tags: tuple[str, ...],
    defaults: StepDefaults,
    deployment_file: str | None = None,
    notify: list[records_pb2.Notify] | None = None,
    policy: records_pb2.QueuePolicy | None = None,
) -> None:
    """Records the deployment and says how to see and run it. With `deployment_file`
    (``deploy --deployment-file``), the deployment's name is written there too: the
    name the service settled on (``project.branch.FlowName`` with @project) is how a
    caller such as ledgerflow.Deployer finds the deployment without parsing output."""
    if session.config.metadata != "service":
        raise click.UsageError(
            "deploy needs the metadata service that fires the runs and executors that run "
            "them: set LEDGERFLOW_SERVICE=HOST:PORT (see `ledgerflow service --help`)"
        )
    spec = deployment_spec(session, parameters, params, tags, defaults, notify, policy)
    deployment = session.metadata.deploy(spec)
    if deployment_file is not None:
        # Whole or not at all, as a run id is: a reader polling it never sees half a name.
        write_run_id(deployment_file, deployment.name)
    click.echo(
        f"Deployed {deployment.name} (version {deployment.version}) of {deployment.flow_name} "
        f"by {deployment.deployed_by}"
    )
    click.echo(f"  schedule:   {describe_schedule(deployment)}")
    triggers = describe_triggers(spec)
    if triggers:
        click.echo(f"  triggers:   {triggers}")
    for receiver in spec.notify:
        click.echo(f"  notify:     {describe_notify(receiver)}")
    if spec.parameters:
        values = ", ".join(f"{k}={v}" for k, v in sorted(spec.parameters.items()))
        click.echo(f"  parameters: {values}")
    click.echo(f"  namespace:  {production_namespace(deployment.name)}")
    click.echo(
        f"  see it:     ledgerflow deployments show {deployment.name}; run it now: "
        f"ledgerflow deployments trigger {deployment.name}"
    )
