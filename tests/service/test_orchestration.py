"""The service as orchestrator (run --remote): the process manager queues what follows,
leases hand each attempt to one executor, fencing refuses a lost lease's events, and
every decision is an event a rebuild folds into the same read models. On SQLite and
on Postgres, through the application layer the gRPC servicers call."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ledgerflow.engine import MAX_LOST_ATTEMPTS
from ledgerflow.v1 import (
    events_pb2,
    executor_service_pb2,
    ledger_service_pb2,
    query_service_pb2,
    records_pb2,
)
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from waiting import wait_for

from tests import events as ev

ALICE = Principal("alice", authenticated=False)
K = records_pb2.StepKind
BIG = executor_service_pb2.Capacity(cpu=64, memory_mb=1 << 20, gpu=8)


def step(name: str, kind: int, *next_steps: str, **extra: object) -> records_pb2.StepSpec:
    resources = records_pb2.Resources(cpu=1, memory_mb=512)
    return records_pb2.StepSpec(
        name=name, kind=kind, next_steps=list(next_steps), resources=resources, **extra
    )  # type: ignore[arg-type]


# start -> (a, b) -> join -> fan (foreach) -> work -> gather -> end
GRAPH = records_pb2.FlowGraph(
    steps=[
        step("start", K.STEP_KIND_SPLIT, "a", "b"),
        step("a", K.STEP_KIND_LINEAR, "join"),
        step("b", K.STEP_KIND_LINEAR, "join", retries=1),
        step("join", K.STEP_KIND_JOIN, "fan", in_steps=["a", "b"], closes="start"),
        step("fan", K.STEP_KIND_FOREACH, "work"),
        step("work", K.STEP_KIND_LINEAR, "gather"),
        step("gather", K.STEP_KIND_JOIN, "end", in_steps=["work"], closes="fan"),
        step("end", K.STEP_KIND_END),
    ]
)


def submit(app: LedgerApplication, run_id: str = "1", graph: records_pb2.FlowGraph = GRAPH) -> None:
    request = ledger_service_pb2.AppendRequest(
        events=[ev.run_started("Remote", run_id, graph=graph)]
    )
    app.append(request, ALICE)


def lease(
    app: LedgerApplication,
    executor: str = "exec-1",
    free: executor_service_pb2.Capacity = BIG,
    lease_seconds: int = 0,
) -> executor_service_pb2.LeaseTaskResponse:
    request = executor_service_pb2.LeaseTaskRequest(
        executor_id=executor, free=free, total=free, lease_seconds=lease_seconds
    )
    return app.lease_task(request, ALICE)


def lapse(app: LedgerApplication) -> None:
    """Waits for a one-second lease to run out, and the sweeper to expire it."""
    wait_for(lambda: app.leases.expire() == 1, 10, "the lease to expire")


def renew(
    app: LedgerApplication, leased: executor_service_pb2.LeaseTaskResponse
) -> executor_service_pb2.RenewLeaseResponse:
    t = leased.task
    return app.renew_lease(
        executor_service_pb2.RenewLeaseRequest(
            executor_id="exec-1", flow_name=t.flow_name, run_id=t.run_id,
            step_name=t.step_name, task_id=t.task_id, attempt=t.attempt,
            lease_id=leased.lease_id,
        ),
        ALICE,
    )  # fmt: skip


def report(app: LedgerApplication, *events: events_pb2.Event) -> None:
    app.append(ledger_service_pb2.AppendRequest(events=list(events)), ALICE)


def task_ref(leased: executor_service_pb2.LeaseTaskResponse) -> events_pb2.TaskRef:
    t = leased.task
    return events_pb2.TaskRef(
        flow_name=t.flow_name, run_id=t.run_id, step_name=t.step_name, task_id=t.task_id
    )


def start(app: LedgerApplication, leased: executor_service_pb2.LeaseTaskResponse) -> None:
    report(
        app,
        events_pb2.Event(
            event_id=ev.new_id(),
            task_started=events_pb2.TaskStarted(
                task=task_ref(leased),
                attempt=leased.task.attempt,
                lease_id=leased.lease_id,
                input_pathspecs=leased.task.input_pathspecs,
                foreach_stack=leased.task.foreach_stack,
            ),
        ),
    )


def succeed(
    app: LedgerApplication,
    leased: executor_service_pb2.LeaseTaskResponse,
    num_splits: int = 0,
    switch_step: str = "",
) -> None:
    start(app, leased)
    report(
        app,
        events_pb2.Event(
            event_id=ev.new_id(),
            task_succeeded=events_pb2.TaskSucceeded(
                task=task_ref(leased),
                attempt=leased.task.attempt,
                lease_id=leased.lease_id,
                num_splits=num_splits,
                switch_step=switch_step,
            ),
        ),
    )


def fail(app: LedgerApplication, leased: executor_service_pb2.LeaseTaskResponse) -> None:
    start(app, leased)
    report(
        app,
        events_pb2.Event(
            event_id=ev.new_id(),
            task_failed=events_pb2.TaskFailed(
                task=task_ref(leased),
                attempt=leased.task.attempt,
                lease_id=leased.lease_id,
                error_type="ValueError",
                error_message="bad",
            ),
        ),
    )


def run_events(app: LedgerApplication, run_id: str = "1") -> list[events_pb2.Event]:
    with app.database.read() as tx:
        from ledgerflow_service.store.events import read_events

        return read_events(tx, "run_pathspec = ?", [f"Remote/{run_id}"], 10_000)


def types(app: LedgerApplication, run_id: str = "1") -> list[str]:
    return [e.event_type for e in run_events(app, run_id)]


def read_models(app: LedgerApplication) -> dict[str, list[tuple[object, ...]]]:
    with app.database.read() as tx:
        return {
            table: sorted(tuple(r) for r in tx.query(f"SELECT * FROM {table}"))
            for table in ("runs", "tasks", "attempts", "queue", "orchestrated_runs")
        }


def run_status(app: LedgerApplication, run_id: str = "1") -> tuple[bool, bool]:
    """(finished, succeeded)."""
    with app.database.read() as tx:
        row = tx.query_one(
            "SELECT finished_at_us, end_succeeded FROM runs WHERE pathspec = ?",
            [f"Remote/{run_id}"],
        )
    assert row is not None
    return row[0] is not None, bool(row[1])


def test_a_submitted_run_is_orchestrated_to_its_end_and_rebuilds_the_same(
    app: LedgerApplication,
) -> None:
    submit(app)
    asked = query_service_pb2.GetRunRequest(flow_name="Remote", run_id="1", include_graph=True)
    assert app.get_run(asked).graph == GRAPH  # for readers too, such as the web UI
    first = lease(app)
    assert first.task.step_name == "start" and first.step.kind == K.STEP_KIND_SPLIT
    assert first.run.user == "alice"
    succeed(app, first)
    branches = [lease(app), lease(app)]
    assert sorted(b.task.step_name for b in branches) == ["a", "b"]
    assert all(list(b.task.input_pathspecs) == ["Remote/1/start/1"] for b in branches)
    assert not lease(app).HasField("task")  # the join waits for both branches
    for leased in branches:
        succeed(app, leased)
    join = lease(app)
    assert join.task.step_name == "join"
    assert list(join.task.input_pathspecs) == ["Remote/1/a/2", "Remote/1/b/3"]
    succeed(app, join)
    fan = lease(app)
    succeed(app, fan, num_splits=3)
    items = [lease(app) for _ in range(3)]
    assert [i.task.foreach_stack[-1].index for i in items] == [0, 1, 2]
    assert all(i.task.foreach_stack[-1].num_splits == 3 for i in items)
    for leased in reversed(items):
        succeed(app, leased)
    gather = lease(app)
    assert gather.task.step_name == "gather" and not gather.task.foreach_stack
    assert [p.rsplit("/", 1)[1] for p in gather.task.input_pathspecs] == [
        i.task.task_id for i in items
    ]  # in item order, whatever order they finished in
    succeed(app, gather)
    succeed(app, lease(app))  # end
    assert run_status(app) == (True, True)
    history = run_events(app)
    assert history[-1].event_type == "RunFinished" and history[-1].actor == "ledgerflow-service"
    assert types(app).count("TaskQueued") == 10 and types(app).count("TaskLeased") == 10

    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def succeeded_event(leased: executor_service_pb2.LeaseTaskResponse) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=ev.new_id(),
        task_succeeded=events_pb2.TaskSucceeded(
            task=task_ref(leased), attempt=leased.task.attempt, lease_id=leased.lease_id
        ),
    )


@pytest.mark.parametrize("named", [500, 0], ids=["counted", "rows-read"])
def test_a_join_is_queued_once_when_its_last_input_is_done_however_outcomes_arrive(
    app: LedgerApplication, monkeypatch: pytest.MonkeyPatch, named: int
) -> None:
    """Each arrival counts the join's done inputs (the rows the append's fold holds as
    it has them, the rest as stored); `rows-read`: past the rows a count may name, it
    reads them. Outcomes come one an append and several in one append; a failed
    input holds the join back until its retry succeeds."""
    from ledgerflow_service.orchestration import process_manager

    monkeypatch.setattr(process_manager, "_MAX_HELD_NAMED", named)
    graph = records_pb2.FlowGraph(
        steps=[
            step("start", K.STEP_KIND_FOREACH, "work"),
            step("work", K.STEP_KIND_LINEAR, "gather", retries=1),
            step("gather", K.STEP_KIND_JOIN, "end", in_steps=["work"], closes="start"),
            step("end", K.STEP_KIND_END),
        ]
    )
    submit(app, graph=graph)
    succeed(app, lease(app), num_splits=5)
    items = [lease(app) for _ in range(5)]
    succeed(app, items[4])
    fail(app, items[0])
    retried = lease(app)
    assert retried.task.task_id == items[0].task.task_id and retried.task.attempt == 1
    for leased in (items[1], items[2], items[3]):
        start(app, leased)
    report(app, succeeded_event(items[1]), succeeded_event(items[2]))  # two in one append
    assert not lease(app).HasField("task")  # 3 of 5 done: the join waits
    report(app, succeeded_event(items[3]))
    assert not lease(app).HasField("task")  # 4 of 5: the first item's retry runs
    succeed(app, retried)
    gather = lease(app)
    assert gather.task.step_name == "gather"
    assert [p.rsplit("/", 1)[1] for p in gather.task.input_pathspecs] == [
        i.task.task_id for i in items
    ]
    assert [
        e.task_queued.task.step_name for e in run_events(app) if e.HasField("task_queued")
    ].count("gather") == 1


# start (foreach) -> work -> gather -> end
FOREACH_GRAPH = records_pb2.FlowGraph(
    steps=[
        step("start", K.STEP_KIND_FOREACH, "work"),
        step("work", K.STEP_KIND_LINEAR, "gather"),
        step("gather", K.STEP_KIND_JOIN, "end", in_steps=["work"], closes="start"),
        step("end", K.STEP_KIND_END),
    ]
)


def test_two_runs_whose_last_inputs_arrive_in_one_append_both_join(
    app: LedgerApplication,
) -> None:
    """A join's key is its step and frames, the same in every run of a flow: the join
    of each run is queued, not only of the first one the append folds."""
    submit(app, "1", FOREACH_GRAPH)
    submit(app, "2", FOREACH_GRAPH)
    for begun in [lease(app), lease(app)]:
        assert begun.task.step_name == "start"
        succeed(app, begun, num_splits=1)
    items = [lease(app), lease(app)]
    assert sorted(i.task.run_id for i in items) == ["1", "2"]
    for leased in items:
        start(app, leased)
    report(app, *(succeeded_event(leased) for leased in items))
    joins = [lease(app), lease(app)]
    assert sorted((j.task.run_id, j.task.step_name) for j in joins) == [
        ("1", "gather"),
        ("2", "gather"),
    ]


def test_a_joins_done_inputs_are_counted_as_the_append_has_them(
    app: LedgerApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every count agrees with reading the join's rows, also when the append carries
    an event of an input that is done already (its final logs, say): that row is
    counted once, as the append's fold has it."""
    from ledgerflow_service.orchestration import process_manager

    counted, real = [], process_manager._done_count

    def checked(fold: Any, tx: Any, run_path: str, join_key: str) -> int:
        count = real(fold, tx, run_path, join_key)
        rows = process_manager._rows(fold, tx, run_path, "join_key", join_key)
        assert count == sum(row.state == "done" for row in rows)
        counted.append(count)
        return count

    monkeypatch.setattr(process_manager, "_done_count", checked)
    submit(app, graph=FOREACH_GRAPH)
    succeed(app, lease(app), num_splits=3)
    items = [lease(app) for _ in range(3)]
    succeed(app, items[0])
    start(app, items[1])
    logs = events_pb2.Event(
        event_id=ev.new_id(),
        logs_recorded=events_pb2.LogsRecorded(
            task=task_ref(items[0]), attempt=0, lease_id=items[0].lease_id
        ),
    )
    report(app, logs, succeeded_event(items[1]))  # item 0 is done already
    assert not lease(app).HasField("task")  # 2 of 3
    succeed(app, items[2])
    assert lease(app).task.step_name == "gather"
    assert counted == [1, 2, 3]


def test_one_attempt_is_leased_once(app: LedgerApplication) -> None:
    submit(app)
    first = lease(app, "exec-1")
    assert first.HasField("task")
    assert not lease(app, "exec-2").HasField("task")
    leased = events_pb2.TaskLeased(
        task=task_ref(first), attempt=0, lease_id="x", executor_id="exec-2", lease_seconds=30
    )
    with pytest.raises(FailedPrecondition, match="another executor took it"):
        app._append_as([events_pb2.Event(event_id=ev.new_id(), task_leased=leased)], ALICE)


def test_a_task_goes_only_to_an_executor_it_fits(app: LedgerApplication) -> None:
    submit(app)
    small = executor_service_pb2.Capacity(cpu=1, memory_mb=256)
    assert not lease(app, "small", small).HasField("task")
    queued = app.list_queued_tasks(executor_service_pb2.ListQueuedTasksRequest()).tasks
    assert [t.step_name for t in queued] == ["start"]
    assert queued[0].waiting_reason == "waiting: no executor offers memory=512 MB"
    assert lease(app, "big").HasField("task")


def test_a_task_waiting_for_room_says_so_also_after_a_restart(
    app: LedgerApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full executor asks for no work; it renews its leases. A queued task it could
    run says it waits for room (once it has waited a moment), and a service restarted
    meanwhile, which has seen only renewals, says the executors are busy, not that none
    asked for work."""
    from ledgerflow_service.orchestration import leases

    monkeypatch.setattr(leases, "WAITING_FOR_ROOM_SECONDS", 0.0)
    submit(app, "1")
    submit(app, "2")
    held = lease(app, "exec-1")
    start(app, held)

    def reasons(service: LedgerApplication) -> list[str]:
        asked = executor_service_pb2.ListQueuedTasksRequest()
        return [t.waiting_reason for t in service.list_queued_tasks(asked).tasks
                if t.state == records_pb2.QUEUE_STATE_QUEUED]  # fmt: skip

    assert reasons(app) == ["waiting: the executors that can run it are busy"]
    restarted = LedgerApplication(app.database)
    assert reasons(restarted) == ["waiting: no executor asked for work in the last 60 s"]
    renewal = executor_service_pb2.RenewLeaseRequest(
        executor_id="exec-1", flow_name="Remote", run_id=held.task.run_id,
        step_name="start", task_id=held.task.task_id, attempt=0, lease_id=held.lease_id,
    )  # fmt: skip
    assert restarted.renew_lease(renewal, ALICE).keep_running
    assert reasons(restarted) == ["waiting: the executors are busy"]


def test_clients_cannot_write_the_services_events(app: LedgerApplication) -> None:
    submit(app)
    queued = events_pb2.TaskQueued(task=ev.ref("Remote", "1", "end", "9"))
    with pytest.raises(InvalidArgument, match="written by the service"):
        report(app, events_pb2.Event(event_id=ev.new_id(), task_queued=queued))
    with pytest.raises(FailedPrecondition, match="finishes it"):
        report(app, ev.run_finished("Remote", "1", False))
    with pytest.raises(FailedPrecondition, match="never queued"):
        report(app, ev.task_started("Remote", "1", "end", "9"))
    with pytest.raises(FailedPrecondition, match="cloned by the service"):
        report(app, ev.task_cloned("Remote", "1", "end", "9", "Remote/0/end/1"))
    assert types(app) == ["RunStarted", "TaskQueued"]


def test_time_the_database_did_not_answer_does_not_count_against_leases(
    app: LedgerApplication,
) -> None:
    """While the database is out of reach no renewal is heard: once it answers again,
    a lease that lapsed meanwhile gets a whole term before it can expire, and its
    executor's renewal within that term keeps it."""
    submit(app)
    leased = lease(app, lease_seconds=1)
    start(app, leased)
    time.sleep(1.2)  # the lease's time runs out during an outage, whose last failed
    app.leases.database_unreachable()  # call (the sweeper's, a renewal's) is now
    assert app.leases.expire() == 0  # the database answers: a term of grace
    renewed = renew(app, leased)
    assert renewed.keep_running, renewed.reason
    assert "LeaseExpired" not in types(app)
    lapse(app)  # no more renewals: it lapses as any lease does
    assert types(app)[-2:] == ["LeaseExpired", "TaskQueued"]


def test_fencing_refuses_events_without_the_current_lease(app: LedgerApplication) -> None:
    submit(app)
    leased = lease(app, lease_seconds=1)
    wrong = events_pb2.TaskStarted(task=task_ref(leased), attempt=0, lease_id="not-mine")
    with pytest.raises(FailedPrecondition, match="not the task's current lease"):
        report(app, events_pb2.Event(event_id=ev.new_id(), task_started=wrong))
    start(app, leased)
    before = types(app)
    # The lease runs out: the sweeper expires it and the task is queued again.
    lapse(app)
    assert types(app)[len(before) :] == ["LeaseExpired", "TaskQueued"]
    zombie = events_pb2.TaskSucceeded(task=task_ref(leased), attempt=0, lease_id=leased.lease_id)
    with pytest.raises(FailedPrecondition, match="not the task's current lease"):
        report(app, events_pb2.Event(event_id=ev.new_id(), task_succeeded=zombie))
    renewed = app.renew_lease(
        executor_service_pb2.RenewLeaseRequest(
            executor_id="exec-1",
            flow_name="Remote",
            run_id="1",
            step_name="start",
            task_id="1",
            attempt=0,
            lease_id=leased.lease_id,
        ),
        ALICE,
    )
    assert not renewed.keep_running and "lease" in renewed.reason
    again = lease(app, "exec-2")
    assert again.task.task_id == "1" and again.task.attempt == 1
    succeed(app, again)
    with app.database.read() as tx:
        attempts = tx.query("SELECT attempt, succeeded, error_type FROM attempts ORDER BY attempt")
    assert [tuple(a) for a in attempts] == [(0, 0, "LeaseExpired"), (1, 1, "")]


def test_a_failed_attempt_is_retried_then_fails_the_run(app: LedgerApplication) -> None:
    submit(app)
    succeed(app, lease(app))
    branches = {b.task.step_name: b for b in (lease(app), lease(app))}
    fail(app, branches["b"])  # b has retries=1
    retry = lease(app)
    assert (retry.task.step_name, retry.task.attempt) == ("b", 1)
    fail(app, retry)
    assert run_status(app) == (False, False)  # a is still running
    # The run is failing: nothing new is queued, and the last open task ends it.
    succeed(app, branches["a"])
    assert not lease(app).HasField("task")
    assert run_status(app) == (True, False)


def test_a_lost_attempt_leaves_retry_alone_and_catch_waits_for_the_last_try(
    app: LedgerApplication,
) -> None:
    """@retry(times=1) @catch: an attempt lost with its executor is not one of @retry's
    failures, so the next attempt still runs the step without catching; the try after
    its failure catches; when that one dies (a timeout), @catch's fallback follows."""
    guarded = records_pb2.FlowGraph(
        steps=[
            step("start", K.STEP_KIND_LINEAR, "end", retries=1, catch=True, catch_var="err"),
            step("end", K.STEP_KIND_END),
        ]
    )
    submit(app, graph=guarded)
    lost = lease(app, lease_seconds=1)
    start(app, lost)
    lapse(app)
    after_loss = lease(app)
    assert (after_loss.task.attempt, after_loss.task.failures) == (1, 0)
    fail(app, after_loss)
    last_try = lease(app)
    assert (last_try.task.attempt, last_try.task.failures) == (2, 1)  # it catches
    start(app, last_try)
    timed_out = events_pb2.TaskFailed(
        task=task_ref(last_try), attempt=2, lease_id=last_try.lease_id,
        error_type="TimeoutException", error_message="ran longer than 1s",
    )  # fmt: skip
    report(app, events_pb2.Event(event_id=ev.new_id(), task_failed=timed_out))
    fallback = lease(app)
    assert (fallback.task.attempt, fallback.task.failures) == (3, 2)
    queued = [e.task_queued for e in run_events(app) if e.HasField("task_queued")]
    assert "@catch records TimeoutException" in queued[-1].reason
    succeed(app, fallback)
    succeed(app, lease(app))  # end
    assert run_status(app) == (True, True)


def test_an_infrastructure_failure_is_retried_without_using_up_retry(
    app: LedgerApplication,
) -> None:
    submit(app)
    succeed(app, lease(app))
    branches = {b.task.step_name: b for b in (lease(app), lease(app))}
    no_retry = branches["a"]
    start(app, no_retry)
    engine_error = events_pb2.TaskFailed(
        task=task_ref(no_retry), attempt=0, lease_id=no_retry.lease_id,
        error_type="ContainerEngineError", error_message="podman could not start it",
        kind=records_pb2.FAILURE_KIND_INFRASTRUCTURE,
    )  # fmt: skip
    report(app, events_pb2.Event(event_id=ev.new_id(), task_failed=engine_error))
    again = lease(app)
    assert (again.task.step_name, again.task.attempt, again.task.failures) == ("a", 1, 0)
    assert run_status(app) == (False, False)  # still running


def never_began(
    leased: executor_service_pb2.LeaseTaskResponse, **changes: object
) -> events_pb2.Event:
    """The executor's TaskNotStarted for a leased attempt (an image it could not pull)."""
    fields: dict[str, object] = dict(
        task=task_ref(leased), attempt=leased.task.attempt, lease_id=leased.lease_id,
        kind=records_pb2.FAILURE_KIND_INFRASTRUCTURE, error_type="ImagePullError",
        error_message="podman: localhost/nope:1: image not known",
    )  # fmt: skip
    fields.update(changes)
    return events_pb2.Event(
        event_id=ev.new_id(), task_not_started=events_pb2.TaskNotStarted(**fields)
    )  # type: ignore[arg-type]


def test_an_attempt_that_never_began_gives_its_lease_back_then_fails_the_run(
    app: LedgerApplication,
) -> None:
    """No TaskStarted, no attempt: the same attempt is queued again on the
    infrastructure's budget (not @retry's), and the run fails with the engine's words
    once that is spent. A rebuild folds the same."""
    submit(app)
    for tried in range(1, MAX_LOST_ATTEMPTS + 2):
        leased = lease(app)
        assert (leased.task.step_name, leased.task.attempt, leased.task.failures) == ("start", 0, 0)
        report(app, never_began(leased))
        assert run_status(app) == (tried > MAX_LOST_ATTEMPTS, False)
    assert not lease(app).HasField("task")
    queued = [e.task_queued for e in run_events(app) if e.HasField("task_queued")]
    assert len(queued) == MAX_LOST_ATTEMPTS + 1 and {q.attempt for q in queued} == {0}
    assert "it never began: ImagePullError: podman: localhost/nope:1" in queued[-1].reason
    assert "TaskStarted" not in types(app)
    with app.database.read() as tx:
        assert tx.query("SELECT * FROM attempts") == []
        reason = tx.query_one("SELECT reason FROM orchestrated_runs")
    assert reason is not None and "image not known" in reason[0], reason
    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def test_only_a_leased_attempt_that_never_began_can_be_given_back(app: LedgerApplication) -> None:
    submit(app)
    leased = lease(app)
    refused = [
        (never_began(leased, lease_id="not-mine"), FailedPrecondition, "not the task's current"),
        (never_began(leased, kind=records_pb2.FAILURE_KIND_EXCEPTION), InvalidArgument,
         "must be FAILURE_KIND_INFRASTRUCTURE"),
        (never_began(leased, error_type=""), InvalidArgument, "say why it never began"),
    ]  # fmt: skip
    before = types(app)
    for event, error, message in refused:
        with pytest.raises(error, match=message):
            report(app, event)
    assert types(app) == before
    start(app, leased)
    with pytest.raises(
        FailedPrecondition, match=r"has begun .* record how it ended with TaskFailed"
    ):
        report(app, never_began(leased))
    with pytest.raises(FailedPrecondition, match="is not orchestrated"):
        local = events_pb2.TaskRef(flow_name="Local", run_id="1", step_name="start", task_id="1")
        report(app, ev.run_started("Local", "1"), never_began(leased, task=local))


def test_cancel_stops_queued_tasks_and_tells_running_ones(app: LedgerApplication) -> None:
    submit(app)
    succeed(app, lease(app))
    running = lease(app)
    start(app, running)
    cancel = events_pb2.RunCancelRequested(flow_name="Remote", run_id="1", reason="not needed")
    report(app, events_pb2.Event(event_id=ev.new_id(), run_cancel_requested=cancel))
    assert types(app)[-1] == "TaskCancelled"  # the other branch, still queued
    renewed = app.renew_lease(
        executor_service_pb2.RenewLeaseRequest(
            executor_id="exec-1",
            flow_name="Remote",
            run_id="1",
            step_name=running.task.step_name,
            task_id=running.task.task_id,
            attempt=0,
            lease_id=running.lease_id,
        ),
        ALICE,
    )
    assert not renewed.keep_running and renewed.reason == "not needed"
    report(
        app,
        events_pb2.Event(
            event_id=ev.new_id(),
            task_failed=events_pb2.TaskFailed(
                task=task_ref(running), attempt=0, lease_id=running.lease_id, error_type="Cancelled"
            ),
        ),
    )
    assert run_status(app) == (True, False)
    assert types(app)[-1] == "RunFinished"


def test_a_local_run_cannot_be_cancelled_through_the_service(app: LedgerApplication) -> None:
    report(app, ev.run_started("Local", "1"))
    cancel = events_pb2.RunCancelRequested(flow_name="Local", run_id="1")
    with pytest.raises(FailedPrecondition, match="submitter's machine"):
        report(app, events_pb2.Event(event_id=ev.new_id(), run_cancel_requested=cancel))


def test_a_bad_graph_is_refused(app: LedgerApplication) -> None:
    dangling = records_pb2.FlowGraph(
        steps=[step("start", K.STEP_KIND_LINEAR, "nowhere"), step("end", K.STEP_KIND_END)]
    )
    with pytest.raises(InvalidArgument, match="'nowhere', which is not a step"):
        submit(app, graph=dangling)
    nan_pause = records_pb2.FlowGraph(
        steps=[
            step("start", K.STEP_KIND_LINEAR, "end", minutes_between_retries=float("nan")),
            step("end", K.STEP_KIND_END),
        ]
    )
    with pytest.raises(InvalidArgument, match="minutes_between_retries must be a number"):
        submit(app, graph=nan_pause)
    with pytest.raises(InvalidArgument, match="needs a 'start' and an 'end'"):
        submit(app, graph=records_pb2.FlowGraph(steps=[step("start", K.STEP_KIND_END)]))
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events") == (0,)


def resume_plan(
    *clones: tuple[str, tuple[int, ...], str, int], first: int
) -> records_pb2.ResumePlan:
    return records_pb2.ResumePlan(
        clones=[
            records_pb2.ClonedTask(
                step_name=step_name, foreach_indices=list(indices), origin_task_id=task_id,
                num_splits=splits,
            )
            for step_name, indices, task_id, splits in clones
        ],
        first_task_id=first,
    )  # fmt: skip


def resume(app: LedgerApplication, run_id: str, plan: records_pb2.ResumePlan) -> None:
    started = ev.run_started("Remote", run_id, graph=GRAPH, origin_run_id="1", resume=plan)
    app.append(ledger_service_pb2.AppendRequest(events=[started]), ALICE)


def test_a_remote_resume_clones_the_tasks_before_the_step(app: LedgerApplication) -> None:
    submit(app)
    succeed(app, lease(app))
    branches = {b.task.step_name: b for b in (lease(app), lease(app))}
    succeed(app, branches["a"])
    fail(app, branches["b"])
    fail(app, lease(app))  # b's retry
    assert run_status(app) == (True, False)

    resume(app, "2", resume_plan(("start", (), "1", 0), ("a", (), "2", 0), first=4))
    assert types(app, "2") == ["RunStarted", "TaskCloned", "TaskCloned", "TaskQueued"]
    again = lease(app)
    assert (again.task.step_name, again.task.task_id) == ("b", "4")
    assert list(again.task.input_pathspecs) == ["Remote/2/start/1"]
    succeed(app, again)
    join = lease(app)
    assert list(join.task.input_pathspecs) == ["Remote/2/a/2", "Remote/2/b/4"]
    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def test_a_remote_resume_clones_a_foreach_with_its_items(app: LedgerApplication) -> None:
    submit(app)
    succeed(app, lease(app))
    for _ in range(2):
        succeed(app, lease(app))
    succeed(app, lease(app))  # join
    succeed(app, lease(app), num_splits=2)  # fan
    items = [lease(app), lease(app)]
    for leased in items:
        succeed(app, leased)
    succeed(app, lease(app))  # gather
    succeed(app, lease(app))  # end
    assert run_status(app) == (True, True)
    origin = {
        t: i for t, i in [("start", "1"), ("a", "2"), ("b", "3"), ("join", "4"), ("fan", "5")]
    }
    plan = resume_plan(
        *((step_name, (), task_id, 2 if step_name == "fan" else 0)
          for step_name, task_id in origin.items()),
        ("work", (0,), items[0].task.task_id, 0), ("work", (1,), items[1].task.task_id, 0),
        first=10,
    )  # fmt: skip
    resume(app, "2", plan)
    assert types(app, "2").count("TaskCloned") == 7
    gather = lease(app)
    assert (gather.task.step_name, gather.task.task_id) == ("gather", "10")
    assert list(gather.task.input_pathspecs) == [f"Remote/2/work/{i.task.task_id}" for i in items]
    succeed(app, gather)
    succeed(app, lease(app))
    assert run_status(app, "2") == (True, True)


def test_a_renewal_note_says_why_a_started_attempt_waits(app: LedgerApplication) -> None:
    submit(app)
    leased = lease(app)
    start(app, leased)

    def renew(note: str) -> executor_service_pb2.RenewLeaseResponse:
        request = executor_service_pb2.RenewLeaseRequest(
            executor_id="exec-1", flow_name="Remote", run_id="1", step_name="start",
            task_id="1", attempt=0, lease_id=leased.lease_id, note=note,
        )  # fmt: skip
        return app.renew_lease(request, ALICE)

    def reasons() -> list[str]:
        request = executor_service_pb2.ListQueuedTasksRequest(flow_name="Remote", run_id="1")
        return [t.waiting_reason for t in app.list_queued_tasks(request).tasks]

    assert renew("pending in Slurm (job 7): Resources").keep_running
    assert reasons() == ["pending in Slurm (job 7): Resources"]
    before = read_models(app), types(app)
    for bad, message in (("x" * 1001, "longer than 1000"), ("a\x00b", "NUL character")):
        with pytest.raises(InvalidArgument, match=message):
            renew(bad)
    assert (read_models(app), types(app)) == before
    assert reasons() == ["pending in Slurm (job 7): Resources"]
    assert renew("").keep_running  # it runs now
    assert reasons() == [""]


# start -> switch on "mode": "full" runs prep then meet, "quick" goes straight to meet.
SWITCH_GRAPH = records_pb2.FlowGraph(
    steps=[
        step("start", K.STEP_KIND_SWITCH, "prep", "meet", condition="mode",
             switch_cases=[records_pb2.SwitchCase(value="full", step="prep"),
                           records_pb2.SwitchCase(value="quick", step="meet")]),
        step("prep", K.STEP_KIND_LINEAR, "meet"),
        step("meet", K.STEP_KIND_LINEAR, "end"),
        step("end", K.STEP_KIND_END),
    ]
)  # fmt: skip


def test_a_switch_queues_only_the_case_its_task_chose(app: LedgerApplication) -> None:
    submit(app, graph=SWITCH_GRAPH)
    first = lease(app)
    start(app, first)
    # A case the switch does not have is refused, and changes nothing.
    before = run_events(app)

    def chose(case: str) -> events_pb2.Event:
        succeeded = events_pb2.TaskSucceeded(
            task=task_ref(first), attempt=0, lease_id=first.lease_id, switch_step=case
        )
        return events_pb2.Event(event_id=ev.new_id(), task_succeeded=succeeded)

    with pytest.raises(InvalidArgument, match="chose 'end', which is none of its cases"):
        report(app, chose("end"))
    assert run_events(app) == before
    report(app, chose("meet"))
    chosen = lease(app)
    assert (chosen.task.step_name, list(chosen.task.input_pathspecs)) == (
        "meet",
        ["Remote/1/start/1"],
    )
    succeed(app, chosen)
    succeed(app, lease(app))
    assert run_status(app) == (True, True)
    assert "prep" not in {e.task_queued.task.step_name for e in run_events(app)
                          if e.HasField("task_queued")}  # fmt: skip
    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def test_a_bad_switch_is_refused(app: LedgerApplication) -> None:
    def with_start(**changes: object) -> records_pb2.FlowGraph:
        graph = records_pb2.FlowGraph()
        graph.CopyFrom(SWITCH_GRAPH)
        for name, value in changes.items():
            field = getattr(graph.steps[0], name)
            if isinstance(value, list):
                del field[:]
                field.extend(value)
            else:
                setattr(graph.steps[0], name, value)
        return graph

    case = records_pb2.SwitchCase
    for graph, message in [
        (with_start(condition=""), "condition is missing"),
        (with_start(condition="not valid"), "is not a valid Python identifier"),
        (with_start(switch_cases=[]), "a switch needs at least one case"),
        (with_start(switch_cases=[case(value="a", step="prep"), case(value="a", step="meet")]),
         "names a case value twice"),
        (with_start(switch_cases=[case(value="full", step="prep")]),
         "a switch's cases go to exactly its next_steps"),
    ]:  # fmt: skip
        with pytest.raises(InvalidArgument, match=message):
            submit(app, graph=graph)
    plain = records_pb2.FlowGraph()
    plain.CopyFrom(GRAPH)
    plain.steps[1].condition = "mode"
    with pytest.raises(InvalidArgument, match="only a switch step has a condition"):
        submit(app, graph=plain)
    with app.database.read() as tx:
        assert tx.query_one("SELECT COUNT(*) FROM events") == (0,)


# start -> train (@parallel, a gang of num_parallel nodes) -> join -> end
GANG_GRAPH = records_pb2.FlowGraph(
    steps=[
        step("start", K.STEP_KIND_FOREACH, "train"),
        step("train", K.STEP_KIND_LINEAR, "join", parallel=True),
        step("join", K.STEP_KIND_JOIN, "end", in_steps=["train"], closes="start"),
        step("end", K.STEP_KIND_END),
    ]
)


def lease_many(
    app: LedgerApplication,
    free: executor_service_pb2.Capacity = BIG,
    max_tasks: int = 64,
    executor: str = "exec-1",
    total: executor_service_pb2.Capacity | None = None,
) -> list[executor_service_pb2.LeaseTaskResponse]:
    """LeaseTasks as an executor with `free` room calls it (`total`: its whole room,
    by default as much)."""
    request = executor_service_pb2.LeaseTaskRequest(
        executor_id=executor, free=free, total=total or free
    )
    asked = executor_service_pb2.LeaseTasksRequest(request=request, max_tasks=max_tasks)
    return list(app.lease_tasks(asked, ALICE).leases)


def test_a_gangs_nodes_are_leased_together_or_not_at_all(app: LedgerApplication) -> None:
    submit(app, graph=GANG_GRAPH)
    two = executor_service_pb2.Capacity(cpu=2, memory_mb=4096)  # room for two nodes
    succeed(app, lease(app, "small", two), num_splits=3)  # start: a gang of three
    assert lease_many(app, two) == []
    queued = app.list_queued_tasks(executor_service_pb2.ListQueuedTasksRequest()).tasks
    assert {t.waiting_reason for t in queued} == {
        "waiting: its @parallel gang of 3 nodes starts together on one executor, and none "
        "offers cpu=3, memory=1536 MB and gpu=0 at once"
    }
    # `run --remote` says a reason once for all the tasks it holds back, not per task.
    from ledgerflow.runtime.progress import RunReporter
    from ledgerflow.runtime.remote import _Follower

    said: list[str] = []
    reporter = RunReporter()
    reporter.warn = said.append  # type: ignore[method-assign]
    follower = _Follower("Remote", "1", reporter)
    follower.waiting(app)  # type: ignore[arg-type]
    follower.waiting(app)  # type: ignore[arg-type]
    assert len(said) == 1 and " and 2 more waiting: its @parallel gang of 3" in said[0]
    assert not lease(app).HasField("task")  # LeaseTask hands out one task, never a gang
    # A gang comes whole, even past max_tasks when it is the call's first pick.
    gang = lease_many(app, BIG, max_tasks=2)
    assert sorted(g.task.foreach_stack[-1].index for g in gang) == [0, 1, 2]
    assert len({g.lease_id for g in gang}) == 3 and all(g.step.parallel for g in gang)
    for node in gang:
        succeed(app, node)
    join = lease(app)
    assert join.task.step_name == "join" and len(join.task.input_pathspecs) == 3


def test_a_gang_waiting_for_room_keeps_it_from_later_tasks(app: LedgerApplication) -> None:
    submit(app, "1", graph=GANG_GRAPH)
    succeed(app, lease(app), num_splits=3)
    submit(app, "2")  # queued after the gang: its start would take the room
    busy = lease_many(app, executor_service_pb2.Capacity(cpu=2, memory_mb=4096),
                      total=executor_service_pb2.Capacity(cpu=3, memory_mb=4096))  # fmt: skip
    assert busy == []
    gang = lease_many(app, executor_service_pb2.Capacity(cpu=4, memory_mb=4096))
    assert [g.task.step_name for g in gang] == ["train"] * 3 + ["start"]


def test_a_gang_node_that_fails_fails_the_run(app: LedgerApplication) -> None:
    submit(app, graph=GANG_GRAPH)
    succeed(app, lease(app), num_splits=2)
    first, second = lease_many(app, BIG)
    start(app, second)
    fail(app, first)  # never queued again: alone, it could not rejoin its gang
    # Its mate would wait for it for ever: its executor is told to stop it, and why.
    renewed = app.renew_lease(executor_service_pb2.RenewLeaseRequest(
        executor_id="exec-1", flow_name="Remote", run_id="1", step_name="train",
        task_id=second.task.task_id, attempt=0, lease_id=second.lease_id), ALICE)  # fmt: skip
    assert not renewed.keep_running
    assert renewed.reason == (f"node train/{first.task.task_id} of its @parallel gang failed, "
                              "so the gang cannot go on")  # fmt: skip
    assert "TaskQueued" not in types(app)[-3:]


def test_a_parallel_step_outside_a_foreach_is_refused(app: LedgerApplication) -> None:
    lonely = records_pb2.FlowGraph(
        steps=[
            step("start", K.STEP_KIND_LINEAR, "train"),
            step("train", K.STEP_KIND_LINEAR, "end", parallel=True),
            step("end", K.STEP_KIND_END),
        ]
    )
    with pytest.raises(InvalidArgument, match="entered only from foreach steps"):
        submit(app, graph=lonely)
