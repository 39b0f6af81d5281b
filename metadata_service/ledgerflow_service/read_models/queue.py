"""The orchestration read models: the runs the service orchestrates (``run --remote``)
and each of their tasks on its way from queued to done.

Their rules are folded from events alone, live and in rebuilds alike: a task is queued,
leased by one executor, started, and succeeds or fails under that lease; a lease that
lapses is lost. Every task event of an orchestrated run must carry the task's current
lease (fencing): an executor that lost its lease cannot write any more. What the
service *decides* from these rows (queue the successors, retry, finish the run) is the
process manager's (``orchestration/process_manager.py``); its decisions come back
here as events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import Next, RunGraph, Tally, after_lost, decide
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models import tasks
from ledgerflow_service.validation import check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

# Task states that hold a place in the queue or on an executor.
OPEN_STATES = frozenset({"queued", "leased", "running"})
# The events only the service writes (the process manager, or its lease commands).
SERVICE_EVENTS = frozenset({"task_queued", "task_leased", "lease_expired", "task_cancelled"})
# Task events that must carry the task's current lease in an orchestrated run.
FENCED_EVENTS = frozenset(
    {
        "task_started",
        "task_heartbeat",
        "artifacts_recorded",
        "task_succeeded",
        "task_failed",
        "logs_recorded",
        # What a task's tables say it wrote and read (docs/tables.md): only the
        # attempt that holds the lease may say so.
        "table_version_written",
        "table_version_read",
        # The cards it rendered (docs/cards.md).
        "cards_recorded",
    }
)


@dataclass
class OrchestratedRunRow:
    run_pathspec: str
    graph: bytes
    resume: bytes
    next_task_id: int
    open_tasks: int
    state: str
    reason: str

    def flow_graph(self) -> RunGraph:
        """The run's graph, with the run rules over it."""
        return flow_graph.rules(self.graph)

    def clones(self) -> dict[tuple[str, tuple[int, ...]], records_pb2.ClonedTask]:
        """The origin tasks a remote resume reuses, by (step, foreach indices)."""
        return flow_graph.parse_resume(self.resume)


@dataclass
class QueueRow:
    task_pathspec: str
    run_pathspec: str
    step_name: str
    task_id: str
    attempt: int
    state: str
    queue_name: str
    cpu: float
    gpu: int
    memory_mb: int
    input_pathspecs_json: str
    foreach_stack_json: str
    join_key: str
    queued_position: int
    queued_at_us: int
    not_before_us: int
    lease_id: str
    executor_id: str
    lease_seconds: int
    lease_expires_at_us: int
    failures: int
    lost: int

    @property
    def foreach_stack(self) -> list[records_pb2.ForeachFrame]:
        return [
            records_pb2.ForeachFrame(step_name=s, index=i, num_splits=n)
            for s, i, n in json.loads(self.foreach_stack_json)
        ]

    @property
    def input_pathspecs(self) -> list[str]:
        return list(json.loads(self.input_pathspecs_json))


def task_ref(task_pathspec: str) -> events_pb2.TaskRef:
    """The TaskRef of a task's pathspec (Flow/run_id/step/task_id)."""
    flow_name, run_id, step_name, task_id = task_pathspec.split("/")
    return events_pb2.TaskRef(
        flow_name=flow_name, run_id=run_id, step_name=step_name, task_id=task_id
    )


def _new_row(
    run: OrchestratedRunRow,
    item: PendingEvent,
    step: records_pb2.StepSpec,
    task: events_pb2.TaskRef,
    inputs: Sequence[str],
    stack: Sequence[records_pb2.ForeachFrame],
    queue_name: str,
    resources: records_pb2.Resources,
) -> QueueRow:
    """A task's first queue row (state "new": set_state moves it on)."""
    return QueueRow(
        task_pathspec=item.address.task_pathspec or "", run_pathspec=run.run_pathspec,
        step_name=step.name, task_id=task.task_id, attempt=0, state="new",
        queue_name=queue_name, cpu=resources.cpu, gpu=resources.gpu,
        memory_mb=resources.memory_mb, input_pathspecs_json=tasks.texts_json(inputs),
        foreach_stack_json=tasks.foreach_json(stack),
        join_key=run.flow_graph().join_key(step.name, stack),
        queued_position=item.position, queued_at_us=item.recorded_at_us, not_before_us=0,
        lease_id="", executor_id="", lease_seconds=0, lease_expires_at_us=0, failures=0,
        lost=0,
    )  # fmt: skip


def set_state(fold: ReadModelFold, row: QueueRow, state: str) -> None:
    """Moves a task to `state`, keeping its run's count of open tasks."""
    run = fold.orchestrated[row.run_pathspec]
    assert run is not None
    run.open_tasks += (state in OPEN_STATES) - (row.state in OPEN_STATES)
    row.state = state
    fold.mark(row)
    fold.mark(run)


def orchestrated_run(fold: ReadModelFold, item: PendingEvent) -> OrchestratedRunRow | None:
    return fold.orchestrated.get(item.address.run_pathspec)


# ---- events of runs --------------------------------------------------------------


def run_started(fold: ReadModelFold, p: events_pb2.RunStarted, item: PendingEvent) -> None:
    """A run submitted with its graph (checked by read_models/runs.py, which runs
    first) is orchestrated from now on."""
    if not p.HasField("graph"):
        if p.HasField("resume"):
            raise InvalidArgument("run_started.resume goes with a graph (resume --remote)")
        return
    first_task_id = 1
    if p.HasField("resume"):
        if not p.origin_run_id:
            raise InvalidArgument("run_started.resume needs the origin_run_id it resumes")
        flow_graph.check_resume(p.graph, p.resume)
        first_task_id = max(1, p.resume.first_task_id)
    row = OrchestratedRunRow(
        item.address.run_pathspec,
        p.graph.SerializeToString(),
        p.resume.SerializeToString() if p.HasField("resume") else b"",
        first_task_id,
        0,
        "running",
        "",
    )
    fold.orchestrated[row.run_pathspec] = row
    fold.mark(row)
    fold.orchestrate(item)


def run_cancel_requested(
    fold: ReadModelFold, p: events_pb2.RunCancelRequested, item: PendingEvent
) -> None:
    check_text("run_cancel_requested.reason", p.reason)
    fold.run(item.address.run_pathspec, open_only=True)
    run = orchestrated_run(fold, item)
    if run is None:
        raise FailedPrecondition(
            f"run {item.address.run_pathspec} runs on its submitter's machine, not on "
            "executors: stop it there (Ctrl-C)"
        )
    if run.state != "cancelling":
        run.state = "cancelling"
        run.reason = p.reason or f"cancelled by {item.actor}"
        fold.mark(run)
    fold.orchestrate(item)


def check_run_finished(fold: ReadModelFold, item: PendingEvent) -> None:
    """Only the service finishes the runs it orchestrates."""
    run = orchestrated_run(fold, item)
    if run is not None and item.principal is not None and not item.principal.is_service:
        raise FailedPrecondition(
            f"run {item.address.run_pathspec} is orchestrated by the service, which "
            "finishes it; stop it with `ledgerflow cancel`"
        )


# ---- the service's own events -----------------------------------------------------


def check_task_cloned(fold: ReadModelFold, item: PendingEvent) -> None:
    """Only the service clones the tasks of a run it orchestrates (resume --remote)."""
    if item.principal is not None and not item.principal.is_service:
        raise FailedPrecondition(
            f"run {item.address.run_pathspec} is orchestrated by the service: its tasks "
            "are cloned by the service (resume --remote), not by clients"
        )


def task_cloned(fold: ReadModelFold, p: events_pb2.TaskCloned, item: PendingEvent) -> None:
    """After the tasks model folded a clone of an orchestrated run: it is done, and
    feeds its join like a succeeded task."""
    run = _orchestrated(fold, item)
    step = flow_graph.step(run.flow_graph(), p.task.step_name)
    row = _new_row(run, item, step, p.task, p.input_pathspecs, p.foreach_stack, step.queue,
                   step.resources)  # fmt: skip
    fold.queue[row.task_pathspec] = row
    set_state(fold, row, "done")
    fold.orchestrate(item)


def task_queued(fold: ReadModelFold, p: events_pb2.TaskQueued, item: PendingEvent) -> None:
    run = _orchestrated(fold, item)
    path = item.address.task_pathspec or ""
    step = flow_graph.step(run.flow_graph(), p.task.step_name)
    row = fold.queue.get(path)
    if row is None:
        row = _new_row(run, item, step, p.task, p.input_pathspecs, p.foreach_stack, p.queue,
                       p.resources)  # fmt: skip
        fold.queue[path] = row
        if p.task.task_id.isdigit():
            run.next_task_id = max(run.next_task_id, int(p.task.task_id) + 1)
    elif row.state not in ("failed", "lost") or p.attempt not in (row.attempt, row.attempt + 1):
        raise FailedPrecondition(f"task {path} is {row.state}; attempt {p.attempt} cannot queue")
    row.attempt = p.attempt
    row.queued_position = item.position
    row.queued_at_us = item.recorded_at_us
    row.not_before_us = item.recorded_at_us + int(p.delay_seconds * 1e6)
    row.lease_id = row.executor_id = ""
    row.lease_expires_at_us = 0
    set_state(fold, row, "queued")


def task_leased(fold: ReadModelFold, p: events_pb2.TaskLeased, item: PendingEvent) -> None:
    _orchestrated(fold, item)
    row = _queued(fold, item)
    if row.state != "queued" or row.attempt != p.attempt:
        raise FailedPrecondition(
            f"attempt {p.attempt} of task {row.task_pathspec} is not waiting in the queue "
            f"(it is {row.state}, attempt {row.attempt}): another executor took it"
        )
    if not p.lease_id or p.lease_seconds <= 0:
        raise InvalidArgument("task_leased needs a lease_id and lease_seconds")
    row.lease_id, row.executor_id = p.lease_id, p.executor_id
    row.lease_seconds = p.lease_seconds
    row.lease_expires_at_us = item.recorded_at_us + p.lease_seconds * 1_000_000
    set_state(fold, row, "leased")


def lease_expired(fold: ReadModelFold, p: events_pb2.LeaseExpired, item: PendingEvent) -> None:
    run = _orchestrated(fold, item)
    row = _queued(fold, item)
    if row.state not in ("leased", "running") or row.lease_id != p.lease_id:
        raise FailedPrecondition(f"lease {p.lease_id} of {row.task_pathspec} is not current")
    if item.principal is not None and row.lease_expires_at_us > item.recorded_at_us:
        raise FailedPrecondition(f"lease {p.lease_id} of {row.task_pathspec} has not expired")
    started = row.state == "running"
    if started:  # the attempt failed with its executor
        tasks.close_lost_attempt(fold, row.task_pathspec, p, item)
    row.lost += 1
    decision = after_lost(flow_graph.step(run.flow_graph(), row.step_name), row.lost)
    if decision.next is Next.FAIL or run.state != "running":
        _fail_for_good(fold, run, row, decision.reason)
        return
    if started:
        row.attempt += 1  # the one the process manager queues next
    set_state(fold, row, "lost")
    fold.orchestrate(item)


def task_cancelled(fold: ReadModelFold, p: events_pb2.TaskCancelled, item: PendingEvent) -> None:
    _orchestrated(fold, item)
    row = _queued(fold, item)
    if row.state != "queued":
        raise FailedPrecondition(f"task {row.task_pathspec} is {row.state}, not queued")
    set_state(fold, row, "cancelled")


# ---- the executors' task events, fenced ------------------------------------------


def check_lease(fold: ReadModelFold, kind: str, payload: Any, item: PendingEvent) -> None:
    """Before a task event of an orchestrated run is folded: it must carry the task's
    current lease, not yet expired by the service (a zombie executor's events are
    refused)."""
    row = fold.queue.get(item.address.task_pathspec or "")
    if row is None:
        raise FailedPrecondition(
            f"task {item.address.task_pathspec} was never queued by the service: the tasks "
            "of an orchestrated run are run by executors"
        )
    if not payload.lease_id or payload.lease_id != row.lease_id:
        raise FailedPrecondition(
            f"task {row.task_pathspec}: lease {payload.lease_id or '(none)'} is not the "
            "task's current lease; it expired or was never granted, so this executor must "
            "stop the attempt"
        )
    if payload.attempt != row.attempt:
        raise FailedPrecondition(
            f"task {row.task_pathspec}: lease {payload.lease_id} is attempt {row.attempt}'s, "
            f"not attempt {payload.attempt}'s"
        )
    finished = row.state in ("done", "failed")
    if kind == "logs_recorded" and (finished or row.state in OPEN_STATES):
        return  # logs of an attempt may arrive after its outcome
    if row.state not in ("leased", "running"):
        raise FailedPrecondition(f"task {row.task_pathspec} is {row.state} under this lease")
    # A lease past its time stays current until the service records LeaseExpired: the
    # lease desk decides when a lapsed lease is lost, not counting the time it could not
    # hear renewals (orchestration/leases.py). Until then nobody else holds the task, so
    # the executor's late renewal or outcome is taken.


def after_task_event(fold: ReadModelFold, kind: str, payload: Any, item: PendingEvent) -> None:
    """After a fenced task event was folded into the tasks model: the queue side."""
    row = fold.queue[item.address.task_pathspec or ""]
    assert row is not None  # check_lease found it
    run = fold.orchestrated[row.run_pathspec]
    assert run is not None
    if kind in ("task_started", "task_heartbeat"):
        row.lease_expires_at_us = item.recorded_at_us + row.lease_seconds * 1_000_000
        if kind == "task_started":
            set_state(fold, row, "running")
        fold.mark(row)
    elif kind == "task_succeeded":
        set_state(fold, row, "done")
        fold.orchestrate(item)
    elif kind == "task_failed":
        tally = Tally(row.failures, row.lost).after(payload.kind)
        row.failures, row.lost = tally.failures, tally.lost
        step = flow_graph.step(run.flow_graph(), row.step_name)
        decision = decide(step, tally, payload.kind, payload.error_type, remote=True)
        if decision.next is Next.FAIL or run.state != "running":
            _fail_for_good(fold, run, row, f"{payload.error_type}: {payload.error_message}")
            return
        set_state(fold, row, "failed")
        fold.orchestrate(item)


def _fail_for_good(
    fold: ReadModelFold, run: OrchestratedRunRow, row: QueueRow, reason: str
) -> None:
    """The task will not run again: its run fails (unless it is already stopping)."""
    set_state(fold, row, "failed")
    if run.state == "running":
        run.state = "failing"
        run.reason = f"task {row.task_pathspec} failed: {reason}"[:2000]
        fold.mark(run)
    fold.orchestrate_run(row.run_pathspec)


def _orchestrated(fold: ReadModelFold, item: PendingEvent) -> OrchestratedRunRow:
    run = orchestrated_run(fold, item)
    if run is None:
        raise FailedPrecondition(f"run {item.address.run_pathspec} is not orchestrated")
    fold.run(item.address.run_pathspec, open_only=True)
    return run


def _queued(fold: ReadModelFold, item: PendingEvent) -> QueueRow:
    row = fold.queue.get(item.address.task_pathspec or "")
    if row is None:
        raise FailedPrecondition(f"task {item.address.task_pathspec} was never queued")
    return row


# The handler of each kind of event this read model folds on its own.
HANDLERS: dict[str, Callable[..., None]] = {
    "task_queued": task_queued,
    "task_leased": task_leased,
    "lease_expired": lease_expired,
    "task_cancelled": task_cancelled,
    "run_cancel_requested": run_cancel_requested,
}
