"""Nothing outlives the runtime: its task processes die with it (even on kill -9), it
stops them when the service stays out of reach, and its scratch folder goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ledgerflow_service import LedgerApplication, open_database
from ledgerflow_service.api.server import build_server
from waiting import wait_for

pytestmark = pytest.mark.slow
FLOW = Path(__file__).parent / "flows" / "pid_flow.py"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return status != "Z"  # a zombie has exited; its parent just did not reap it


def workdirs(runtime_pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"ledgerflow-run-{runtime_pid}-*"))


def start_run(
    tmp_path: Path, env: dict[str, str], launcher: str = "fork"
) -> tuple[subprocess.Popen[str], int]:
    pidfile = tmp_path / "task.pid"
    pidfile.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, str(FLOW), "run", "--pidfile", str(pidfile), "--launcher", launcher],
        cwd=tmp_path,
        env={**os.environ, "USERNAME": "tester", "LEDGERFLOW_HOME": str(tmp_path / "home"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "", 60, "the nap task starts")
    return process, int(pidfile.read_text())


@pytest.mark.parametrize("launcher", ["fork", "command"])
def test_task_processes_die_with_a_killed_runtime(tmp_path: Path, launcher: str) -> None:
    runtime, task_pid = start_run(tmp_path, {}, launcher)
    assert alive(task_pid) and workdirs(runtime.pid)
    runtime.send_signal(signal.SIGKILL)
    runtime.wait(timeout=10)
    wait_for(lambda: not alive(task_pid), 10, "the task process dies with its runtime")
    # The dead runtime's scratch folder is removed by the next runtime that starts.
    later, later_task = start_run(tmp_path, {})
    try:
        assert workdirs(runtime.pid) == []
    finally:
        later.kill()
        later.wait(timeout=10)
        wait_for(lambda: not alive(later_task), 10, "the second task process dies too")


def test_a_runtime_that_loses_the_service_stops_its_tasks(tmp_path: Path) -> None:
    app = LedgerApplication(open_database(f"sqlite://{tmp_path / 'service.db'}"))
    server, port = build_server(app, port=0)
    runtime, task_pid = start_run(
        tmp_path,
        {"LEDGERFLOW_SERVICE": f"127.0.0.1:{port}", "LEDGERFLOW_SERVICE_PATIENCE": "2",
         "LEDGERFLOW_HEARTBEAT_SECONDS": "0.2"},
    )  # fmt: skip
    try:
        server.stop(0).wait()  # gone for good
        assert runtime.wait(timeout=30) != 0
        output = runtime.stdout.read() if runtime.stdout else ""
        assert "unavailable" in output and "Traceback" not in output, output
        assert not alive(task_pid)
        assert workdirs(runtime.pid) == []
    finally:
        runtime.kill()
        app.close()


def test_an_append_that_timed_out_is_retried_with_the_same_events(tmp_path: Path) -> None:
    """DEADLINE_EXCEEDED is retried like UNAVAILABLE: the event ids make it safe."""
    import events as ev
    from ledgerflow.exceptions import RpcError
    from ledgerflow.metadata_client import EmbeddedMetadata
    from ledgerflow.runtime.run_events import append_with_retries

    class SlowOnce(EmbeddedMetadata):
        timeouts = 1

        def append(self, request: Any) -> Any:
            recorded = super().append(request)  # committed, but the answer is lost
            if self.timeouts:
                self.timeouts -= 1
                raise RpcError("DEADLINE_EXCEEDED", "the append took too long")
            return recorded

    client = SlowOnce(f"sqlite://{tmp_path / 'ledger.db'}", "alice")
    warnings: list[str] = []
    try:
        append_with_retries(
            client, [ev.run_started("MyFlow", "1")], warnings.append, lambda _: None
        )
        with client.app.database.read() as tx:
            assert tx.query("SELECT event_type FROM events") == [("RunStarted",)]
        assert "took too long" in warnings[0]
    finally:
        client.close()


SERVER_KILLER = """
import os, signal, time
from ledgerflow import FlowSpec, current, retry, step


class ServerKillerFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.kill)

    @retry(times=1)
    @step
    def kill(self):
        if current.retry_count == 0:  # the fork server that forked this attempt dies
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(30)
        self.survived = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ServerKillerFlow()
"""


def test_an_attempt_whose_fork_server_dies_is_killed_and_retried_on_a_new_one(
    tmp_path: Path,
) -> None:
    """The attempts die with the fork server that forked them (which dies with the
    runtime): the runtime records each as killed, and the next launch starts a new
    server."""
    flow = tmp_path / "server_killer_flow.py"
    flow.write_text(SERVER_KILLER)
    env = {**os.environ, "USERNAME": "tester", "LEDGERFLOW_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(flow), "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    from ledgerflow import Flow, namespace

    os.environ["LEDGERFLOW_HOME"] = env["LEDGERFLOW_HOME"]
    try:
        namespace(None)
        task = Flow("ServerKillerFlow").latest_run["kill"].task
        assert task.data.survived
        endings = [m.value for m in task.metadata if m.name == "attempt_ok"]
        assert endings == ["False", "True"]
    finally:
        del os.environ["LEDGERFLOW_HOME"]
