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

from ledgerflow.engine import (
    Next,
    RunGraph,
    Tally,
    after_lost,
    after_not_started,
    after_queue_timeout,
    decide,
)
from ledgerflow.engine.queues import policy_problem
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
SERVICE_EVENTS = frozenset(
    {"task_queued", "task_leased", "lease_expired", "task_cancelled", "task_queue_timed_out"}
)
# Task states that hold a place on an executor (what --max-workers and fair share count).
ACTIVE_STATES = frozenset({"leased", "running"})
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
    # Its queue policy (docs/executor.md, "Queues"): 0 is the default of each.
    priority: int
    max_workers: int
    queue_timeout_seconds: int
    # Tasks leased or running (of the open ones).
    active_tasks: int
    # When it last went below max_workers, having been at it: its queued tasks' deadline
    # does not count the time they waited for the run's own tasks.
    room_since_us: int

    def at_cap(self) -> bool:
        """Whether as many of its tasks are leased or running as --max-workers allows."""
        return 0 < self.max_workers <= self.active_tasks

    def queue_deadline_us(self, row: QueueRow) -> int | None:
        """When queued `row` fails for want of an executor; None: no deadline (none set,
        or the run is at its cap)."""
        if not self.queue_timeout_seconds or self.at_cap():
            return None
        waiting_since = max(row.not_before_us, self.room_since_us)
        return waiting_since + self.queue_timeout_seconds * 1_000_000

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


def set_state(fold: ReadModelFold, row: QueueRow, state: str, at_us: int) -> None:
    """Moves a task to `state` (at `at_us`, the event's time), keeping its run's counts
    of open and active tasks."""
    run = fold.orchestrated[row.run_pathspec]
    assert run is not None
    run.open_tasks += (state in OPEN_STATES) - (row.state in OPEN_STATES)
    was_at_cap = run.at_cap()
    run.active_tasks += (state in ACTIVE_STATES) - (row.state in ACTIVE_STATES)
    if was_at_cap and not run.at_cap():
        run.room_since_us = at_us
    row.state = state
    fold.mark(row)
    fold.mark(run)


def orchestrated_run(fold: ReadModelFold, item: PendingEvent) -> OrchestratedRunRow | None:
    return fold.orchestrated.get(item.address.run_pathspec)


# ---- events of runs --------------------------------------------------------------


def check_queue_policy(name: str, policy: records_pb2.QueuePolicy) -> records_pb2.QueuePolicy:
    """A run's (or a deployment's) queue policy, within its bounds (the engine's)."""
    problem = policy_problem(name, policy)
    if problem is not None:
        raise InvalidArgument(problem)
    return policy


def run_started(fold: ReadModelFold, p: events_pb2.RunStarted, item: PendingEvent) -> None:
    """A run submitted with its graph (checked by read_models/runs.py, which runs
    first) is orchestrated from now on, under its queue policy."""
    if not p.HasField("graph"):
        if p.HasField("resume"):
            raise InvalidArgument("run_started.resume goes with a graph (resume --remote)")
        if p.HasField("queue_policy"):
            raise InvalidArgument(
                "run_started.queue_policy goes with a graph: only the runs the service "
                "orchestrates (run --remote) wait in its queue"
            )
        return
    first_task_id = 1
    if p.HasField("resume"):
        if not p.origin_run_id:
            raise InvalidArgument("run_started.resume needs the origin_run_id it resumes")
        flow_graph.check_resume(p.graph, p.resume)
        first_task_id = max(1, p.resume.first_task_id)
    policy = check_queue_policy("run_started.queue_policy", p.queue_policy)
    row = OrchestratedRunRow(
        item.address.run_pathspec,
        p.graph.SerializeToString(),
        p.resume.SerializeToString() if p.HasField("resume") else b"",
        first_task_id,
        0,
        "running",
        "",
        policy.priority,
        policy.max_workers,
        policy.queue_timeout_seconds,
        0,
        0,
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
    set_state(fold, row, "done", item.recorded_at_us)
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
    set_state(fold, row, "queued", item.recorded_at_us)


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
    set_state(fold, row, "leased", item.recorded_at_us)


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
        _fail_for_good(fold, run, row, decision.reason, item.recorded_at_us)
        return
    if started:
        row.attempt += 1  # the one the process manager queues next
    set_state(fold, row, "lost", item.recorded_at_us)
    fold.orchestrate(item)


def task_not_started(fold: ReadModelFold, p: events_pb2.TaskNotStarted, item: PendingEvent) -> None:
    """The executor gives back a leased attempt its engine never began (an image it
    could not pull, a pod no node took): the tasks model has no attempt for it, and the
    same attempt is queued again on the infrastructure's budget, or the task fails for
    good with the engine's words."""
    run = _orchestrated(fold, item)
    check_lease(fold, "task_not_started", p, item)
    row = _queued(fold, item)
    for field_name in ("error_type", "error_message"):
        check_text(f"task_not_started.{field_name}", getattr(p, field_name))
    if not p.error_type:
        raise InvalidArgument("task_not_started.error_type is empty: say why it never began")
    if p.kind != records_pb2.FAILURE_KIND_INFRASTRUCTURE:
        raise InvalidArgument(
            "task_not_started.kind must be FAILURE_KIND_INFRASTRUCTURE: an attempt that "
            "never began cannot fail of its own doing"
        )
    if row.state != "leased":
        raise FailedPrecondition(
            f"attempt {p.attempt} of task {row.task_pathspec} has begun (its TaskStarted is "
            "recorded): record how it ended with TaskFailed"
        )
    row.lost += 1
    step = flow_graph.step(run.flow_graph(), row.step_name)
    decision = after_not_started(step, row.lost, p.error_type, p.error_message)
    if decision.next is Next.FAIL or run.state != "running":
        _fail_for_good(fold, run, row, decision.reason, item.recorded_at_us)
        return
    set_state(fold, row, "lost", item.recorded_at_us)  # the same attempt queues again
    fold.orchestrate(item)


def task_cancelled(fold: ReadModelFold, p: events_pb2.TaskCancelled, item: PendingEvent) -> None:
    _orchestrated(fold, item)
    row = _queued(fold, item)
    if row.state != "queued":
        raise FailedPrecondition(f"task {row.task_pathspec} is {row.state}, not queued")
    set_state(fold, row, "cancelled", item.recorded_at_us)


def task_queue_timed_out(
    fold: ReadModelFold, p: events_pb2.TaskQueueTimedOut, item: PendingEvent
) -> None:
    """A queued attempt no executor took within its run's queue deadline: it fails for
    good, and so does its run (the engine's after_queue_timeout)."""
    run = _orchestrated(fold, item)
    row = _queued(fold, item)
    check_text("task_queue_timed_out.reason", p.reason)
    if row.state != "queued" or row.attempt != p.attempt:
        raise FailedPrecondition(
            f"attempt {p.attempt} of task {row.task_pathspec} is not waiting in the queue "
            f"(it is {row.state}, attempt {row.attempt}): an executor took it"
        )
    if p.queue_timeout_seconds != run.queue_timeout_seconds:
        raise InvalidArgument(
            f"task_queue_timed_out.queue_timeout_seconds is {p.queue_timeout_seconds}; the "
            f"run's is {run.queue_timeout_seconds}"
        )
    deadline = run.queue_deadline_us(row)
    if item.principal is not None and (deadline is None or deadline > item.recorded_at_us):
        raise FailedPrecondition(f"task {row.task_pathspec} has not waited past its deadline")
    decision = after_queue_timeout(p.reason)
    assert decision.next is Next.FAIL  # the engine's rule: a timed-out wait is not retried
    _fail_for_good(fold, run, row, decision.reason, item.recorded_at_us)


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


def renews_lease_only(fold: ReadModelFold, kind: str, item: PendingEvent) -> bool:
    """Whether a fenced event only renews its lease: the heartbeat of an attempt leased
    but not begun (a job its executor handed to Slurm, pending in Slurm's queue), which
    the tasks model has no attempt for yet."""
    row = fold.queue.get(item.address.task_pathspec or "")
    return kind == "task_heartbeat" and row is not None and row.state == "leased"


def after_task_event(fold: ReadModelFold, kind: str, payload: Any, item: PendingEvent) -> None:
    """After a fenced task event was folded into the tasks model: the queue side."""
    row = fold.queue[item.address.task_pathspec or ""]
    assert row is not None  # check_lease found it
    run = fold.orchestrated[row.run_pathspec]
    assert run is not None
    if kind in ("task_started", "task_heartbeat"):
        row.lease_expires_at_us = item.recorded_at_us + row.lease_seconds * 1_000_000
        if kind == "task_started":
            set_state(fold, row, "running", item.recorded_at_us)
        fold.mark(row)
    elif kind == "task_succeeded":
        set_state(fold, row, "done", item.recorded_at_us)
        fold.orchestrate(item)
    elif kind == "task_failed":
        tally = Tally(row.failures, row.lost).after(payload.kind)
        row.failures, row.lost = tally.failures, tally.lost
        step = flow_graph.step(run.flow_graph(), row.step_name)
        decision = decide(step, tally, payload.kind, payload.error_type, remote=True)
        if decision.next is Next.FAIL or run.state != "running":
            _fail_for_good(fold, run, row, f"{payload.error_type}: {payload.error_message}",
                           item.recorded_at_us)  # fmt: skip
            return
        set_state(fold, row, "failed", item.recorded_at_us)
        fold.orchestrate(item)


def _fail_for_good(
    fold: ReadModelFold, run: OrchestratedRunRow, row: QueueRow, reason: str, at_us: int
) -> None:
    """The task will not run again: its run fails (unless it is already stopping)."""
    set_state(fold, row, "failed", at_us)
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
    "task_queue_timed_out": task_queue_timed_out,
    "task_not_started": task_not_started,
    "run_cancel_requested": run_cancel_requested,
}
