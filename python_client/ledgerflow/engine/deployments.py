"""What a deployment is called and how its runs are marked: one home for the names and
tags that ``deploy`` writes, the service checks and fires with, and the client, the
CLI and the web UI read back."""

from __future__ import annotations

from collections.abc import Iterable

from ledgerflow.engine.projects import is_production_branch, project_flow_name
from ledgerflow.v1 import events_pb2, records_pb2

TRIGGER_NAMES = {
    records_pb2.TRIGGER_KIND_SCHEDULE: "schedule",
    records_pb2.TRIGGER_KIND_MANUAL: "manual",
    records_pb2.TRIGGER_KIND_BACKFILL: "backfill",
    records_pb2.TRIGGER_KIND_RUN_FINISHED: "run",
    records_pb2.TRIGGER_KIND_EVENT: "event",
}


def trigger_name(kind: int) -> str:
    """ "schedule", "manual", "backfill", "run" (an upstream run finished) or "event"
    ("unknown" for a kind this version lacks)."""
    return TRIGGER_NAMES.get(kind, "unknown")  # type: ignore[call-overload]


def deployment_name(flow_name: str, project: str = "", branch: str = "") -> str:
    """``FlowName``, or ``project.branch.FlowName`` for a flow with @project."""
    return project_flow_name(project, branch, flow_name) if project else flow_name


def upstream_deployment(flow: str, project: str = "", branch: str = "") -> str:
    """The deployment ``@trigger_on_finish(flow=...)`` waits for: a flow name means that
    flow deployed on the same project branch as the waiting flow (as in Metaflow); a
    dotted name (``project.branch.FlowName``) is a deployment named in full."""
    return flow if "." in flow else deployment_name(flow, project, branch)


_PRODUCTION = "production:"


def production_namespace(name: str) -> str:
    """The namespace (a system tag) of a deployment's runs: not its deployer's own."""
    return _PRODUCTION + name


def production_namespace_of(tags: Iterable[str]) -> str | None:
    """The production namespace among a run's tags (None: the run is someone's own)."""
    return min((tag for tag in tags if tag.startswith(_PRODUCTION)), default=None)


def deployment_tag(name: str) -> str:
    """The system tag by which a deployment's runs are found."""
    return f"deployment:{name}"


def trigger_tag(kind: int) -> str:
    return f"trigger:{trigger_name(kind)}"


def identity_problem(spec: events_pb2.DeploymentCreated) -> str | None:
    """Why a deployment's name, project, branch and production flag disagree (None when
    they agree): the service refuses such a deployment, so that no branch can be
    deployed under another's name (production's above all)."""
    if bool(spec.project) != bool(spec.branch):
        return "a deployment has both a project and a branch, or neither"
    expected = deployment_name(spec.flow_name, spec.project, spec.branch)
    if spec.name != expected:
        return f"a deployment of {spec.flow_name} on this branch is named {expected!r}"
    if spec.production != (bool(spec.branch) and is_production_branch(spec.branch)):
        return "production is set exactly for the branches prod and prod.NAME"
    return None
