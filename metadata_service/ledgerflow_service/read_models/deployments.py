"""The deployments read model: each deployment's latest version, whether it is paused or
deleted, and the next due time of its schedule.

The next due time is kept here, in the fold, so that every service replica reads the
same answer from the database: a deployment (or a resume) fires the first due time
after its event, and each run the schedule or a backfill starts for a due time moves
the next one past it. The scheduler (``orchestration/schedules.py``) only asks which
rows are due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerflow.engine.deployments import identity_problem
from ledgerflow.engine.schedules import ScheduleError, check_cron_fields, check_schedule, next_due
from ledgerflow.engine.triggers import TriggerError, check_event_name, check_notify, parse_payload
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import FailedPrecondition, InvalidArgument, NotFound
from ledgerflow_service.names import (
    check_content_key,
    check_deployment_name,
    check_identifier,
)
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.queue import check_queue_policy
from ledgerflow_service.validation import check_run_settings, check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

# Kinds of trigger whose due time counts as fired for the schedule.
_DUE_KINDS = (records_pb2.TRIGGER_KIND_SCHEDULE, records_pb2.TRIGGER_KIND_BACKFILL)


@dataclass
class DeploymentRow:
    name: str
    flow_name: str
    version: int
    project: str
    branch: str
    paused: int
    deleted: int
    deployed_by: str
    deployed_at_us: int
    spec: bytes
    next_due_us: int | None
    # What else starts it: " finish:UPSTREAM event:NAME " (see listens_to()).
    listens_to: str = ""

    def created(self) -> events_pb2.DeploymentCreated:
        return events_pb2.DeploymentCreated.FromString(bytes(self.spec))


def finish_cause(upstream: str) -> str:
    """The cause a deployment waits for with @trigger_on_finish(upstream)."""
    return f"finish:{upstream}"


def event_cause(name: str) -> str:
    """The cause a deployment waits for with @trigger(event=name)."""
    return f"event:{name}"


def listens_to(spec: events_pb2.DeploymentCreated) -> str:
    """The causes that start a deployment, space-separated with a space at each end, so
    that one is found with ``LIKE '% cause %'`` (see queries.deployments.listening)."""
    causes = [finish_cause(n) for n in spec.trigger_on_finish]
    causes += [event_cause(n) for n in spec.trigger_on_events]
    return f" {' '.join(causes)} " if causes else ""


def _check_triggers(p: events_pb2.DeploymentCreated) -> None:
    try:
        for upstream in p.trigger_on_finish:
            check_deployment_name(upstream)
        for name in p.trigger_on_events:
            check_event_name(name)
        for notify in p.notify:
            check_notify(notify)
    except TriggerError as error:
        raise InvalidArgument(f"deployment {p.name!r}: {error}") from None
    if len(p.trigger_on_finish) + len(p.trigger_on_events) > 64 or len(p.notify) > 16:
        raise InvalidArgument(f"deployment {p.name!r}: at most 64 triggers and 16 notifications")


def check_schedule_message(schedule: records_pb2.Schedule) -> None:
    try:
        check_schedule(schedule)
    except ScheduleError as error:
        raise InvalidArgument(str(error)) from None


def check_cron_fields_message(schedule: records_pb2.Schedule) -> None:
    try:
        check_cron_fields(schedule)
    except ScheduleError as error:
        raise InvalidArgument(str(error)) from None


def _existing(fold: ReadModelFold, name: str) -> DeploymentRow:
    row = fold.deployments.get(name)
    if row is None or row.deleted:
        raise NotFound(f"deployment {name!r} does not exist (see `ledgerflow deployments list`)")
    return row


def _first_due(spec: events_pb2.DeploymentCreated, after_us: int) -> int | None:
    return next_due(spec.schedule, after_us) if spec.HasField("schedule") else None


def deployment_created(
    fold: ReadModelFold, p: events_pb2.DeploymentCreated, item: PendingEvent
) -> None:
    check_deployment_name(p.name)
    check_identifier("flow_name", p.flow_name)
    if not p.user:
        raise InvalidArgument("deployment_created.user is missing")
    check_text("deployment_created.user", p.user)
    if not p.code_package_key:
        raise InvalidArgument("a deployment needs its code package (code_package_key)")
    check_content_key("deployment_created.code_package_key", p.code_package_key)
    if not p.HasField("graph"):
        raise InvalidArgument("a deployment needs its flow's graph")
    flow_graph.check(p.graph, "deployment_created.graph")
    if p.HasField("schedule"):  # fully checked before the append (it reads the clock)
        check_cron_fields_message(p.schedule)
    problem = identity_problem(p)
    if problem is not None:
        raise InvalidArgument(f"deployment {p.name!r}: {problem}")
    check_run_settings(p.tags, p.system_tags, p.parameters)
    check_queue_policy("deployment_created.queue_policy", p.queue_policy)
    _check_triggers(p)
    old = fold.deployments.get(p.name)
    if old is not None and not old.deleted and old.flow_name != p.flow_name:
        raise FailedPrecondition(
            f"deployment {p.name!r} runs flow {old.flow_name}, not {p.flow_name}: delete it "
            "first or use another name"
        )
    paused = bool(old and old.paused and not old.deleted)
    row = DeploymentRow(
        name=p.name,
        flow_name=p.flow_name,
        version=(old.version + 1) if old else 1,
        project=p.project,
        branch=p.branch,
        paused=int(paused),
        deleted=0,
        deployed_by=p.user,
        deployed_at_us=item.recorded_at_us,
        spec=p.SerializeToString(deterministic=True),
        next_due_us=None if paused else _first_due(p, item.recorded_at_us),
        listens_to=listens_to(p),
    )
    fold.deployments[p.name] = row
    fold.mark(row)


def deployment_paused(
    fold: ReadModelFold, p: events_pb2.DeploymentPaused, item: PendingEvent
) -> None:
    row = _existing(fold, p.name)
    check_text("deployment_paused.reason", p.reason)
    if row.paused:
        raise FailedPrecondition(f"deployment {p.name!r} is already paused")
    row.paused, row.next_due_us = 1, None
    fold.mark(row)


def deployment_resumed(
    fold: ReadModelFold, p: events_pb2.DeploymentResumed, item: PendingEvent
) -> None:
    row = _existing(fold, p.name)
    if not row.paused:
        raise FailedPrecondition(f"deployment {p.name!r} is not paused")
    # The due times passed while paused are skipped: it fires from now on.
    row.paused, row.next_due_us = 0, _first_due(row.created(), item.recorded_at_us)
    fold.mark(row)


def deployment_deleted(
    fold: ReadModelFold, p: events_pb2.DeploymentDeleted, item: PendingEvent
) -> None:
    row = _existing(fold, p.name)
    row.deleted, row.next_due_us = 1, None
    fold.mark(row)


def run_fired(fold: ReadModelFold, p: events_pb2.RunStarted, item: PendingEvent) -> None:
    """A run of a deployment started: checks it may, and moves the schedule's next due
    time past a due time it stands for."""
    trigger = p.trigger
    row = _existing(fold, trigger.deployment)
    if row.flow_name != p.flow_name:
        raise InvalidArgument(
            f"deployment {trigger.deployment!r} runs flow {row.flow_name}, not {p.flow_name}"
        )
    if row.paused and trigger.kind != records_pb2.TRIGGER_KIND_SCHEDULE:
        raise FailedPrecondition(
            f"deployment {trigger.deployment!r} is paused: resume it first "
            f"(`ledgerflow deployments resume {trigger.deployment}`)"
        )
    due = trigger.scheduled_at.ToMicroseconds()
    if trigger.kind in _DUE_KINDS and row.next_due_us is not None and due >= row.next_due_us:
        row.next_due_us = next_due(row.created().schedule, due)
        fold.mark(row)


def event_published(fold: ReadModelFold, p: events_pb2.EventPublished, item: PendingEvent) -> None:
    """A published event is only checked here: the process manager starts what waits
    for it (orchestration/triggers.py), in the same transaction."""
    try:
        parse_payload(p.payload)
    except TriggerError as error:
        raise InvalidArgument(f"event {p.name!r}: {error}") from None


def to_message(row: DeploymentRow) -> records_pb2.Deployment:
    spec = row.created()
    deployment = records_pb2.Deployment(
        name=row.name,
        version=row.version,
        flow_name=row.flow_name,
        project=row.project,
        branch=row.branch,
        production=spec.production,
        paused=bool(row.paused),
        deleted=bool(row.deleted),
        deployed_by=row.deployed_by,
        parameters=dict(spec.parameters),
        tags=list(spec.tags),
        code_package_key=spec.code_package_key,
    )
    if spec.HasField("schedule"):
        deployment.schedule.CopyFrom(spec.schedule)
    deployment.trigger_on_finish.extend(spec.trigger_on_finish)
    deployment.trigger_on_events.extend(spec.trigger_on_events)
    deployment.notify.extend(spec.notify)
    if spec.HasField("queue_policy"):
        deployment.queue_policy.CopyFrom(spec.queue_policy)
    deployment.deployed_at.FromMicroseconds(row.deployed_at_us)
    if row.next_due_us is not None:
        deployment.next_run_at.FromMicroseconds(row.next_due_us)
    return deployment


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {
    "deployment_created": deployment_created,
    "deployment_paused": deployment_paused,
    "deployment_resumed": deployment_resumed,
    "deployment_deleted": deployment_deleted,
    "event_published": event_published,
}
