"""The event store contract, run once on SQLite and once on a real Postgres server."""

from __future__ import annotations

import random
import time
from typing import Any

import events as ev
import pytest
from ledgerflow.v1 import audit_service_pb2 as audit
from ledgerflow.v1 import common_pb2, events_pb2, records_pb2
from ledgerflow.v1 import executor_service_pb2 as executor_api
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow.v1 import query_service_pb2 as q
from ledgerflow.v1 import tag_service_pb2 as tags_api
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
    NotFound,
)
from ledgerflow_service.queries import tasks as task_queries
from ledgerflow_service.read_models import READ_MODEL_TABLES

ALICE = Principal("alice", authenticated=False)
S = common_pb2.Status


def append(
    app: LedgerApplication, *events: events_pb2.Event, who: Principal = ALICE
) -> list[events_pb2.Event]:
    return list(app.append(ledger_api.AppendRequest(events=list(events)), who).events)


def snapshot(app: LedgerApplication) -> dict[str, list[Any]]:
    """Every row of the events table and of every projection, in a stable order."""
    with app.database.read() as tx:
        out = {}
        for table in ("events", *READ_MODEL_TABLES, "projection_position"):
            rows = tx.query(f"SELECT * FROM {table}")
            out[table] = sorted(
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows
            )
        return out


def refused(
    app: LedgerApplication, error: type[LedgerError], *events: events_pb2.Event, match: str = ""
) -> LedgerError:
    """Asserts the append is refused with `error` and leaves the ledger untouched."""
    before = snapshot(app)
    with pytest.raises(error, match=match) as caught:
        append(app, *events)
    assert snapshot(app) == before
    return caught.value


def get_run(app: LedgerApplication, flow: str, run: str) -> Any:
    return app.get_run(q.GetRunRequest(flow_name=flow, run_id=run)).run


def test_append_assigns_gapless_positions_and_stream_versions(app: LedgerApplication) -> None:
    recorded = append(app, *ev.successful_run("MyFlow", "1"))
    assert [e.global_position for e in recorded] == list(range(1, 8))
    assert [(e.stream, e.stream_version) for e in recorded[:4]] == [
        ("MyFlow/1", 1),
        ("MyFlow/1/start/1", 1),
        ("MyFlow/1/start/1", 2),
        ("MyFlow/1/start/1", 3),
    ]
    assert recorded[-1].stream_version == 2
    assert {e.actor for e in recorded} == {"alice"}
    assert not any(e.actor_authenticated for e in recorded)
    assert recorded[0].event_type == "RunStarted"


def test_one_batch_may_touch_a_thousand_streams(app: LedgerApplication) -> None:
    """(SQLite refused a batch of more than 500 streams: the streams' versions were
    looked up with one SELECT per stream in a compound SELECT.)"""
    append(app, ev.run_started("F", "1"))
    tasks = [ev.task_started("F", "1", "start", str(task)) for task in range(1000)]
    recorded = append(app, *tasks)
    assert [e.global_position for e in recorded] == list(range(2, 1002))
    assert {e.stream_version for e in recorded} == {1}
    again = append(app, *(ev.task_succeeded("F", "1", "start", str(t)) for t in range(1000)))
    assert {(e.stream, e.stream_version) for e in again} == {(e.stream, 2) for e in recorded}


def test_retried_batch_is_recorded_once(app: LedgerApplication) -> None:
    batch = ev.successful_run("MyFlow", "1")
    first = append(app, *batch)
    again = append(app, *batch)
    assert [e.global_position for e in again] == [e.global_position for e in first]
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events")[0] == len(batch)


def test_a_retry_that_breaks_no_rule_is_caught_by_the_unique_event_id(
    app: LedgerApplication,
) -> None:
    """Heartbeats apply cleanly twice, so only UNIQUE(event_id) can notice the retry."""
    append(app, ev.run_started("MyFlow", "1"))
    beats = [ev.run_heartbeat("MyFlow", "1"), ev.run_heartbeat("MyFlow", "1")]
    first = append(app, *beats)
    again = append(app, *beats)
    assert [e.global_position for e in again] == [e.global_position for e in first] == [2, 3]
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events")[0] == 3
    mixed = append(app, beats[0], ev.run_heartbeat("MyFlow", "1"))  # one old, one new
    assert [e.global_position for e in mixed] == [2, 4]
    # An artifact's retry also trips the artifacts' primary key: still a retry.
    recorded = ev.artifacts("MyFlow", "1", "start", "1", x="k1")
    append(app, ev.task_started("MyFlow", "1", "start", "1"))
    first_artifacts = append(app, recorded)
    assert append(app, recorded) == first_artifacts
    with app.database.read() as tx:
        assert tx.query("SELECT name, content_key FROM artifacts") == [("x", "k1")]


def test_stale_expected_version_is_refused(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"))
    stale = ev.run_heartbeat("MyFlow", "1")
    stale.expected_version = 0
    refused(app, FailedPrecondition, stale, match="at version 1")
    fresh = ev.run_heartbeat("MyFlow", "1")
    fresh.expected_version = 1
    assert append(app, fresh)[0].stream_version == 2


def test_a_bad_event_rejects_the_whole_batch(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"))
    refused(
        app,
        FailedPrecondition,
        ev.task_started("MyFlow", "1", "start", "1"),
        ev.task_succeeded("MyFlow", "1", "start", "1"),
        ev.task_succeeded("MyFlow", "1", "start", "1"),  # already finished
        match="already finished",
    )


@pytest.mark.parametrize(
    "event, message",
    [
        (ev.run_started("My-Flow", "1"), "flow_name 'My-Flow' is not a valid Python identifier"),
        (ev.run_started("class", "1"), "not a valid Python identifier"),
        (ev.run_started("MyFlow", "a/b"), "run_id 'a/b' is not valid"),
        (ev.task_started("MyFlow", "1", "2step", "1"), "step_name '2step'"),
        (events_pb2.Event(event_id=ev.new_id()), "no payload"),
        (
            events_pb2.Event(
                event_id="not-a-uuid",
                run_started=events_pb2.RunStarted(flow_name="F", run_id="1", user="u"),
            ),
            "not a UUID",
        ),
    ],
)
def test_malformed_events_are_invalid_arguments(
    app: LedgerApplication, event: Any, message: str
) -> None:
    refused(app, InvalidArgument, event, match=message)


def test_oversized_payload_and_batch_are_refused(app: LedgerApplication) -> None:
    big = ev.run_started("MyFlow", "1", parameters={"blob": '"' + "x" * (1 << 20) + '"'})
    refused(app, InvalidArgument, big, match="the limit is")
    too_many = [ev.run_started("MyFlow", str(i)) for i in range(1001)]
    refused(app, InvalidArgument, *too_many, match="at most 1000 events")


def test_a_client_cannot_put_an_event_in_another_stream(app: LedgerApplication) -> None:
    event = ev.run_started("MyFlow", "1")
    event.stream = "Other/9"
    refused(app, InvalidArgument, event, match="leave stream empty")


def test_an_artifact_recorded_again_for_the_same_attempt_is_already_exists(
    app: LedgerApplication,
) -> None:
    append(
        app,
        ev.run_started("MyFlow", "1"),
        ev.task_started("MyFlow", "1", "start", "1"),
        ev.artifacts("MyFlow", "1", "start", "1", x="k1"),
    )
    again = ev.artifacts("MyFlow", "1", "start", "1", x="k2")
    refused(app, AlreadyExists, again, match="'x' .* already recorded .* MyFlow/1/start/1")
    # Twice in one event: refused before the ledger is even looked at.
    twice = ev.artifacts("MyFlow", "1", "start", "1", y="k1")
    twice.artifacts_recorded.artifacts.append(twice.artifacts_recorded.artifacts[0])
    refused(app, AlreadyExists, twice, match="appears twice")


def test_duplicate_run_is_already_exists(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"))
    refused(app, AlreadyExists, ev.run_started("MyFlow", "1"), match="already exists")


@pytest.mark.parametrize(
    "late_event",
    [
        lambda: ev.task_started("MyFlow", "1", "b", "9"),
        lambda: ev.heartbeat("MyFlow", "1", "end", "2"),
        lambda: ev.run_heartbeat("MyFlow", "1"),
        lambda: ev.run_finished("MyFlow", "1", False),
    ],
)
def test_events_after_the_run_finished_are_refused(app: LedgerApplication, late_event: Any) -> None:
    append(app, *ev.successful_run("MyFlow", "1"))
    refused(app, FailedPrecondition, late_event(), match="finished")
    assert get_run(app, "MyFlow", "1").status == S.STATUS_SUCCEEDED


def test_out_of_order_task_events_are_refused(app: LedgerApplication) -> None:
    refused(
        app,
        FailedPrecondition,
        ev.task_started("MyFlow", "1", "start", "1"),
        match="has not been started",
    )
    append(app, ev.run_started("MyFlow", "1"))
    refused(
        app,
        FailedPrecondition,
        ev.task_succeeded("MyFlow", "1", "start", "1"),
        match="has not been started",
    )
    refused(
        app,
        FailedPrecondition,
        ev.task_started("MyFlow", "1", "start", "1", attempt=1),
        match="attempt 0",
    )
    refused(
        app,
        FailedPrecondition,
        ev.run_finished("MyFlow", "1", True),
        match="end step has not succeeded",
    )


def test_retries_are_attempts_of_one_task(app: LedgerApplication) -> None:
    append(
        app,
        ev.run_started("MyFlow", "1"),
        ev.task_started("MyFlow", "1", "start", "1"),
        ev.task_failed("MyFlow", "1", "start", "1", message="first try"),
    )
    refused(
        app,
        FailedPrecondition,
        ev.task_started("MyFlow", "1", "start", "1", attempt=2),
        match="next attempt is 1",
    )
    append(
        app,
        ev.task_started("MyFlow", "1", "start", "1", attempt=1),
        ev.artifacts("MyFlow", "1", "start", "1", attempt=1, x="k1"),
        ev.task_succeeded("MyFlow", "1", "start", "1", attempt=1),
    )
    task = app.get_task(
        q.GetTaskRequest(flow_name="MyFlow", run_id="1", step_name="start", task_id="1")
    ).task
    assert task.status == S.STATUS_SUCCEEDED
    assert [(a.attempt, a.status) for a in task.attempts] == [
        (0, S.STATUS_FAILED),
        (1, S.STATUS_SUCCEEDED),
    ]
    assert task.attempts[0].error_message == "first try"


def test_status_is_derived_from_events_and_heartbeats(database_url: str) -> None:
    from ledgerflow_service import open_database

    later = [0]  # microseconds the read clock runs ahead of the real one
    app = LedgerApplication(
        open_database(database_url),
        lost_after_seconds=60,
        read_clock_us=lambda: time.time_ns() // 1000 + later[0],
    )
    try:
        append(
            app,
            ev.run_started("F", "ok"),
            ev.run_started("F", "bad"),
            ev.run_started("F", "quiet"),
            ev.task_started("F", "bad", "start", "1"),
            ev.task_failed("F", "bad", "start", "1"),
            ev.run_finished("F", "bad", False),
        )
        append(app, *ev.successful_run("F", "ok")[1:])
        assert get_run(app, "F", "ok").status == S.STATUS_SUCCEEDED
        assert get_run(app, "F", "bad").status == S.STATUS_FAILED
        assert get_run(app, "F", "quiet").status == S.STATUS_RUNNING
        later[0] = 61 * 1_000_000  # a minute without a heartbeat
        assert get_run(app, "F", "quiet").status == S.STATUS_LOST
        later[0] = 0
        append(app, ev.run_heartbeat("F", "quiet"))
        assert get_run(app, "F", "quiet").status == S.STATUS_RUNNING
        lost = app.list_runs(q.ListRunsRequest(statuses=[S.STATUS_FAILED, S.STATUS_SUCCEEDED]))
        assert {r.run_id for r in lost.runs} == {"ok", "bad"}
    finally:
        app.close()


def test_queries_and_not_found(app: LedgerApplication) -> None:
    append(app, *ev.successful_run("MyFlow", "1"))
    with pytest.raises(NotFound, match="run MyFlow/2 does not exist"):
        get_run(app, "MyFlow", "2")
    with pytest.raises(NotFound):
        app.get_flow(q.GetFlowRequest(flow_name="Nope"))
    with pytest.raises(NotFound):
        app.list_tasks(q.ListTasksRequest(flow_name="MyFlow", run_id="2"))
    assert app.get_flow(q.GetFlowRequest(flow_name="MyFlow")).flow.created_by == "alice"
    steps = app.list_steps(q.ListStepsRequest(flow_name="MyFlow", run_id="1")).steps
    assert [(s.step_name, s.task_count) for s in steps] == [("start", 1), ("end", 1)]
    arts = app.list_artifacts(q.ListArtifactsRequest(flow_name="MyFlow", run_id="1")).artifacts
    assert [(a.name, a.task_pathspec) for a in arts] == [("x", "MyFlow/1/start/1")]


def test_artifacts_of_some_tasks_of_a_step_come_in_one_list(app: LedgerApplication) -> None:
    """ListArtifacts' task_ids (a join's inputs, as an executor reads them): only those
    tasks' current attempts, in pages like any other list."""
    append(app, ev.run_started("MyFlow", "1"))
    for task in range(1, 6):
        append(app, ev.task_started("MyFlow", "1", "work", str(task)),
               ev.artifacts("MyFlow", "1", "work", str(task), a="1", b="2"),
               ev.task_failed("MyFlow", "1", "work", str(task)) if task == 2 else
               ev.task_succeeded("MyFlow", "1", "work", str(task)))  # fmt: skip
    retried = [ev.task_started("MyFlow", "1", "work", "2", attempt=1),
               ev.artifacts("MyFlow", "1", "work", "2", attempt=1, c="3")]  # fmt: skip
    append(app, *retried)  # its current attempt: only the retry's artifacts are listed
    request = q.ListArtifactsRequest(
        flow_name="MyFlow", run_id="1", step_name="work", task_ids=["4", "2", "5", "4"]
    )
    request.page.page_size = 2
    listed = []
    while True:
        page = app.list_artifacts(request)
        listed += [(a.task_pathspec, a.attempt, a.name) for a in page.artifacts]
        if not page.page.next_page_token:
            break
        request.page.page_token = page.page.next_page_token
    assert listed == [("MyFlow/1/work/2", 1, "c"), ("MyFlow/1/work/4", 0, "a"),
                      ("MyFlow/1/work/4", 0, "b"), ("MyFlow/1/work/5", 0, "a"),
                      ("MyFlow/1/work/5", 0, "b")]  # fmt: skip


def spans_of(app: LedgerApplication, flow: str, run: str, page_size: int = 0) -> list[tuple]:
    """ListTaskSpans, page after page, as (step, task, start, end, status, attempts,
    cloned) rows."""
    request = q.ListTaskSpansRequest(flow_name=flow, run_id=run)
    request.page.page_size = page_size
    rows: list[tuple] = []
    while True:
        page = app.list_task_spans(request)
        columns = (page.task_ids, page.started_at_us, page.finished_at_us, page.status,
                   page.attempts, page.cloned)  # fmt: skip
        assert len({len(page.step_index), *map(len, columns)}) == 1
        steps = [page.step_names[i] for i in page.step_index]
        rows.extend(zip(steps, *columns, strict=True))
        if not page.page.next_page_token:
            return rows
        request.page.page_token = page.page.next_page_token


def test_task_spans_say_in_columns_what_list_tasks_says(
    app: LedgerApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeline's read: every task's step, start, end, status and attempts, also of
    retried, failed, running and cloned tasks, page after page."""
    append(app, *ev.successful_run("F", "1"))
    append(
        app,
        ev.run_started("F", "2", origin_run_id="1"),
        ev.task_cloned("F", "2", "start", "1", origin="F/1/start/1"),
        ev.task_started("F", "2", "work", "2"),
        ev.task_failed("F", "2", "work", "2"),
        ev.task_started("F", "2", "work", "2", attempt=1),
        ev.task_succeeded("F", "2", "work", "2", attempt=1),
        ev.task_started("F", "2", "work", "3"),
        ev.task_failed("F", "2", "work", "3"),
        ev.task_started("F", "2", "work", "4"),
    )
    tasks = app.list_tasks(q.ListTasksRequest(flow_name="F", run_id="2")).tasks
    expected = [
        (t.step_name, t.task_id, t.created_at.ToMicroseconds(),
         t.finished_at.ToMicroseconds() if t.HasField("finished_at") else 0, t.status,
         len(t.attempts), bool(t.origin_pathspec))
        for t in tasks
    ]  # fmt: skip
    assert [(row[0], row[1], row[4], row[5], row[6]) for row in expected] == [
        ("start", "1", S.STATUS_SUCCEEDED, 0, True),
        ("work", "2", S.STATUS_SUCCEEDED, 2, False),
        ("work", "3", S.STATUS_FAILED, 1, False),
        ("work", "4", S.STATUS_RUNNING, 1, False),
    ]
    assert spans_of(app, "F", "2") == expected
    assert spans_of(app, "F", "2", page_size=3) == expected  # each page names its steps
    # A page also stops at about MAX_PAGE_BYTES (long task ids), with one span at least.
    monkeypatch.setattr(task_queries, "MAX_PAGE_BYTES", 1)
    assert spans_of(app, "F", "2") == expected
    first = app.list_task_spans(q.ListTaskSpansRequest(flow_name="F", run_id="2"))
    assert list(first.task_ids) == ["1"] and first.page.next_page_token
    monkeypatch.undo()
    with pytest.raises(InvalidArgument, match="page_size is at most 20,000"):
        spans_of(app, "F", "2", page_size=20_001)
    with pytest.raises(NotFound, match="run F/3 does not exist"):
        spans_of(app, "F", "3")
    bad_token = q.ListTaskSpansRequest(flow_name="F", run_id="2")
    bad_token.page.page_token = "nope"
    with pytest.raises(InvalidArgument, match="page_token is not one this list gave out"):
        app.list_task_spans(bad_token)


def test_steps_count_their_tasks_by_status_and_name_the_steps_that_fed_them(
    app: LedgerApplication,
) -> None:
    def started(step: str, task: str, inputs: list[str]) -> events_pb2.Event:
        event = ev.task_started("F", "1", step, task)
        event.task_started.input_pathspecs.extend(inputs)
        return event

    append(app, ev.run_started("F", "1"), started("start", "1", []),
           ev.task_succeeded("F", "1", "start", "1"),
           *(started("work", str(i), ["F/1/start/1"]) for i in (2, 3, 4)),
           ev.task_succeeded("F", "1", "work", "2"),
           ev.task_failed("F", "1", "work", "3"))  # fmt: skip
    listed = app.list_steps(q.ListStepsRequest(flow_name="F", run_id="1")).steps
    steps = {s.step_name: s for s in listed}
    start, work = steps["start"], steps["work"]
    assert (start.succeeded_count, start.running_count, list(start.in_steps)) == (1, 0, [])
    assert (work.task_count, work.succeeded_count, work.failed_count, work.running_count) == (
        3, 1, 1, 1
    )  # fmt: skip
    assert list(work.in_steps) == ["start"]


def test_a_run_keeps_the_graph_it_declared_for_readers(app: LedgerApplication) -> None:
    append(app, ev.run_started("F", "1", declared_graph=ev.LINEAR_GRAPH), ev.run_started("F", "2"))
    asked = q.GetRunRequest(flow_name="F", run_id="1", include_graph=True)
    assert app.get_run(asked).graph == ev.LINEAR_GRAPH
    assert not app.get_run(q.GetRunRequest(flow_name="F", run_id="1")).HasField("graph")
    asked.run_id = "2"  # a run that declared none
    assert list(app.get_run(asked).graph.steps) == []
    # A declared graph is only for readers: the service queues nothing for the run.
    assert app.list_queued_tasks(executor_api.ListQueuedTasksRequest()).tasks == []


def test_a_declared_graph_is_checked_and_never_goes_with_a_submitted_one(
    app: LedgerApplication,
) -> None:
    refused(app, InvalidArgument,
            ev.run_started("F", "1", declared_graph=ev.LINEAR_GRAPH, graph=ev.LINEAR_GRAPH),
            match="both graph .* and declared_graph")  # fmt: skip
    dangling = records_pb2.FlowGraph()
    dangling.CopyFrom(ev.LINEAR_GRAPH)
    dangling.steps[0].next_steps[:] = ["nowhere"]
    refused(app, InvalidArgument, ev.run_started("F", "1", declared_graph=dangling),
            match="run_started.declared_graph step 'start' names 'nowhere'")  # fmt: skip


def test_list_runs_filters_and_paginates_newest_first(app: LedgerApplication) -> None:
    for i in range(5):
        append(
            app,
            ev.run_started(
                "MyFlow",
                f"r{i}",
                user="savin" if i % 2 else "david",
                tags=("sampled",) if i < 2 else (),
            ),
        )
    append(app, ev.run_started("Other", "x"))
    page = app.list_runs(q.ListRunsRequest(flow_name="MyFlow", page={"page_size": 2}))
    assert [r.run_id for r in page.runs] == ["r4", "r3"]
    page2 = app.list_runs(
        q.ListRunsRequest(
            flow_name="MyFlow", page={"page_size": 2, "page_token": page.page.next_page_token}
        )
    )
    assert [r.run_id for r in page2.runs] == ["r2", "r1"]
    savin = app.list_runs(q.ListRunsRequest(tags=["user:savin"]))
    assert [r.run_id for r in savin.runs] == ["r3", "r1"]
    both = app.list_runs(q.ListRunsRequest(tags=["user:savin", "sampled"]))
    assert [r.run_id for r in both.runs] == ["r1"]
    with pytest.raises(InvalidArgument, match="page_token"):
        app.list_runs(q.ListRunsRequest(page={"page_token": "%%%"}))


def test_tags_are_events_and_system_tags_stay(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1", tags=("a",)))
    added = app.add_tags(
        tags_api.AddTagsRequest(flow_name="MyFlow", run_id="1", tags=["b", "c"]), ALICE
    )
    assert list(added.tags) == ["a", "b", "c"]
    removed = app.remove_tags(
        tags_api.RemoveTagsRequest(flow_name="MyFlow", run_id="1", tags=["a"]), ALICE
    )
    assert list(removed.tags) == ["b", "c"]
    before = snapshot(app)
    with pytest.raises(FailedPrecondition, match="system tag"):
        app.remove_tags(
            tags_api.RemoveTagsRequest(flow_name="MyFlow", run_id="1", tags=["user:alice"]), ALICE
        )
    with pytest.raises(NotFound):
        app.add_tags(tags_api.AddTagsRequest(flow_name="MyFlow", run_id="2", tags=["x"]), ALICE)
    with pytest.raises(InvalidArgument):
        app.add_tags(tags_api.AddTagsRequest(flow_name="MyFlow", run_id="1", tags=[""]), ALICE)
    assert snapshot(app) == before
    history = app.list_events(audit.ListEventsRequest(run_pathspec="MyFlow/1")).events
    assert [e.event_type for e in history] == ["RunStarted", "TagsAdded", "TagsRemoved"]


def test_clones_point_at_their_origin_without_copying(app: LedgerApplication) -> None:
    append(app, *ev.successful_run("MyFlow", "1"))
    append(
        app,
        ev.run_started("MyFlow", "2", origin_run_id="1"),
        ev.task_cloned("MyFlow", "2", "start", "1", origin="MyFlow/1/start/1"),
    )
    task = app.get_task(
        q.GetTaskRequest(flow_name="MyFlow", run_id="2", step_name="start", task_id="1")
    ).task
    assert task.origin_pathspec == "MyFlow/1/start/1"
    assert task.status == S.STATUS_SUCCEEDED
    arts = app.list_artifacts(q.ListArtifactsRequest(flow_name="MyFlow", run_id="2")).artifacts
    assert [(a.name, a.content_key) for a in arts] == [("x", "key-x")]
    refused(
        app,
        FailedPrecondition,
        ev.task_cloned("MyFlow", "2", "end", "2", origin="MyFlow/1/end/99"),
        match="does not exist or has not succeeded",
    )


def test_audit_by_actor_time_and_as_of(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"), ev.task_started("MyFlow", "1", "start", "1"))
    middle = time.time_ns() // 1000
    time.sleep(0.01)
    append(
        app,
        ev.task_succeeded("MyFlow", "1", "start", "1"),
        who=Principal("bob", authenticated=True, roles=frozenset({"executor"})),
    )
    by_bob = app.list_events(audit.ListEventsRequest(actor="bob")).events
    assert [(e.event_type, e.actor_authenticated) for e in by_bob] == [("TaskSucceeded", True)]
    request = audit.ListEventsRequest(task_pathspec="MyFlow/1/start/1")
    request.recorded_before.FromMicroseconds(middle)
    assert [e.event_type for e in app.list_events(request).events] == ["TaskStarted"]
    as_of = audit.GetRunAsOfRequest(flow_name="MyFlow", run_id="1")
    as_of.as_of.FromMicroseconds(middle)
    then = app.get_run_as_of(as_of)
    assert [t.status for t in then.tasks] == [S.STATUS_RUNNING]
    as_of.as_of.FromMicroseconds(time.time_ns() // 1000)
    assert [t.status for t in app.get_run_as_of(as_of).tasks] == [S.STATUS_SUCCEEDED]


def test_update_and_delete_of_events_are_refused_by_the_database(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"))
    for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"), app.database.write() as tx:
            tx.execute(statement)
    if app.database.kind == "postgres":
        with pytest.raises(Exception, match="append-only"), app.database.write() as tx:
            tx.execute("TRUNCATE events")
    with app.database.read() as tx:
        assert tx.query("SELECT actor FROM events") == [("alice",)]


def _random_workload(app: LedgerApplication, rng: random.Random) -> None:
    """Many runs with branches, retries, failures, tags and clones, in random batches."""
    pending: list[events_pb2.Event] = []
    finished: list[str] = []
    versions = {"inputs": 0, "scores": 0}  # of each table, as the ledger numbers them
    for r in range(25):
        run = f"r{r}"
        pending.append(
            ev.run_started(
                "Flow",
                run,
                user=rng.choice(["ann", "bob"]),
                origin_run_id=rng.choice(finished) if finished and rng.random() < 0.3 else "",
                declared_graph=ev.LINEAR_GRAPH if rng.random() < 0.5 else None,
            )
        )
        for step_number, step in enumerate(["start", "a", "b", "end"]):
            task = str(step_number)
            attempt = 0
            pending.append(ev.task_started("Flow", run, step, task))
            while rng.random() < 0.3:
                pending.append(ev.task_failed("Flow", run, step, task, attempt))
                attempt += 1
                pending.append(ev.task_started("Flow", run, step, task, attempt))
            pending.append(ev.heartbeat("Flow", run, step, task, attempt))
            pending.append(
                ev.artifacts(
                    "Flow",
                    run,
                    step,
                    task,
                    attempt,
                    **{f"v{i}": f"k{rng.randrange(9)}" for i in range(3)},
                )
            )
            table = rng.choice(sorted(versions))
            if step == "a" and rng.random() < 0.5:
                pending.append(ev.table_written("Flow", run, step, task, "team", table, attempt))
                versions[table] += 1
            elif step == "b" and versions[table]:
                version = rng.randint(1, versions[table])
                pending.append(ev.table_read("Flow", run, step, task, "team", table, version,
                                             attempt))  # fmt: skip
            if rng.random() < 0.1:
                pending.append(ev.task_failed("Flow", run, step, task, attempt))
                pending.append(ev.run_finished("Flow", run, False))
                break
            pending.append(ev.task_succeeded("Flow", run, step, task, attempt))
        else:
            pending.append(ev.run_finished("Flow", run, True))
            finished.append(run)
        if rng.random() < 0.5:
            pending.append(
                events_pb2.Event(
                    event_id=ev.new_id(),
                    tags_added=events_pb2.TagsAdded(
                        flow_name="Flow", run_id=run, tags=[f"t{rng.randrange(4)}"]
                    ),
                )
            )
        while pending:
            size = rng.randint(1, 40)
            append(app, *pending[:size])
            del pending[:size]
    append(
        app,
        ev.run_started("Flow", "resumed", origin_run_id=finished[0]),
        ev.task_cloned("Flow", "resumed", "start", "0", origin=f"Flow/{finished[0]}/start/0"),
        events_pb2.Event(
            event_id=ev.new_id(),
            tags_removed=events_pb2.TagsRemoved(
                flow_name="Flow", run_id=finished[0], tags=["t0", "t1"]
            ),
        ),
    )


def test_rebuilt_projections_equal_the_live_ones(app: LedgerApplication) -> None:
    _random_workload(app, random.Random(20181105))
    live = snapshot(app)
    assert len(live["events"]) > 300
    reports: list[tuple[int, int]] = []
    assert app.rebuild_projections(on_progress=lambda *r: reports.append(r)) == len(live["events"])
    assert snapshot(app) == live
    assert reports[-1] == (len(live["events"]), len(live["events"]))
