"""Flows and runs, with their tags, parameters and derived status."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ledgerflow.v1 import common_pb2, records_pb2

from ledgerflow_service.errors import InvalidArgument, NotFound
from ledgerflow_service.names import check_identifier, check_tag
from ledgerflow_service.queries.fields import add_time_range, check_run_key, set_time
from ledgerflow_service.queries.paging import (
    encode_token,
    page_size,
    position_token,
    take_page,
    text_token,
)
from ledgerflow_service.queries.status import RUN_STATUS_SQL, Clock, S, run_status
from ledgerflow_service.read_models.runs import RunRow
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx
from ledgerflow_service.validation import check_filter


def _run_select(where: str) -> str:
    return f"SELECT {', '.join(columns(RunRow))} FROM runs WHERE {where}"


def _tags_query(tx: Tx, run_pathspecs: Sequence[str]) -> tuple[str, list[Any]]:
    condition, params = tx.dialect.one_of("run_pathspec", list(run_pathspecs))
    return f"SELECT run_pathspec, tag, is_system FROM run_tags WHERE {condition}", params


def _runs_to_records(tx: Tx, rows: Sequence[RunRow], clock: Clock) -> list[records_pb2.Run]:
    tag_rows = tx.query(*_tags_query(tx, [r.pathspec for r in rows])) if rows else []
    return _records(rows, tag_rows, clock)


def runs_later(
    tx: Tx, run_pathspecs: Sequence[str], clock: Clock
) -> Callable[[], dict[str, records_pb2.Run]]:
    """The runs as this transaction leaves them, by pathspec, read at this point of it
    and built once it has ended (Tx.query_later: no round trip of their own in an
    append). A run that does not exist is missing from the answer."""
    if not run_pathspecs:
        return dict
    condition, params = tx.dialect.one_of("pathspec", list(run_pathspecs))
    run_rows = tx.query_later(_run_select(condition), params)
    tag_rows = tx.query_later(*_tags_query(tx, run_pathspecs))

    def built() -> dict[str, records_pb2.Run]:
        runs = _records([RunRow(*row) for row in run_rows()], tag_rows(), clock)
        return {run.pathspec: run for run in runs}

    return built


def _records(
    rows: Sequence[RunRow], tag_rows: Sequence[Sequence[Any]], clock: Clock
) -> list[records_pb2.Run]:
    """The Run records of run rows, with their tags (rows of run_tags)."""
    tags: dict[str, list[tuple[str, int]]] = {r.pathspec: [] for r in rows}
    for path, tag, is_system in tag_rows:
        tags[path].append((tag, is_system))
    records = []
    for row in rows:
        run = records_pb2.Run(
            flow_name=row.flow_name,
            run_id=row.run_id,
            pathspec=row.pathspec,
            user=row.user_name,
            origin_run_id=row.origin_run_id,
            code_package_key=row.code_package_key,
            tags=sorted(t for t, system in tags[row.pathspec] if not system),
            system_tags=sorted(t for t, system in tags[row.pathspec] if system),
            parameters=json.loads(row.parameters_json),
            status=run_status(row, clock),
        )
        if row.trigger_message:
            run.trigger.ParseFromString(bytes(row.trigger_message))
        set_time(run.created_at, row.created_at_us)
        set_time(run.finished_at, row.finished_at_us)
        set_time(run.last_heartbeat_at, row.last_heartbeat_at_us)
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


def run_graph(tx: Tx, flow_name: str, run_id: str) -> records_pb2.FlowGraph:
    """The graph the run recorded as it started; empty when it recorded none."""
    row = tx.query_one(
        "SELECT graph FROM run_graphs WHERE run_pathspec = ?", (check_run_key(flow_name, run_id),)
    )
    return records_pb2.FlowGraph.FromString(bytes(row[0])) if row else records_pb2.FlowGraph()


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
            if status not in RUN_STATUS_SQL:
                raise InvalidArgument(f"status {status} is not a status to filter by")
            clauses.append(RUN_STATUS_SQL[status])
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
