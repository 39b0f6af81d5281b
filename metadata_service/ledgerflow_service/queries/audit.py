"""Audit reads of the event store: events by run, task, actor and time, and a run as
it was at a past time (replayed into a scratch ledger and read with the ordinary
queries, so "as of" answers come from the same fold as live ones)."""

from __future__ import annotations

from typing import Any

from ledgerflow.v1 import audit_service_pb2 as audit
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import check_id, check_identifier, parse_pathspec
from ledgerflow_service.queries.fields import add_time_range, check_run_key
from ledgerflow_service.queries.paging import page_size, position_token, take_page
from ledgerflow_service.queries.runs import get_run
from ledgerflow_service.queries.status import Clock
from ledgerflow_service.queries.tasks import list_tasks
from ledgerflow_service.store.backend import Tx
from ledgerflow_service.store.events import read_events
from ledgerflow_service.store.projector import Projector
from ledgerflow_service.store.replay import replay
from ledgerflow_service.store.sqlite import SqliteDatabase
from ledgerflow_service.validation import check_text, timestamp_us


def list_events(tx: Tx, request: audit.ListEventsRequest) -> tuple[list[events_pb2.Event], str]:
    """A page of the events matching every filter of `request`, oldest first."""
    where = ["global_position > ?"]
    params: list[Any] = [0]
    if request.page.page_token:
        params[0] = position_token(request.page.page_token)
    if request.run_pathspec:
        flow, run = parse_pathspec(request.run_pathspec, 2)
        where.append("run_pathspec = ?")
        params.append(check_run_key(flow, run))
    if request.task_pathspec:
        flow, run, step, task = parse_pathspec(request.task_pathspec, 4)
        check_run_key(flow, run)
        check_identifier("step_name", step)
        check_id("task_id", task)
        where.append("stream = ?")
        params.append(request.task_pathspec)
    if request.actor:
        where.append("actor = ?")
        params.append(check_text("actor", request.actor))
    add_time_range(where, params, "recorded_at_us", request, "recorded_after", "recorded_before")
    size = page_size(request.page)
    found = read_events(tx, " AND ".join(where), params, size + 1)
    return take_page(found, [e.global_position for e in found], size)


def run_as_of(
    tx: Tx,
    projector: Projector[Any],
    request: audit.GetRunAsOfRequest,
    lost_after_us: int,
    now: Clock,
) -> tuple[records_pb2.Run, list[records_pb2.Task], str]:
    """The run and a page of its tasks as the ledger described them at `as_of`: its
    events up to then, and those of the runs it was resumed from (which its clones
    point at), replayed into a scratch in-memory ledger."""
    flow = check_identifier("flow_name", request.flow_name)
    check_id("run_id", request.run_id)
    if not request.HasField("as_of"):
        raise InvalidArgument("as_of is required")
    as_of = timestamp_us("as_of", request.as_of)
    chain: list[str] = []
    run_id = request.run_id
    while run_id and run_id not in chain:
        origin = tx.query_one(
            "SELECT origin_run_id FROM runs WHERE pathspec = ?", (f"{flow}/{run_id}",)
        )
        if origin is None:
            if not chain:
                get_run(tx, flow, run_id, now)  # raises NotFound
            break
        chain.append(run_id)
        run_id = origin[0]
    scratch = SqliteDatabase(":memory:")
    scratch.migrate()
    try:
        runs = [f"{flow}/{r}" for r in chain]
        marks = ", ".join("?" for _ in runs)
        with scratch.write() as scratch_tx:
            replay(
                scratch_tx,
                projector,
                f"run_pathspec IN ({marks}) AND recorded_at_us <= ?",
                [*runs, as_of],
                source=tx,
            )
        clock = Clock(as_of, lost_after_us)
        with scratch.read() as scratch_tx:
            run = get_run(scratch_tx, flow, request.run_id, clock)
            tasks, token = list_tasks(
                scratch_tx, flow, request.run_id, "", clock, page=request.page
            )
    finally:
        scratch.close()
    return run, tasks, token
