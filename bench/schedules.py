"""What deployments cost the service: firing delay, idle CPU, backfill.

    python bench/schedules.py [--database-url URL] [--deployments 1000] [--firings 2]
                              [--backfill-days 365]

Three figures, for the goals of docs/production.md:

- firing delay: N deployments on a minute schedule (``* * * * *``) in one service
  application with its scheduler thread running on the real clock; for each fired run,
  the time from its due time to the moment its RunStarted was recorded. Waits for
  ``--firings`` minute boundaries (so it takes a minute or two).
- idle CPU: the process's CPU time while the N deployments wait between two firings
  (from 5 s after a firing to 5 s before the next), as a share of one core.
- backfill: one BackfillDeployment of ``--backfill-days`` daily due times, timed.

The ledger is a temporary SQLite file unless --database-url names a Postgres database
(an empty one: the bench deploys into it). Loopback only; nothing else runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from ledgerflow.engine.schedules import schedule_message
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import events_pb2, query_service_pb2, records_pb2
from ledgerflow_service import LedgerApplication, Principal, open_database

BENCH = Principal("bench", authenticated=False)
K = records_pb2.StepKind


def graph() -> records_pb2.FlowGraph:
    return records_pb2.FlowGraph(steps=[
        records_pb2.StepSpec(name="start", kind=K.STEP_KIND_LINEAR, next_steps=["end"]),
        records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
    ])  # fmt: skip


def spec(name: str, cron: str) -> events_pb2.DeploymentCreated:
    return events_pb2.DeploymentCreated(
        name=name, flow_name="BenchFlow", code_package_key="bench", graph=graph(), user="bench",
        schedule=schedule_message(cron=cron), system_tags=[f"production:{name}"],
    )  # fmt: skip


def fired_delays(app: LedgerApplication) -> list[float]:
    """Seconds from each fired run's due time to its RunStarted's recording."""
    delays = []
    request = query_service_pb2.ListRunsRequest(flow_name="BenchFlow")
    request.page.page_size = 1000
    while True:
        answer = app.list_runs(request)
        for run in answer.runs:
            if run.trigger.kind == records_pb2.TRIGGER_KIND_SCHEDULE:
                due = run.trigger.scheduled_at.ToMicroseconds()
                delays.append((run.created_at.ToMicroseconds() - due) / 1e6)
        if not answer.page.next_page_token:
            return delays
        request.page.page_token = answer.page.next_page_token


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--firings", type=int, default=2)
    parser.add_argument("--backfill-days", type=int, default=365)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ledgerflow-bench-schedules-")
    url = args.database_url or f"sqlite://{folder}/ledger.db"
    app = LedgerApplication(open_database(url))
    try:
        started = time.perf_counter()
        for n in range(args.deployments):
            app.deploy(deploy_api.DeployRequest(deployment=spec(f"minutely-{n}", "* * * * *")),
                       BENCH)  # fmt: skip
        print(f"deployed {args.deployments} minute schedules in "
              f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})")  # fmt: skip
        app.start_scheduling()
        idle_shares = []
        for firing in range(args.firings):
            next_minute = (int(time.time()) // 60 + 1) * 60
            # Idle window: from 5 s after the last firing (or now) to 5 s before the next.
            quiet_from = max(time.time(), next_minute - 55)
            time.sleep(max(0.0, quiet_from - time.time()))
            cpu, wall = time.process_time(), time.time()
            time.sleep(max(0.0, next_minute - 5 - time.time()))
            if time.time() - wall > 10:
                idle_shares.append((time.process_time() - cpu) / (time.time() - wall))
            time.sleep(max(0.0, next_minute + 5 - time.time()))
            print(f"firing {firing + 1}: {len(fired_delays(app))} runs fired so far")
        delays = fired_delays(app)
        if delays:
            print(f"firing delay after the due time: median {statistics.median(delays):.3f} s, "
                  f"p99 {percentile(delays, 0.99):.3f} s, max {max(delays):.3f} s "
                  f"({len(delays)} runs; goal: p99 < 1 s)")  # fmt: skip
        if idle_shares:
            print(f"CPU between firings with {args.deployments} deployments: "
                  f"{100 * max(idle_shares):.2f}% of one core (goal: < 5%)")  # fmt: skip
        app.scheduler.stop()
        app.deploy(deploy_api.DeployRequest(deployment=spec("daily", "0 0 * * *")), BENCH)
        request = deploy_api.BackfillDeploymentRequest(name="daily")
        now = int(time.time()) // 86400 * 86400
        request.since.FromSeconds(now - args.backfill_days * 86400)
        request.until.FromSeconds(now - 86400)
        started = time.perf_counter()
        answer = app.backfill_deployment(request, BENCH)
        print(f"backfill of {len(answer.run_ids)} daily runs queued in "
              f"{time.perf_counter() - started:.2f} s (goal: 365 in < 2 s)")  # fmt: skip
    finally:
        app.close()


if __name__ == "__main__":
    main()
