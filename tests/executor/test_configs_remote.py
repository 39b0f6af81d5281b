"""Configs on a remote run (`run --remote`): the service orchestrates from a graph whose
decorator values the submitter read from its config, and each task on the executor
reads the config the run recorded (its step, its @environment and @card too)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cluster
from ledgerflow.v1 import query_service_pb2

pytestmark = pytest.mark.slow

CONFIG_FLOW = Path(__file__).parents[1] / "sdk" / "flows" / "config_flow.py"
GIVEN = {
    "alpha": 0.9,
    "retries": 3,
    "resources": {"cpu": 1, "memory": 512},
    "timeout": 30,
    "model": {"lr": 0.1, "layers": [2], "name": "big"},
    "env": {"GREETING": "hi"},
    "card": "default",
}


def test_a_remote_run_takes_its_config(cluster: Cluster) -> None:
    cluster.executor()
    result = subprocess.run(
        [sys.executable, str(CONFIG_FLOW), "--no-pylint", "--config-value", "config",
         json.dumps(GIVEN), "run", "--remote"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + cluster.log_text()
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    client = cluster.metadata()
    asked = query_service_pb2.GetRunRequest(flow_name="ConfigFlow", run_id=run_id,
                                            include_graph=True)  # fmt: skip
    steps = {spec.name: spec for spec in client.get_run(asked).graph.steps}
    client.close()
    start = steps["start"]
    assert (start.retries, start.resources.cpu, start.resources.memory_mb) == (3, 1, 512)
    assert (start.timeout_seconds, steps["train"].catch_var) == (30, "big_error")
    assert cluster.artifact(f"ConfigFlow/{run_id}/start", "greeting") == "hi"
    assert cluster.artifact(f"ConfigFlow/{run_id}/train", "seen") == [0.9, [2], 0.9]
    assert cluster.client_says(f"Run('ConfigFlow/{run_id}').data.config.to_dict()") == GIVEN
    cards = [
        card.type
        for event in cluster.events("ConfigFlow", run_id)
        if event.HasField("cards_recorded")
        for card in event.cards_recorded.cards
    ]
    assert cards == ["default"]
