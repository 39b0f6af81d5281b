"""What ``current`` says inside a task, the same wherever the task runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ledgerflow.engine.deployments import production_namespace_of, trigger_name
from ledgerflow.engine.projects import project_facts
from ledgerflow.v1 import records_pb2

# Where a gang's main node can be reached (current.parallel.main_ip): set by whoever
# starts the gang (the executor for the host it runs on, a Slurm job for its first
# node); a local run's gang is on this machine.
MAIN_IP_VARIABLE = "LEDGERFLOW_PARALLEL_MAIN_IP"
LOCAL_MAIN_IP = "127.0.0.1"


def parallel_facts(
    stack: Sequence[tuple[str, int, int]], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``current.parallel`` for a task of a @parallel step: its node's place in the
    gang (the innermost foreach frame, which num_parallel made) and the main node's
    address."""
    _, index, count = stack[-1]
    return dict(
        main_ip=environ.get(MAIN_IP_VARIABLE) or LOCAL_MAIN_IP,
        num_nodes=count,
        node_index=index,
    )


def trigger_facts(trigger: records_pb2.Trigger | None) -> dict[str, Any] | None:
    """What started a run of a deployment, as ``current.trigger`` gives it (JSON-safe:
    a task's facts travel as JSON); None for a run started with ``run``."""
    if trigger is None or not trigger.deployment:
        return None
    scheduled_at = datetime.fromtimestamp(trigger.scheduled_at.ToMicroseconds() / 1e6, UTC)
    if trigger.timezone:  # in the schedule's zone: a local midnight keeps its own date
        from zoneinfo import ZoneInfo  # only here: a flow's start need not load it

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
