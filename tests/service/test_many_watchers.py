"""Many long-lived watch streams: idle ones cost no thread, so appends and queries stay
fast; a server-wide maximum refuses more with RESOURCE_EXHAUSTED; a slow watcher
neither loses events nor grows the server's buffer past its bound."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import events as ev
import grpc
import pytest
from ledgerflow.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2,
    query_service_pb2_grpc,
)
from ledgerflow_service import LedgerApplication
from ledgerflow_service.api.server import RunningServer, build_server
from waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served(app: LedgerApplication) -> Iterator[tuple[RunningServer, str]]:
    server, port = build_server(app, port=0, max_workers=32)
    yield server, f"127.0.0.1:{port}"
    server.stop(0).wait()


def watch(channel: grpc.Channel, **request: object) -> grpc.Future:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    return stub.WatchEvents(ledger_service_pb2.WatchEventsRequest(**request))  # type: ignore[arg-type]


@contextmanager
def served_beside_another(
    url: str, poll_seconds: float
) -> Iterator[tuple[LedgerApplication, LedgerApplication, int, list[list[str]]]]:
    """Two service processes on one Postgres ledger, as far as watchers can tell: one
    served on a port (its followers' reads recorded), one appending elsewhere. Yields
    both, the port, and the reads."""
    from ledgerflow_service import open_database

    here = LedgerApplication(open_database(url), watch_poll_seconds=poll_seconds)
    elsewhere = LedgerApplication(open_database(url))
    follower_reads = spy_on_follower(here)
    server, port = build_server(here, port=0)
    try:
        yield here, elsewhere, port, follower_reads
    finally:
        server.stop(0).wait()
        here.close()
        elsewhere.close()


def spy_on_follower(app: LedgerApplication) -> list[list[str]]:
    """Records the reads of `app`'s watch-hub followers: the run of each event read."""
    reads: list[list[str]] = []
    read_chunk = app.read_runs_chunk

    def recorded(*args: object) -> tuple[list[tuple[object, str]], int, bool]:
        chunk, head, more = read_chunk(*args)  # type: ignore[arg-type]
        reads.append([run for _, run in chunk])
        return chunk, head, more

    app.read_runs_chunk = recorded  # type: ignore[method-assign]
    return reads


def test_hundreds_of_idle_watchers_leave_appends_and_queries_fast(
    served: tuple[RunningServer, str],
) -> None:
    server, address = served
    channels = [grpc.insecure_channel(address) for _ in range(4)]
    streams = [
        watch(channels[i % 4], run_pathspec=f"Idle/{i}", after_position=0) for i in range(400)
    ]
    try:
        wait_for(lambda: server.watcher_count == 400, 30, "400 watchers registered")
        with grpc.insecure_channel(address) as channel:
            ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            queries = query_service_pb2_grpc.QueryServiceStub(channel)
            ledger.Append(
                ledger_service_pb2.AppendRequest(events=[ev.run_started("MyFlow", "1")]),
                timeout=2.0,
            )
            for task in range(50):  # far more than the 32 threads of the old server
                ledger.Append(
                    ledger_service_pb2.AppendRequest(
                        events=[ev.task_started("MyFlow", "1", "start", str(task))]
                    ),
                    timeout=1.0,
                )
                queries.GetFlow(query_service_pb2.GetFlowRequest(flow_name="MyFlow"), timeout=1.0)
        assert server.watcher_count == 400
    finally:
        for stream in streams:
            stream.cancel()
        for channel in channels:
            channel.close()
    wait_for(lambda: server.watcher_count == 0, 10, "cancelled watchers are let go")


def test_watchers_beyond_the_maximum_are_resource_exhausted(app: LedgerApplication) -> None:
    server, port = build_server(app, port=0, max_watchers=5)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            held = [watch(channel) for _ in range(5)]
            wait_for(lambda: server.watcher_count == 5, 10, "5 watchers registered")
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(watch(channel)))  # type: ignore[call-overload]
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-watchers" in (caught.value.details() or "")
            held[0].cancel()
            wait_for(lambda: server.watcher_count == 4, 10, "a place frees up")
            again = watch(channel)
            wait_for(lambda: server.watcher_count == 5, 10, "a new watcher is accepted")
            for stream in [*held, again]:
                stream.cancel()
    finally:
        server.stop(0).wait()


def test_a_slow_watcher_gets_every_event_and_the_buffer_stays_bounded(
    served: tuple[RunningServer, str], app: LedgerApplication
) -> None:
    server, address = served
    hub = server.transport.hub
    assert hub is not None
    hub.buffer_bytes = 50_000
    received: queue.Queue[int] = queue.Queue()
    largest_buffer = [0]

    def slow_reader(stream: grpc.Future) -> None:
        try:
            for message in stream:  # type: ignore[attr-defined]
                received.put(message.event.global_position)
                largest_buffer[0] = max(largest_buffer[0], hub._buffered_bytes)
                time.sleep(0.005)
        except grpc.RpcError:
            pass

    with grpc.insecure_channel(address) as channel:
        stream = watch(channel)
        threading.Thread(target=slow_reader, args=(stream,), daemon=True).start()
        wait_for(lambda: server.watcher_count == 1, 10, "the watcher registered")
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        ledger.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("F", "1")]))
        for task in range(40):
            failed = ev.task_failed("F", "1", "start", str(task))
            failed.task_failed.traceback = "x" * 10_000
            ledger.Append(ledger_service_pb2.AppendRequest(
                events=[ev.task_started("F", "1", "start", str(task)), failed]))  # fmt: skip
        positions = [received.get(timeout=30) for _ in range(81)]
        stream.cancel()
    assert positions == list(range(1, 82))  # each once, in order
    assert largest_buffer[0] <= 50_000 + 11_000  # the bound, plus at most one event


def test_clients_that_stop_reading_hold_up_nobody_else(
    served: tuple[RunningServer, str],
) -> None:
    """More clients than the hub has sender threads open streams and never read them:
    once their flow-control windows are full, each send to them blocks its thread. A
    client that reads still gets every event, in order, while they hang: the hub starts
    threads beside the blocked ones."""
    from ledgerflow_service.api import watch_senders

    server, address = served
    hub = server.transport.hub
    assert hub is not None
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    stalled_count = watch_senders.BASE_THREADS + 2
    stalled_channels = [
        grpc.insecure_channel(address, options=own_connection) for _ in range(stalled_count)
    ]
    stalled = [watch(channel, from_head=True) for channel in stalled_channels]
    received: queue.Queue[int] = queue.Queue()

    def read(stream: grpc.Future) -> None:
        with contextlib.suppress(grpc.RpcError):
            for message in stream:  # type: ignore[attr-defined]
                received.put(message.event.global_position)

    try:
        with grpc.insecure_channel(address, options=own_connection) as channel:
            reading = watch(channel, from_head=True)
            threading.Thread(target=read, args=(reading,), daemon=True).start()
            wait_for(lambda: server.watcher_count == stalled_count + 1, 10, "the watchers")
            ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            ledger.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("F", "1")]))
            for task in range(75):  # 200 KB each: 15 MB, past any window and outbox
                failed = ev.task_failed("F", "1", "start", str(task))
                failed.task_failed.traceback = "x" * 200_000
                ledger.Append(ledger_service_pb2.AppendRequest(
                    events=[ev.task_started("F", "1", "start", str(task)), failed]))  # fmt: skip
            positions = [received.get(timeout=30) for _ in range(151)]
            assert positions == list(range(1, 152))
            assert hub._senders.thread_count > watch_senders.BASE_THREADS
            reading.cancel()
    finally:
        for stream in stalled:
            stream.cancel()
        for channel in stalled_channels:
            channel.close()


def test_watchers_whose_outboxes_fill_miss_nothing_and_get_nothing_twice(
    served: tuple[RunningServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outboxes of two responses: watchers fill theirs at once, are unparked, and go on
    from the buffer where they stopped, while appends keep coming from two writers.
    Every watcher (of everything, of one run, slow or not) gets exactly its events,
    in order."""
    from ledgerflow_service.api import watch_senders

    monkeypatch.setattr(watch_senders, "OUTBOX_RESPONSES", 2)
    server, address = served
    streams: dict[str, list[int]] = {}

    def read(name: str, stream: grpc.Future, count: int, pause: float) -> None:
        got = streams.setdefault(name, [])
        with contextlib.suppress(grpc.RpcError):
            for message in stream:  # type: ignore[attr-defined]
                got += [e.global_position for e in message.events or [message.event]]
                time.sleep(pause)
                if len(got) == count:
                    return

    def write(run: str) -> None:
        with grpc.insecure_channel(address) as channel:
            ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            ledger.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("F", run)]))
            for task in range(60):
                ledger.Append(ledger_service_pb2.AppendRequest(
                    events=[ev.task_started("F", run, "start", str(task))]))  # fmt: skip

    with grpc.insecure_channel(address) as channel:
        watchers = [
            (f"{kind}-{pause}", watch(channel, **request), count, pause)
            for pause in (0.0, 0.002)
            for kind, request, count in [
                ("all", {"from_head": True}, 122),
                ("run1", {"run_pathspec": "F/1", "from_head": True}, 61),
                ("batched", {"from_head": True, "batch_events": 8}, 122),
            ]
        ]
        readers = [threading.Thread(target=read, args=w, daemon=True) for w in watchers]
        for reader in readers:
            reader.start()
        wait_for(lambda: server.watcher_count == len(watchers), 10, "the watchers")
        writers = [threading.Thread(target=write, args=(run,)) for run in ("1", "2")]
        for writer in writers:
            writer.start()
        for thread in writers + readers:
            thread.join(60)
        recorded = audit_positions(channel)
        for _, stream, _, _ in watchers:
            stream.cancel()
    run1 = [position for position, run in recorded if run == "F/1"]
    for name in ("all-0.0", "all-0.002", "batched-0.0", "batched-0.002"):
        assert streams[name] == [position for position, _ in recorded], name
    for name in ("run1-0.0", "run1-0.002"):
        assert streams[name] == run1, name


def test_a_reader_that_falls_behind_catches_up_in_batches(
    served: tuple[RunningServer, str],
) -> None:
    """A stream that asked for batches of 4 and stops reading for a while: what waits
    for it meanwhile comes in responses of several events (in `events`, never more than
    4, never in `event`), every event once and in order. A stream that did not ask gets
    one event a response, in `event`."""
    server, address = served
    with grpc.insecure_channel(address) as channel:
        batched = watch(channel, from_head=True, batch_events=4)
        single = watch(channel, from_head=True)
        wait_for(lambda: server.watcher_count == 2, 10, "the watchers")
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        ledger.Append(ledger_service_pb2.AppendRequest(events=[ev.run_started("F", "1")]))
        first = next(batched)  # type: ignore[call-overload]
        for task in range(20):  # 200 KB each: 4 MB, past the stream's window, not read
            failed = ev.task_failed("F", "1", "start", str(task))
            failed.task_failed.traceback = "x" * 200_000
            ledger.Append(ledger_service_pb2.AppendRequest(
                events=[ev.task_started("F", "1", "start", str(task)), failed]))  # fmt: skip
        responses, got = [first], [e.global_position for e in first.events]
        while len(got) < 41 and len(responses) < 41:
            responses.append(next(batched))  # type: ignore[call-overload]
            got += [e.global_position for e in responses[-1].events]
        singles = [next(single) for _ in range(41)]  # type: ignore[call-overload]
        batched.cancel()
        single.cancel()
    assert got == list(range(1, 42))
    sizes = [len(r.events) for r in responses if r.events]
    assert max(sizes) > 1 and max(sizes) <= 4, sizes
    assert not any(r.HasField("event") for r in responses)
    assert [r.event.global_position for r in singles] == list(range(1, 42))
    assert not any(r.events for r in singles)


def audit_positions(channel: grpc.Channel) -> list[tuple[int, str]]:
    """Every recorded event's position and run, in order."""
    from ledgerflow.v1 import audit_service_pb2, audit_service_pb2_grpc, common_pb2

    audit = audit_service_pb2_grpc.AuditServiceStub(channel)
    page = common_pb2.PageRequest(page_size=1000)
    events = audit.ListEvents(audit_service_pb2.ListEventsRequest(page=page)).events
    return [(e.global_position, "/".join(e.stream.split("/")[:2])) for e in events]


def test_live_events_equal_the_recorded_ones(served: tuple[RunningServer, str]) -> None:
    """Events an append hands to the watchers (without reading them back) are exactly
    what the ledger recorded, envelope and payload."""
    from ledgerflow.v1 import audit_service_pb2, audit_service_pb2_grpc

    server, address = served
    with grpc.insecure_channel(address) as channel:
        stream = watch(channel)
        wait_for(lambda: server.watcher_count == 1, 10, "the watcher registered")
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        started = ev.run_started("F", "1")
        ledger.Append(
            ledger_service_pb2.AppendRequest(events=[started, started], claimed_user="alice")
        )
        ledger.Append(ledger_service_pb2.AppendRequest(events=[
            ev.task_started("F", "1", "start", "1"), ev.artifacts("F", "1", "start", "1", x="k"),
        ]), metadata=[("ledgerflow-user", "bob")])  # fmt: skip
        live = [next(stream).event for _ in range(3)]  # type: ignore[call-overload]
        stream.cancel()
        recorded = audit_service_pb2_grpc.AuditServiceStub(channel).ListEvents(
            audit_service_pb2.ListEventsRequest()
        )
    assert live == list(recorded.events)
    assert [e.actor for e in live] == ["alice", "bob", "bob"]


def test_watchers_of_all_runs_get_just_their_event_types(
    served: tuple[RunningServer, str],
) -> None:
    """The hub finds the watchers of all runs by the event types they want: each
    still gets exactly its types, live, beside one that wants everything and one that
    wants one run."""
    server, address = served
    with grpc.insecure_channel(address) as channel:
        started = watch(channel, event_types=["TaskStarted"], from_head=True)
        failed_or_started = watch(channel, event_types=["TaskFailed", "RunStarted"],
                                  from_head=True)  # fmt: skip
        everything = watch(channel, from_head=True)
        one_run = watch(channel, run_pathspec="F/2", from_head=True)
        wait_for(lambda: server.watcher_count == 4, 10, "the watchers registered")
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        appended = [
            ev.run_started("F", "1"), ev.task_started("F", "1", "start", "1"),
            ev.run_started("F", "2"), ev.task_started("F", "2", "start", "2"),
            ev.task_failed("F", "2", "start", "2"),
        ]  # fmt: skip
        for event in appended:
            ledger.Append(ledger_service_pb2.AppendRequest(events=[event]))

        def kinds(stream: grpc.Future, count: int) -> list[str]:
            got = [next(stream).event.WhichOneof("payload") for _ in range(count)]  # type: ignore[call-overload]
            stream.cancel()
            return got

        assert kinds(started, 2) == ["task_started", "task_started"]
        assert kinds(failed_or_started, 3) == ["run_started", "run_started", "task_failed"]
        assert kinds(everything, 5) == [e.WhichOneof("payload") for e in appended]
        assert kinds(one_run, 3) == ["run_started", "task_started", "task_failed"]


def test_appends_no_watcher_wants_leave_no_hole(served: tuple[RunningServer, str]) -> None:
    """Appends that concern no watcher are not handed to the hub; the gap they leave
    is filled from the database as soon as a wanted event arrives."""
    _, address = served
    with grpc.insecure_channel(address) as channel:
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        ledger.Append(ledger_service_pb2.AppendRequest(
            events=[ev.run_started("F", "1"), ev.run_started("F", "2")]))  # fmt: skip
        stream = watch(channel, run_pathspec="F/2", after_position=0)
        assert next(stream).event.event_type == "RunStarted"  # type: ignore[call-overload]
        for task in range(5):  # nobody watches run 1
            ledger.Append(ledger_service_pb2.AppendRequest(
                events=[ev.task_started("F", "1", "start", str(task))]))  # fmt: skip
        ledger.Append(ledger_service_pb2.AppendRequest(
            events=[ev.task_started("F", "2", "start", "1")]))  # fmt: skip
        live = next(stream).event  # type: ignore[call-overload]
        assert (live.event_type, live.global_position) == ("TaskStarted", 8)
        everything = watch(channel, after_position=0)
        positions = [next(everything).event.global_position for _ in range(8)]  # type: ignore[call-overload]
        assert positions == list(range(1, 9))
        stream.cancel()
        everything.cancel()


def test_a_catch_up_read_never_claims_past_what_it_saw(app: LedgerApplication) -> None:
    """A watcher's database read returns a head it may move to: while another thread
    appends, every event of the watched run must still arrive (each statement of a
    read has its own snapshot, so the head is read before the events)."""
    from ledgerflow.v1 import ledger_service_pb2 as api
    from ledgerflow_service import Principal
    from ledgerflow_service.application import WatchFilter

    who = Principal("alice", False)
    app.append(api.AppendRequest(events=[ev.run_started("F", "a"), ev.run_started("F", "b")]), who)
    done = threading.Event()

    def writer() -> None:
        for _ in range(150):
            app.append(api.AppendRequest(events=[ev.run_heartbeat("F", "b"),
                                                 ev.run_heartbeat("F", "a")]), who)  # fmt: skip
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    wants = WatchFilter("F/a")
    position, seen = 0, []
    while True:
        finished = done.is_set()
        chunk, head, _ = app.read_watch_chunk(position, wants, 500)
        seen.extend(event.global_position for event, _ in chunk)
        position = max(head, seen[-1] if seen else 0)
        if finished and not chunk:
            break
    with app.database.read() as tx:
        rows = tx.query("SELECT global_position FROM events WHERE run_pathspec = 'F/a'")
    expected = sorted(r[0] for r in rows)
    assert seen == expected and len(seen) == 151


def test_appends_elsewhere_to_runs_nobody_here_watches_cost_no_read(
    fresh_postgres_url: str,
) -> None:
    """Another process's appends reach this one as notifications naming their runs.
    Those no watcher here waits for are passed over (before, each one cost every other
    service process a database read: about 45% more service CPU per single append
    with 1,000 idle watchers); a wanted one is delivered at once, the gap before it
    filled."""
    from ledgerflow.v1 import ledger_service_pb2 as api
    from ledgerflow_service import Principal

    who = Principal("alice", False)
    # Polling every minute: within this test, only notifications wake the follower.
    with served_beside_another(fresh_postgres_url, 60) as (here, elsewhere, port, follower_reads):
        # Appended here, so that no notification of them can wake the follower later.
        here.append(api.AppendRequest(events=[ev.run_started("F", "1"),
                                              ev.run_started("F", "2")]), who)  # fmt: skip
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = watch(channel, run_pathspec="F/2", after_position=0)
            assert next(stream).event.global_position == 2  # type: ignore[call-overload]
            wait_for(lambda: len(follower_reads) == 1, 10, "the follower's first read")
            reads_before = len(follower_reads)
            for task in range(20):
                elsewhere.append(api.AppendRequest(
                    events=[ev.task_started("F", "1", "start", str(task))]), who)  # fmt: skip
            time.sleep(1.0)  # time for any notification to arrive and be acted on
            assert len(follower_reads) == reads_before

            elsewhere.append(api.AppendRequest(
                events=[ev.task_started("F", "2", "start", "1")]), who)  # fmt: skip
            started = time.monotonic()
            live = next(stream).event  # type: ignore[call-overload]
            assert (live.event_type, live.global_position) == ("TaskStarted", 23)
            assert time.monotonic() - started < 10  # the notification, not the minute's poll
            assert len(follower_reads) > reads_before

            # An append of runs too many to name in a notification wakes every follower.
            reads_before = len(follower_reads)
            many = [ev.run_started("F", f"run-{i:03}-{'x' * 90}") for i in range(100)]
            elsewhere.append(api.AppendRequest(events=many), who)
            wait_for(lambda: len(follower_reads) > reads_before, 10, "a read after 100 runs")
            stream.cancel()


def test_a_listener_that_reconnects_reads_what_nobody_told_it(fresh_postgres_url: str) -> None:
    """Notifications sent while a process's listener is disconnected are lost. Once it
    listens again, its followers read what they may have missed: a watcher does not
    wait for the backstop poll (ten seconds by default; a minute here)."""
    import psycopg
    from ledgerflow.v1 import ledger_service_pb2 as api
    from ledgerflow_service import Principal

    who = Principal("alice", False)
    listening = (
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND query = 'LISTEN ledgerflow_events'"
    )
    with (
        served_beside_another(fresh_postgres_url, 60) as (_, elsewhere, port, _reads),
        psycopg.connect(fresh_postgres_url, autocommit=True) as admin,
    ):
        elsewhere.append(api.AppendRequest(events=[ev.run_started("F", "1")]), who)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = watch(channel, run_pathspec="F/1", after_position=0)
            assert next(stream).event.global_position == 1  # type: ignore[call-overload]
            wait_for(lambda: admin.execute(listening).fetchone() is not None, 10, "a listener")
            (listener,) = admin.execute(listening).fetchone()  # type: ignore[misc]
            terminated = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (listener,))
            assert terminated.fetchone() == (True,)
            # Told to nobody here: the listener reconnects a second after its loss.
            elsewhere.append(api.AppendRequest(events=[ev.run_heartbeat("F", "1")]), who)
            started = time.monotonic()
            live = next(stream).event  # type: ignore[call-overload]
            assert (live.event_type, live.global_position) == ("RunHeartbeat", 2)
            assert time.monotonic() - started < 30  # the reconnection, not the minute's poll
            new_listener = admin.execute(listening).fetchone()
            assert new_listener is not None and new_listener[0] != listener
            stream.cancel()


def test_a_follower_reads_only_the_watched_runs_and_late_watchers_miss_nothing(
    fresh_postgres_url: str,
) -> None:
    """The follower's reads (its poll included) bring only the events of runs watched
    here: idle watchers had made every service process read back everything appended
    anywhere (a third of the service's CPU under batch ingest). A watcher arriving
    later for another run, or for all runs, still gets every event from its start."""
    from ledgerflow.v1 import ledger_service_pb2 as api
    from ledgerflow_service import Principal

    who = Principal("alice", False)
    with served_beside_another(fresh_postgres_url, 0.2) as (_, elsewhere, port, follower_reads):
        elsewhere.append(api.AppendRequest(events=[ev.run_started("F", "quiet"),
                                                   ev.run_started("F", "busy")]), who)  # fmt: skip
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            quiet = watch(channel, run_pathspec="F/quiet", after_position=0)
            assert next(quiet).event.event_type == "RunStarted"  # type: ignore[call-overload]
            for task in range(30):  # over more than a second: several polls
                elsewhere.append(api.AppendRequest(
                    events=[ev.task_started("F", "busy", "start", str(task))]), who)  # fmt: skip
                time.sleep(0.05)
            elsewhere.append(api.AppendRequest(events=[ev.run_heartbeat("F", "quiet")]), who)
            live = next(quiet).event  # type: ignore[call-overload]
            assert (live.event_type, live.global_position) == ("RunHeartbeat", 33)
            assert all("F/busy" not in runs for runs in follower_reads)

            # Late watchers, of the run nobody watched and of every run, from the start.
            busy = watch(channel, run_pathspec="F/busy", after_position=0)
            everything = watch(channel, after_position=0)
            busy_positions = [next(busy).event.global_position for _ in range(31)]  # type: ignore[call-overload]
            assert busy_positions == [2, *range(3, 33)]
            all_positions = [next(everything).event.global_position for _ in range(33)]  # type: ignore[call-overload]
            assert all_positions == list(range(1, 34))
            # And they go on live.
            elsewhere.append(api.AppendRequest(events=[ev.run_heartbeat("F", "busy")]), who)
            assert next(busy).event.global_position == 34  # type: ignore[call-overload]
            assert next(everything).event.global_position == 34  # type: ignore[call-overload]
            for stream in (quiet, busy, everything):
                stream.cancel()
