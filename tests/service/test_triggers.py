"""Flows that start flows, and notifications of finished runs, against the application
on SQLite and Postgres: an upstream success or a published event starts each waiting
deployment once, in the transaction of its cause; a finished run's @notify is sent by
the service, retried with backoff, and recorded event by event. Runs are driven as an
executor drives them (lease, start, succeed); the sender's clock is moved, never
waited for. The CLI and the executor are in tests/executor/test_triggers_e2e.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import events_pb2, ledger_service_pb2, records_pb2
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from ledgerflow_service.read_models.notifications import MAX_ATTEMPTS
from ledgerflow_service.store.events import read_events

from tests import events as ev
from tests.service.test_orchestration import K, fail, lease, step, succeed
from tests.service.test_schedules import ALICE, event_count
from tests.webhook import Receiver

SECOND = 1_000_000
# start -> end: each run is two tasks.
TWO_STEPS = records_pb2.FlowGraph(
    steps=[step("start", K.STEP_KIND_LINEAR, "end"), step("end", K.STEP_KIND_END)]
)


class FakeClock:
    """The sender's clock: real time, moved on by the test (a notification is due from
    its event's recording time, which is real)."""

    def __init__(self) -> None:
        self.now = 0  # how far ahead of real time, in microseconds

    def __call__(self) -> int:
        return int(time.time() * 1e6) + self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(database_url: str, clock: FakeClock) -> Iterator[LedgerApplication]:
    application = LedgerApplication(open_database(database_url), schedule_clock_us=clock,
                                    notify_timeout_seconds=1.0)  # fmt: skip
    yield application
    application.close()


def spec(flow: str, *, after: tuple[str, ...] = (), events: tuple[str, ...] = (),
         notify: tuple[records_pb2.Notify, ...] = ()) -> events_pb2.DeploymentCreated:  # fmt: skip
    return events_pb2.DeploymentCreated(
        name=flow, flow_name=flow, code_package_key="package-key", graph=TWO_STEPS,
        parameters={"alpha": "1"}, user="alice", system_tags=[f"production:{flow}"],
        trigger_on_finish=list(after), trigger_on_events=list(events), notify=list(notify),
    )  # fmt: skip


def deploy(app: LedgerApplication, created: events_pb2.DeploymentCreated) -> None:
    app.deploy(deploy_api.DeployRequest(deployment=created), ALICE)


def trigger(app: LedgerApplication, name: str) -> str:
    answer = app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name=name), ALICE)
    return f"{answer.flow_name}/{answer.run_id}"


def publish(app: LedgerApplication, name: str, payload: str = "", event_id: str = "") -> list[str]:
    request = deploy_api.PublishEventRequest(name=name, payload=payload, event_id=event_id)
    return list(app.publish_event(request, ALICE).runs)


def run_record(app: LedgerApplication, pathspec: str) -> records_pb2.Run:
    from ledgerflow.v1 import query_service_pb2

    flow, run_id = pathspec.split("/")
    return app.get_run(query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id)).run


def runs_of(app: LedgerApplication, flow: str) -> list[records_pb2.Run]:
    from ledgerflow.v1 import query_service_pb2

    return list(app.list_runs(query_service_pb2.ListRunsRequest(flow_name=flow)).runs)


def work_off(app: LedgerApplication, *, failing: str = "") -> None:
    """Runs every queued task as an executor would (tasks of flow `failing` fail)."""
    while True:
        leased = lease(app)
        if not leased.lease_id:
            return
        (fail if leased.task.flow_name == failing else succeed)(app, leased)


def events_of(app: LedgerApplication, run_pathspec: str) -> list[events_pb2.Event]:
    with app.database.read() as tx:
        return read_events(tx, "run_pathspec = ?", [run_pathspec], 10_000)


def test_a_chain_of_three_flows_starts_each_once_per_upstream_success(
    app: LedgerApplication,
) -> None:
    deploy(app, spec("Ingest"))
    deploy(app, spec("Train", after=("Ingest",)))
    deploy(app, spec("Report", after=("Train",)))
    first = trigger(app, "Ingest")
    work_off(app)
    (train,) = runs_of(app, "Train")
    assert train.trigger.kind == records_pb2.TRIGGER_KIND_RUN_FINISHED
    assert train.trigger.upstream_run == first and train.run_id.startswith("after-")
    assert "trigger:run" in train.system_tags and "deployment:Train" in train.system_tags
    (report,) = runs_of(app, "Report")
    assert report.trigger.upstream_run == train.pathspec
    # A failed upstream run starts nothing downstream.
    trigger(app, "Ingest")
    work_off(app, failing="Ingest")
    assert len(runs_of(app, "Train")) == 1 and len(runs_of(app, "Report")) == 1
    # A rebuild folds the recorded decisions again and decides nothing new.
    before = event_count(app)
    app.rebuild_projections()
    assert event_count(app) == before and len(runs_of(app, "Report")) == 1


def test_a_published_event_starts_its_waiting_deployments_once_with_its_payload(
    app: LedgerApplication,
) -> None:
    deploy(app, spec("Score", events=("data_ready",)))
    deploy(app, spec("Audit", events=("data_ready", "other")))
    deploy(app, spec("Idle", events=("nothing_here",)))
    event_id = ev.new_id()
    started = publish(app, "data_ready", '{"alpha": 5, "note": "x"}', event_id)
    assert sorted(p.split("/")[0] for p in started) == ["Audit", "Score"]
    score = run_record(app, next(p for p in started if p.startswith("Score/")))
    assert score.trigger.kind == records_pb2.TRIGGER_KIND_EVENT
    assert score.trigger.event.name == "data_ready" and score.trigger.event.id == event_id
    assert json.loads(score.trigger.event.payload) == {"alpha": 5, "note": "x"}
    # A payload field named as a parameter sets it; others do not become parameters.
    assert dict(score.parameters) == {"alpha": "5"}
    # A retried publish (the same event id) starts nothing more, and says what it started.
    assert publish(app, "data_ready", '{"alpha": 5, "note": "x"}', event_id) == started
    assert len(runs_of(app, "Score")) == 1
    assert publish(app, "unheard_of") == [] and runs_of(app, "Idle") == []
    # A paused deployment starts nothing while paused; a retry still says what the
    # first publish started.
    app.pause_deployment(deploy_api.PauseDeploymentRequest(name="Score"), ALICE)
    assert [p.split("/")[0] for p in publish(app, "data_ready")] == ["Audit"]
    assert publish(app, "data_ready", '{"alpha": 5, "note": "x"}', event_id) == started
    # A field is of its parameter's kind: a number may come as text, not as a word.
    audit = run_record(app, publish(app, "data_ready", '{"alpha": "7"}')[0])
    assert dict(audit.parameters) == {"alpha": "7"}
    before = event_count(app)
    with pytest.raises(InvalidArgument, match="payload's 'alpha' is \"many\", but Audit's "
                                              "parameter alpha takes an integer"):  # fmt: skip
        publish(app, "data_ready", '{"alpha": "many"}')
    assert event_count(app) == before


def test_someones_own_deployment_starts_on_their_own_events_only(
    app: LedgerApplication,
) -> None:
    own = spec("Own")
    own.name, own.project, own.branch = "p.user.alice.Own", "p", "user.alice"
    own.trigger_on_events.append("data_ready")
    deploy(app, own)
    deploy(app, spec("Shared", events=("data_ready",)))
    bob = Principal("bob", authenticated=True)
    request = deploy_api.PublishEventRequest(name="data_ready")
    started = app.publish_event(request, bob).runs
    assert [p.split("/")[0] for p in started] == ["Shared"]
    alice = Principal("alice", authenticated=True)
    started = app.publish_event(deploy_api.PublishEventRequest(name="data_ready"), alice).runs
    assert sorted(p.split("/")[0] for p in started) == ["Own", "Shared"]


def test_bad_triggers_and_events_are_refused_and_change_nothing(app: LedgerApplication) -> None:
    deploy(app, spec("A"))
    deploy(app, spec("B", after=("A",)))
    before = event_count(app)
    with pytest.raises(FailedPrecondition, match="waits for runs of 'Nope', which is not deployed"):
        deploy(app, spec("C", after=("Nope",)))
    with pytest.raises(FailedPrecondition, match=r"cycle.*A -> B -> A"):
        deploy(app, spec("A", after=("B",)))
    with pytest.raises(FailedPrecondition, match=r"cycle.*Self -> Self"):
        deploy(app, spec("Self", after=("Self",)))
    with pytest.raises(InvalidArgument, match="event name 'bad name!' is not valid"):
        deploy(app, spec("D", events=("bad name!",)))
    with pytest.raises(InvalidArgument, match=r"deployment name 'A.{1,2}x00' is not valid"):
        deploy(app, spec("D", after=("A\x00",)))  # refused before it reaches a query
    with pytest.raises(InvalidArgument, match=r"payload is 69,999 bytes.*at most 65,536"):
        publish(app, "ready", json.dumps({"x": "y" * 69_990}))
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        publish(app, "ready", "[1, 2]")
    with pytest.raises(InvalidArgument, match="not JSON"):
        publish(app, "ready", "{oops")
    with pytest.raises(InvalidArgument, match="event name"):
        publish(app, "")
    command = records_pb2.Notify(on=["failure"], command="echo hi")
    with pytest.raises(FailedPrecondition, match="does not run notification commands"):
        deploy(app, spec("E", notify=(command,)))
    bad_url = records_pb2.Notify(on=["failure"], webhook="file:///etc/passwd")
    with pytest.raises(InvalidArgument, match="a webhook is an http:// or https:// URL"):
        deploy(app, spec("E", notify=(bad_url,)))
    # Published events and notifications are the service's to write, not a client's.
    forged = [
        events_pb2.Event(event_id=ev.new_id(),
                         event_published=events_pb2.EventPublished(name="ready")),
        events_pb2.Event(event_id=ev.new_id(), notification_result=events_pb2.NotificationResult(
            flow_name="A", run_id="1", notification=0, attempt=1, delivered=True)),
    ]  # fmt: skip
    for event in forged:
        with pytest.raises(InvalidArgument, match="written by the service itself"):
            app.append(ledger_service_pb2.AppendRequest(events=[event]), ALICE)
    assert event_count(app) == before


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([500])
    yield found
    found.close()


def send(app: LedgerApplication) -> int:
    """Sends what is due now and records each attempt's result; how many were sent."""
    attempts = app.notifications.send_due()
    for attempt in attempts:
        attempt.result(timeout=30)
    app.notifications.flush()
    return len(attempts)


def notification_events(app: LedgerApplication, run: str) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for event in events_of(app, run):
        kind = event.WhichOneof("payload")
        if kind == "notification_sending":
            found.append(("sending", event.notification_sending.attempt))
        elif kind == "notification_result":
            result = event.notification_result
            found.append(("result", (result.attempt, result.delivered, result.detail)))
        elif kind == "notification_requested":
            found.append(("requested", event.notification_requested.outcome))
    return found


def test_a_webhook_hears_of_a_finished_run_once_retried_with_backoff(
    app: LedgerApplication, clock: FakeClock, receiver: Receiver
) -> None:
    on_both = records_pb2.Notify(on=["failure", "success"], webhook=receiver.url)
    on_failure = records_pb2.Notify(on=["failure"], webhook=receiver.url)
    deploy(app, spec("Nightly", notify=(on_both, on_failure)))
    run = trigger(app, "Nightly")
    assert send(app) == 0  # nothing finished yet
    work_off(app)
    assert send(app) == 1  # the run succeeded: only the first @notify hears of it
    assert send(app) == 0  # undelivered (HTTP 500): tried again in 5 s, not before
    clock.now += 6 * SECOND
    assert send(app) == 1 and send(app) == 0
    clock.now += 3600 * SECOND
    assert send(app) == 0  # delivered: never sent again
    flow, run_id = run.split("/")
    assert [r["outcome"] for r in receiver.received] == ["success", "success"]
    facts = receiver.received[-1]
    assert (facts["flow"], facts["run_id"], facts["deployment"]) == (flow, run_id, "Nightly")
    assert facts["trigger"] == "manual" and facts["attempt"] == 2 and "finished_at" in facts
    assert notification_events(app, run) == [
        ("requested", "success"), ("sending", 1), ("result", (1, False, "HTTP 500")),
        ("sending", 2), ("result", (2, True, "HTTP 204")),
    ]  # fmt: skip


def test_a_failed_run_tells_its_error_and_a_dead_receiver_is_given_up(
    app: LedgerApplication, clock: FakeClock
) -> None:
    dead = records_pb2.Notify(on=["failure"], webhook="http://127.0.0.1:9/nobody-listens")
    deploy(app, spec("Nightly", notify=(dead,)))
    run = trigger(app, "Nightly")
    work_off(app, failing="Nightly")
    for _ in range(MAX_ATTEMPTS):
        assert send(app) == 1
        clock.now += 3600 * SECOND
    assert send(app) == 0  # given up after MAX_ATTEMPTS
    results = [e.notification_result for e in events_of(app, run)
               if e.HasField("notification_result")]  # fmt: skip
    assert len(results) == MAX_ATTEMPTS and not any(r.delivered for r in results)
    assert results[0].detail.startswith("could not reach http://127.0.0.1:9/nobody-listens")
    with app.database.read() as tx:
        row = tx.query_one("SELECT state, attempts FROM notifications", ())
    assert tuple(row or ()) == ("failed", MAX_ATTEMPTS)


def test_a_hanging_webhook_times_out_without_holding_up_appends(app: LedgerApplication) -> None:
    slow = Receiver([204], delay=3.0)
    try:
        deploy(app, spec("Nightly", notify=(records_pb2.Notify(on=["success"],
                                                               webhook=slow.url),)))  # fmt: skip
        run = trigger(app, "Nightly")
        work_off(app)
        attempts = app.notifications.send_due()
        assert not attempts[0].done()  # the sender handed it to its pool and returned
        deploy(app, spec("Other"))  # appends go on while the webhook hangs
        assert not attempts[0].done()
        attempts[0].result(timeout=30)
        app.notifications.flush()
        (result,) = [e.notification_result for e in events_of(app, run)
                     if e.HasField("notification_result")]  # fmt: skip
        assert (result.delivered, result.detail) == (False, "timed out after 1 s")
    finally:
        slow.close()


def test_a_command_runs_only_on_a_service_that_allows_it(
    database_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    app = LedgerApplication(open_database(database_url), schedule_clock_us=clock,
                            allow_notify_commands=True, notify_timeout_seconds=5.0)  # fmt: skip
    try:
        out = tmp_path / "told.json"
        command = f'cat > {out}; echo "$LEDGERFLOW_OUTCOME $LEDGERFLOW_PATHSPEC" >> {out}.env'
        failing = "echo 'no mail server' >&2; exit 3"
        deploy(app, spec("Nightly", notify=(
            records_pb2.Notify(on=["success"], command=command),
            records_pb2.Notify(on=["success"], command=failing),
        )))  # fmt: skip
        run = trigger(app, "Nightly")
        work_off(app)
        assert send(app) == 2
        assert json.loads(out.read_text())["pathspec"] == run
        assert Path(f"{out}.env").read_text() == f"success {run}\n"
        details = sorted(e.notification_result.detail for e in events_of(app, run)
                         if e.HasField("notification_result"))  # fmt: skip
        assert details == ["exit status 0", "exit status 3: no mail server"]
    finally:
        app.close()


def test_two_replicas_start_a_chain_and_send_each_notification_once(
    fresh_postgres_url: str, receiver: Receiver
) -> None:
    replicas = [LedgerApplication(open_database(fresh_postgres_url)) for _ in range(2)]
    try:
        told = records_pb2.Notify(on=["success"], webhook=receiver.url)
        deploy(replicas[0], spec("Ingest", events=("data_ready",)))
        deploy(replicas[1], spec("Train", after=("Ingest",), notify=(told,)))
        # The same event published through both replicas at once (a client's retry).
        event_id, answers = ev.new_id(), []

        def publish_through(replica: LedgerApplication) -> None:
            answers.append(publish(replica, "data_ready", "", event_id))

        threads = [threading.Thread(target=publish_through, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answers) == 2 and answers[0] == answers[1] and len(answers[0]) == 1
        work_off(replicas[0])
        assert len(runs_of(replicas[1], "Ingest")) == 1 and len(runs_of(replicas[1], "Train")) == 1
        # Both replicas' senders look for due notifications at once: one claims it.
        receiver.statuses[:] = [204]
        sent: list[int] = []
        threads = [threading.Thread(target=lambda r=r: sent.append(send(r))) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(sent) == [0, 1] and len(receiver.received) == 1
    finally:
        for replica in replicas:
            replica.close()


def test_a_notification_whose_sender_stopped_is_taken_over_once(
    database_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    first = LedgerApplication(open_database(database_url), schedule_clock_us=clock,
                              notify_timeout_seconds=1.0)  # fmt: skip
    second = LedgerApplication(open_database(database_url), schedule_clock_us=clock)
    try:
        receiver.statuses[:] = [204, 204]
        told = records_pb2.Notify(on=["success"], webhook=receiver.url)
        deploy(first, spec("Nightly", notify=(told,)))
        run = trigger(first, "Nightly")
        work_off(first)
        for attempt in first.notifications.send_due():  # sent, but its result unrecorded:
            attempt.result(timeout=30)  # as if this replica stopped right then
        assert send(second) == 0  # the claim holds (1 s timeout + 30 s)
        clock.now += 40 * SECOND
        assert send(second) == 1  # taken over: attempt 1 settled as abandoned, then 2
        first.notifications.flush()  # the first sender's late result is refused, dropped
        assert notification_events(first, run) == [
            ("requested", "success"), ("sending", 1),
            ("result", (1, False, "no result: the service sending it stopped mid-attempt "
                                  "(the claim ran out)")),
            ("sending", 2), ("result", (2, True, "HTTP 204")),
        ]  # fmt: skip
        assert len(receiver.received) == 2  # at least once: the stopped sender's went out
    finally:
        first.close()
        second.close()


def test_a_redirecting_webhook_is_not_followed(app: LedgerApplication) -> None:
    redirecting = Receiver([302])
    try:
        told = records_pb2.Notify(on=["success"], webhook=redirecting.url)
        deploy(app, spec("Nightly", notify=(told,)))
        run = trigger(app, "Nightly")
        work_off(app)
        assert send(app) == 1
        (result,) = [e.notification_result for e in events_of(app, run)
                     if e.HasField("notification_result")]  # fmt: skip
        assert not result.delivered and result.detail.startswith("HTTP 302: redirects are not")
    finally:
        redirecting.close()
