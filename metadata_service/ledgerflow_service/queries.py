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
from ledgerflow_service.names import check_id, check_identifier, check_tag
from ledgerflow_service.projection import AttemptRow, RunRow, TaskRow, columns
from ledgerflow_service.validation import MAX_INT64, check_filter, timestamp_us

S = common_pb2.Status
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# A page's items encode to at most about this many bytes (one item may be larger):
# half the 4 MiB that gRPC clients in Go, Java and C++ accept by default.
MAX_PAGE_BYTES = 2 * 1024 * 1024


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
            params.append(timestamp_us(field_name, getattr(request, field_name)))


def page_size(page: common_pb2.PageRequest) -> int:
    if page.page_size > MAX_PAGE:
        raise InvalidArgument(f"page_size is at most {MAX_PAGE}, got {page.page_size}")
    return page.page_size or DEFAULT_PAGE


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


_BAD_TOKEN = "page_token is not one this list gave out: pass back its next_page_token unchanged"


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeError):
        raise InvalidArgument(_BAD_TOKEN) from None


def position_token(token: str) -> int:
    """A page token that holds a position (a whole number in 0..2^63-1)."""
    value = decode_token(token)
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        raise InvalidArgument(_BAD_TOKEN)
    return value


def text_token(token: str) -> str:
    value = decode_token(token)
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidArgument(_BAD_TOKEN)
    return value


def take_page(records: list[Any], cursors: list[Any], size: int) -> tuple[list[Any], str]:
    """The first items of `records` (up to `size + 1` were fetched) that fit a page:
    at most `size`, and at most MAX_PAGE_BYTES encoded (but at least one). Returns
    them with the token of the next page (the cursor of the last one kept)."""
    kept = 0
    total = 0
    for record in records[:size]:
        total += record.ByteSize()
        if kept and total > MAX_PAGE_BYTES:
            break
        kept += 1
    token = encode_token(cursors[kept - 1]) if kept < len(records) else ""
    return records[:kept], token


def check_run_key(flow_name: str, run_id: str) -> str:
    """The pathspec of a run named in a request."""
    return f"{check_identifier('flow_name', flow_name)}/{check_id('run_id', run_id)}"


def _ts(target: Any, micros: int | None) -> None:
    if micros is not None:
        target.FromMicroseconds(micros)


def _run_select(where: str) -> str:
    return f"SELECT {', '.join(columns(RunRow))} FROM runs WHERE {where}"


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
    check_identifier("flow_name", flow_name)
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
    after = text_token(page.page_token) if page.page_token else ""
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
    row = tx.query_one(_run_select("pathspec = ?"), (check_run_key(flow_name, run_id),))
    if row is None:
        raise NotFound(f"run {flow_name}/{run_id} does not exist")
    return _runs_to_records(tx, [RunRow(*row)], clock)[0]


def list_runs(tx: Tx, request: Any, clock: Clock) -> tuple[list[records_pb2.Run], str]:
    size = page_size(request.page)
    where = ["1 = 1"]
    params: list[Any] = []
    if request.flow_name:
        where.append("flow_name = ?")
        params.append(check_identifier("flow_name", request.flow_name))
    tags = [check_tag(tag) for tag in check_filter("tags", request.tags)]
    if tags:
        # One semi-join whatever the number of tags: the runs that have all of them.
        condition, tag_params = tx.dialect.one_of("tag", tags)
        where.append(
            f"pathspec IN (SELECT run_pathspec FROM run_tags WHERE {condition} "
            "GROUP BY run_pathspec HAVING COUNT(*) = ?)"
        )
        params.extend([*tag_params, len(tags)])
    if request.statuses:
        clauses = []
        for status in check_filter("statuses", request.statuses):
            if status not in _RUN_STATUS_SQL:
                raise InvalidArgument(f"status {status} is not a status to filter by")
            clauses.append(_RUN_STATUS_SQL[status])
            if status in (S.STATUS_LOST, S.STATUS_RUNNING):
                params.append(clock.cutoff_us)
        where.append(f"({' OR '.join(clauses)})")
    add_time_range(where, params, "created_at_us", request, "created_after", "created_before")
    if request.page.page_token:
        where.append("started_position < ?")
        params.append(position_token(request.page.page_token))
    rows = [
        RunRow(*r)
        for r in tx.query(
            _run_select(" AND ".join(where)) + " ORDER BY started_position DESC LIMIT ?",
            [*params, size + 1],
        )
    ]
    records = _runs_to_records(tx, rows, clock)
    return take_page(records, [r.started_position for r in rows], size)


def _require_run(tx: Tx, flow_name: str, run_id: str) -> str:
    path = check_run_key(flow_name, run_id)
    if tx.query_one("SELECT 1 FROM runs WHERE pathspec = ?", (path,)) is None:
        raise NotFound(f"run {path} does not exist")
    return path


def list_steps(
    tx: Tx, flow_name: str, run_id: str, page: common_pb2.PageRequest
) -> tuple[list[records_pb2.Step], str]:
    path = _require_run(tx, flow_name, run_id)
    size = page_size(page)
    after = position_token(page.page_token) if page.page_token else -1
    steps, cursors = [], []
    for step_name, created, count, position in tx.query(
        "SELECT step_name, created_at_us, task_count, first_position FROM steps "
        "WHERE run_pathspec = ? AND first_position > ? ORDER BY first_position LIMIT ?",
        (path, after, size + 1),
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
        cursors.append(position)
    return take_page(steps, cursors, size)


def list_tasks(
    tx: Tx,
    flow_name: str,
    run_id: str,
    step_name: str,
    clock: Clock,
    task_id: str = "",
    page: common_pb2.PageRequest | None = None,
) -> tuple[list[records_pb2.Task], str]:
    """A page of a run's tasks (of one step, or one task), in the order they began."""
    path = _require_run(tx, flow_name, run_id)
    page = page or common_pb2.PageRequest()
    size = page_size(page)
    where, params = "t.run_pathspec = ? AND t.first_position > ?", [path, -1]
    if page.page_token:
        params[1] = position_token(page.page_token)
    if step_name:
        where += " AND t.step_name = ?"
        params.append(check_identifier("step_name", step_name))
    if task_id:
        where += " AND t.task_id = ?"
        params.append(check_id("task_id", task_id))
    task_cols = ", ".join(f"t.{c}" for c in columns(TaskRow))
    rows = [
        TaskRow(*r)
        for r in tx.query(
            f"SELECT {task_cols} FROM tasks t WHERE {where} ORDER BY t.first_position LIMIT ?",
            [*params, size + 1],
        )
    ]
    attempts: dict[str, list[AttemptRow]] = {}
    if rows:
        attempt_cols = ", ".join(f"a.{c}" for c in columns(AttemptRow))
        condition, keys = tx.dialect.one_of("a.task_pathspec", [r.pathspec for r in rows])
        for r in tx.query(
            f"SELECT {attempt_cols} FROM attempts a WHERE {condition} ORDER BY a.attempt", keys
        ):
            row = AttemptRow(*r)
            attempts.setdefault(row.task_pathspec, []).append(row)
    records = [_task_record(row, attempts.get(row.pathspec, []), clock) for row in rows]
    return take_page(records, [r.first_position for r in rows], size)


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


def _artifact_token(token: str) -> tuple[str, int, str]:
    value = decode_token(token)
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, t) for v, t in zip(value, (str, int, str), strict=True))
        or not 0 <= value[1] <= MAX_INT64
        or any("\x00" in v for v in (value[0], value[2]))
    ):
        raise InvalidArgument(_BAD_TOKEN)
    return value[0], value[1], value[2]


def list_artifacts(tx: Tx, request: Any) -> tuple[list[records_pb2.Artifact], str]:
    """A page of artifacts, ordered by task, attempt and name."""
    names = [check_identifier("artifact name", n) for n in check_filter("names", request.names)]
    path = _require_run(tx, request.flow_name, request.run_id)
    size = page_size(request.page)
    where: list[str] = ["a.run_pathspec = ?"]
    params: list[Any] = [path]
    if request.step_name:
        where.append("a.step_name = ?")
        params.append(check_identifier("step_name", request.step_name))
    if request.task_id:
        if not request.step_name:
            raise InvalidArgument("task_id needs step_name too")
        where.append("a.task_pathspec = ?")
        params.append(f"{path}/{request.step_name}/{check_id('task_id', request.task_id)}")
    if names:
        condition, name_params = tx.dialect.one_of("a.name", names)
        where.append(condition)
        params.extend(name_params)
    if request.page.page_token:
        task, attempt, name = _artifact_token(request.page.page_token)
        where.append(
            "(a.task_pathspec > ? OR (a.task_pathspec = ? AND "
            "(a.attempt > ? OR (a.attempt = ? AND a.name > ?))))"
        )
        params.extend([task, task, attempt, attempt, name])
    join = ""
    if not request.all_attempts:
        join = "JOIN tasks t ON t.pathspec = a.task_pathspec AND t.current_attempt = a.attempt"
    rows = tx.query(
        "SELECT a.name, a.content_key, a.size, a.type_name, a.serializer, a.language, "
        f"a.task_pathspec, a.attempt FROM artifacts a {join} WHERE {' AND '.join(where)} "
        "ORDER BY a.task_pathspec, a.attempt, a.name LIMIT ?",
        [*params, size + 1],
    )
    records = [
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
    return take_page(records, [[r[6], r[7], r[0]] for r in rows], size)
