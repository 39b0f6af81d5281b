"""What ``current`` says inside a task, the same wherever the task runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ledgerflow.engine.deployments import production_namespace_of, trigger_name
from ledgerflow.engine.projects import project_facts
from ledgerflow.v1 import records_pb2


def trigger_facts(trigger: records_pb2.Trigger | None) -> dict[str, Any] | None:
    """What started a run of a deployment, as ``current.trigger`` gives it (JSON-safe:
    a task's facts travel as JSON); None for a run started with ``run``."""
    if trigger is None or not trigger.deployment:
        return None
    scheduled_at = datetime.fromtimestamp(trigger.scheduled_at.ToMicroseconds() / 1e6, UTC)
    if trigger.timezone:  # in the schedule's zone: a local midnight keeps its own date
        scheduled_at = scheduled_at.astimezone(ZoneInfo(trigger.timezone))
    facts: dict[str, Any] = dict(
        deployment=trigger.deployment,
        deployment_version=trigger.deployment_version,
        kind=trigger_name(trigger.kind),
        scheduled_at=scheduled_at.isoformat(),
    )
    if trigger.upstream_run:
        facts["upstream_run"] = trigger.upstream_run
    if trigger.HasField("event"):
        event = trigger.event
        published = datetime.fromtimestamp(event.published_at.ToMicroseconds() / 1e6, UTC)
        facts["event"] = dict(
            name=event.name,
            id=event.id,
            payload=json.loads(event.payload) if event.payload else {},
            published_at=published.isoformat(),
            published_by=event.published_by,
        )
    return facts


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
    return dict(
        flow_name=flow_name,
        run_id=run_id,
        step_name=step_name,
        task_id=task_id,
        retry_count=attempt,
        namespace=production_namespace_of(tags) or f"user:{user}",
        username=user,
        tags=tags,
        origin_run_id=origin_run_id or None,
        parameter_names=sorted(parameter_names),
        trigger=trigger_facts(trigger),
        **project_facts(flow_name, tags),
    )
