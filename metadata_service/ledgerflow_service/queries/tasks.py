"""A run's steps and tasks, each task with its attempts and derived status."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow.v1 import common_pb2, query_service_pb2, records_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import check_id, check_identifier
from ledgerflow_service.queries.fields import require_run, set_time
from ledgerflow_service.queries.paging import (
    MAX_PAGE_BYTES,
    encode_token,
    page_size,
    position_token,
    take_page,
)
from ledgerflow_service.queries.status import TASK_STATUS_SQL, Clock, S, outcome_status
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.read_models.tasks import AttemptRow, TaskRow
from ledgerflow_service.store.backend import Tx


def list_steps(
    tx: Tx, flow_name: str, run_id: str, page: common_pb2.PageRequest, clock: Clock
) -> tuple[list[records_pb2.Step], str]:
    """A page of a run's steps, in the order they began, each with its tasks counted by
    status and the steps that fed it: what a run's graph needs, in three queries
    whatever the number of tasks."""
    path = require_run(tx, flow_name, run_id)
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
    _count_and_link(tx, path, {step.step_name: step for step in steps}, clock)
    return take_page(steps, cursors, size)


def _count_and_link(tx: Tx, path: str, steps: dict[str, records_pb2.Step], clock: Clock) -> None:
    """Sets each step's counts of tasks by status (as outcome_status derives a task's)
    and the steps its first task took inputs from."""
    counted = (S.STATUS_SUCCEEDED, S.STATUS_FAILED, S.STATUS_LOST, S.STATUS_RUNNING)
    sums = ", ".join(f"SUM(CASE WHEN {TASK_STATUS_SQL[s]} THEN 1 ELSE 0 END)" for s in counted)
    cutoff = clock.cutoff_us
    for step_name, succeeded, failed, lost, running in tx.query(
        f"SELECT step_name, {sums} FROM tasks WHERE run_pathspec = ? GROUP BY step_name",
        (cutoff, cutoff, path),
    ):
        if step_name in steps:
            step = steps[step_name]
            step.succeeded_count, step.failed_count = succeeded, failed
            step.lost_count, step.running_count = lost, running
    for step_name, inputs_json in tx.query(
        "SELECT t.step_name, t.input_pathspecs_json FROM tasks t WHERE t.run_pathspec = ? "
        "AND t.first_position IN (SELECT MIN(first_position) FROM tasks "
        "WHERE run_pathspec = ? GROUP BY step_name)",
        (path, path),
    ):
        if step_name in steps:
            feeders = {p.split("/")[2] for p in json.loads(inputs_json) if p.count("/") == 3}
            steps[step_name].in_steps.extend(sorted(feeders))


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
    path = require_run(tx, flow_name, run_id)
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
    _add_cards(tx, rows, records)
    return take_page(records, [r.first_position for r in rows], size)


# ListTaskSpans pages: a span is a few numbers, so a page holds a whole foreach.
DEFAULT_SPANS_PAGE = 10_000
MAX_SPANS_PAGE = 20_000
# What a span costs in a page's bytes besides its task id (the numbers, the tags).
_SPAN_BYTES = 32


def list_task_spans(
    tx: Tx, flow_name: str, run_id: str, page: common_pb2.PageRequest, clock: Clock
) -> query_service_pb2.ListTaskSpansResponse:
    """A page of a run's tasks as spans, in the order they began: one query of the
    tasks table alone (a task's attempts are counted by its current attempt), in
    columns, for a timeline of every task of a run."""
    path = require_run(tx, flow_name, run_id)
    if page.page_size > MAX_SPANS_PAGE:
        raise InvalidArgument(f"page_size is at most {MAX_SPANS_PAGE:,}, got {page.page_size}")
    size = page.page_size or DEFAULT_SPANS_PAGE
    after = position_token(page.page_token) if page.page_token else -1
    spans = query_service_pb2.ListTaskSpansResponse()
    steps: dict[str, int] = {}
    step_index, task_ids, started, finished = [], [], [], []
    statuses, attempts, cloned = [], [], []
    total, last_position = 0, -1
    rows = tx.query(
        "SELECT step_name, task_id, created_at_us, finished_at_us, succeeded, "
        "last_heartbeat_at_us, current_attempt, origin_pathspec, first_position FROM tasks "
        "WHERE run_pathspec = ? AND first_position > ? ORDER BY first_position LIMIT ?",
        (path, after, size + 1),
    )
    for count, (
        step,
        task_id,
        created,
        ended,
        ok,
        heartbeat,
        attempt,
        origin,
        position,
    ) in enumerate(rows):
        total += len(task_id) + _SPAN_BYTES
        if count == size or (count and total > MAX_PAGE_BYTES):
            spans.page.next_page_token = encode_token(last_position)
            break
        step_index.append(steps.setdefault(step, len(steps)))
        task_ids.append(task_id)
        started.append(created)
        finished.append(ended or 0)
        statuses.append(outcome_status(ok, heartbeat, clock))
        attempts.append(0 if origin else attempt + 1)
        cloned.append(bool(origin))
        last_position = position
    spans.step_names.extend(steps)
    spans.step_index.extend(step_index)
    spans.task_ids.extend(task_ids)
    spans.started_at_us.extend(started)
    spans.finished_at_us.extend(finished)
    spans.status.extend(statuses)
    spans.attempts.extend(attempts)
    spans.cloned.extend(cloned)
    return spans


def _add_cards(tx: Tx, rows: list[TaskRow], records: list[records_pb2.Task]) -> None:
    """Gives each task the cards its attempts rendered (a clone its origin's), in one
    query."""
    if not rows:
        return
    owner = {row.pathspec: row.origin_pathspec or row.pathspec for row in rows}
    condition, keys = tx.dialect.one_of("task_pathspec", sorted(set(owner.values())))
    found: dict[str, list[records_pb2.Card]] = {}
    for path, attempt, kind, card_id, key, size, error, at_us in tx.query(
        "SELECT task_pathspec, attempt, card_type, card_id, content_key, size, error, "
        f"recorded_at_us FROM cards WHERE {condition} ORDER BY attempt, position",
        keys,
    ):
        card = records_pb2.Card(
            id=card_id, type=kind, content_key=key, size=size, error=error, attempt=attempt
        )
        set_time(card.created_at, at_us)
        found.setdefault(path, []).append(card)
    for row, record in zip(rows, records, strict=True):
        record.cards.extend(found.get(owner[row.pathspec], []))


def _json(text: str) -> Any:
    """json.loads, without its cost for the empty list and object most rows hold."""
    if text == "[]":
        return []
    return {} if text == "{}" else json.loads(text)


def _task_record(row: TaskRow, attempts: list[AttemptRow], clock: Clock) -> records_pb2.Task:
    flow_name, run_id = row.run_pathspec.split("/")
    resources = _json(row.resources_json)
    task = records_pb2.Task(
        flow_name=flow_name,
        run_id=run_id,
        step_name=row.step_name,
        task_id=row.task_id,
        pathspec=row.pathspec,
        status=outcome_status(row.succeeded, row.last_heartbeat_at_us, clock),
        input_pathspecs=_json(row.input_pathspecs_json),
        foreach_stack=[
            records_pb2.ForeachFrame(step_name=s, index=i, num_splits=n)
            for s, i, n in _json(row.foreach_stack_json)
        ],
        resources=records_pb2.Resources(**resources),
        origin_pathspec=row.origin_pathspec,
    )
    set_time(task.created_at, row.created_at_us)
    set_time(task.finished_at, row.finished_at_us)
    set_time(task.last_heartbeat_at, row.last_heartbeat_at_us)
    for a in attempts:
        attempt = task.attempts.add(
            attempt=a.attempt,
            error_type=a.error_type,
            error_message=a.error_message,
            traceback=a.traceback,
            stdout_key=a.stdout_key,
            stderr_key=a.stderr_key,
            status=outcome_status(
                a.succeeded,
                row.last_heartbeat_at_us if a.attempt == row.current_attempt else 0,
                clock,
            ),
        )
        set_time(attempt.started_at, a.started_at_us)
        set_time(attempt.finished_at, a.finished_at_us)
    return task
