"""To production, end to end: a @project flow with a @schedule is deployed with the CLI,
its runs are fired by the service and run on an executor, a range of days is backfilled
once, and a failed production run is resumed on a laptop without touching production.
The firing by the clock itself is tested in tests/service/test_schedules.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from conftest import FLOWS, Cluster
from ledgerflow.v1 import query_service_pb2

pytestmark = pytest.mark.slow

NAME = "pricing.prod.PricingFlow"


def artifact(cluster: Cluster, step_pathspec: str, name: str) -> Any:
    """An artifact of a step's task, read in any namespace (a production run is not in
    its deployer's namespace: the client refuses it by default, as Metaflow's does)."""
    return cluster.client_says(f"getattr(Step({step_pathspec!r}).task.data, {name!r})")


def runs_of(cluster: Cluster, tag: str) -> list:
    metadata = cluster.metadata()
    request = query_service_pb2.ListRunsRequest(flow_name="PricingFlow", tags=[tag])
    found = list(metadata.list_runs(request).runs)
    metadata.close()
    return found


def test_deploy_trigger_backfill_and_resume_production_on_a_laptop(cluster: Cluster) -> None:
    cluster.executor()
    deployed = cluster.flow("pricing_flow", "--production", "deploy", "--region", "us",
                            "--fail_at", "price")  # fmt: skip
    assert f"Deployed {NAME} (version 1) of PricingFlow by tester" in deployed.stdout
    assert re.search(r"0 3 \* \* \* \(Europe/Helsinki\), next run \d{4}-\d\d-\d\d 03:00 EET "
                     r"\(01:00 UTC\)", deployed.stdout), deployed.stdout  # fmt: skip
    listed = cluster.cli("deployments", "list", "--json").stdout
    assert json.loads(listed)["name"] == NAME and json.loads(listed)["version"] == 1

    # A trigger runs on the executor with the deployment's facts and a parameter replaced.
    fixed = cluster.cli("deployments", "trigger", NAME, "--fail_at", "").stdout
    run_id = fixed.strip().rsplit("/", 1)[1]
    assert cluster.wait_finished("PricingFlow", run_id)
    facts = artifact(cluster, f"PricingFlow/{run_id}/start", "facts")
    assert facts == {"project": "pricing", "branch": "prod", "production": True,
                     "flow": NAME, "namespace": f"production:{NAME}"}  # fmt: skip
    assert artifact(cluster, f"PricingFlow/{run_id}/start", "trigger")["kind"] == "manual"
    assert cluster.client_says(f"Run('PricingFlow/{run_id}').trigger.kind") == "manual"

    assert artifact(cluster, f"PricingFlow/{run_id}/price", "result") == "us-priced"

    # A backfill of three days: one run per day, each knowing its day; again: nothing new.
    dry = cluster.cli("deployments", "backfill", NAME, "--from", "2026-11-01", "--to",
                      "2026-11-03", "--dry-run").stdout  # fmt: skip
    assert "3 due times in the range: 3 would start, 0 already run" in dry
    # A date alone ends the range at the end of that day: the 3rd's 03:00 run is in it.
    backfilled = cluster.cli("deployments", "backfill", NAME, "--from", "2026-11-01",
                             "--to", "2026-11-03").stdout  # fmt: skip
    assert "3 due times: 3 started now, 0 already run" in backfilled
    again = cluster.cli("deployments", "backfill", NAME, "--from", "2026-11-01",
                        "--to", "2026-11-03T12:00:00").stdout  # fmt: skip
    assert "3 due times: 0 started now, 3 already run" in again
    # --max-parallel 1: one at a time, the command starting the next as each finishes.
    paced = cluster.cli("deployments", "backfill", NAME, "--from", "2026-11-04", "--to",
                        "2026-11-06", "--max-parallel", "1", timeout=180).stdout  # fmt: skip
    assert "3 due times: 1 started now, 0 already run, 2 waiting (--max-parallel)" in paced
    assert paced.count("PricingFlow/") == 3  # each reported as it finished
    backfilled_runs = runs_of(cluster, "trigger:backfill")
    days = sorted(r.trigger.scheduled_at.ToDatetime().isoformat() for r in backfilled_runs)
    # 03:00 in Helsinki (EET, UTC+2) is 01:00 UTC.
    assert days == [f"2026-11-0{d}T01:00:00" for d in range(1, 7)]
    failed = next(r for r in backfilled_runs if r.trigger.scheduled_at.ToDatetime().day == 1)
    assert not cluster.wait_finished("PricingFlow", failed.run_id)  # the deployed fail_at
    day = artifact(cluster, f"PricingFlow/{failed.run_id}/start", "trigger")["day"]
    assert day == "2026-11-01"

    # Yesterday's failed production run, debugged on a laptop: resume it locally.
    shown = cluster.cli("deployments", "show", NAME).stdout
    assert "backfill" in shown and failed.run_id in shown
    production_events = len(cluster.events("PricingFlow", failed.run_id))
    resumed = subprocess.run(
        [sys.executable, str(FLOWS / "pricing_flow.py"), "resume", "--origin-run-id",
         failed.run_id, "--run-id-file", str(cluster.home / "resumed")],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address, "FIXED": "1"},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new_id = (cluster.home / "resumed").read_text().strip()
    metadata = cluster.metadata()
    new_run = metadata.run("PricingFlow", new_id)
    assert new_run.origin_run_id == failed.run_id
    assert "user:tester" in new_run.system_tags
    assert "project_branch:user.tester" in new_run.system_tags
    assert not [t for t in new_run.system_tags if t.startswith(("production:", "deployment:"))]
    assert artifact(cluster, f"PricingFlow/{new_id}/price", "result") == "us-priced"
    # Resumed on the laptop, the run prices production's partition, not today's.
    assert artifact(cluster, f"PricingFlow/{new_id}/price", "day") == "2026-11-01"
    # Production is untouched: its run has no new event, its deployment is as deployed.
    assert len(cluster.events("PricingFlow", failed.run_id)) == production_events
    assert metadata.deployment(NAME).version == 1 and not metadata.deployment(NAME).paused
    metadata.close()


def test_bad_deploys_and_commands_get_clear_errors(cluster: Cluster) -> None:
    bad_schedule = cluster.home / "bad_schedule.py"
    bad_schedule.write_text(
        "from ledgerflow import FlowSpec, schedule, step\n\n"
        "@schedule(cron='0 25 * * *')\n"
        "class BadFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n"
        "BadFlow()\n"
    )
    refused = subprocess.run(
        [sys.executable, str(bad_schedule), "deploy"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address}, cwd=cluster.home,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "BadFlow's @schedule: cron '0 25 * * *'" in refused.stderr
    assert "Traceback" not in refused.stderr
    embedded = subprocess.run(
        [sys.executable, str(FLOWS / "pricing_flow.py"), "deploy"],
        env=cluster.env, cwd=cluster.home, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert embedded.returncode == 2 and "deploy needs the metadata service" in embedded.stderr
    invalid = subprocess.run(
        [sys.executable, str(FLOWS.parents[1] / "sdk" / "flows" / "invalid_flow.py"), "deploy"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address}, cwd=cluster.home,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert invalid.returncode == 1 and "is not a valid flow" in invalid.stderr
    bad_project = cluster.home / "bad_project.py"
    bad_project.write_text(bad_schedule.read_text().replace(
        "@schedule(cron='0 25 * * *')", "@project(name='Pricing Team')").replace(
        "import FlowSpec, schedule", "import FlowSpec, project"))  # fmt: skip
    refused = subprocess.run(
        [sys.executable, str(bad_project), "deploy"], env=cluster.env, cwd=cluster.home,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "BadFlow's @project: @project name 'Pricing Team'" in (
        refused.stderr
    )
    listing = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "deployments", "list"], env=cluster.env,
        cwd=cluster.home, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 2 and "set LEDGERFLOW_SERVICE" in listing.stderr
    no_project = cluster.flow("retry_rules", "--production", "deploy", check=False)
    assert no_project.returncode == 2
    assert "--production needs @project on the flow class" in no_project.stderr
    assert "Traceback" not in no_project.stderr
    cluster.flow("pricing_flow", "deploy")  # the deployer's own branch: user.tester
    mine = "pricing.user.tester.PricingFlow"
    assert json.loads(cluster.cli("deployments", "list", "--json").stdout)["name"] == mine
    cluster.cli("deployments", "pause", mine, "--reason", "holiday")
    paused = cluster.cli("deployments", "trigger", mine, check=False)
    assert paused.returncode == 1 and "is paused: resume it first" in paused.stderr
    future = cluster.cli("deployments", "backfill", mine, "--from", "2026-01-01",
                         "--to", "2999-01-01", check=False)  # fmt: skip
    assert future.returncode == 1 and "paused" in future.stderr
    cluster.cli("deployments", "resume", mine)
    future = cluster.cli("deployments", "backfill", mine, "--from", "2026-01-01",
                         "--to", "2999-01-01", check=False)  # fmt: skip
    assert future.returncode == 1 and "ends in the future" in future.stderr
    unknown = cluster.cli("deployments", "show", "Nope", check=False)
    assert unknown.returncode == 1 and "deployment 'Nope' does not exist" in unknown.stderr
    for result in (paused, future, unknown):
        assert "Traceback" not in result.stderr
    cluster.cli("deployments", "delete", mine)
    assert "no deployments" in cluster.cli("deployments", "list").stdout
