"""Queue governance (docs/executor.md, "Queues"): a run's priority, fair share between
users among equal priorities, a per-run cap on the tasks leased or running at once
(--max-workers), and a queue deadline (--queue-timeout) that fails a task no executor
takes, saying why. On SQLite and on Postgres, through the application layer; every
decision is an event a rebuild folds into the same read models."""

from __future__ import annotations

import time

import pytest
from ledgerflow.v1 import (
    deployment_service_pb2,
    events_pb2,
    executor_service_pb2,
    ledger_service_pb2,
    records_pb2,
)
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from ledgerflow_service.principal import SERVICE

from tests import events as ev
from tests.service.test_orchestration import (
    FOREACH_GRAPH,
    lease,
    lease_many,
    read_models,
    report,
    run_events,
    run_status,
    succeed,
    types,
)

ALICE = Principal("alice", authenticated=False)
K = records_pb2.StepKind


def step(name: str, kind: int, *next_steps: str, **extra: object) -> records_pb2.StepSpec:
    resources = extra.pop("resources", records_pb2.Resources(cpu=1, memory_mb=512))
    return records_pb2.StepSpec(
        name=name, kind=kind, next_steps=list(next_steps), resources=resources, **extra
    )  # type: ignore[arg-type]


LINEAR = records_pb2.FlowGraph(
    steps=[step("start", K.STEP_KIND_LINEAR, "end"), step("end", K.STEP_KIND_END)]
)
# Its start needs a GPU.
NEEDS_GPU = records_pb2.FlowGraph(
    steps=[
        step("start", K.STEP_KIND_LINEAR, "end",
             resources=records_pb2.Resources(cpu=1, memory_mb=512, gpu=1)),
        step("end", K.STEP_KIND_END),
    ]
)  # fmt: skip
NO_GPU = executor_service_pb2.Capacity(cpu=64, memory_mb=1 << 20, gpu=0)


def submit(
    app: LedgerApplication,
    run_id: str,
    graph: records_pb2.FlowGraph = LINEAR,
    user: str = "alice",
    **policy: int,
) -> None:
    started = ev.run_started("Remote", run_id, user=user, graph=graph)
    if policy:
        started.run_started.queue_policy.CopyFrom(records_pb2.QueuePolicy(**policy))
    app.append(ledger_service_pb2.AppendRequest(events=[started]), ALICE)


def split(app: LedgerApplication, run_id: str, items: int) -> None:
    """Runs the run's start, a foreach of `items`."""
    (leased,) = [lease for lease in lease_many(app, max_tasks=50) if lease.task.run_id == run_id]
    succeed(app, leased, num_splits=items)


def who(leases: list[executor_service_pb2.LeaseTaskResponse]) -> list[str]:
    return [f"{lease.run.user}:{lease.task.run_id}/{lease.task.step_name}" for lease in leases]


def queued(app: LedgerApplication, run_id: str) -> list[records_pb2.QueuedTask]:
    request = executor_service_pb2.ListQueuedTasksRequest(flow_name="Remote", run_id=run_id)
    return list(app.list_queued_tasks(request).tasks)


def active(app: LedgerApplication, run_id: str) -> int:
    leased = (records_pb2.QUEUE_STATE_LEASED, records_pb2.QUEUE_STATE_RUNNING)
    return sum(task.state in leased for task in queued(app, run_id))


def test_higher_priority_runs_are_leased_first_then_the_older(app: LedgerApplication) -> None:
    submit(app, "1")
    submit(app, "2", priority=5)
    submit(app, "3", priority=-3)  # below the default: after everything else
    submit(app, "4", priority=5)
    order = [lease(app).task.run_id for _ in range(4)]
    assert order == ["2", "4", "1", "3"]
    assert not lease(app).HasField("task")


def test_a_users_large_foreach_does_not_starve_another_users_run(
    app: LedgerApplication,
) -> None:
    submit(app, "1", FOREACH_GRAPH, user="alice")
    split(app, "1", 20)  # 20 items of alice's queued before anything of bob's
    submit(app, "2", user="bob")
    # Both hold nothing: the older run first, then the user with fewer tasks leased.
    assert who(lease_many(app, max_tasks=4)) == [
        "alice:1/work", "bob:2/start", "alice:1/work", "alice:1/work",
    ]  # fmt: skip
    # Alice holds 3, bob 1: bob's next task goes first, however far back it queued.
    submit(app, "3", user="bob")
    assert who([lease(app)]) == ["bob:3/start"]
    # Priority comes before fair share.
    submit(app, "4", user="alice", priority=1)
    assert who([lease(app)]) == ["alice:4/start"]
    # Equal counts (alice 4, bob 2 -> bob's runs have nothing queued): alice goes on.
    assert who(lease_many(app, max_tasks=2)) == ["alice:1/work", "alice:1/work"]


def test_a_runs_cap_bounds_its_tasks_leased_or_running_across_executors(
    app: LedgerApplication,
) -> None:
    submit(app, "1", FOREACH_GRAPH, max_workers=2)
    split(app, "1", 5)
    first = lease_many(app, max_tasks=10, executor="exec-1")
    assert len(first) == 2
    # Another executor gets nothing of it.
    assert lease_many(app, max_tasks=10, executor="exec-2") == []
    reasons = {task.waiting_reason for task in queued(app, "1") if task.state == 1}
    assert reasons == {"waiting: its run has 2 tasks leased or running, its --max-workers 2"}
    # Another run is not held back by this one's cap.
    submit(app, "2")
    assert who(lease_many(app, max_tasks=10, executor="exec-2")) == ["alice:2/start"]
    succeed(app, first[1])  # one ends (the other is still leased): one more may go
    second = lease_many(app, max_tasks=10, executor="exec-2")
    assert len(second) == 1 and active(app, "1") == 2
    for leased in (first[0], *second):
        succeed(app, leased)
    assert len(lease_many(app, max_tasks=10, executor="exec-1")) == 2
    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def test_a_task_no_executor_takes_fails_at_its_queue_deadline_with_why(
    app: LedgerApplication,
) -> None:
    submit(app, "1", NEEDS_GPU, queue_timeout_seconds=1)
    assert not lease(app, free=NO_GPU).HasField("task")  # an executor without a GPU asks
    assert app.leases.time_out_queued() == 0  # not yet
    time.sleep(1.1)
    assert app.leases.time_out_queued() == 1
    history = run_events(app)
    timed_out = [e.task_queue_timed_out for e in history if e.HasField("task_queue_timed_out")]
    assert [t.reason for t in timed_out] == [
        "no executor took it within 1 s: waiting: no executor offers gpu=1"
    ]
    assert history[-1].event_type == "RunFinished" and run_status(app, "1") == (True, False)
    with app.database.read() as tx:
        reason = tx.query_one("SELECT reason FROM orchestrated_runs", [])
    assert reason is not None and "no executor took it within 1 s" in reason[0]
    assert app.leases.time_out_queued() == 0  # once
    live = read_models(app)
    app.rebuild_projections()
    assert read_models(app) == live


def test_the_queue_deadline_does_not_count_the_wait_for_the_runs_own_cap(
    app: LedgerApplication,
) -> None:
    submit(app, "1", FOREACH_GRAPH, max_workers=1, queue_timeout_seconds=1)
    split(app, "1", 2)
    (running,) = lease_many(app, max_tasks=10)
    time.sleep(1.2)  # the other item waited past the deadline, for the run's own cap
    assert app.leases.time_out_queued() == 0
    succeed(app, running)  # room: the deadline counts from now
    assert app.leases.time_out_queued() == 0
    assert lease(app).task.step_name == "work"
    assert "TaskQueueTimedOut" not in types(app)


def test_only_the_service_times_a_task_out_and_only_past_its_deadline(
    app: LedgerApplication,
) -> None:
    submit(app, "1", NEEDS_GPU, queue_timeout_seconds=60)
    timed_out = events_pb2.TaskQueueTimedOut(
        task=ev.ref("Remote", "1", "start", "1"), queue_timeout_seconds=60, reason="early"
    )
    event = events_pb2.Event(event_id=ev.new_id(), task_queue_timed_out=timed_out)
    with pytest.raises(InvalidArgument, match="written by the service"):
        report(app, event)
    with pytest.raises(FailedPrecondition, match="has not waited past its deadline"):
        app._append_as([event], SERVICE)
    assert types(app) == ["RunStarted", "TaskQueued"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"priority": 1001}, "priority must be -1000 to 1000"),
        ({"priority": -5000}, "priority must be -1000 to 1000"),
        ({"max_workers": 100_001}, "max_workers must be 0"),
        ({"queue_timeout_seconds": 10**8}, "queue_timeout_seconds must be 0"),
    ],
)
def test_a_bad_queue_policy_is_refused_and_changes_nothing(
    app: LedgerApplication, policy: dict[str, int], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        submit(app, "1", **policy)
    assert types(app) == []
    # Nor a deployment's.
    created = events_pb2.DeploymentCreated(
        name="Remote", flow_name="Remote", code_package_key="package-key", graph=LINEAR,
        user="alice", system_tags=["production:Remote"],
        queue_policy=records_pb2.QueuePolicy(**policy),
    )  # fmt: skip
    with pytest.raises(InvalidArgument, match=message):
        app.deploy(deployment_service_pb2.DeployRequest(deployment=created), ALICE)
    listed = app.list_deployments(deployment_service_pb2.ListDeploymentsRequest())
    assert list(listed.deployments) == []


def test_a_local_run_has_no_queue_policy(app: LedgerApplication) -> None:
    started = ev.run_started("Local", "1", queue_policy=records_pb2.QueuePolicy(priority=1))
    with pytest.raises(InvalidArgument, match="queue_policy goes with a graph"):
        app.append(ledger_service_pb2.AppendRequest(events=[started]), ALICE)


def test_a_deployments_runs_carry_its_queue_policy(app: LedgerApplication) -> None:
    policy = records_pb2.QueuePolicy(priority=7, max_workers=3, queue_timeout_seconds=600)
    created = events_pb2.DeploymentCreated(
        name="Remote", flow_name="Remote", code_package_key="package-key", graph=LINEAR,
        user="alice", system_tags=["production:Remote"], queue_policy=policy,
    )  # fmt: skip
    app.deploy(deployment_service_pb2.DeployRequest(deployment=created), ALICE)
    shown = app.get_deployment(deployment_service_pb2.GetDeploymentRequest(name="Remote"))
    assert shown.deployment.queue_policy == policy
    submit(app, "1")  # an older run of priority 0
    answer = app.trigger_deployment(
        deployment_service_pb2.TriggerDeploymentRequest(name="Remote"), ALICE
    )
    (started,) = [
        e.run_started for e in run_events(app, answer.run_id) if e.HasField("run_started")
    ]
    assert started.queue_policy == policy
    assert lease(app).task.run_id == answer.run_id  # before the older run


def test_an_executor_finds_what_fits_behind_many_runs_it_cannot_serve(
    app: LedgerApplication,
) -> None:
    for number in range(10, 40):  # older runs, all waiting for a GPU
        submit(app, str(number), NEEDS_GPU)
    submit(app, "99", user="bob")
    assert who([lease(app, free=NO_GPU)]) == ["bob:99/start"]
    assert lease(app).task.run_id == "10"  # an executor with a GPU: the oldest


def test_a_lease_call_takes_the_oldest_tasks_that_fit_its_room(
    app: LedgerApplication,
) -> None:
    """A call with room for 12 tasks of a foreach of 30 takes the 12 oldest items; the
    next call takes the other 18, in order."""
    submit(app, "1", FOREACH_GRAPH)
    split(app, "1", 30)
    room = executor_service_pb2.Capacity(cpu=12, memory_mb=1 << 20)
    first = lease_many(app, room, executor="small")
    assert [lease.task.foreach_stack[-1].index for lease in first] == list(range(12))
    rest = lease_many(app, max_tasks=64)
    assert [lease.task.foreach_stack[-1].index for lease in rest] == list(range(12, 30))
    assert not lease_many(app, max_tasks=64)
