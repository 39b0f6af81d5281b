"""What the service refuses so that nothing is read that should not be and no client
starves the rest (docs/security.md): datastore keys that are paths, table events
outside the lease, huge queue names, graphs no run could finish."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from ledgerflow.engine.graph import structure_problem
from ledgerflow.v1 import (
    common_pb2,
    events_pb2,
    executor_service_pb2,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2,
    records_pb2,
)
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.application import WatchFilter
from ledgerflow_service.errors import FailedPrecondition, InvalidArgument, PermissionDenied

from tests import events as ev
from tests.service.test_orchestration import (
    ALICE,
    BIG,
    GRAPH,
    lease,
    report,
    start,
    step,
    submit,
    task_ref,
)

K = records_pb2.StepKind
PATHS = ["/etc/passwd", "../../secrets", "a/b", ".hidden", "x" * 129, "key with space"]


def event_count(app: LedgerApplication) -> int:
    with app.database.read() as tx:
        row = tx.query_one("SELECT COUNT(*) FROM events", ())
    assert row is not None
    return int(row[0])


def test_a_datastore_key_that_is_a_path_is_refused_everywhere(app: LedgerApplication) -> None:
    report(app, ev.run_started("MyFlow", "1"), ev.task_started("MyFlow", "1", "start", "1"))
    before = event_count(app)
    for key in PATHS:
        with pytest.raises(InvalidArgument, match="is not a datastore key"):
            report(app, ev.artifacts("MyFlow", "1", "start", "1", x=key))
        logs = events_pb2.Event(event_id=ev.new_id(), logs_recorded=events_pb2.LogsRecorded(
            task=ev.ref("MyFlow", "1", "start", "1"), stdout_key=key))  # fmt: skip
        with pytest.raises(InvalidArgument, match="is not a datastore key"):
            report(app, logs)
        with pytest.raises(InvalidArgument, match="is not a datastore key"):
            report(app, ev.run_started("MyFlow", "2", code_package_key=key))
    assert event_count(app) == before
    # A content hash, and the short names tests use, are keys.
    report(app, ev.artifacts("MyFlow", "1", "start", "1", x="af1349b9f5f9a1a6a0404dea36dcc949"))


def test_table_events_of_an_orchestrated_run_need_the_current_lease(
    app: LedgerApplication,
) -> None:
    submit(app)
    leased = lease(app)
    start(app, leased)
    ref = task_ref(leased)
    written = ev.table_written("Remote", "1", ref.step_name, ref.task_id, "alice", "prices")
    with pytest.raises(FailedPrecondition, match=r"lease \(none\) is not the task's current"):
        report(app, written)
    written.table_version_written.lease_id = leased.lease_id
    written.table_version_written.attempt = 1
    with pytest.raises(FailedPrecondition, match="not attempt 1's"):
        report(app, written)
    written.table_version_written.attempt = 0
    report(app, written)  # under the lease, for its attempt
    read = ev.table_read("Remote", "1", ref.step_name, ref.task_id, "alice", "prices", 1)
    with pytest.raises(FailedPrecondition, match="current lease"):
        report(app, read)


def test_a_queue_name_is_bounded(app: LedgerApplication) -> None:
    request = executor_service_pb2.LeaseTaskRequest(
        executor_id="exec-1", free=BIG, total=BIG, queues=["q" * 100_000]
    )
    with pytest.raises(InvalidArgument, match="at most 128"):
        app.lease_task(request, ALICE)
    graph = records_pb2.FlowGraph()
    graph.CopyFrom(GRAPH)
    graph.steps[1].queue = "q" * 129
    with pytest.raises(InvalidArgument, match="queue name is at most 128"):
        submit(app, graph=graph)


CYCLE = records_pb2.FlowGraph(steps=[
    step("start", K.STEP_KIND_LINEAR, "a"),
    step("a", K.STEP_KIND_LINEAR, "b"),
    step("b", K.STEP_KIND_SPLIT, "a", "end"),
    step("end", K.STEP_KIND_END),
])  # fmt: skip
UNJOINED = records_pb2.FlowGraph(steps=[
    step("start", K.STEP_KIND_SPLIT, "a", "b"),
    step("a", K.STEP_KIND_LINEAR, "end"),
    step("b", K.STEP_KIND_LINEAR, "end"),
    step("end", K.STEP_KIND_END),
])  # fmt: skip
UNJOINED_FOREACH = records_pb2.FlowGraph(steps=[
    step("start", K.STEP_KIND_FOREACH, "work"),
    step("work", K.STEP_KIND_LINEAR, "end"),
    step("end", K.STEP_KIND_END),
])  # fmt: skip


@pytest.mark.parametrize(
    ("graph", "problem"),
    [
        (CYCLE, "cycle through step 'a'"),
        (UNJOINED, "branches of step 'start' reach 'end'"),
        (UNJOINED_FOREACH, "branches of step 'start' reach 'end'"),
    ],
)
def test_a_graph_no_run_could_finish_is_refused(
    app: LedgerApplication, graph: records_pb2.FlowGraph, problem: str
) -> None:
    assert problem in (structure_problem(graph) or "")
    with pytest.raises(InvalidArgument, match=problem):
        submit(app, graph=graph)
    assert event_count(app) == 0
    # A local run only declares its graph (the SDK checked it): it is kept to draw.
    local = ev.run_started("Local", "1", declared_graph=graph)
    app.append(ledger_service_pb2.AppendRequest(events=[local]), ALICE)


def test_the_graphs_the_service_runs_pass_the_structure_check() -> None:
    assert structure_problem(GRAPH) is None
    assert structure_problem(ev.LINEAR_GRAPH) is None


def test_an_orchestrated_run_waiting_in_the_queue_is_not_lost(database_url: str) -> None:
    now = [0]
    app = LedgerApplication(open_database(database_url), lost_after_seconds=60,
                            read_clock_us=lambda: now[0])  # fmt: skip
    try:
        submit(app)  # queued, and no executor takes it
        report(app, ev.run_started("Local", "1"))  # a local run whose runtime went away
        now[0] = int(time.time() * 1e6) + 3600 * 1_000_000  # an hour without heartbeats
        status = {
            run.flow_name: run.status
            for run in app.list_runs(query_service_pb2.ListRunsRequest()).runs
        }
        assert status == {"Remote": common_pb2.STATUS_RUNNING, "Local": common_pb2.STATUS_LOST}
        lost = app.list_runs(query_service_pb2.ListRunsRequest(statuses=[common_pb2.STATUS_LOST]))
        assert [run.flow_name for run in lost.runs] == ["Local"]
    finally:
        app.close()


def test_an_executor_cannot_cancel_runs_nor_renew_anothers_lease(app: LedgerApplication) -> None:
    runner = Principal("runner", authenticated=True, roles=frozenset({"executor"}))
    alice = Principal("alice", authenticated=True)
    submit(app)
    leased = lease(app, executor="exec-1")
    start(app, leased)
    asked = events_pb2.RunCancelRequested(flow_name="Remote", run_id="1", reason="not mine")
    cancel = events_pb2.Event(event_id=ev.new_id(), run_cancel_requested=asked)
    with pytest.raises(PermissionDenied, match="may not write to run Remote/1 of user 'alice'"):
        app.append(ledger_service_pb2.AppendRequest(events=[cancel]), runner)
    ref = task_ref(leased)
    before = event_count(app)
    renewal = executor_service_pb2.RenewLeaseRequest(
        executor_id="exec-2", flow_name=ref.flow_name, run_id=ref.run_id,
        step_name=ref.step_name, task_id=ref.task_id, attempt=0, lease_id=leased.lease_id,
    )  # fmt: skip
    answer = app.renew_lease(renewal, runner)
    assert not answer.keep_running and "granted to executor exec-1, not exec-2" in answer.reason
    assert event_count(app) == before
    renewal.executor_id = "exec-1"
    assert app.renew_lease(renewal, runner).keep_running
    app.append(ledger_service_pb2.AppendRequest(events=[cancel]), alice)  # her own run


def test_a_lease_id_read_in_the_audit_gives_a_reader_nothing(app: LedgerApplication) -> None:
    """Lease ids are in the audit, for every reader: one is of use only with the executor
    role (a task event of someone else's run needs it), and executors lease any task
    anyway. A reader who is not one cannot write to another user's run with it."""
    bob = Principal("bob", authenticated=True)
    submit(app)
    leased = lease(app)
    start(app, leased)
    stolen = events_pb2.Event(event_id=ev.new_id(), task_succeeded=events_pb2.TaskSucceeded(
        task=task_ref(leased), attempt=0, lease_id=leased.lease_id))  # fmt: skip
    with pytest.raises(PermissionDenied, match="may not write to run Remote/1 of user 'alice'"):
        app.append(ledger_service_pb2.AppendRequest(events=[stolen]), bob)


def test_a_watcher_from_the_start_reads_big_events_a_few_mib_at_a_time(
    app: LedgerApplication, grpc_channel: grpc.Channel
) -> None:
    big = json.dumps("x" * 900_000)  # each RunStarted is ~0.9 MB
    for run in range(12):
        report(app, ev.run_started("Big", str(run), parameters={"p": big}))
    for wants in (None, WatchFilter(event_types=frozenset({"RunStarted"}))):
        position, seen = 0, []
        while True:
            chunk, head, more = app.read_watch_chunk(position, wants, 500)
            # At most 1 MiB of payload a read (and one event more than that at most).
            assert sum(e.ByteSize() for e, _ in chunk) <= 1024 * 1024 + 1_000_000
            seen.extend(e.global_position for e, _ in chunk)
            position = max(head, seen[-1] if seen else 0)
            if not more:
                break
        assert seen == list(range(1, 13))
    stream = ledger_service_pb2_grpc.LedgerServiceStub(grpc_channel).WatchEvents(
        ledger_service_pb2.WatchEventsRequest(), timeout=30
    )
    watched = [answer.event.global_position for _, answer in zip(range(12), stream, strict=False)]
    stream.cancel()
    assert watched == list(range(1, 13))


def test_a_foreach_splits_into_at_most_ten_thousand_items(app: LedgerApplication) -> None:
    """One TaskSucceeded of 100,000 items held every writer for 16 s while the process
    manager queued them: the count is capped before any work, on any run."""
    report(app, ev.run_started("Local", "1"), ev.task_started("Local", "1", "start", "1"))
    huge = ev.task_succeeded("Local", "1", "start", "1")
    huge.task_succeeded.num_splits = 10_001
    with pytest.raises(InvalidArgument, match="at most 10,000 items"):
        report(app, huge)
    graph = records_pb2.FlowGraph()
    graph.CopyFrom(GRAPH)
    graph.steps[4].max_num_splits = 10_001  # the foreach step
    with pytest.raises(InvalidArgument, match="max_num_splits is at most 10,000"):
        submit(app, graph=graph)
    huge.task_succeeded.num_splits = 10_000  # the cap itself is allowed
    report(app, huge)
