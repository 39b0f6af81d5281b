"""Deployments and their schedules, against the application on SQLite and Postgres: the
service fires due times itself (tested with an injected clock, never by waiting), once
per due time whatever the number of replicas, and backfills ranges without running a
due time twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from ledgerflow.engine.schedules import firing_ids, schedule_message
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import events_pb2, ledger_service_pb2, query_service_pb2, records_pb2
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

from tests import events as ev
from tests.service.test_orchestration import GRAPH

ALICE = Principal("alice", authenticated=False)
MINUTE = 60_000_000
DAY = 24 * 60 * MINUTE


def us(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp() * 1_000_000)  # type: ignore[misc]


class FakeClock:
    """The scheduler's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1e6)

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduled_app(database_url: str, clock: FakeClock) -> Iterator[LedgerApplication]:
    application = LedgerApplication(open_database(database_url), schedule_clock_us=clock)
    yield application
    application.close()


def spec(name: str = "Remote", **schedule: object) -> events_pb2.DeploymentCreated:
    """A deployment of the flow `name` (no @project: the deployment is named after it)."""
    created = events_pb2.DeploymentCreated(
        name=name, flow_name=name, code_package_key="package-key", graph=GRAPH,
        parameters={"alpha": "1", "label": '"x"'}, user="alice", tags=["team:pricing"],
        system_tags=[f"production:{name}"],
    )  # fmt: skip
    if schedule:
        created.schedule.CopyFrom(schedule_message(**schedule))  # type: ignore[arg-type]
    return created


def deploy(app: LedgerApplication, created: events_pb2.DeploymentCreated) -> records_pb2.Deployment:
    return app.deploy(deploy_api.DeployRequest(deployment=created), ALICE).deployment


def runs(app: LedgerApplication, flow: str = "Remote") -> list[records_pb2.Run]:
    request = query_service_pb2.ListRunsRequest(flow_name=flow)
    request.page.page_size = 1000
    return list(app.list_runs(request).runs)


def event_count(app: LedgerApplication) -> int:
    with app.database.read() as tx:
        row = tx.query_one("SELECT COUNT(*) FROM events", ())
    assert row is not None
    return int(row[0])


def backfill(app: LedgerApplication, since: int, until: int, **options: object) -> object:
    request = deploy_api.BackfillDeploymentRequest(name="Remote", **options)  # type: ignore[arg-type]
    request.since.FromMicroseconds(since)
    request.until.FromMicroseconds(until)
    return app.backfill_deployment(request, ALICE)


def test_a_due_time_fires_one_orchestrated_run_with_what_fired_it(
    scheduled_app: LedgerApplication, clock: FakeClock
) -> None:
    deployment = deploy(scheduled_app, spec(cron="*/5 * * * *"))
    due = deployment.next_run_at.ToMicroseconds()
    assert deployment.version == 1 and due > deployment.deployed_at.ToMicroseconds()
    assert due % (5 * MINUTE) == 0 and due - deployment.deployed_at.ToMicroseconds() <= 5 * MINUTE
    assert scheduled_app.deployments.fire_due(due - 1_000_000) == []  # not yet
    fired = scheduled_app.deployments.fire_due(due)
    assert len(fired) == 1 and scheduled_app.deployments.fire_due(due + 1_000_000) == []
    (run,) = runs(scheduled_app)
    assert run.trigger.deployment == "Remote" and run.trigger.deployment_version == 1
    assert run.trigger.kind == records_pb2.TRIGGER_KIND_SCHEDULE
    assert run.trigger.scheduled_at.ToMicroseconds() == due
    assert "production:Remote" in run.system_tags and "deployment:Remote" in run.system_tags
    assert "user:alice" not in run.system_tags  # production's runs are not alice's own
    assert run.user == "alice" and dict(run.parameters) == {"alpha": "1", "label": '"x"'}
    assert run.tags == ["team:pricing"] and run.code_package_key == "package-key"
    # Orchestrated as `run --remote` is: start is queued in the same transaction.
    queued = scheduled_app.list_queued_tasks(
        __import__("ledgerflow.v1.executor_service_pb2", fromlist=["x"]).ListQueuedTasksRequest(
            flow_name="Remote", run_id=run.run_id
        )
    )
    assert [t.step_name for t in queued.tasks] == ["start"]
    after = scheduled_app.get_deployment(deploy_api.GetDeploymentRequest(name="Remote"))
    assert after.deployment.next_run_at.ToMicroseconds() == due + 5 * MINUTE


def test_a_missed_due_time_fires_once_on_return_unless_catchup(
    scheduled_app: LedgerApplication, clock: FakeClock
) -> None:
    due = deploy(scheduled_app, spec(cron="* * * * *")).next_run_at.ToMicroseconds()
    # The service was down for three due times: only the latest runs.
    assert len(scheduled_app.deployments.fire_due(due + 2 * MINUTE + 5_000_000)) == 1
    (run,) = runs(scheduled_app)
    assert run.trigger.scheduled_at.ToMicroseconds() == due + 2 * MINUTE

    deploy(scheduled_app, spec("Caught", cron="* * * * *", catchup=True))
    caught = scheduled_app.get_deployment(deploy_api.GetDeploymentRequest(name="Caught"))
    first = caught.deployment.next_run_at.ToMicroseconds()
    fired = scheduled_app.deployments.fire_due(first + 2 * MINUTE)
    assert len(fired) == 3  # catchup=True: each due time missed
    mine = runs(scheduled_app, "Caught")
    assert sorted(r.trigger.scheduled_at.ToMicroseconds() for r in mine) == [
        first, first + MINUTE, first + 2 * MINUTE
    ]  # fmt: skip


def test_two_replicas_on_one_postgres_fire_a_due_time_once(fresh_postgres_url: str) -> None:
    replicas = [LedgerApplication(open_database(fresh_postgres_url)) for _ in range(2)]
    try:
        due = deploy(replicas[0], spec(cron="* * * * *")).next_run_at.ToMicroseconds()
        fired: list[list[str]] = []
        threads = [
            threading.Thread(target=lambda r=r: fired.append(r.deployments.fire_due(due)))
            for r in replicas
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(len(f) for f in fired) == [0, 1]
        assert len(runs(replicas[1])) == 1
    finally:
        for replica in replicas:
            replica.close()


def test_pause_stops_firing_and_triggers_and_resume_skips_what_passed(
    scheduled_app: LedgerApplication,
) -> None:
    due = deploy(scheduled_app, spec(cron="* * * * *")).next_run_at.ToMicroseconds()
    paused = scheduled_app.pause_deployment(
        deploy_api.PauseDeploymentRequest(name="Remote", reason="bad data upstream"), ALICE
    ).deployment
    assert paused.paused and not paused.HasField("next_run_at")
    assert scheduled_app.deployments.fire_due(due + 10 * MINUTE) == []
    before = event_count(scheduled_app)
    with pytest.raises(FailedPrecondition, match="paused: resume it first"):
        scheduled_app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name="Remote"), ALICE)
    with pytest.raises(FailedPrecondition, match="already paused"):
        scheduled_app.pause_deployment(deploy_api.PauseDeploymentRequest(name="Remote"), ALICE)
    assert event_count(scheduled_app) == before
    resumed = scheduled_app.resume_deployment(
        deploy_api.ResumeDeploymentRequest(name="Remote"), ALICE
    ).deployment
    assert not resumed.paused
    assert resumed.next_run_at.ToMicroseconds() > int(time.time() * 1e6) - MINUTE
    assert runs(scheduled_app) == []


def test_a_trigger_runs_now_with_parameters_replaced(scheduled_app: LedgerApplication) -> None:
    deploy(scheduled_app, spec())  # no schedule: runs only when triggered
    started = scheduled_app.trigger_deployment(
        deploy_api.TriggerDeploymentRequest(name="Remote", parameters={"alpha": "7"}), ALICE
    )
    (run,) = runs(scheduled_app)
    assert run.run_id == started.run_id and run.parameters["alpha"] == "7"
    assert run.trigger.kind == records_pb2.TRIGGER_KIND_MANUAL
    assert "triggered_by:alice" in run.system_tags
    with pytest.raises(InvalidArgument, match=r"has no parameter 'beta'.*alpha, label"):
        scheduled_app.trigger_deployment(
            deploy_api.TriggerDeploymentRequest(name="Remote", parameters={"beta": "1"}), ALICE
        )
    with pytest.raises(NotFound, match="deployment 'Nope' does not exist"):
        scheduled_app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name="Nope"), ALICE)


def test_a_backfill_runs_each_due_time_once(scheduled_app: LedgerApplication) -> None:
    deploy(scheduled_app, spec(daily=True))
    started = time.perf_counter()
    first = backfill(scheduled_app, us(2025, 1, 1), us(2025, 12, 31))
    print(f"365 daily runs queued in {time.perf_counter() - started:.2f} s")
    assert first.due_times == 365 and len(first.run_ids) == 365 and first.already_run == 0  # type: ignore[attr-defined]
    found = runs(scheduled_app)
    days = sorted(r.trigger.scheduled_at.ToMicroseconds() for r in found)
    assert days == [us(2025, 1, 1) + n * DAY for n in range(365)]
    assert {r.trigger.kind for r in found} == {records_pb2.TRIGGER_KIND_BACKFILL}
    # Idempotent: the same range again starts nothing; a wider one only what is new.
    again = backfill(scheduled_app, us(2025, 1, 1), us(2025, 12, 31))
    assert again.run_ids == [] and again.already_run == 365  # type: ignore[attr-defined]
    wider = backfill(scheduled_app, us(2024, 12, 30), us(2025, 1, 2), limit=1)
    assert len(wider.run_ids) == 1 and wider.remaining == 1 and wider.already_run == 2  # type: ignore[attr-defined]
    assert len(runs(scheduled_app)) == 366


def test_bad_schedules_and_backfills_are_refused_and_change_nothing(
    scheduled_app: LedgerApplication,
) -> None:
    deploy(scheduled_app, spec(cron="* * * * *"))
    before = event_count(scheduled_app)
    bad = [
        (records_pb2.Schedule(cron="0 3 * *"), "has 4 fields"),
        (records_pb2.Schedule(cron="61 3 * * *"), "does not parse"),
        (records_pb2.Schedule(cron="0 0 31 2 *"), "never comes due"),
        (records_pb2.Schedule(cron="0 3 * * *", timezone="Mars/Olympus"), "unknown time zone"),
    ]
    for schedule, message in bad:
        created = spec("Other")
        created.schedule.CopyFrom(schedule)
        with pytest.raises(InvalidArgument, match=message):
            deploy(scheduled_app, created)
    broken = spec("Other")
    broken.graph.steps[1].next_steps[:] = ["nowhere"]
    with pytest.raises(InvalidArgument, match="nowhere"):
        deploy(scheduled_app, broken)
    with pytest.raises(InvalidArgument, match="deployment name"):
        deploy(scheduled_app, spec("../etc"))
    now = int(time.time() * 1e6)
    with pytest.raises(InvalidArgument, match="ends in the future"):
        backfill(scheduled_app, now - DAY, now + DAY)
    with pytest.raises(InvalidArgument, match=r"more than 10,000 due times.*--yes"):
        backfill(scheduled_app, now - 8 * DAY, now - DAY)
    with pytest.raises(InvalidArgument, match="range is empty"):
        backfill(scheduled_app, now - DAY, now - 2 * DAY)
    assert event_count(scheduled_app) == before


def test_clients_cannot_write_deployments_or_fired_runs(scheduled_app: LedgerApplication) -> None:
    forged = ev.run_started("Remote", "1", graph=GRAPH)
    forged.run_started.trigger.deployment = "Remote"
    for event in [events_pb2.Event(event_id=ev.new_id(), deployment_created=spec()), forged]:
        with pytest.raises(InvalidArgument, match="use DeploymentService"):
            scheduled_app.append(ledger_service_pb2.AppendRequest(events=[event]), ALICE)


def test_deployments_rebuild_the_same(scheduled_app: LedgerApplication) -> None:
    due = deploy(scheduled_app, spec(cron="* * * * *")).next_run_at.ToMicroseconds()
    deploy(scheduled_app, spec(cron="*/2 * * * *"))  # version 2
    deploy(scheduled_app, spec("Gone", daily=True))
    scheduled_app.delete_deployment(deploy_api.DeleteDeploymentRequest(name="Gone"), ALICE)
    scheduled_app.deployments.fire_due(due + 4 * MINUTE)

    def rows() -> list[tuple[object, ...]]:
        with scheduled_app.database.read() as tx:
            return sorted(tuple(r) for r in tx.query("SELECT * FROM deployments", ()))

    live = rows()
    assert [(r[0], r[2], r[6]) for r in live] == [("Gone", 1, 1), ("Remote", 2, 0)]
    scheduled_app.rebuild_projections()
    assert rows() == live
    listed = scheduled_app.list_deployments(deploy_api.ListDeploymentsRequest()).deployments
    assert [d.name for d in listed] == ["Remote"]


def test_the_scheduler_thread_fires_when_its_clock_comes_due(
    scheduled_app: LedgerApplication, clock: FakeClock
) -> None:
    scheduled_app.start_scheduling()
    due = deploy(scheduled_app, spec(cron="* * * * *")).next_run_at.ToMicroseconds()
    clock.now = due
    scheduled_app.scheduler.wake()
    deadline = time.monotonic() + 10
    while not runs(scheduled_app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.trigger.scheduled_at.ToMicroseconds() for r in runs(scheduled_app)] == [due]


def test_a_deployments_name_must_match_its_project_and_branch(
    scheduled_app: LedgerApplication,
) -> None:
    forged = spec("pricing.prod.Remote")
    forged.flow_name, forged.project, forged.branch = "Remote", "pricing", "user.bob"
    with pytest.raises(InvalidArgument, match=r"is named 'pricing\.user\.bob\.Remote'"):
        deploy(scheduled_app, forged)
    forged.branch, forged.production = "prod", False
    with pytest.raises(InvalidArgument, match="production is set exactly for"):
        deploy(scheduled_app, forged)


def test_a_users_own_branch_is_changed_by_that_user_or_an_admin(
    scheduled_app: LedgerApplication,
) -> None:
    alice = Principal("alice", authenticated=True)
    bob = Principal("bob", authenticated=True)
    admin = Principal("carol", authenticated=True, roles=frozenset({"admin"}))
    own = spec("pricing.user.alice.Remote", daily=True)
    own.flow_name, own.project, own.branch = "Remote", "pricing", "user.alice"
    scheduled_app.deploy(deploy_api.DeployRequest(deployment=own), alice)
    name = own.name
    before = event_count(scheduled_app)
    with pytest.raises(PermissionDenied, match="which is alice's own"):
        scheduled_app.pause_deployment(deploy_api.PauseDeploymentRequest(name=name), bob)
    with pytest.raises(PermissionDenied, match="which is alice's own"):
        scheduled_app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name=name), bob)
    assert event_count(scheduled_app) == before
    scheduled_app.pause_deployment(deploy_api.PauseDeploymentRequest(name=name), admin)
    # Production's deployment is triggered by any authenticated teammate, as the service.
    prod = spec("pricing.prod.Remote")
    prod.flow_name, prod.project, prod.branch, prod.production = "Remote", "pricing", "prod", True
    scheduled_app.deploy(deploy_api.DeployRequest(deployment=prod), alice)
    started = scheduled_app.trigger_deployment(
        deploy_api.TriggerDeploymentRequest(name=prod.name), bob
    )
    (run,) = runs(scheduled_app)
    assert run.run_id == started.run_id and run.user == "alice"
    assert "triggered_by:bob" in run.system_tags


def test_a_retried_trigger_starts_one_run(scheduled_app: LedgerApplication) -> None:
    deploy(scheduled_app, spec())
    request = deploy_api.TriggerDeploymentRequest(name="Remote", event_id=ev.new_id())
    first = scheduled_app.trigger_deployment(request, ALICE)
    again = scheduled_app.trigger_deployment(request, ALICE)
    assert first == again and len(runs(scheduled_app)) == 1


def test_a_deployment_that_cannot_fire_holds_up_no_other(
    scheduled_app: LedgerApplication,
) -> None:
    due = deploy(scheduled_app, spec(cron="* * * * *")).next_run_at.ToMicroseconds()
    deploy(scheduled_app, spec("Other", cron="* * * * *"))
    # Someone started a run under the id the due time's run would get: it cannot start.
    _, taken = firing_ids("Remote", due)
    squatter = ev.run_started("Remote", taken, graph=GRAPH)
    scheduled_app.append(ledger_service_pb2.AppendRequest(events=[squatter]), ALICE)
    fired = scheduled_app.deployments.fire_due(due)
    assert fired == [f"Other/{firing_ids('Other', due)[1]}"]
    # Left out for a while, so the scheduler does not spin on it.
    assert scheduled_app.deployments.fire_due(due) == []
