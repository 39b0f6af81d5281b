"""@trigger, @trigger_on_finish and @notify as a flow's author meets them: a mistake is
reported by the flow's command line in one line, before anything runs; a flow with
them runs locally as any other (they act once it is deployed); and publishing an
event needs the service that starts deployments. Deployed behaviour is tested in
tests/service/test_triggers.py and tests/executor/test_triggers_e2e.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ledgerflow
import pytest
from ledgerflow.exceptions import LedgerflowException

FLOW = """
from ledgerflow import FlowSpec, current, notify, step, trigger, trigger_on_finish

{decorators}
class Waiting(FlowSpec):
    @step
    def start(self):
        self.trigger = current.trigger
        self.next(self.end)

    @step
    def end(self):
        print("trigger:", self.trigger)


if __name__ == "__main__":
    Waiting()
"""


def run_flow(tmp_path: Path, decorators: str, *args: str) -> subprocess.CompletedProcess[str]:
    flow = tmp_path / "waiting.py"
    flow.write_text(FLOW.format(decorators=decorators))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    # pylint's check of a flow has tests of its own; these are about the decorators.
    env.update(LEDGERFLOW_HOME=str(tmp_path / "home"), LEDGERFLOW_PYLINT="0")
    return subprocess.run([sys.executable, str(flow), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("decorators", "message"),
    [
        ("@trigger(event='data ready')", "event name 'data ready' is not valid"),
        ("@trigger(event='a', events=['b'])", "@trigger takes event='...' or events=[...]"),
        ("@trigger(events=[])", "@trigger(events=[]) names no event"),
        ("@trigger_on_finish()", "@trigger_on_finish takes flow='...' or flows=[...]"),
        ("@trigger_on_finish(flow=3)", "takes the flow's name as text, not int"),
        (
            "@notify(on=['sometimes'], webhook='http://127.0.0.1:1/')",
            "takes 'success' and 'failure', not 'sometimes'",
        ),
        ("@notify(webhook='ftp://example')", "a webhook is an http:// or https:// URL"),
        ("@notify(on=['failure'])", "@notify needs command='...' or webhook="),
        ("@notify(command='a', webhook='http://127.0.0.1:1/')", "not both"),
    ],
)
def test_a_bad_trigger_or_notify_is_reported_before_anything_runs(
    tmp_path: Path, decorators: str, message: str
) -> None:
    result = run_flow(tmp_path, decorators, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()  # nothing ran, nothing was recorded


def test_a_flow_with_triggers_runs_locally_as_any_other(tmp_path: Path) -> None:
    decorators = (
        "@trigger(events=['data_ready', 'backfill_ready'])\n"
        "@trigger_on_finish(flows=['Upstream', 'pricing.prod.Other'])\n"
        "@notify(on=['failure', 'success'], webhook='http://127.0.0.1:1/hook')\n"
        "@notify(command='true')"
    )
    result = run_flow(tmp_path, decorators, "run")
    assert result.returncode == 0, result.stderr
    assert "trigger: None" in result.stdout  # a local run was started by nobody


def test_deploy_options_for_notify_are_checked(tmp_path: Path) -> None:
    result = run_flow(tmp_path, "", "deploy", "--notify-webhook", "ftp://x")
    assert result.returncode == 2 and "a webhook is an http:// or https:// URL" in result.stderr
    result = run_flow(tmp_path, "", "deploy", "--notify-on", "always", "--notify-command", "x")
    assert result.returncode == 2 and "not 'always'" in result.stderr


def test_publishing_an_event_needs_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("LEDGERFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LEDGERFLOW_HOME", str(tmp_path / "home"))
    ledgerflow.client._connection.clear()
    with pytest.raises(LedgerflowException, match="LEDGERFLOW_SERVICE=HOST:PORT"):
        ledgerflow.publish_event("data_ready", {"date": "2026-12-06"})
    with pytest.raises(LedgerflowException, match="not JSON serializable"):
        ledgerflow.publish_event("data_ready", {"when": object()})
    with pytest.raises(LedgerflowException, match="event name 'a b' is not valid"):
        ledgerflow.publish_event("a b")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["LEDGERFLOW_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "ledgerflow.cli", "events", "publish", "x"],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "LEDGERFLOW_SERVICE=HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
