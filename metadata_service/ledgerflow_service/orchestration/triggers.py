"""What a finished run or a published event sets off: the runs of the deployments that
wait for it (@trigger_on_finish, @trigger) and the notifications of a deployment's
finished run (@notify).

The process manager calls :func:`react` for each RunFinished and EventPublished it
folds, so what follows is appended in the same transaction as its cause, with event
ids and run ids derived from the cause: an upstream success or an event starts each
waiting deployment exactly once, whichever replica appends it and however often a
client retries, and a crash can neither lose nor repeat it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledgerflow.engine.deployments import deployment_tag, trigger_tag
from ledgerflow.engine.schedules import triggered_run_id
from ledgerflow.engine.triggers import (
    TriggerError,
    parse_payload,
    payload_parameters,
    trigger_cycle,
)
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import FailedPrecondition, InvalidArgument, NotFound
from ledgerflow_service.names import check_deployment_name
from ledgerflow_service.principal import Principal
from ledgerflow_service.queries import deployments as deployment_queries
from ledgerflow_service.read_models.deployments import DeploymentRow, event_cause, finish_cause
from ledgerflow_service.store.backend import Tx

if TYPE_CHECKING:
    from ledgerflow_service.orchestration.process_manager import Decisions
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent


def fired_run(
    row: DeploymentRow,
    kind: records_pb2.TriggerKind,
    due_us: int,
    event_id: str,
    run_id: str,
    parameters: dict[str, str] | None = None,
) -> events_pb2.Event:
    """The RunStarted of one run of a deployment: its latest version's graph, code and
    parameters (some replaced, for a trigger), its tags, and what fired it."""
    spec = row.created()
    started = events_pb2.RunStarted(
        flow_name=spec.flow_name,
        run_id=run_id,
        user=spec.user,
        tags=list(spec.tags),
        system_tags=[*spec.system_tags, deployment_tag(spec.name), trigger_tag(kind)],
        parameters={**spec.parameters, **(parameters or {})},
        code_package_key=spec.code_package_key,
        graph=spec.graph,
        trigger=records_pb2.Trigger(
            deployment=spec.name,
            deployment_version=row.version,
            kind=kind,
            timezone=spec.schedule.timezone,
        ),
    )
    started.trigger.scheduled_at.FromMicroseconds(due_us)
    if spec.HasField("queue_policy"):
        started.queue_policy.CopyFrom(spec.queue_policy)
    return events_pb2.Event(event_id=event_id, run_started=started)


def branch_owner_problem(branch: str, principal: Principal | None) -> str | None:
    """Why `principal` may not change or start a deployment on `branch` (None: it may).
    Someone's own branch (``user.NAME``) is NAME's (and an admin's); production's and
    the test branches' are any authenticated caller's, recorded as the actor."""
    owner = branch.removeprefix("user.") if branch.startswith("user.") else None
    if (
        principal is None
        or owner is None
        or not principal.authenticated
        or principal.name == owner
        or principal.may_act_for_others("run_started")
    ):
        return None
    return (
        f"{principal.name!r} may not change deployments on branch {branch!r}, which is "
        f"{owner}'s own (an admin may)"
    )


def check_triggers(tx: Tx, spec: events_pb2.DeploymentCreated) -> None:
    """A deployment's @trigger_on_finish names deployments that exist, and closes no
    cycle (a cycle would start runs forever)."""
    # Checked before they reach a query (a NUL, say, would fail there as no bad input).
    upstreams = [check_deployment_name(name) for name in spec.trigger_on_finish]
    check_deployment_name(spec.name)
    graph = deployment_queries.upstreams(tx)
    graph[spec.name] = upstreams
    cycle = trigger_cycle(graph, spec.name)
    if cycle:
        raise FailedPrecondition(
            "@trigger_on_finish would make a cycle, each starting the next forever: "
            + " -> ".join(cycle)
        )
    others = [name for name in upstreams if name != spec.name]
    missing = sorted(set(others) - deployment_queries.live_names(tx, others))
    if missing:
        raise FailedPrecondition(
            f"{spec.name} waits for runs of {missing[0]!r}, which is not deployed: deploy "
            f"{missing[0].rsplit('.', 1)[-1]} first (on the same branch), or name a "
            "deployment that exists (`ledgerflow deployments list`)"
        )


def runs_started_by(tx: Tx, event_id: str) -> list[str]:
    """The runs published event `event_id` started, as pathspecs: the run each
    deployment would have started for it (its id is derived from the event's), among
    those that exist, whatever became of the deployments since (a retried publish
    answers as the first one did)."""
    candidates = [
        f"{flow}/{triggered_run_id(name, event_id, 'event')}"
        for name, flow in deployment_queries.every_name(tx)
    ]
    return sorted(deployment_queries.existing_runs(tx, candidates))


def react(fold: ReadModelFold, tx: Tx, item: PendingEvent, decided: Decisions) -> None:
    """The runs and notifications that `item` (a RunFinished or an EventPublished just
    folded) sets off."""
    cause = item.event.event_id
    if item.address.kind == "event_published":
        published = item.event.event_published
        event = records_pb2.PublishedEvent(
            name=published.name,
            payload=published.payload,
            id=cause,
            published_by=item.event.actor or (item.principal.name if item.principal else ""),
        )
        event.published_at.FromMicroseconds(item.recorded_at_us)
        payload = parse_payload(published.payload)
        for row in listeners(fold, tx, event_cause(published.name)):
            if branch_owner_problem(row.branch, item.principal) is not None:
                continue  # someone's own deployment starts on its owner's events only
            try:
                parameters = payload_parameters(payload, row.created().parameters, row.name)
            except TriggerError as error:  # the publish is refused: nothing starts
                raise InvalidArgument(f"event {published.name!r}: {error}") from None
            started = _start(row, records_pb2.TRIGGER_KIND_EVENT, cause, item, decided,
                             parameters)  # fmt: skip
            started.trigger.event.CopyFrom(event)
        return
    run = fold.runs.get(item.address.run_pathspec)
    if run is None or not run.trigger_message:
        return  # not a deployment's run: nobody waits for it
    trigger = records_pb2.Trigger.FromString(bytes(run.trigger_message))
    succeeded = item.event.run_finished.succeeded
    if succeeded:
        for row in listeners(fold, tx, finish_cause(trigger.deployment)):
            started = _start(row, records_pb2.TRIGGER_KIND_RUN_FINISHED, cause, item, decided)
            started.trigger.upstream_run = run.pathspec
    _request_notifications(fold, tx, run.pathspec, trigger.deployment, succeeded, decided)


def listeners(fold: ReadModelFold, tx: Tx, cause: str) -> list[DeploymentRow]:
    """The live deployments `cause` starts, as this transaction sees them: the saved
    rows, with the ones this batch changed (a deploy, pause or resume ordered before
    the cause) in their new state."""
    found = {row.name: row for row in deployment_queries.listening(tx, cause)}
    for name, row in fold.deployments.items():
        if row is None:
            continue
        if f" {cause} " in row.listens_to and not row.paused and not row.deleted:
            found[name] = row
        else:
            found.pop(name, None)
    return [found[name] for name in sorted(found)]


def _start(
    row: DeploymentRow,
    kind: records_pb2.TriggerKind,
    cause: str,
    item: PendingEvent,
    decided: Decisions,
    parameters: dict[str, str] | None = None,
) -> events_pb2.RunStarted:
    """Decides a run of deployment `row` for `cause`; returns its RunStarted to fill."""
    prefix = "event" if kind == records_pb2.TRIGGER_KIND_EVENT else "after"
    run_id = triggered_run_id(row.name, cause, prefix)
    event = fired_run(row, kind, item.recorded_at_us, "", run_id, parameters)
    decided.add(f"{cause}/start/{row.name}", run_started=event.run_started)
    return decided.events[-1].run_started


def _request_notifications(
    fold: ReadModelFold,
    tx: Tx,
    run_pathspec: str,
    deployment: str,
    succeeded: bool,
    decided: Decisions,
) -> None:
    """One NotificationRequested per @notify of the deployment that hears of this
    outcome (the deployment's latest version says who)."""
    row = fold.deployments.get(deployment)
    if row is None:
        try:
            row = deployment_queries.find(tx, deployment, include_deleted=True)
        except NotFound:
            return
    outcome = "success" if succeeded else "failure"
    flow_name, run_id = run_pathspec.split("/")
    for number, notify in enumerate(row.created().notify):
        if outcome in notify.on:
            decided.add(
                f"{run_pathspec}/notify/{number}",
                notification_requested=events_pb2.NotificationRequested(
                    flow_name=flow_name, run_id=run_id, notification=number, notify=notify,
                    outcome=outcome,
                ),
            )  # fmt: skip
