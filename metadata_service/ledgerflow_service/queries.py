"""Reads of the projections, returned as ``ledgerflow.v1`` records.

Status is derived here, at read time, from what the events recorded and how long ago
the last heartbeat arrived: it is never stored, so it cannot go stale or race.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.v1 import common_pb2, records_pb2

from ledgerflow_service.database import Tx
from ledgerflow_service.errors import InvalidArgument, NotFound
from ledgerflow_service.projection import AttemptRow, RunRow, TaskRow, _columns

S = common_pb2.Status
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class Clock:
    """`now_us` and the heartbeat silence after which a run or task counts as lost."""

    now_us: int
    lost_after_us: int

    @property
    def cutoff_us(self) -> int:
        return self.now_us - self.lost_after_us


def run_status(row: RunRow, clock: Clock) -> common_pb2.Status:
    if row.end_succeeded:
        return S.STATUS_SUCCEEDED
    if row.finished_at_us is not None:
        return S.STATUS_FAILED
    if row.last_heartbeat_at_us < clock.cutoff_us:
        return S.STATUS_LOST
    return S.STATUS_RUNNING


def _outcome_status(succeeded: int | None, heartbeat_us: int, clock: Clock) -> common_pb2.Status:
    if succeeded == 1:
        return S.STATUS_SUCCEEDED
    if succeeded == 0:
        return S.STATUS_FAILED
    if heartbeat_us < clock.cutoff_us:
        return S.STATUS_LOST
    return S.STATUS_RUNNING


_UNFINISHED = "end_succeeded = 0 AND finished_at_us IS NULL"
_RUN_STATUS_SQL = {
    S.STATUS_SUCCEEDED: "end_succeeded = 1",
    S.STATUS_FAILED: "(end_succeeded = 0 AND finished_at_us IS NOT NULL)",
    S.STATUS_LOST: f"({_UNFINISHED} AND last_heartbeat_at_us < ?)",
    S.STATUS_RUNNING: f"({_UNFINISHED} AND last_heartbeat_at_us >= ?)",
}


def add_time_range(
    where: list[str],
    params: list[Any],
    column: str,
    request: Any,
    after_field: str,
    before_field: str,
) -> None:
    """Adds `column > after AND column < before` for the timestamp fields that are set."""
    for field_name, operator in ((after_field, ">"), (before_field, "<")):
        if request.HasField(field_name):
            where.append(f"{column} {operator} ?")
            params.append(getattr(request, field_name).ToMicroseconds())


def page_size(page: common_pb2.PageRequest) -> int:
    if page.page_size > MAX_PAGE:
        raise InvalidArgument(f"page_size is at most {MAX_PAGE}, got {page.page_size}")
    return page.page_size or DEFAULT_PAGE


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise InvalidArgument("page_token is malformed: pass back a next_page_token") from None


def _ts(target: Any, micros: int | None) -> None:
    if micros is not None:
        target.FromMicroseconds(micros)


def _run_select(where: str) -> str:
    return f"SELECT {', '.join(_columns(RunRow))} FROM runs WHERE {where}"


def _runs_to_records(tx: Tx, rows: Sequence[RunRow], clock: Clock) -> list[records_pb2.Run]:
    tags: dict[str, list[tuple[str, int]]] = {r.pathspec: [] for r in rows}
    if rows:
        marks = ", ".join("?" for _ in rows)
        for path, tag, is_system in tx.query(
            f"SELECT run_pathspec, tag, is_system FROM run_tags WHERE run_pathspec IN ({marks})",
            [r.pathspec for r in rows],
        ):
            tags[path].append((tag, is_system))
    records = []
    for row in rows:
        run = records_pb2.Run(
            flow_name=row.flow_name,
            run_id=row.run_id,
            pathspec=row.pathspec,
            user=row.user_name,
            origin_run_id=row.origin_run_id,
            tags=sorted(t for t, system in tags[row.pathspec] if not system),
            system_tags=sorted(t for t, system in tags[row.pathspec] if system),
            parameters=json.loads(row.parameters_json),
            status=run_status(row, clock),
        )
        _ts(run.created_at, row.created_at_us)
        _ts(run.finished_at, row.finished_at_us)
        _ts(run.last_heartbeat_at, row.last_heartbeat_at_us)
        records.append(run)
    return records


def get_flow(tx: Tx, flow_name: str) -> records_pb2.Flow:
    row = tx.query_one(
        "SELECT flow_name, created_at_us, created_by FROM flows WHERE flow_name = ?", (flow_name,)
    )
    if row is None:
        raise NotFound(f"flow {flow_name!r} does not exist")
    flow = records_pb2.Flow(flow_name=row[0], created_by=row[2])
    flow.created_at.FromMicroseconds(row[1])
    return flow


def list_flows(tx: Tx, page: common_pb2.PageRequest) -> tuple[list[records_pb2.Flow], str]:
    size = page_size(page)
    after = decode_token(page.page_token) if page.page_token else ""
    rows = tx.query(
        "SELECT flow_name, created_at_us, created_by FROM flows "
        "WHERE flow_name > ? ORDER BY flow_name LIMIT ?",
        (after, size + 1),
    )
    flows = []
    for name, created, by in rows[:size]:
        flow = records_pb2.Flow(flow_name=name, created_by=by)
        flow.created_at.FromMicroseconds(created)
        flows.append(flow)
    token = encode_token(rows[size - 1][0]) if len(rows) > size else ""
    return flows, token


def get_run(tx: Tx, flow_name: str, run_id: str, clock: Clock) -> records_pb2.Run:
    row = tx.query_one(_run_select("pathspec = ?"), (f"{flow_name}/{run_id}",))
    if row is None:
        raise NotFound(f"run {flow_name}/{run_id} does not exist")
    return _runs_to_records(tx, [RunRow(*row)], clock)[0]


def list_runs(tx: Tx, request: Any, clock: Clock) -> tuple[list[records_pb2.Run], str]:
    size = page_size(request.page)
    where = ["1 = 1"]
    params: list[Any] = []
    if request.flow_name:
        where.append("flow_name = ?")
        params.append(request.flow_name)
    for tag in request.tags:
        where.append("pathspec IN (SELECT run_pathspec FROM run_tags WHERE tag = ?)")
        params.append(tag)
    if request.statuses:
        clauses = []
        for status in request.statuses:
            if status not in _RUN_STATUS_SQL:
                raise InvalidArgument(f"status {status} is not a status to filter by")
            clauses.append(_RUN_STATUS_SQL[status])
            if status in (S.STATUS_LOST, S.STATUS_RUNNING):
                params.append(clock.cutoff_us)
        where.append(f"({' OR '.join(clauses)})")
    add_time_range(where, params, "created_at_us", request, "created_after", "created_before")
    if request.page.page_token:
        where.append("started_position < ?")
        params.append(int(decode_token(request.page.page_token)))
    rows = [
        RunRow(*r)
        for r in tx.query(
            _run_select(" AND ".join(where)) + " ORDER BY started_position DESC LIMIT ?",
            [*params, size + 1],
        )
    ]
    token = encode_token(rows[size - 1].started_position) if len(rows) > size else ""
    return _runs_to_records(tx, rows[:size], clock), token


def _require_run(tx: Tx, flow_name: str, run_id: str) -> str:
    path = f"{flow_name}/{run_id}"
    if tx.query_one("SELECT 1 FROM runs WHERE pathspec = ?", (path,)) is None:
        raise NotFound(f"run {path} does not exist")
    return path


def list_steps(tx: Tx, flow_name: str, run_id: str) -> list[records_pb2.Step]:
    path = _require_run(tx, flow_name, run_id)
    steps = []
    for step_name, created, count in tx.query(
        "SELECT step_name, created_at_us, task_count FROM steps WHERE run_pathspec = ? "
        "ORDER BY first_position",
        (path,),
    ):
        step = records_pb2.Step(
            flow_name=flow_name,
            run_id=run_id,
            step_name=step_name,
            pathspec=f"{path}/{step_name}",
            task_count=count,
        )
        step.created_at.FromMicroseconds(created)
        steps.append(step)
    return steps


def list_tasks(
    tx: Tx, flow_name: str, run_id: str, step_name: str, clock: Clock, task_id: str = ""
) -> list[records_pb2.Task]:
    path = _require_run(tx, flow_name, run_id)
    where, params = "t.run_pathspec = ?", [path]
    if step_name:
        where += " AND t.step_name = ?"
        params.append(step_name)
    if task_id:
        where += " AND t.task_id = ?"
        params.append(task_id)
    task_cols = ", ".join(f"t.{c}" for c in _columns(TaskRow))
    rows = [
        TaskRow(*r)
        for r in tx.query(
            f"SELECT {task_cols} FROM tasks t WHERE {where} ORDER BY t.first_position", params
        )
    ]
    attempt_cols = ", ".join(f"a.{c}" for c in _columns(AttemptRow))
    attempts: dict[str, list[AttemptRow]] = {}
    for r in tx.query(
        f"SELECT {attempt_cols} FROM attempts a JOIN tasks t ON t.pathspec = a.task_pathspec "
        f"WHERE {where} ORDER BY a.attempt",
        params,
    ):
        row = AttemptRow(*r)
        attempts.setdefault(row.task_pathspec, []).append(row)
    return [_task_record(row, attempts.get(row.pathspec, []), clock) for row in rows]


def _task_record(row: TaskRow, attempts: list[AttemptRow], clock: Clock) -> records_pb2.Task:
    flow_name, run_id = row.run_pathspec.split("/")
    resources = json.loads(row.resources_json)
    task = records_pb2.Task(
        flow_name=flow_name,
        run_id=run_id,
        step_name=row.step_name,
        task_id=row.task_id,
        pathspec=row.pathspec,
        status=_outcome_status(row.succeeded, row.last_heartbeat_at_us, clock),
        input_pathspecs=json.loads(row.input_pathspecs_json),
        foreach_stack=[
            records_pb2.ForeachFrame(step_name=s, index=i, num_splits=n)
            for s, i, n in json.loads(row.foreach_stack_json)
        ],
        resources=records_pb2.Resources(**resources),
        origin_pathspec=row.origin_pathspec,
    )
    _ts(task.created_at, row.created_at_us)
    _ts(task.finished_at, row.finished_at_us)
    _ts(task.last_heartbeat_at, row.last_heartbeat_at_us)
    for a in attempts:
        attempt = task.attempts.add(
            attempt=a.attempt,
            error_type=a.error_type,
            error_message=a.error_message,
            traceback=a.traceback,
            stdout_key=a.stdout_key,
            stderr_key=a.stderr_key,
            status=_outcome_status(
                a.succeeded,
                row.last_heartbeat_at_us if a.attempt == row.current_attempt else 0,
                clock,
            ),
        )
        _ts(attempt.started_at, a.started_at_us)
        _ts(attempt.finished_at, a.finished_at_us)
    return task


def list_artifacts(tx: Tx, request: Any) -> list[records_pb2.Artifact]:
    path = _require_run(tx, request.flow_name, request.run_id)
    where, params = ["a.run_pathspec = ?"], [path]
    if request.step_name:
        where.append("a.step_name = ?")
        params.append(request.step_name)
    if request.task_id:
        if not request.step_name:
            raise InvalidArgument("task_id needs step_name too")
        where.append("a.task_pathspec = ?")
        params.append(f"{path}/{request.step_name}/{request.task_id}")
    if request.names:
        where.append(f"a.name IN ({', '.join('?' for _ in request.names)})")
        params.extend(request.names)
    join = ""
    if not request.all_attempts:
        join = "JOIN tasks t ON t.pathspec = a.task_pathspec AND t.current_attempt = a.attempt"
    rows = tx.query(
        "SELECT a.name, a.content_key, a.size, a.type_name, a.serializer, a.language, "
        f"a.task_pathspec, a.attempt FROM artifacts a {join} WHERE {' AND '.join(where)} "
        "ORDER BY a.task_pathspec, a.attempt, a.name",
        params,
    )
    return [
        records_pb2.Artifact(
            name=n,
            content_key=k,
            size=s,
            type_name=t,
            serializer=ser,
            language=lang,
            task_pathspec=task,
            attempt=att,
        )
        for n, k, s, t, ser, lang, task, att in rows
    ]
