"""A @parallel gang on an executor whose node fails: the service tells the executor to
stop the node still waiting for it (RenewLease), which records why, as a local run
does (tests/sdk/test_parallel.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cluster

pytestmark = pytest.mark.slow

FLOW = Path(__file__).parents[1] / "sdk" / "flows" / "parallel_flow.py"


def test_a_failed_node_stops_the_rest_of_its_gang(cluster: Cluster) -> None:
    cluster.executor()
    result = subprocess.run(
        [sys.executable, str(FLOW), "run", "--remote", "--nodes", "2", "--fail-node", "1"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr + cluster.log_text()
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    failures = sorted(
        (e.task_failed.error_type, e.task_failed.error_message)
        for e in cluster.events("ParallelFlow", run_id)
        if e.HasField("task_failed")
    )
    assert failures == [
        ("Cancelled", "node train/3 of its @parallel gang failed, so the gang cannot go on"),
        ("RuntimeError", "node 1 fails, as asked"),
    ]
