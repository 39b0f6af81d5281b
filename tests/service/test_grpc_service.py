"""The real gRPC server on loopback, called through the generated stubs."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import events as ev
import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from ledgerflow.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2,
    query_service_pb2_grpc,
    tag_service_pb2,
    tag_service_pb2_grpc,
)
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.server import build_server
from ledgerflow_service.store.postgres import _APPEND_LOCK_KEY
from waiting import wait_for


def ledger(channel: grpc.Channel) -> ledger_service_pb2_grpc.LedgerServiceStub:
    return ledger_service_pb2_grpc.LedgerServiceStub(channel)


def append(channel: grpc.Channel, *events: object, user: str = "alice", **kw: object) -> object:
    return ledger(channel).Append(
        ledger_service_pb2.AppendRequest(events=list(events), claimed_user=user), **kw
    )


def drain_in_background(stream: object) -> queue.Queue[object]:
    """Puts each event of a watch stream on a queue until the stream ends or is cancelled."""
    received: queue.Queue[object] = queue.Queue()

    def consume() -> None:
        try:
            for message in stream:  # type: ignore[attr-defined]
                received.put(message.event)
        except grpc.RpcError:
            pass  # cancelled by the test

    threading.Thread(target=consume, daemon=True).start()
    return received


def test_append_and_query_over_grpc(grpc_channel: grpc.Channel) -> None:
    recorded = append(grpc_channel, *ev.successful_run("MyFlow", "1", user="savin"), user="savin")
    assert recorded.events[0].actor == "savin"
    queries = query_service_pb2_grpc.QueryServiceStub(grpc_channel)
    run = queries.GetRun(query_service_pb2.GetRunRequest(flow_name="MyFlow", run_id="1")).run
    assert run.user == "savin" and run.system_tags == ["user:savin"]
    tasks = queries.ListTasks(query_service_pb2.ListTasksRequest(flow_name="MyFlow", run_id="1"))
    assert [t.step_name for t in tasks.tasks] == ["start", "end"]


@pytest.mark.parametrize(
    "call, code",
    [
        (
            lambda ch: query_service_pb2_grpc.QueryServiceStub(ch).GetRun(
                query_service_pb2.GetRunRequest(flow_name="MyFlow", run_id="404")
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        (lambda ch: append(ch, ev.run_started("MyFlow", "1")), grpc.StatusCode.ALREADY_EXISTS),
        (lambda ch: append(ch, ev.run_started("bad name", "2")), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda ch: append(ch, ev.task_succeeded("MyFlow", "1", "end", "2")),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            lambda ch: tag_service_pb2_grpc.TagServiceStub(ch).RemoveTags(
                tag_service_pb2.RemoveTagsRequest(
                    flow_name="MyFlow", run_id="1", tags=["user:alice"]
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ],
)
def test_errors_carry_the_right_status_code(
    grpc_channel: grpc.Channel, call: object, code: grpc.StatusCode
) -> None:
    append(grpc_channel, *ev.successful_run("MyFlow", "1"))
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc_channel)  # type: ignore[operator]
    assert caught.value.code() == code
    assert caught.value.details()


def test_malformed_bytes_are_invalid_argument(
    grpc_channel: grpc.Channel, app: LedgerApplication
) -> None:
    raw = grpc_channel.unary_unary("/ledgerflow.v1.LedgerService/Append")
    with pytest.raises(grpc.RpcError) as caught:
        raw(b"\xff\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in caught.value.details()
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events")[0] == 0
    stream = grpc_channel.unary_stream("/ledgerflow.v1.LedgerService/WatchEvents")
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream(b"\xff\xff")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_watcher_hears_appends_from_another_process(database_url: str) -> None:
    """Postgres wakes watchers with LISTEN/NOTIFY; SQLite watchers poll."""
    from ledgerflow_service import open_database

    poll = 30.0 if database_url.startswith("postgres") else 0.2  # NOTIFY must do it
    watching = LedgerApplication(open_database(database_url), watch_poll_seconds=poll)
    writing = LedgerApplication(open_database(database_url))  # its own connections
    server, port = build_server(watching, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = ledger(channel).WatchEvents(ledger_service_pb2.WatchEventsRequest())
            received = drain_in_background(stream)
            # An event through the watching server: once it arrives, the watcher is live.
            watching.append(
                ledger_service_pb2.AppendRequest(events=[ev.run_started("MyFlow", "0")]),
                Principal("alice", False),
            )
            assert received.get(timeout=5).actor == "alice"
            writing.append(
                ledger_service_pb2.AppendRequest(events=[ev.run_started("MyFlow", "1")]),
                Principal("bob", False),
            )
            event = received.get(timeout=5)
            assert event.event_type == "RunStarted" and event.actor == "bob"
            stream.cancel()
    finally:
        server.stop(0).wait()
        writing.close()
        watching.close()


def test_health_and_reflection(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "ledgerflow.v1.LedgerService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    answer = next(
        reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "ledgerflow.v1.LedgerService",
        "ledgerflow.v1.QueryService",
        "ledgerflow.v1.TagService",
        "ledgerflow.v1.AuditService",
    } <= names


def test_watch_catches_up_then_streams_live(grpc_channel: grpc.Channel) -> None:
    append(grpc_channel, ev.run_started("MyFlow", "1"), ev.run_started("Other", "1"))
    stream = ledger(grpc_channel).WatchEvents(
        ledger_service_pb2.WatchEventsRequest(after_position=0, run_pathspec="MyFlow/1")
    )
    received = drain_in_background(stream)
    first = received.get(timeout=5)
    assert (first.global_position, first.event_type) == (1, "RunStarted")
    append(grpc_channel, ev.run_heartbeat("Other", "1"), ev.run_heartbeat("MyFlow", "1"))
    live = received.get(timeout=5)
    assert (live.global_position, live.event_type, live.stream) == (4, "RunHeartbeat", "MyFlow/1")
    assert received.empty()
    stream.cancel()


@contextmanager
def append_lock_held(app: LedgerApplication) -> Iterator[None]:
    """Holds the ledger's append lock from another connection, as a slow writer would."""
    if app.database.kind == "sqlite":
        other = sqlite3.connect(app.database.path, isolation_level=None)  # type: ignore[attr-defined]
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
    else:
        with psycopg.connect(app.database.conninfo, autocommit=True) as other:  # type: ignore[attr-defined]
            other.execute("SELECT pg_advisory_lock(%s)", (_APPEND_LOCK_KEY,))
            try:
                yield
            finally:
                other.execute("SELECT pg_advisory_unlock(%s)", (_APPEND_LOCK_KEY,))


def test_an_append_whose_caller_gave_up_is_rolled_back(
    grpc_channel: grpc.Channel, app: LedgerApplication
) -> None:
    with append_lock_held(app):
        with pytest.raises(grpc.RpcError) as caught:
            append(grpc_channel, ev.run_started("MyFlow", "1"), timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The next append queues behind the abandoned one, which gets the lock first, sees
    # its caller gone and rolls back: the same run can then be started, once.
    append(grpc_channel, ev.run_started("MyFlow", "1"))
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events")[0] == 1


def test_a_call_with_time_left_is_committed(
    grpc_channel: grpc.Channel, app: LedgerApplication
) -> None:
    append(grpc_channel, ev.run_started("MyFlow", "1"), timeout=30)
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events")[0] == 1


def test_bearer_tokens_decide_the_actor(app: LedgerApplication, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# token principal\ns3cret-a alice@example.com\ns3cret-b bob\n")
    server, port = build_server(app, port=0, tokens=TokenTable.from_file(token_file))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                append(channel, ev.run_started("MyFlow", "1"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as caught:
                append(
                    channel,
                    ev.run_started("MyFlow", "1"),
                    metadata=[("authorization", "Bearer wrong")],
                )
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            recorded = append(
                channel,
                ev.run_started("MyFlow", "1", user="bob"),
                user="mallory",
                metadata=[("authorization", "Bearer s3cret-b")],
            )
            assert recorded.events[0].actor == "bob"
            assert recorded.events[0].actor_authenticated
    finally:
        server.stop(0).wait()


def test_concurrent_writers_lose_nothing(
    app: LedgerApplication, grpc_channel: grpc.Channel
) -> None:
    """16 writers append to shared and to separate streams at once."""
    append(grpc_channel, ev.run_started("Shared", "1"))
    accepted: list[list[object]] = [[] for _ in range(16)]
    conflicts = [0] * 16

    def writer(n: int) -> None:
        stub = ledger(grpc_channel)
        run = f"w{n}"
        stub.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("Own", run)]))
        for i in range(20):
            own = ev.run_heartbeat("Own", run)
            own.expected_version = i + 1
            shared = ev.run_heartbeat("Shared", "1")
            batch = [own, shared] if i % 2 else [own]
            response = stub.Append(ledger_service_pb2.AppendRequest(events=batch))
            accepted[n].extend(e.event_id for e in response.events)
            guarded = ev.run_heartbeat("Shared", "1")
            guarded.expected_version = 1  # only one writer in all can win this
            try:
                response = stub.Append(ledger_service_pb2.AppendRequest(events=[guarded]))
                accepted[n].extend(e.event_id for e in response.events)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                conflicts[n] += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with app.database.read() as tx:
        rows = tx.query(
            "SELECT event_id, stream, stream_version, global_position FROM events "
            "ORDER BY global_position"
        )
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    all_accepted = {i for per_writer in accepted for i in per_writer}
    assert all_accepted <= set(ids)
    assert len(ids) == 1 + 16 + 16 * 20 + 16 * 10 + (16 * 20 - sum(conflicts))
    assert sum(conflicts) == 16 * 20 - 1
    assert [r[3] for r in rows] == list(range(1, len(rows) + 1))
    versions: dict[str, list[int]] = {}
    for _, stream, version, _ in rows:
        versions.setdefault(stream, []).append(version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), stream


def test_a_watcher_misses_no_event_under_concurrent_writers(grpc_channel: grpc.Channel) -> None:
    """Positions are assigned in commit order, so a watcher reading "after the last
    position seen" while 8 writers append cannot skip an event that commits late."""
    seen: list[int] = []
    done = threading.Event()
    expected = 8 * 30
    stream = ledger(grpc_channel).WatchEvents(ledger_service_pb2.WatchEventsRequest())

    def watch() -> None:
        for message in stream:
            seen.append(message.event.global_position)
            if len(seen) == expected:
                done.set()
                return

    threading.Thread(target=watch, daemon=True).start()

    def writer(n: int) -> None:
        stub = ledger(grpc_channel)
        stub.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("W", f"r{n}")]))
        for _ in range(29):
            stub.Append(ledger_service_pb2.AppendRequest(events=[ev.run_heartbeat("W", f"r{n}")]))

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert done.wait(timeout=30), f"watcher saw {len(seen)} of {expected} events"
    stream.cancel()
    assert seen == list(range(1, expected + 1))  # every event, once, in order


@pytest.mark.slow
def test_service_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'svc.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "service", "--database-url", url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stderr.readline() if process.stderr else ""
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            append(channel, ev.run_started("MyFlow", "1"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()


def test_service_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "service", "--database-url", "mysql://x", "migrate"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "is not supported" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledgerflow",
            "service",
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/none",
            "migrate",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "cannot open" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(  # a folder is not a ledger file
        [
            sys.executable,
            "-m",
            "ledgerflow",
            "service",
            "--database-url",
            f"sqlite://{tmp_path}",
            "migrate",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "cannot open" in result.stderr
    assert "Traceback" not in result.stderr


def _running(pid: int) -> bool:
    """Whether `pid` runs (an orphan that exited may linger as a zombie of init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _child_pids(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def start_two_workers(database_url: str) -> tuple[subprocess.Popen[str], str]:
    """`ledgerflow service --workers 2`, and the line it printed once listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "service", "--database-url", database_url,
         "--port", "0", "--workers", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    line = process.stderr.readline() if process.stderr else ""
    return process, line


@pytest.mark.slow
def test_service_workers_share_one_port_and_one_ledger(fresh_postgres_url: str) -> None:
    process, line = start_two_workers(fresh_postgres_url)
    try:
        assert "listening on 127.0.0.1:" in line and "2 workers" in line, line
        address = f"127.0.0.1:{int(line.split('127.0.0.1:')[1].split()[0])}"
        workers = _child_pids(process.pid)
        assert len(workers) == 2
        # Separate connections (as separate clients have), each landing on either worker.
        channels = [
            grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(6)
        ]
        append(channels[0], ev.run_started("MyFlow", "1"))
        watch = ledger(channels[0]).WatchEvents(
            ledger_service_pb2.WatchEventsRequest(after_position=1)
        )
        received = drain_in_background(watch)
        for index, channel in enumerate(channels):
            append(channel, ev.task_started("MyFlow", "1", "start", str(index)))
        # Every worker appends into the one ledger, in one order, and the watcher (in
        # one worker) hears the others' events too.
        positions = [received.get(timeout=10).global_position for _ in channels]
        assert positions == list(range(2, 2 + len(channels)))
        watch.cancel()
        for channel in channels:
            channel.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        process.kill()


@pytest.mark.slow
def test_when_a_worker_dies_the_service_stops(fresh_postgres_url: str) -> None:
    process, line = start_two_workers(fresh_postgres_url)
    try:
        assert "2 workers" in line, line
        doomed, survivor = sorted(_child_pids(process.pid))
        os.kill(doomed, signal.SIGKILL)
        assert process.wait(timeout=30) == 1
        assert f"worker {doomed} exited" in (process.stderr.read() if process.stderr else "")
        assert not Path(f"/proc/{survivor}").exists()
    finally:
        process.kill()


def test_service_workers_option_is_checked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "service", "--database-url",
         f"sqlite://{tmp_path / 'x.db'}", "--workers", "0"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--workers" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_when_the_service_is_killed_its_workers_stop(fresh_postgres_url: str) -> None:
    """kill -9 of the parent (no handler runs) must not leave workers serving the
    port unsupervised: the kernel tells them, and they drain and exit."""
    process, line = start_two_workers(fresh_postgres_url)
    try:
        assert "2 workers" in line, line
        workers = _child_pids(process.pid)
        assert len(workers) == 2
        process.kill()
        process.wait(timeout=10)
        wait_for(
            lambda: not any(_running(pid) for pid in workers),
            30,
            "the workers to exit after their parent was killed",
        )
    finally:
        process.kill()
