"""The process manager: what the service decides when an orchestrated run's events are
folded, appended as events in the same transaction.

- A run submitted with its graph: queue ``start``.
- A task succeeded: queue its successors (one per foreach item, with the count its
  TaskSucceeded carries; a join once all of its inputs are done).
- An attempt failed: queue the next attempt while ``@retry`` allows, or ``@catch``'s
  fallback; otherwise the run fails (the read model marked it), and its queued tasks
  are cancelled.
- A lease expired: queue the task again, on the budget of lost attempts.
- A run is cancelled or failing: cancel its queued tasks; running ones are stopped by
  their executors (``RenewLease`` tells them).
- A run with no open task left: finish it, succeeded when its end step succeeded.
- A deployment's run finished, or an event was published: start the deployments that
  wait for it, and request the run's notifications (``triggers.py``).

What follows what, and after which failure, are the run rules of ``ledgerflow.engine``,
the same the local runtime and the executor follow; this module only turns them into
events.

Because the decisions and the events they answer commit together, a crash between two
appends can neither lose a task nor queue it twice; and because every decision is an
event, a rebuild folds them again without deciding anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import (
    Decision,
    JoinArrival,
    Next,
    NextTask,
    RunGraph,
    Tally,
    UnknownStep,
    after_lost,
    after_not_started,
    decide,
    in_join_order,
)
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.orchestration import triggers
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.queue import OrchestratedRunRow, QueueRow, task_ref
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

# Derived event ids are made from their cause's id: deterministic, so the ledger shows
# what caused what, and the same cause can never yield two different events.
_NAMESPACE = uuid.UUID("5c0f6a53-61a4-4bd1-9a51-4f3c2d1e0b7a")
_QUEUE_COLUMNS = ", ".join(columns(QueueRow))
# _done_count names at most this many rows the fold holds in its statement (on SQLite
# each is a parameter, of at most 32,766); beyond, it reads the rows instead.
_MAX_HELD_NAMED = 10_000


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
    reactions, fold.to_react = fold.to_react, []
    for item in reactions:
        triggers.react(fold, tx, item, decided)
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
        _queue_new(fold, run, decided, cause, "start", [], (), "run start")
        return
    row = fold.queue.get(item.address.task_pathspec or "")
    if row is None or run.state != "running":
        return
    if kind == "task_succeeded" and row.state == "done":
        succeeded = item.event.task_succeeded
        _queue_successors(fold, tx, run, graph, row, succeeded.num_splits, succeeded.switch_step,
                          cause, decided)  # fmt: skip
    elif kind == "task_cloned" and row.state == "done":
        stack = tuple(f.index for f in row.foreach_stack)
        clone = run.clones().get((row.step_name, stack)) or records_pb2.ClonedTask()
        _queue_successors(fold, tx, run, graph, row, clone.num_splits, clone.switch_step,
                          cause, decided)  # fmt: skip
    elif kind == "task_failed" and row.state == "failed":
        spec = flow_graph.step(graph, row.step_name)
        failed = item.event.task_failed
        tally = Tally(row.failures, row.lost)  # counted by the queue read model
        decision = decide(spec, tally, failed.kind, failed.error_type, remote=True)
        _queue_again(decided, cause, row, spec, row.attempt + 1, decision)
    elif kind == "lease_expired" and row.state == "lost":
        spec = flow_graph.step(graph, row.step_name)
        _queue_again(decided, cause, row, spec, row.attempt, after_lost(spec, row.lost))
    elif kind == "task_not_started" and row.state == "lost":
        spec = flow_graph.step(graph, row.step_name)
        never = item.event.task_not_started
        decision = after_not_started(spec, row.lost, never.error_type, never.error_message)
        _queue_again(decided, cause, row, spec, row.attempt, decision)


def _queue_successors(
    fold: ReadModelFold,
    tx: Tx,
    run: OrchestratedRunRow,
    graph: RunGraph,
    row: QueueRow,
    splits: int,
    switch_step: str,
    cause: str,
    decided: Decisions,
) -> None:
    """Queues what follows a task that is done (succeeded, or cloned); a foreach step
    split into `splits` items, a switch chose `switch_step`."""
    label = f"{row.step_name}/{row.task_id}"
    try:
        following = graph.successors(row.step_name, row.foreach_stack, splits, label, switch_step)
    except UnknownStep as error:  # a client's TaskSucceeded named no case of the switch
        raise InvalidArgument(f"task_succeeded.switch_step: {error}") from None
    for successor in following:
        if isinstance(successor, NextTask):
            _queue_new(fold, run, decided, cause, successor.step, [row.task_pathspec],
                       successor.foreach_stack, successor.reason)  # fmt: skip
        else:
            _join_if_complete(fold, tx, run, graph, successor, decided, cause)


def _join_if_complete(
    fold: ReadModelFold,
    tx: Tx,
    run: OrchestratedRunRow,
    graph: RunGraph,
    arrival: JoinArrival,
    decided: Decisions,
    cause: str,
) -> None:
    """Queues the join once every task feeding it is done (each arrival asks; only the
    last one finds them all, and a key is joined once per fold)."""
    joined = (run.run_pathspec, arrival.key)  # a key is a step and frames: runs share it
    if joined in fold.joined:
        return
    if _done_count(fold, tx, run.run_pathspec, arrival.key) < arrival.expected:
        return
    rows = _rows(fold, tx, run.run_pathspec, "join_key", arrival.key)
    done = [r for r in rows if r.state == "done"]
    if len(done) < arrival.expected:
        return
    fold.joined.add(joined)
    places = [graph.arrival(arrival.join, r.step_name, r.foreach_stack).position for r in done]
    inputs = [r.task_pathspec for r in in_join_order(list(zip(places, done, strict=True)))]
    _queue_new(fold, run, decided, cause, arrival.join, inputs, arrival.foreach_stack,
               f"join of {len(inputs)} inputs")  # fmt: skip


def _queue_new(
    fold: ReadModelFold,
    run: OrchestratedRunRow,
    decided: Decisions,
    cause: str,
    step_name: str,
    inputs: list[str],
    stack: Sequence[records_pb2.ForeachFrame],
    reason: str,
) -> None:
    spec = flow_graph.step(run.flow_graph(), step_name)
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
    decision: Decision,
) -> None:
    """Queues the task's next attempt, unless the attempt policy said it fails (then
    the queue read model has failed the run already)."""
    if decision.next is Next.FAIL:
        return
    decided.add(
        cause,
        task_queued=events_pb2.TaskQueued(
            task=task_ref(row.task_pathspec),
            attempt=attempt,
            input_pathspecs=row.input_pathspecs,
            foreach_stack=row.foreach_stack,
            resources=spec.resources,
            queue=spec.queue,
            delay_seconds=decision.delay_seconds,
            reason=decision.reason,
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


def _done_count(fold: ReadModelFold, tx: Tx, run_path: str, join_key: str) -> int:
    """How many tasks feeding a join are done, as this fold has them (see _rows). A
    count, not the rows: every arrival of a foreach of n items asks, and reading and
    building its n rows each time made a remote foreach of 1,000 cost the service
    15.7 ms of CPU a task (7.4 ms with the count: bench/executor.py). The count still
    walks the join's n index entries an arrival, at a fraction of a µs each."""
    held = [row for row in _held(fold, run_path) if row.join_key == join_key]
    if len(held) > _MAX_HELD_NAMED:
        return sum(row.state == "done" for row in _rows(fold, tx, run_path, "join_key", join_key))
    sql = "SELECT count(*) FROM queue WHERE run_pathspec = ? AND join_key = ? AND state = ?"
    params: list[Any] = [run_path, join_key, "done"]
    if held:  # counted as the fold has them, not as stored
        named, values = tx.dialect.one_of("task_pathspec", [row.task_pathspec for row in held])
        sql += f" AND NOT ({named})"
        params += values
    return int(tx.query(sql, params)[0][0]) + sum(row.state == "done" for row in held)


def _rows(fold: ReadModelFold, tx: Tx, run_path: str, column: str, value: str) -> list[QueueRow]:
    """The queue rows of a run whose `column` ("join_key" or "state") holds `value`, as
    this fold has them: the rows it loaded or changed win over the stored ones."""
    found: dict[str, QueueRow] = {}
    sql = f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE run_pathspec = ? AND {column} = ?"
    for values in tx.query(sql, [run_path, value]):
        stored = QueueRow(*values)
        row = fold.queue.get(stored.task_pathspec) or stored
        fold.queue[row.task_pathspec] = found[row.task_pathspec] = row
    for known in _held(fold, run_path):
        found[known.task_pathspec] = known
    return [row for row in found.values() if getattr(row, column) == value]


def _held(fold: ReadModelFold, run_path: str) -> list[QueueRow]:
    """The queue rows of a run that this fold holds (it loaded or changed them)."""
    return [row for row in fold.queue.values() if row is not None and row.run_pathspec == run_path]
