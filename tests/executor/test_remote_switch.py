"""A switch on an executor: `resume --remote` clones the switch tasks of the origin
and goes on down the cases they chose (the same flow's local run and resume are in
tests/sdk/test_switch.py; tests/executor/test_same_ledger.py compares the ledgers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cluster

pytestmark = pytest.mark.slow

FLOW = Path(__file__).parents[1] / "sdk" / "flows" / "switch_flow.py"


def _switch_flow(cluster: Cluster, *args: str) -> str:
    """Runs the switch flow against the cluster's service; returns the run id."""
    result = subprocess.run(
        [sys.executable, str(FLOW), *args],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    found = re.search(r" run (\d+) by ", result.stdout)
    assert result.returncode == 0 and found, result.stdout + result.stderr + cluster.log_text()
    return found.group(1)


def test_a_remote_resume_follows_the_cases_the_origin_chose(cluster: Cluster) -> None:
    cluster.executor()
    origin = _switch_flow(cluster, "run", "--remote", "--mode", "quick")
    labels = ["3 is small", "12 is big", "5 is small"]
    assert cluster.artifact(f"SwitchFlow/{origin}/join", "labels") == labels
    run_id = _switch_flow(cluster, "resume", "graded", "--remote", "--origin-run-id", origin)
    assert cluster.artifact(f"SwitchFlow/{run_id}/join", "labels") == labels
    events = cluster.events("SwitchFlow", run_id)
    cloned = sorted(e.stream.split("/")[2] for e in events if e.HasField("task_cloned"))
    assert cloned == ["big", "fanout", "grade", "grade", "grade", "small", "small", "start"]
    ran = sorted(e.stream.split("/")[2] for e in events if e.HasField("task_started"))
    assert ran == ["end", "graded", "graded", "graded", "join"]
