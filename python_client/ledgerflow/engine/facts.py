"""What ``current`` says inside a task, the same wherever the task runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ledgerflow.engine.projects import project_facts
from ledgerflow.v1 import records_pb2

_TRIGGER_KINDS = {
    records_pb2.TRIGGER_KIND_SCHEDULE: "schedule",
    records_pb2.TRIGGER_KIND_MANUAL: "manual",
    records_pb2.TRIGGER_KIND_BACKFILL: "backfill",
}


def trigger_facts(trigger: records_pb2.Trigger | None) -> dict[str, Any] | None:
    """What started a run of a deployment, as ``current.trigger`` gives it (JSON-safe:
    a task's facts travel as JSON); None for a run started with ``run``."""
    if trigger is None or not trigger.deployment:
        return None
    scheduled_at = datetime.fromtimestamp(trigger.scheduled_at.ToMicroseconds() / 1e6, UTC)
    return dict(
        deployment=trigger.deployment,
        deployment_version=trigger.deployment_version,
        kind=_TRIGGER_KINDS.get(trigger.kind, "unknown"),
        scheduled_at=scheduled_at.isoformat(),
    )


def task_facts(
    *,
    flow_name: str,
    run_id: str,
    step_name: str,
    task_id: str,
    attempt: int,
    user: str,
    tags: Iterable[str],
    origin_run_id: str,
    parameter_names: Iterable[str],
    trigger: records_pb2.Trigger | None = None,
) -> dict[str, Any]:
    """``current``'s facts for one attempt: `tags` are the run's user and system tags
    (a deployment's run is in its ``production:NAME`` namespace; a @project flow's
    branch is in them too), `trigger` what started a deployment's run."""
    tags = list(tags)
    production = [tag for tag in tags if tag.startswith("production:")]
    return dict(
        flow_name=flow_name,
        run_id=run_id,
        step_name=step_name,
        task_id=task_id,
        retry_count=attempt,
        namespace=production[0] if production else f"user:{user}",
        username=user,
        tags=tags,
        origin_run_id=origin_run_id or None,
        parameter_names=sorted(parameter_names),
        trigger=trigger_facts(trigger),
        **project_facts(flow_name, tags),
    )
