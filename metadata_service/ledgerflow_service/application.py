"""The application layer: every command and query of the metadata service, taking and
returning ``ledgerflow.v1`` messages.

The gRPC transport (``server.py``) and the SDK's embedded mode both call this class, so
both modes obey the same rules and raise the same :class:`LedgerError` subclasses.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ledgerflow.v1 import (
    audit_service_pb2 as audit,
)
from ledgerflow.v1 import (
    events_pb2,
)
from ledgerflow.v1 import (
    ledger_service_pb2 as ledger_api,
)
from ledgerflow.v1 import (
    query_service_pb2 as query_api,
)
from ledgerflow.v1 import (
    tag_service_pb2 as tag_api,
)

from ledgerflow_service import ledger, queries
from ledgerflow_service.auth import Principal
from ledgerflow_service.database import Database, SqliteDatabase
from ledgerflow_service.errors import InvalidArgument, NotFound
from ledgerflow_service.group_commit import GroupCommit
from ledgerflow_service.names import check_id, check_identifier, check_tag, parse_pathspec

WATCH_CHUNK = 500


class AppendSignal:
    """Wakes watchers when events are appended (by this process or, via the
    database's notifications, by another)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def fire(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout=timeout)


class LedgerApplication:
    def __init__(
        self,
        database: Database,
        *,
        lost_after_seconds: float = 60.0,
        watch_poll_seconds: float | None = None,
    ) -> None:
        self.database = database
        self.lost_after_us = int(lost_after_seconds * 1e6)
        self.signal = AppendSignal()
        self.appender = GroupCommit(database)
        # SQLite cannot notify across processes, so its watchers poll more often.
        self.watch_poll_seconds = watch_poll_seconds or (
            0.2 if isinstance(database, SqliteDatabase) else 1.0
        )
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    def start_listening(self) -> None:
        """Starts relaying other processes' appends to watchers (Postgres NOTIFY)."""
        if self._listener is None:
            self._listener = threading.Thread(
                target=self.database.listen,
                args=(self.signal.fire, self._stop),
                name="ledgerflow-listen",
                daemon=True,
            )
            self._listener.start()

    def close_watchers(self) -> None:
        """Ends every watch stream (their loops return), e.g. before a shutdown."""
        self._stop.set()
        self.signal.fire()

    def close(self) -> None:
        self.close_watchers()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self.database.close()

    def clock(self) -> queries.Clock:
        return queries.Clock(ledger.now_us(), self.lost_after_us)

    # ---- commands ---------------------------------------------------------------

    def append(
        self,
        request: ledger_api.AppendRequest,
        principal: Principal,
        still_wanted: Callable[[], bool] | None = None,
    ) -> ledger_api.AppendResponse:
        """`still_wanted()` is asked just before commit; when it says no (the caller's
        deadline passed), the append rolls back with DEADLINE_EXCEEDED."""
        recorded = self.appender.append(request.events, principal, still_wanted)
        self.signal.fire()
        return ledger_api.AppendResponse(events=recorded)

    def _tag_event(
        self, flow_name: str, run_id: str, tags: list[str], added: bool
    ) -> events_pb2.Event:
        check_identifier("flow_name", flow_name)
        check_id("run_id", run_id)
        if not tags:
            raise InvalidArgument("name at least one tag")
        for tag in tags:
            check_tag(tag)
        event = events_pb2.Event(event_id=str(uuid.uuid4()))
        change = event.tags_added if added else event.tags_removed
        change.flow_name, change.run_id = flow_name, run_id
        change.tags.extend(tags)
        return event

    def _run_tags(self, flow_name: str, run_id: str) -> list[str]:
        with self.database.read() as tx:
            return list(queries.get_run(tx, flow_name, run_id, self.clock()).tags)

    def add_tags(
        self, request: tag_api.AddTagsRequest, principal: Principal
    ) -> tag_api.AddTagsResponse:
        event = self._tag_event(request.flow_name, request.run_id, list(request.tags), True)
        self.appender.append([event], principal)
        self.signal.fire()
        return tag_api.AddTagsResponse(tags=self._run_tags(request.flow_name, request.run_id))

    def remove_tags(
        self, request: tag_api.RemoveTagsRequest, principal: Principal
    ) -> tag_api.RemoveTagsResponse:
        event = self._tag_event(request.flow_name, request.run_id, list(request.tags), False)
        self.appender.append([event], principal)
        self.signal.fire()
        return tag_api.RemoveTagsResponse(tags=self._run_tags(request.flow_name, request.run_id))

    def rebuild_projections(self, on_progress: Callable[[int, int], None] | None = None) -> int:
        return ledger.rebuild_projections(self.database, on_progress=on_progress)

    # ---- queries ----------------------------------------------------------------

    def get_flow(self, request: query_api.GetFlowRequest) -> query_api.GetFlowResponse:
        with self.database.read() as tx:
            return query_api.GetFlowResponse(flow=queries.get_flow(tx, request.flow_name))

    def list_flows(self, request: query_api.ListFlowsRequest) -> query_api.ListFlowsResponse:
        with self.database.read() as tx:
            flows, token = queries.list_flows(tx, request.page)
        response = query_api.ListFlowsResponse(flows=flows)
        response.page.next_page_token = token
        return response

    def get_run(self, request: query_api.GetRunRequest) -> query_api.GetRunResponse:
        with self.database.read() as tx:
            return query_api.GetRunResponse(
                run=queries.get_run(tx, request.flow_name, request.run_id, self.clock())
            )

    def list_runs(self, request: query_api.ListRunsRequest) -> query_api.ListRunsResponse:
        with self.database.read() as tx:
            runs, token = queries.list_runs(tx, request, self.clock())
        response = query_api.ListRunsResponse(runs=runs)
        response.page.next_page_token = token
        return response

    def list_steps(self, request: query_api.ListStepsRequest) -> query_api.ListStepsResponse:
        with self.database.read() as tx:
            return query_api.ListStepsResponse(
                steps=queries.list_steps(tx, request.flow_name, request.run_id)
            )

    def list_tasks(self, request: query_api.ListTasksRequest) -> query_api.ListTasksResponse:
        with self.database.read() as tx:
            return query_api.ListTasksResponse(
                tasks=queries.list_tasks(
                    tx, request.flow_name, request.run_id, request.step_name, self.clock()
                )
            )

    def get_task(self, request: query_api.GetTaskRequest) -> query_api.GetTaskResponse:
        if not request.step_name or not request.task_id:
            raise InvalidArgument("get_task needs flow_name, run_id, step_name and task_id")
        with self.database.read() as tx:
            found = queries.list_tasks(
                tx,
                request.flow_name,
                request.run_id,
                request.step_name,
                self.clock(),
                request.task_id,
            )
        if not found:
            raise NotFound(
                f"task {request.flow_name}/{request.run_id}/{request.step_name}/"
                f"{request.task_id} does not exist"
            )
        return query_api.GetTaskResponse(task=found[0])

    def list_artifacts(
        self, request: query_api.ListArtifactsRequest
    ) -> query_api.ListArtifactsResponse:
        with self.database.read() as tx:
            return query_api.ListArtifactsResponse(artifacts=queries.list_artifacts(tx, request))

    # ---- watch and audit --------------------------------------------------------

    def watch_events(
        self, request: ledger_api.WatchEventsRequest, is_active: Callable[[], bool]
    ) -> Iterator[ledger_api.WatchEventsResponse]:
        """Catch-up from `after_position`, then live, until `is_active()` turns false.

        Appends are serialized and positions assigned under the append lock, so the
        events after a position never gain a late-committing member: reading
        "after the last position seen" cannot skip one."""
        where: list[str] = ["global_position > ?"]
        params: list[Any] = [request.after_position]
        if request.run_pathspec:
            parse_pathspec(request.run_pathspec, 2)
            where.append("run_pathspec = ?")
            params.append(request.run_pathspec)
        if request.event_types:
            where.append(f"event_type IN ({', '.join('?' for _ in request.event_types)})")
            params.extend(request.event_types)
        condition = " AND ".join(where)
        while is_active() and not self._stop.is_set():
            seen = self.signal.generation
            with self.database.read() as tx:
                chunk = ledger.read_events(tx, condition, params, WATCH_CHUNK)
            for event in chunk:
                yield ledger_api.WatchEventsResponse(event=event)
            if chunk:
                params[0] = chunk[-1].global_position
            if len(chunk) < WATCH_CHUNK:
                self.signal.wait(seen, self.watch_poll_seconds)

    def list_events(self, request: audit.ListEventsRequest) -> audit.ListEventsResponse:
        where = ["global_position > ?"]
        params: list[Any] = [0]
        if request.page.page_token:
            params[0] = int(queries.decode_token(request.page.page_token))
        if request.run_pathspec:
            parse_pathspec(request.run_pathspec, 2)
            where.append("run_pathspec = ?")
            params.append(request.run_pathspec)
        if request.task_pathspec:
            parse_pathspec(request.task_pathspec, 4)
            where.append("stream = ?")
            params.append(request.task_pathspec)
        if request.actor:
            where.append("actor = ?")
            params.append(request.actor)
        queries.add_time_range(
            where, params, "recorded_at_us", request, "recorded_after", "recorded_before"
        )
        size = queries.page_size(request.page)
        with self.database.read() as tx:
            found = ledger.read_events(tx, " AND ".join(where), params, size + 1)
        response = audit.ListEventsResponse(events=found[:size])
        if len(found) > size:
            response.page.next_page_token = queries.encode_token(found[size - 1].global_position)
        return response

    def get_run_as_of(self, request: audit.GetRunAsOfRequest) -> audit.GetRunAsOfResponse:
        """Replays the run's events up to `as_of` (and those of the runs it was resumed
        from, which its clones point at) into a scratch in-memory ledger, then reads it
        with the ordinary queries."""
        if not request.HasField("as_of"):
            raise InvalidArgument("as_of is required")
        as_of = request.as_of.ToMicroseconds()
        chain: list[str] = []
        flow, run_id = request.flow_name, request.run_id
        with self.database.read() as tx:
            while run_id and run_id not in chain:
                origin = tx.query_one(
                    "SELECT origin_run_id FROM runs WHERE pathspec = ?", (f"{flow}/{run_id}",)
                )
                if origin is None:
                    if not chain:
                        queries.get_run(tx, flow, run_id, self.clock())  # raises NotFound
                    break
                chain.append(run_id)
                run_id = origin[0]
            scratch = SqliteDatabase(":memory:")
            scratch.migrate()
            try:
                runs = [f"{flow}/{r}" for r in chain]
                marks = ", ".join("?" for _ in runs)
                with scratch.write() as scratch_tx:
                    ledger.replay(
                        scratch_tx,
                        f"run_pathspec IN ({marks}) AND recorded_at_us <= ?",
                        [*runs, as_of],
                        source=tx,
                    )
                clock = queries.Clock(as_of, self.lost_after_us)
                with scratch.read() as scratch_tx:
                    run = queries.get_run(scratch_tx, flow, request.run_id, clock)
                    tasks = queries.list_tasks(scratch_tx, flow, request.run_id, "", clock)
            finally:
                scratch.close()
        return audit.GetRunAsOfResponse(run=run, tasks=tasks)
