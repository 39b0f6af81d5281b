"""What flows that start flows and notifications cost the service.

    python bench/triggers.py [--postgres | --database-url URL] [--chains 200]
                             [--notifications 500]

Two figures, for the goals of docs/production.md:

- upstream success to downstream queued: `--chains` times, an upstream deployment's
  run is triggered and driven to its end as an executor drives it (lease, start,
  succeed); the time from the append of its end task's TaskSucceeded to the moment the
  downstream deployment's run has its start queued (the decision is made in that same
  transaction, so this is the append's latency with the reaction in it).
- notifications: `--notifications` finished runs, each with a @notify webhook (a
  receiver on loopback); the service's sender delivers them while a writer appends
  small events; prints notifications delivered per second and the writer's append
  latency (p50/p99) with the sender running against the same writer alone.

The ledger is a temporary SQLite file, or with --postgres a Postgres server started
for the run (durable: fsync and synchronous commit on), or the empty Postgres database
--database-url names. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import (
    events_pb2,
    executor_service_pb2,
    ledger_service_pb2,
    query_service_pb2,
    records_pb2,
)
from ledgerflow_service import LedgerApplication, Principal, open_database
from webhook import Receiver

BENCH = Principal("bench", authenticated=False)
K = records_pb2.StepKind
BIG = executor_service_pb2.Capacity(cpu=64, memory_mb=1 << 20, gpu=8)


def spec(name: str, **extra: object) -> events_pb2.DeploymentCreated:
    graph = records_pb2.FlowGraph(steps=[
        records_pb2.StepSpec(name="start", kind=K.STEP_KIND_LINEAR, next_steps=["end"]),
        records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
    ])  # fmt: skip
    return events_pb2.DeploymentCreated(
        name=name, flow_name=name, code_package_key="bench", graph=graph, user="bench",
        system_tags=[f"production:{name}"], **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def append(app: LedgerApplication, *payload: events_pb2.Event) -> None:
    app.append(ledger_service_pb2.AppendRequest(events=list(payload)), BENCH)


def drive(app: LedgerApplication, flow: str, *, stop_at_end: bool = False) -> float | None:
    """Runs the queued tasks as an executor would; the seconds the append of `flow`'s
    end task's success took (None when none ran). With `stop_at_end`, stops there."""
    took = None
    while True:
        leased = app.lease_task(executor_service_pb2.LeaseTaskRequest(
            executor_id="bench", free=BIG, total=BIG), BENCH)  # fmt: skip
        if not leased.lease_id:
            return took
        t = leased.task
        ref = events_pb2.TaskRef(flow_name=t.flow_name, run_id=t.run_id, step_name=t.step_name,
                                 task_id=t.task_id)  # fmt: skip
        common = dict(task=ref, attempt=t.attempt, lease_id=leased.lease_id)
        started = events_pb2.TaskStarted(input_pathspecs=t.input_pathspecs, **common)  # type: ignore[arg-type]
        append(app, events_pb2.Event(event_id=str(uuid.uuid4()), task_started=started))
        began = time.perf_counter()
        append(app, events_pb2.Event(event_id=str(uuid.uuid4()),
                                     task_succeeded=events_pb2.TaskSucceeded(**common)))  # type: ignore[arg-type]  # fmt: skip
        if t.flow_name == flow and t.step_name == "end":
            took = time.perf_counter() - began
            if stop_at_end:
                return took


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def chains(app: LedgerApplication, count: int) -> None:
    app.deploy(deploy_api.DeployRequest(deployment=spec("Upstream")), BENCH)
    app.deploy(deploy_api.DeployRequest(deployment=spec("Downstream",
               trigger_on_finish=["Upstream"])), BENCH)  # fmt: skip
    latencies = []
    for _ in range(count):
        app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name="Upstream"), BENCH)
        took = drive(app, "Upstream", stop_at_end=True)
        runs = query_service_pb2.ListRunsRequest(flow_name="Downstream")
        runs.page.page_size = 1
        (newest,) = app.list_runs(runs).runs
        queued = app.list_queued_tasks(executor_service_pb2.ListQueuedTasksRequest(
            flow_name="Downstream", run_id=newest.run_id)).tasks  # fmt: skip
        assert took is not None and [q.step_name for q in queued] == ["start"], queued
        latencies.append(took)
        drive(app, "Downstream")  # clear the queue for the next round
    print(f"upstream success -> downstream queued ({count} chains): "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms")  # fmt: skip


def writer_latencies(app: LedgerApplication, stop: threading.Event) -> list[float]:
    """Appends a run's heartbeats until `stop`; each append's seconds."""
    run = f"w{uuid.uuid4().hex[:8]}"
    append(app, events_pb2.Event(event_id=str(uuid.uuid4()), run_started=events_pb2.RunStarted(
        flow_name="Writer", run_id=run, user="bench")))  # fmt: skip
    took = []
    while not stop.is_set():
        began = time.perf_counter()
        append(app, events_pb2.Event(event_id=str(uuid.uuid4()),
               run_heartbeat=events_pb2.RunHeartbeat(flow_name="Writer", run_id=run)))  # fmt: skip
        took.append(time.perf_counter() - began)
        time.sleep(0.005)
    return took


def delivered_all(app: LedgerApplication, count: int) -> bool:
    with app.database.read() as tx:
        row = tx.query_one("SELECT COUNT(*) FROM notifications WHERE state = 'sent'", ())
    return row is not None and int(row[0]) >= count


def notifications(app: LedgerApplication, count: int) -> None:
    receiver = Receiver([])
    try:
        notify = records_pb2.Notify(on=["success"], webhook=receiver.url)
        app.deploy(deploy_api.DeployRequest(deployment=spec("Told", notify=[notify])), BENCH)
        for _ in range(count):
            app.trigger_deployment(deploy_api.TriggerDeploymentRequest(name="Told"), BENCH)
        drive(app, "Told")  # every run finishes: `count` notifications are due

        def measured(send: bool) -> tuple[list[float], float]:
            stop, found = threading.Event(), []
            writer = threading.Thread(target=lambda: found.extend(writer_latencies(app, stop)))
            writer.start()
            began = time.perf_counter()
            if send:  # the service's own sender thread, as `ledgerflow service` runs it
                app.notifier.start()
                while not delivered_all(app, count):
                    time.sleep(0.01)
            else:
                time.sleep(3)
            seconds = time.perf_counter() - began
            stop.set()
            writer.join()
            return found, seconds

        alone, _ = measured(send=False)
        with_sender, seconds = measured(send=True)
        print(f"notifications: {count} delivered in {seconds:.2f} s "
              f"({count / seconds:.0f}/s, {app.notifications._senders} senders)")  # fmt: skip
        for label, took in (("alone", alone), ("while sending", with_sender)):
            p50, p99 = statistics.median(took) * 1000, percentile(took, 0.99) * 1000
            print(f"  writer's append latency {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                  f"({len(took)} appends)")  # fmt: skip
    finally:
        receiver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--notifications", type=int, default=500)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        url = args.database_url or f"sqlite://{Path(folder) / 'bench.db'}"
        if args.postgres:
            from postgres_server import create_database, postgres_server

            url = create_database(stack.enter_context(postgres_server(durable=True)), "bench")
        app = LedgerApplication(open_database(url))
        try:
            print(f"ledger: {app.database.kind}")
            chains(app, args.chains)
            notifications(app, args.notifications)
        finally:
            app.close()


if __name__ == "__main__":
    main()
