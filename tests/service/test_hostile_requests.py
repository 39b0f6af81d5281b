"""Requests a hostile or careless client sends: each is answered with the right code
and a message a person can act on, on SQLite and Postgres alike, and writes nothing.
(Issue: "The service under hostile input and many clients".)"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import events as ev
import grpc
import pytest
from ledgerflow.v1 import audit_service_pb2 as audit
from ledgerflow.v1 import (
    audit_service_pb2_grpc,
    common_pb2,
    events_pb2,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2_grpc,
    tag_service_pb2_grpc,
)
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow.v1 import query_service_pb2 as q
from ledgerflow.v1 import tag_service_pb2 as tags_api
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.server import build_server
from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    InvalidArgument,
    PermissionDenied,
)
from test_ledger_contract import append, get_run, refused, snapshot

ALICE = Principal("alice", authenticated=False)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# ---- 1. one event id twice in a batch ------------------------------------------------


def test_one_id_twice_in_a_batch_with_different_payloads_is_refused(
    app: LedgerApplication,
) -> None:
    first = ev.run_started("MyFlow", "1", user="alice")
    second = ev.run_started("MyFlow", "1", user="mallory")
    second.event_id = first.event_id
    error = refused(app, InvalidArgument, first, second, match="used twice in one batch")
    assert first.event_id in error.message


def test_one_id_twice_in_a_batch_with_the_same_payload_is_recorded_once(
    app: LedgerApplication,
) -> None:
    started = ev.run_started("MyFlow", "1")
    recorded = append(app, started, started)
    assert recorded[0].global_position == recorded[1].global_position
    before = snapshot(app)
    app.rebuild_projections()
    assert snapshot(app) == before  # the read models agree with the ledger


# ---- 2. an event id reused later for a different event --------------------------------


def test_an_id_reused_for_another_event_is_already_exists(app: LedgerApplication) -> None:
    started = ev.task_started("MyFlow", "1", "start", "1")
    append(app, ev.run_started("MyFlow", "1"), started)
    succeeded = ev.task_succeeded("MyFlow", "1", "start", "1")
    succeeded.event_id = started.event_id
    refused(app, AlreadyExists, succeeded, match="already used for a different event")
    task = app.get_task(q.GetTaskRequest(flow_name="MyFlow", run_id="1", step_name="start",
                                         task_id="1")).task  # fmt: skip
    assert task.status == common_pb2.STATUS_RUNNING
    # The very same event again is the idempotent answer: recorded once.
    again = append(app, started)
    assert again[0].event_type == "TaskStarted" and again[0].stream_version == 1


# ---- 3. filters whose cost grew with their shape; runaway statements -----------------


def test_filter_lists_are_bounded(app: LedgerApplication) -> None:
    with pytest.raises(InvalidArgument, match="at most 100"):
        app.list_runs(q.ListRunsRequest(tags=[f"t{i}" for i in range(101)]))
    with pytest.raises(InvalidArgument, match="at most 100"):
        app.list_artifacts(q.ListArtifactsRequest(
            flow_name="MyFlow", run_id="1", names=[f"n{i}" for i in range(70_000)]))  # fmt: skip


@pytest.mark.parametrize(
    ("request_fields", "says"),
    [
        ({"task_ids": ["1", "2"]}, "task_ids needs step_name too"),
        ({"step_name": "start", "task_id": "1", "task_ids": ["2"]}, "not both"),
        ({"step_name": "start", "task_ids": [str(i) for i in range(101)]}, "at most 100"),
        ({"step_name": "start", "task_ids": ["1", "a/b"]}, "task_ids"),
    ],
)
def test_artifacts_of_some_tasks_need_their_step_and_a_bounded_list(
    app: LedgerApplication, request_fields: dict[str, Any], says: str
) -> None:
    append(app, *ev.successful_run("MyFlow", "1"))
    with pytest.raises(InvalidArgument, match=says):
        app.list_artifacts(q.ListArtifactsRequest(flow_name="MyFlow", run_id="1", **request_fields))


def test_many_tag_filters_are_one_join(app: LedgerApplication) -> None:
    tags = [f"t{i}" for i in range(100)]
    append(app, ev.run_started("MyFlow", "1", tags=tuple(tags)), ev.run_started("MyFlow", "2"))
    started = time.monotonic()
    found = app.list_runs(q.ListRunsRequest(tags=tags)).runs
    assert [r.run_id for r in found] == ["1"]
    assert [r.run_id for r in app.list_runs(q.ListRunsRequest(tags=[*tags[:99], "x"])).runs] == []
    assert time.monotonic() - started < 20  # was over 20 s for 200 nested subqueries


def _endless_query(kind: str) -> str:
    if kind == "postgres":
        return "SELECT pg_sleep(30)"
    return (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT COUNT(*) FROM n"
    )


def test_a_statement_stops_at_its_deadline(app: LedgerApplication) -> None:
    started = time.monotonic()
    with (
        pytest.raises(DeadlineExceeded, match="deadline"),
        app.database.read(CallScope(time.monotonic() + 0.3)) as tx,
    ):
        tx.query(_endless_query(app.database.kind))
    assert time.monotonic() - started < 10
    with app.database.read(CallScope(time.monotonic() + 5)) as tx:  # the connection is fine
        assert tx.query("SELECT 1") == [(1,)]


def test_a_statement_stops_at_the_server_cap(app: LedgerApplication) -> None:
    with (
        pytest.raises(DeadlineExceeded, match="statement timeout"),
        app.database.read(CallScope(None, cap_seconds=0.3)) as tx,
    ):
        tx.query(_endless_query(app.database.kind))


def wait_until_running(app: LedgerApplication, text: str) -> None:
    """Until Postgres shows a statement containing `text` as active."""
    import psycopg

    with psycopg.connect(app.database.conninfo, autocommit=True) as conn:  # type: ignore[attr-defined]
        for _ in range(500):
            found = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                "AND pid <> pg_backend_pid()",
                (f"%{text}%",),
            ).fetchone()
            if found:
                return
            time.sleep(0.01)
    raise AssertionError(f"no statement with {text!r} started")


def test_a_cancelled_call_stops_its_statement(app: LedgerApplication) -> None:
    scope = CallScope(time.monotonic() + 60)
    outcome: list[BaseException] = []

    def query() -> None:
        try:
            with app.database.read(scope) as tx:
                tx.query(_endless_query(app.database.kind))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=query)
    worker.start()
    if app.database.kind == "postgres":  # cancel once the statement runs there
        wait_until_running(app, "pg_sleep")
    scope.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive() and isinstance(outcome[0], Cancelled)


def test_a_call_cancelled_before_its_statement_starts_runs_none(app: LedgerApplication) -> None:
    scope = CallScope(time.monotonic() + 60)
    started = time.monotonic()
    with pytest.raises(Cancelled), app.database.read(scope) as tx:
        scope.cancel()  # after the read began, before any statement
        tx.query(_endless_query(app.database.kind))
    assert time.monotonic() - started < 10


# ---- 5. bad values are INVALID_ARGUMENT at the edge, the same on both backends ---------


def _run_with_task(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"), ev.task_started("MyFlow", "1", "start", "1"))


def _bad_appends() -> list[tuple[str, events_pb2.Event]]:
    nul_user = ev.run_started("MyFlow", "2", user="al\x00ice")
    nul_error = ev.task_failed("MyFlow", "1", "start", "1")
    nul_error.task_failed.error_message = "boom\x00"
    nul_type = ev.artifacts("MyFlow", "1", "start", "1", x="1")
    nul_type.artifacts_recorded.artifacts[0].type_name = "int\x00"
    huge = ev.artifacts("MyFlow", "1", "start", "1", x="1")
    huge.artifacts_recorded.artifacts[0].size = 1 << 63
    clone = ev.task_cloned("MyFlow", "1", "end", "9", "MyFlow/0/st\x00art/1")
    far_attempt = ev.artifacts("MyFlow", "1", "start", "1", x="1")
    far_attempt.artifacts_recorded.attempt = (1 << 32) - 1
    return [
        ("NUL", nul_user),
        ("NUL", nul_error),
        ("NUL", nul_type),
        ("size", huge),
        ("not a valid", clone),
        ("out of range", far_attempt),
    ]


@pytest.mark.parametrize("index", range(len(_bad_appends())))
def test_bad_event_values_are_invalid_argument(app: LedgerApplication, index: int) -> None:
    _run_with_task(app)
    match, event = _bad_appends()[index]
    refused(app, InvalidArgument, event, match=match)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.get_flow(q.GetFlowRequest(flow_name="My\x00Flow")),
        lambda a: a.list_runs(q.ListRunsRequest(tags=["user:\x00"])),
        lambda a: a.list_runs(q.ListRunsRequest(created_after={"seconds": 10**12})),
        lambda a: a.list_runs(q.ListRunsRequest(created_before={"seconds": 1, "nanos": -1})),
        lambda a: a.list_runs(q.ListRunsRequest(page={"page_token": b64("1.5")})),
        lambda a: a.list_runs(q.ListRunsRequest(page={"page_token": b64(str(1 << 64))})),
        lambda a: a.list_flows(q.ListFlowsRequest(page={"page_token": b64("12")})),
        lambda a: a.list_events(audit.ListEventsRequest(page={"page_token": b64('"x"')})),
        lambda a: a.list_events(audit.ListEventsRequest(actor="bo\x00b")),
        lambda a: a.list_artifacts(q.ListArtifactsRequest(
            flow_name="MyFlow", run_id="1", page={"page_token": b64('["a", 1.5, "b"]')})),
        lambda a: a.get_run_as_of(audit.GetRunAsOfRequest(flow_name="MyFlow", as_of={})),
        lambda a: a.get_run_as_of(audit.GetRunAsOfRequest(
            flow_name="MyFlow", run_id="1", as_of={"seconds": -10**15})),
        lambda a: a.watch_filter(ledger_api.WatchEventsRequest(event_types=["NoSuchEvent"])),
        lambda a: a.watch_filter(ledger_api.WatchEventsRequest(after_position=1 << 63)),
        lambda a: a.watch_filter(ledger_api.WatchEventsRequest(after_position=3, from_head=True)),
        lambda a: a.watch_filter(ledger_api.WatchEventsRequest(batch_events=65)),
    ],
)  # fmt: skip
def test_bad_query_values_are_invalid_argument(app: LedgerApplication, call: Any) -> None:
    _run_with_task(app)
    with pytest.raises(InvalidArgument):
        call(app)


# ---- 6. pages a default client can take ------------------------------------------------

BIG = "x" * 900_000  # an event of ~0.9 MiB: four of them pass gRPC's default 4 MiB


def _big_failures(app: LedgerApplication, count: int) -> None:
    append(app, ev.run_started("Big", "1"))
    for task in range(count):
        failed = ev.task_failed("Big", "1", "start", str(task))
        failed.task_failed.traceback = BIG
        append(app, ev.task_started("Big", "1", "start", str(task)), failed)


def test_every_list_pages_under_a_default_clients_limit(
    grpc_channel: grpc.Channel, app: LedgerApplication
) -> None:
    _big_failures(app, 8)
    audits = audit_service_pb2_grpc.AuditServiceStub(grpc_channel)
    queries = query_service_pb2_grpc.QueryServiceStub(grpc_channel)

    def drain(call: Any, request: Any, items: str) -> list[Any]:
        found: list[Any] = []
        while True:
            response = call(request)
            assert response.ByteSize() < 4 * 1024 * 1024
            found.extend(getattr(response, items))
            if not response.page.next_page_token:
                return found
            request.page.page_token = response.page.next_page_token

    events = drain(audits.ListEvents, audit.ListEventsRequest(), "events")
    assert len(events) == 1 + 8 * 2
    tasks = drain(queries.ListTasks, q.ListTasksRequest(flow_name="Big", run_id="1"), "tasks")
    assert sorted(int(t.task_id) for t in tasks) == list(range(8))
    as_of = audit.GetRunAsOfRequest(flow_name="Big", run_id="1")
    as_of.as_of.GetCurrentTime()
    assert len(drain(audits.GetRunAsOf, as_of, "tasks")) == 8


def test_small_pages_walk_steps_tasks_and_artifacts(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"), ev.task_started("MyFlow", "1", "start", "1"),
           ev.artifacts("MyFlow", "1", "start", "1", x="1", y="2"))  # fmt: skip
    for step, task in (("end", "2"), ("middle", "3"), ("middle", "4")):
        append(app, ev.task_started("MyFlow", "1", step, task))
    append(app, ev.artifacts("MyFlow", "1", "middle", "3", a="1", b="2", c="3"))

    def walk(method: Any, request: Any, items: str) -> list[Any]:
        request.page.page_size = 1
        found: list[Any] = []
        while True:
            response = method(request)
            found.extend(getattr(response, items))
            if not response.page.next_page_token:
                return found
            request.page.page_token = response.page.next_page_token

    steps = walk(app.list_steps, q.ListStepsRequest(flow_name="MyFlow", run_id="1"), "steps")
    assert [s.step_name for s in steps] == ["start", "end", "middle"]
    tasks = walk(app.list_tasks, q.ListTasksRequest(flow_name="MyFlow", run_id="1"), "tasks")
    assert len(tasks) == 4
    arts = walk(app.list_artifacts, q.ListArtifactsRequest(flow_name="MyFlow", run_id="1"),
                "artifacts")  # fmt: skip
    everything = app.list_artifacts(q.ListArtifactsRequest(flow_name="MyFlow", run_id="1"))
    assert [(a.task_pathspec, a.name) for a in arts] == [
        (a.task_pathspec, a.name) for a in everything.artifacts
    ]
    assert len(arts) == 5


def test_the_python_client_follows_pages(app: LedgerApplication) -> None:
    from ledgerflow.metadata_client import EmbeddedMetadata

    _big_failures(app, 6)
    client = EmbeddedMetadata("", "alice", app=app)
    assert len(client.tasks("Big", "1")) == 6
    assert client.calls > 1  # the byte bound split the list


# ---- 7. identity under bearer tokens ---------------------------------------------------

TOKENS = "t-alice alice\nt-bob bob\nt-exec runner executor\nt-admin root admin\n"


@pytest.fixture
def authed(app: LedgerApplication, tmp_path: Any) -> Any:
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    server, port = build_server(app, port=0, tokens=TokenTable.from_file(path))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(0).wait()


def as_(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _append(channel: grpc.Channel, token: str, *events: events_pb2.Event) -> Any:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    return stub.Append(ledger_service_pb2.AppendRequest(events=list(events)), metadata=as_(token))


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()  # type: ignore[no-any-return]


def test_under_auth_the_user_is_the_principal(authed: grpc.Channel) -> None:
    assert _code(lambda: _append(authed, "t-bob", ev.run_started("F", "1", user="mallory"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    tagged = ev.run_started("F", "1", user="bob")
    tagged.run_started.system_tags[:] = ["user:mallory"]
    assert _code(lambda: _append(authed, "t-bob", tagged)) == grpc.StatusCode.PERMISSION_DENIED
    _append(authed, "t-alice", ev.run_started("F", "2", user="alice"))
    for event in (
        ev.run_finished("F", "2", False),
        ev.task_started("F", "2", "start", "1"),
    ):
        assert _code(lambda e=event: _append(authed, "t-bob", e)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    tags = tag_service_pb2_grpc.TagServiceStub(authed)
    request = tags_api.AddTagsRequest(flow_name="F", run_id="2", tags=["mine"])
    assert _code(lambda: tags.AddTags(request, metadata=as_("t-bob"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: tags.AddTags(request, metadata=as_("t-exec"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # Roles: an executor writes task events to anyone's run; an admin also tags.
    _append(authed, "t-exec", ev.task_started("F", "2", "start", "1"))
    assert list(tags.AddTags(request, metadata=as_("t-admin")).tags) == ["mine"]
    assert _code(lambda: _append(authed, "t-exec", ev.run_started("F", "3", user="alice"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    _append(authed, "t-admin", ev.run_started("F", "3", user="alice"))
    tags.AddTags(tags_api.AddTagsRequest(flow_name="F", run_id="2", tags=["ok"]),
                 metadata=as_("t-alice"))  # fmt: skip


def test_a_token_file_with_an_unknown_role_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "tokens"
    path.write_text("t-x someone superuser\n")
    with pytest.raises(InvalidArgument, match="unknown role 'superuser'"):
        TokenTable.from_file(path)


def test_without_auth_the_claimed_user_is_taken(app: LedgerApplication) -> None:
    append(app, ev.run_started("F", "1", user="alice"))
    append(app, ev.run_finished("F", "1", False), who=Principal("bob", authenticated=False))
    assert get_run(app, "F", "1").status == common_pb2.STATUS_FAILED


def test_permission_is_checked_per_event_and_denials_write_nothing(app: LedgerApplication) -> None:
    append(app, ev.run_started("F", "1", user="alice"))
    before = snapshot(app)
    with pytest.raises(PermissionDenied):
        append(app, ev.run_heartbeat("F", "1"), who=Principal("bob", True))
    assert snapshot(app) == before


# ---- 9. tags are idempotent --------------------------------------------------------------


def test_a_retried_tag_call_records_once(app: LedgerApplication) -> None:
    append(app, ev.run_started("MyFlow", "1"))
    request = tags_api.AddTagsRequest(
        flow_name="MyFlow", run_id="1", tags=["reviewed"], event_id=ev.new_id()
    )
    assert list(app.add_tags(request, ALICE).tags) == ["reviewed"]
    assert list(app.add_tags(request, ALICE).tags) == ["reviewed"]
    added = app.list_events(audit.ListEventsRequest(run_pathspec="MyFlow/1")).events
    assert [e.event_type for e in added].count("TagsAdded") == 1
    other = tags_api.AddTagsRequest(
        flow_name="MyFlow", run_id="1", tags=["other"], event_id=request.event_id
    )
    with pytest.raises(AlreadyExists):
        app.add_tags(other, ALICE)
    with pytest.raises(InvalidArgument, match="not a UUID"):
        app.add_tags(tags_api.AddTagsRequest(flow_name="MyFlow", run_id="1", tags=["x"],
                                             event_id="nope"), ALICE)  # fmt: skip


def test_the_sdk_sends_an_event_id_with_each_tag_call(app: LedgerApplication) -> None:
    """Replaying the SDK's own request (as a retry would) records the change once."""
    from ledgerflow.metadata_client import EmbeddedMetadata

    sent: list[Any] = []

    class Recording(EmbeddedMetadata):
        def add_tags(self, request: Any) -> Any:
            sent.append(request)
            return super().add_tags(request)

    client = Recording("", "alice", app=app)
    client.append_events([ev.run_started("MyFlow", "1")])
    client.add_run_tags("MyFlow", "1", ["a"])
    app.add_tags(sent[0], ALICE)  # the retry
    events = app.list_events(audit.ListEventsRequest(run_pathspec="MyFlow/1")).events
    assert [e.event_type for e in events] == ["RunStarted", "TagsAdded"]


@pytest.mark.parametrize(
    "method, streaming",
    [
        ("/grpc.health.v1.Health/Check", False),
        ("/grpc.health.v1.Health/Watch", True),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None),
        ("/ledgerflow.v1.LedgerService/WatchEvents", True),
    ],
)
def test_undecodable_bytes_to_any_service_are_invalid_argument(
    grpc_channel: grpc.Channel, method: str, streaming: bool | None
) -> None:
    garbage = b"\xff\xff\xff\xff\x0f"
    with pytest.raises(grpc.RpcError) as caught:
        if streaming is None:  # a bidirectional stream
            next(iter(grpc_channel.stream_stream(method)(iter([garbage]), timeout=5)))
        elif streaming:
            next(iter(grpc_channel.unary_stream(method)(garbage, timeout=5)))
        else:
            grpc_channel.unary_unary(method)(garbage, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in (caught.value.details() or "")
