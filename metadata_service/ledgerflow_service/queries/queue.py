"""Reads of the orchestration queue: the tasks that wait, are leased or run, and the
candidates an executor's capacity fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledgerflow.engine import RunGraph
from ledgerflow.v1 import common_pb2, executor_service_pb2, records_pb2

from ledgerflow_service.queries.fields import require_run, set_time
from ledgerflow_service.queries.paging import page_size, position_token, take_page
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.queue import QueueRow
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

_COLUMNS = ", ".join(columns(QueueRow))
_STATES: dict[str, Any] = {
    "queued": records_pb2.QUEUE_STATE_QUEUED,
    "leased": records_pb2.QUEUE_STATE_LEASED,
    "running": records_pb2.QUEUE_STATE_RUNNING,
}


def queued_record(row: QueueRow) -> records_pb2.QueuedTask:
    flow_name, run_id, step_name, task_id = row.task_pathspec.split("/")
    record = records_pb2.QueuedTask(
        flow_name=flow_name,
        run_id=run_id,
        step_name=step_name,
        task_id=task_id,
        pathspec=row.task_pathspec,
        attempt=row.attempt,
        state=_STATES.get(row.state, records_pb2.QUEUE_STATE_UNSPECIFIED),
        input_pathspecs=row.input_pathspecs,
        foreach_stack=row.foreach_stack,
        resources=records_pb2.Resources(cpu=row.cpu, gpu=row.gpu, memory_mb=row.memory_mb),
        queue=row.queue_name,
        executor_id=row.executor_id,
        failures=row.failures,
    )
    set_time(record.queued_at, row.queued_at_us)
    set_time(record.lease_expires_at, row.lease_expires_at_us or None)
    return record


def list_open(
    tx: Tx, request: executor_service_pb2.ListQueuedTasksRequest
) -> tuple[list[records_pb2.QueuedTask], str]:
    """A page of the open tasks (queued, leased, running) of one run or of all runs,
    oldest queued first."""
    page = request.page or common_pb2.PageRequest()
    size = page_size(page)
    where = ["state IN ('queued', 'leased', 'running')", "queued_position > ?"]
    params: list[Any] = [position_token(page.page_token) if page.page_token else -1]
    if request.flow_name or request.run_id:
        where.append("run_pathspec = ?")
        params.append(require_run(tx, request.flow_name, request.run_id))
    rows = [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE {' AND '.join(where)} "
            "ORDER BY queued_position LIMIT ?",
            [*params, size + 1],
        )
    ]
    return take_page([queued_record(r) for r in rows], [r.queued_position for r in rows], size)


def held_by(tx: Tx, executor_ids: Sequence[str]) -> dict[str, list[records_pb2.QueuedTask]]:
    """The leased and running tasks of each of `executor_ids`, oldest queued first."""
    if not executor_ids:
        return {}
    condition, params = tx.dialect.one_of("executor_id", list(executor_ids))
    held: dict[str, list[records_pb2.QueuedTask]] = {i: [] for i in executor_ids}
    for r in tx.query(
        f"SELECT {_COLUMNS} FROM queue WHERE state IN ('leased', 'running') AND {condition} "
        "ORDER BY queued_position",
        params,
    ):
        row = QueueRow(*r)
        held[row.executor_id].append(queued_record(row))
    return held


def lease_candidates(
    tx: Tx,
    free: executor_service_pb2.Capacity,
    queues: Sequence[str],
    now_us: int,
    limit: int,
) -> list[QueueRow]:
    """The oldest queued tasks that fit `free` in one of `queues` and may start now."""
    condition, params = tx.dialect.one_of("queue_name", list(queues))
    return [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE state = 'queued' AND {condition} "
            "AND cpu <= ? AND gpu <= ? AND memory_mb <= ? AND not_before_us <= ? "
            "ORDER BY queued_position LIMIT ?",
            [*params, free.cpu, free.gpu, free.memory_mb, now_us, limit],
        )
    ]


def gang_rows(tx: Tx, row: QueueRow, now_us: int) -> list[QueueRow]:
    """The queued nodes of the @parallel gang `row` belongs to that may start now (its
    own included): the tasks of its step that feed the same join instance."""
    return [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE run_pathspec = ? AND join_key = ? "
            "AND step_name = ? AND state = 'queued' AND not_before_us <= ? "
            "ORDER BY queued_position",
            [row.run_pathspec, row.join_key, row.step_name, now_us],
        )
    ]


def failed_gang_mate(tx: Tx, row: QueueRow) -> str:
    """For a node of a @parallel gang: a node of its gang that failed for good (its
    pathspec), which the gang cannot go on without; "" when none did (or `row` is no
    gang's node). Asked at every lease renewal: the graph is read only when a task
    of the same step and join failed, which is rare."""
    if not row.join_key:
        return ""
    found = tx.query_one(
        "SELECT task_pathspec FROM queue WHERE run_pathspec = ? AND join_key = ? "
        "AND step_name = ? AND state = 'failed' LIMIT 1",
        [row.run_pathspec, row.join_key, row.step_name],
    )
    if not found or not RunGraphs(tx).step(row.run_pathspec, row.step_name).parallel:
        return ""
    return str(found[0])


def gang_sizes(tx: Tx, tasks: Sequence[records_pb2.QueuedTask]) -> list[int]:
    """How many nodes each task's gang has (1: not a node of a @parallel step)."""
    graphs = RunGraphs(tx)
    sizes = []
    for task in tasks:
        spec = graphs.step(f"{task.flow_name}/{task.run_id}", task.step_name)
        gang = spec.parallel and task.foreach_stack
        sizes.append(task.foreach_stack[-1].num_splits if gang else 1)
    return sizes


class RunGraphs:
    """The graphs of orchestrated runs, each read once by a call that looks at the
    rows of many runs."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._graphs: dict[str, RunGraph] = {}

    def step(self, run_pathspec: str, step_name: str) -> records_pb2.StepSpec:
        graph = self._graphs.get(run_pathspec)
        if graph is None:
            graph = self._graphs[run_pathspec] = run_graph(self._tx, run_pathspec)
        return flow_graph.step(graph, step_name)


def expired_leases(tx: Tx, now_us: int, limit: int) -> list[QueueRow]:
    """Leased or running tasks whose lease ran out before `now_us`."""
    return [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE state IN ('leased', 'running') "
            "AND lease_expires_at_us < ? ORDER BY lease_expires_at_us LIMIT ?",
            [now_us, limit],
        )
    ]


def task_row(tx: Tx, task_pathspec: str) -> QueueRow | None:
    row = tx.query_one(f"SELECT {_COLUMNS} FROM queue WHERE task_pathspec = ?", [task_pathspec])
    return QueueRow(*row) if row else None


def run_state(tx: Tx, run_pathspec: str) -> tuple[str, str] | None:
    """(state, reason) of an orchestrated run; None when the run is not orchestrated."""
    row = tx.query_one(
        "SELECT state, reason FROM orchestrated_runs WHERE run_pathspec = ?", [run_pathspec]
    )
    return (str(row[0]), str(row[1])) if row else None


def run_graph(tx: Tx, run_pathspec: str) -> RunGraph:
    """The graph of an orchestrated run, with its run rules."""
    row = tx.query_one("SELECT graph FROM orchestrated_runs WHERE run_pathspec = ?", [run_pathspec])
    assert row is not None
    return flow_graph.rules(bytes(row[0]))
