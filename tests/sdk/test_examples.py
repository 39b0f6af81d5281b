"""The README's examples run as written (embedded ledger, no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
pytestmark = pytest.mark.slow


def run(tmp_path: Path, *args: str, user: str = "tester") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["USERNAME"] = user
    result = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_examples_run(tmp_path: Path) -> None:
    assert "out is 3" in run(tmp_path, str(EXAMPLES / "branch_flow.py"), "run")
    assert "out is 122" in run(tmp_path, str(EXAMPLES / "foreach_flow.py"), "run")
    run(tmp_path, str(EXAMPLES / "branch_flow.py"), "run", "--tag", "unsampled_model", user="savin")
    run(tmp_path, str(EXAMPLES / "branch_flow.py"), "run", "--tag", "sampled_model", user="david")
    lines = run(tmp_path, str(EXAMPLES / "client_namespaces.py")).splitlines()
    savin, david, everyone = lines
    assert savin.endswith("['unsampled_model']")
    assert david.endswith("['sampled_model']")
    assert everyone == david.split()[0]  # the newest run of all is David's
