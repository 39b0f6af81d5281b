"""The process manager: what the service decides when an orchestrated run's events are
folded, appended as events in the same transaction.

- A run submitted with its graph: queue ``start``.
- A task succeeded: queue its successors (one per foreach item, with the count its
  TaskSucceeded carries; a join once all of its inputs are done).
- An attempt failed: queue the next attempt while ``@retry`` allows; otherwise the run
  fails (the read model marked it), and its queued tasks are cancelled.
- A lease expired: queue the task again.
- A run is cancelled or failing: cancel its queued tasks; running ones are stopped by
  their executors (``RenewLease`` tells them).
- A run with no open task left: finish it, succeeded when its end step succeeded.

Because the decisions and the events they answer commit together, a crash between two
appends can neither lose a task nor queue it twice; and because every decision is an
event, a rebuild folds them again without deciding anything.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow_service.orchestration import graph as flow_graph
from ledgerflow_service.read_models.queue import OrchestratedRunRow, QueueRow, task_ref
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

K = records_pb2.StepKind
# Derived event ids are made from their cause's id: deterministic, so the ledger shows
# what caused what, and the same cause can never yield two different events.
_NAMESPACE = uuid.UUID("5c0f6a53-61a4-4bd1-9a51-4f3c2d1e0b7a")
_QUEUE_COLUMNS = ", ".join(columns(QueueRow))


class Decisions:
    """The events decided in one round, with ids derived from their causes."""

    def __init__(self) -> None:
        self.events: list[events_pb2.Event] = []

    def add(self, cause: str, **payload: object) -> None:
        event_id = str(uuid.uuid5(_NAMESPACE, f"{cause}/{len(self.events)}"))
        self.events.append(events_pb2.Event(event_id=event_id, **payload))  # type: ignore[arg-type]


def follow_ups(fold: ReadModelFold, tx: Tx) -> list[events_pb2.Event]:
    """The events that follow from what the fold applied since the last call (see the
    module doc); empty when nothing more follows."""
    decided = Decisions()
    items, fold.to_decide = fold.to_decide, []
    for item in items:
        run = fold.orchestrated[item.address.run_pathspec]
        assert run is not None
        _decide(fold, tx, run, item, decided)
    for path in sorted(fold.to_stop):
        _cancel_queued(fold, tx, path, decided)
    fold.to_stop.clear()
    if decided.events:
        return decided.events
    for path in sorted(fold.to_finish):
        run_row, orchestrated = fold.runs.get(path), fold.orchestrated.get(path)
        if run_row is None or orchestrated is None or run_row.finished_at_us is not None:
            continue
        if orchestrated.open_tasks == 0:
            flow_name, run_id = path.split("/")
            decided.add(
                f"{path}/finished",
                run_finished=events_pb2.RunFinished(
                    flow_name=flow_name, run_id=run_id, succeeded=bool(run_row.end_succeeded)
                ),
            )
    fold.to_finish.clear()
    return decided.events


def _decide(
    fold: ReadModelFold,
    tx: Tx,
    run: OrchestratedRunRow,
    item: PendingEvent,
    decided: Decisions,
) -> None:
    kind = item.address.kind
    graph = run.flow_graph()
    cause = item.event.event_id
    if kind == "run_started":
        _queue_new(fold, run, decided, cause, flow_graph.step(graph, "start"), [], [], "run start")
        return
    row = fold.queue.get(item.address.task_pathspec or "")
    if row is None or run.state != "running":
        return
    spec = flow_graph.step(graph, row.step_name)
    if kind == "task_succeeded" and row.state == "done":
        splits = item.event.task_succeeded.num_splits
        _queue_successors(fold, tx, run, graph, spec, row, splits, cause, decided)
    elif kind == "task_cloned" and row.state == "done":
        stack = tuple(f.index for f in row.foreach_stack)
        clone = run.clones().get((row.step_name, stack))
        splits = clone.num_splits if clone is not None else 0
        _queue_successors(fold, tx, run, graph, spec, row, splits, cause, decided)
    elif kind == "task_failed" and row.state == "failed":
        failed = item.event.task_failed
        _queue_again(
            decided,
            cause,
            row,
            spec,
            row.attempt + 1,
            60 * spec.minutes_between_retries,
            f"retry {row.failures} of {spec.retries} after {failed.error_type}",
        )
    elif kind == "lease_expired" and row.state == "lost":
        _queue_again(
            decided,
            cause,
            row,
            spec,
            row.attempt,
            0.0,
            f"lease lost {row.lost} time(s): its executor stopped renewing it",
        )


def _queue_successors(
    fold: ReadModelFold,
    tx: Tx,
    run: OrchestratedRunRow,
    graph: records_pb2.FlowGraph,
    spec: records_pb2.StepSpec,
    row: QueueRow,
    splits: int,
    cause: str,
    decided: Decisions,
) -> None:
    """Queues what follows a task that is done (succeeded, or cloned); a foreach step
    split into `splits` items."""
    stack = row.foreach_stack
    reason = f"after {row.step_name}/{row.task_id}"
    if spec.kind == K.STEP_KIND_FOREACH:
        target = flow_graph.step(graph, spec.next_steps[0])
        for index in range(splits):
            frame = records_pb2.ForeachFrame(step_name=spec.name, index=index, num_splits=splits)
            _queue_new(
                fold, run, decided, cause, target, [row.task_pathspec], [*stack, frame],
                f"item {index} of {splits} {reason}",
            )  # fmt: skip
        return
    for target_name in spec.next_steps:
        target = flow_graph.step(graph, target_name)
        if target.kind != K.STEP_KIND_JOIN:
            _queue_new(fold, run, decided, cause, target, [row.task_pathspec], stack, reason)
            continue
        _join_if_complete(fold, tx, run, graph, target, row, decided, cause)


def _join_if_complete(
    fold: ReadModelFold,
    tx: Tx,
    run: OrchestratedRunRow,
    graph: records_pb2.FlowGraph,
    join: records_pb2.StepSpec,
    arrived: QueueRow,
    decided: Decisions,
    cause: str,
) -> None:
    """Queues the join once every task feeding it is done (each arrival asks; only the
    last one finds them all, and a key is joined once per fold)."""
    key = arrived.join_key
    if key in fold.joined:
        return
    rows = _rows(fold, tx, run.run_pathspec, "join_key", key)
    done = [r for r in rows if r.state == "done"]
    if len(done) < flow_graph.join_inputs_expected(graph, join, arrived.foreach_stack):
        return
    fold.joined.add(key)
    if flow_graph.step(graph, join.closes).kind == K.STEP_KIND_FOREACH:
        done.sort(key=lambda r: r.foreach_stack[-1].index)
        stack = arrived.foreach_stack[:-1]
    else:
        order = list(join.in_steps)
        done.sort(key=lambda r: order.index(r.step_name) if r.step_name in order else len(order))
        stack = arrived.foreach_stack
    inputs = [r.task_pathspec for r in done]
    _queue_new(fold, run, decided, cause, join, inputs, stack, f"join of {len(inputs)} inputs")


def _queue_new(
    fold: ReadModelFold,
    run: OrchestratedRunRow,
    decided: Decisions,
    cause: str,
    spec: records_pb2.StepSpec,
    inputs: list[str],
    stack: list[records_pb2.ForeachFrame],
    reason: str,
) -> None:
    clone = run.clones().get((spec.name, tuple(f.index for f in stack)))
    if clone is not None:  # resume --remote: the origin's task is reused, not run
        run_row = fold.runs[run.run_pathspec]
        assert run_row is not None
        origin = f"{run_row.flow_name}/{run_row.origin_run_id}/{spec.name}/{clone.origin_task_id}"
        decided.add(cause, task_cloned=events_pb2.TaskCloned(
            task=task_ref(f"{run.run_pathspec}/{spec.name}/{clone.origin_task_id}"),
            origin_pathspec=origin, input_pathspecs=inputs, foreach_stack=stack,
        ))  # fmt: skip
        return
    ref = task_ref(f"{run.run_pathspec}/{spec.name}/{run.next_task_id}")
    run.next_task_id += 1  # the fold of the TaskQueued agrees (max of the two)
    decided.add(
        cause,
        task_queued=events_pb2.TaskQueued(
            task=ref,
            attempt=0,
            input_pathspecs=inputs,
            foreach_stack=stack,
            resources=spec.resources,
            queue=spec.queue,
            reason=reason,
        ),
    )


def _queue_again(
    decided: Decisions,
    cause: str,
    row: QueueRow,
    spec: records_pb2.StepSpec,
    attempt: int,
    delay_seconds: float,
    reason: str,
) -> None:
    decided.add(
        cause,
        task_queued=events_pb2.TaskQueued(
            task=task_ref(row.task_pathspec),
            attempt=attempt,
            input_pathspecs=row.input_pathspecs,
            foreach_stack=row.foreach_stack,
            resources=spec.resources,
            queue=spec.queue,
            delay_seconds=delay_seconds,
            reason=reason,
        ),
    )


def _cancel_queued(fold: ReadModelFold, tx: Tx, path: str, decided: Decisions) -> None:
    """Cancels the queued tasks of a run that stops (cancelled, or failing)."""
    run = fold.orchestrated.get(path)
    if run is None:
        return
    for row in _rows(fold, tx, path, "state", "queued"):
        cancelled = events_pb2.TaskCancelled(
            task=task_ref(row.task_pathspec), attempt=row.attempt, reason=run.reason
        )
        decided.add(f"{row.task_pathspec}/{row.attempt}/cancel", task_cancelled=cancelled)


def _rows(fold: ReadModelFold, tx: Tx, run_path: str, column: str, value: str) -> list[QueueRow]:
    """The queue rows of a run whose `column` ("join_key" or "state") holds `value`, as
    this fold has them: the rows it loaded or changed win over the stored ones."""
    found: dict[str, QueueRow] = {}
    sql = f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE run_pathspec = ? AND {column} = ?"
    for values in tx.query(sql, [run_path, value]):
        stored = QueueRow(*values)
        row = fold.queue.get(stored.task_pathspec) or stored
        fold.queue[row.task_pathspec] = found[row.task_pathspec] = row
    for known in fold.queue.values():
        if known is not None and known.run_pathspec == run_path:
            found[known.task_pathspec] = known
    return [row for row in found.values() if getattr(row, column) == value]
