"""Reads of the orchestration queue: the tasks that wait, are leased or run, and the
candidates an executor's capacity fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.engine import RunGraph
from ledgerflow.v1 import common_pb2, executor_service_pb2, records_pb2

from ledgerflow_service.queries.fields import require_run, set_time
from ledgerflow_service.queries.paging import page_size, position_token, take_page
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.queue import OrchestratedRunRow, QueueRow
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

_COLUMNS = ", ".join(columns(QueueRow))
_RUN_COLUMNS = ", ".join(columns(OrchestratedRunRow))
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
        lease_id=row.lease_id,
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


@dataclass
class LiveRun:
    """An orchestrated run with open tasks, as a lease call weighs it."""

    run_pathspec: str
    user_name: str
    started_position: int
    priority: int
    max_workers: int
    queued: int
    # Leased or running.
    active: int

    def room(self) -> int | None:
        """How many more of its tasks may be leased now (None: no cap)."""
        return max(0, self.max_workers - self.active) if self.max_workers else None


def live_runs(tx: Tx) -> list[LiveRun]:
    """The orchestrated runs with open tasks (queued, leased or running), with their
    users and queue policies: one indexed read of the runs alive, whatever the queue's
    length."""
    return [
        LiveRun(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]) - int(r[6]),
                int(r[6]))
        for r in tx.query(
            "SELECT o.run_pathspec, r.user_name, r.started_position, o.priority, "
            "o.max_workers, o.open_tasks, o.active_tasks FROM orchestrated_runs o "
            "JOIN runs r ON r.pathspec = o.run_pathspec WHERE o.open_tasks > 0",
            [],
        )
    ]  # fmt: skip


def run_candidates(
    tx: Tx,
    run_pathspec: str,
    free: executor_service_pb2.Capacity,
    queues: Sequence[str],
    now_us: int,
    after_position: int,
    limit: int,
) -> list[QueueRow]:
    """One run's oldest queued tasks after `after_position` that fit `free` in one of
    `queues` and may start now (an index walk of that run's queued tasks)."""
    condition, params = tx.dialect.one_of("queue_name", list(queues))
    return [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE run_pathspec = ? AND state = 'queued' "
            f"AND queued_position > ? AND {condition} AND cpu <= ? AND gpu <= ? "
            "AND memory_mb <= ? AND not_before_us <= ? ORDER BY queued_position LIMIT ?",
            [run_pathspec, after_position, *params, free.cpu, free.gpu, free.memory_mb,
             now_us, limit],
        )
    ]  # fmt: skip


def runs_with_fitting(
    tx: Tx, free: executor_service_pb2.Capacity, queues: Sequence[str], now_us: int
) -> set[str]:
    """The runs with a queued task that fits `free` in one of `queues` and may start now
    (one walk of the waiting tasks of those queues)."""
    condition, params = tx.dialect.one_of("queue_name", list(queues))
    return {
        str(r[0])
        for r in tx.query(
            f"SELECT DISTINCT run_pathspec FROM queue WHERE state = 'queued' AND {condition} "
            "AND cpu <= ? AND gpu <= ? AND memory_mb <= ? AND not_before_us <= ?",
            [*params, free.cpu, free.gpu, free.memory_mb, now_us],
        )
    }


def oldest_queued(tx: Tx, run_pathspec: str, limit: int) -> list[QueueRow]:
    """A run's oldest queued tasks, whatever they need."""
    return [
        QueueRow(*r)
        for r in tx.query(
            f"SELECT {_COLUMNS} FROM queue WHERE run_pathspec = ? AND state = 'queued' "
            "ORDER BY queued_position LIMIT ?",
            [run_pathspec, limit],
        )
    ]


def runs_with_deadlines(tx: Tx) -> list[OrchestratedRunRow]:
    """The running orchestrated runs with queued tasks and a queue deadline."""
    return [
        OrchestratedRunRow(*r)
        for r in tx.query(
            f"SELECT {_RUN_COLUMNS} FROM orchestrated_runs WHERE open_tasks > 0 "
            "AND open_tasks > active_tasks AND queue_timeout_seconds > 0 AND state = 'running'",
            [],
        )
    ]


def run_caps(tx: Tx, run_pathspecs: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(max_workers, tasks leased or running) of each of the capped runs among
    `run_pathspecs`."""
    if not run_pathspecs:
        return {}
    condition, params = tx.dialect.one_of("run_pathspec", sorted(set(run_pathspecs)))
    return {
        str(r[0]): (int(r[1]), int(r[2]))
        for r in tx.query(
            "SELECT run_pathspec, max_workers, active_tasks FROM orchestrated_runs "
            f"WHERE {condition} AND max_workers > 0",
            params,
        )
    }


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


class KeptGraphs:
    """Orchestrated runs' graphs kept from call to call (a run's graph never changes
    after its RunStarted, so a kept one is never stale), up to `limit` runs; past
    that all are forgotten at once, since reading one again costs only a query."""

    def __init__(self, limit: int = 1024) -> None:
        self._graphs: dict[str, RunGraph] = {}
        self._limit = limit

    def get(self, run_pathspec: str) -> RunGraph | None:
        return self._graphs.get(run_pathspec)

    def keep(self, run_pathspec: str, graph: RunGraph) -> None:
        if len(self._graphs) >= self._limit:
            self._graphs = {}
        self._graphs[run_pathspec] = graph


class RunGraphs:
    """The graphs of orchestrated runs, each read once by a call that looks at the
    rows of many runs (and not at all when `kept` has it)."""

    def __init__(self, tx: Tx, kept: KeptGraphs | None = None) -> None:
        self._tx = tx
        self._kept = kept if kept is not None else KeptGraphs()

    def graph(self, run_pathspec: str) -> RunGraph:
        graph = self._kept.get(run_pathspec)
        if graph is None:
            graph = run_graph(self._tx, run_pathspec)
            self._kept.keep(run_pathspec, graph)
        return graph

    def step(self, run_pathspec: str, step_name: str) -> records_pb2.StepSpec:
        return flow_graph.step(self.graph(run_pathspec), step_name)


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
