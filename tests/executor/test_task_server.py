"""The task server's protocol, spoken to by hand (`python FLOW task-server`, see
ledgerflow/runtime/task_server.py): what the local backend and warm containers rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS
from ledgerflow.runtime.task import TaskRequest, TaskSpec
from waiting import wait_for

FLOW_FILE = FLOWS / "contract_task.py"


class Server:
    """A task server and every message it said, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, str(FLOW_FILE), "task-server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=folder,
            env={**os.environ, "LEDGERFLOW_PYLINT": "0"},
        )  # fmt: skip
        self.said: list[dict[str, Any]] = []
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.said.append(json.loads(line))

    def ask(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def attempt(self, name: str, mode: str) -> Path:
        """Asks for an attempt of the contract task in `mode`; its folder."""
        folder = self.folder / name
        folder.mkdir()
        request = TaskRequest(
            TaskSpec("start", "1", [], []),
            facts=dict(flow_name="ContractTask", run_id="1", step_name="start", task_id=name,
                       retry_count=0),
            parameters_json={"mode": f'"{mode}"'},
        )  # fmt: skip
        (folder / "spec.json").write_text(request.to_json())
        data = self.folder / "data"
        self.ask({
            "spec": str(folder / "spec.json"), "result": str(folder / "result"),
            "stdout": str(folder / "stdout"), "stderr": str(folder / "stderr"),
            "memory_bytes": 0, "cgroup": "", "cores": [], "gpus": 0, "cwd": str(folder),
            "env": {"LEDGERFLOW_DATASTORE": "local", "LEDGERFLOW_DATASTORE_ROOT": str(data)},
        })  # fmt: skip
        return folder

    def pids(self, what: str) -> list[int]:
        return [message[what] for message in list(self.said) if what in message]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path)
    yield started
    started.process.kill()
    started.process.wait()


def test_each_attempt_is_said_to_start_before_it_is_said_to_exit(server: Server) -> None:
    """However fast it ends: the executor matches an exit to the attempt it started."""
    for index in range(20):
        server.attempt(f"quick-{index}", "exit")
    wait_for(lambda: len(server.pids("exited")) == 20, 60, "the attempts to exit")
    order = [(kind, message[kind]) for message in server.said for kind in message
             if kind in ("started", "exited")]  # fmt: skip
    for pid in server.pids("started"):
        assert order.index(("started", pid)) < order.index(("exited", pid))
    assert {message["code"] for message in server.said if "exited" in message} == {3}


def test_a_kill_ends_one_attempt_and_the_server_serves_on(server: Server) -> None:
    sleeper = server.attempt("sleeper", "sleep")
    wait_for(lambda: "hello" in _text(sleeper / "stdout"), 60, "the attempt to run")
    (pid,) = server.pids("started")
    server.ask({"kill": pid})
    wait_for(lambda: server.pids("exited") == [pid], 30, "the attempt to be killed")
    assert [m["code"] for m in server.said if "exited" in m] == [-9]
    quick = server.attempt("after", "ok")
    wait_for(lambda: len(server.pids("exited")) == 2, 60, "the next attempt to end")
    assert (quick / "result").exists() and "hello" in _text(quick / "stdout")


def test_a_kill_sent_as_soon_as_an_attempt_started_ends_it(server: Server) -> None:
    """Even before the child made its process group: then the child alone is killed."""
    for index in range(10):
        server.attempt(f"sleeper-{index}", "sleep")
        wait_for(lambda: len(server.pids("started")) == index + 1, 30, "the attempt")  # noqa: B023
        pid = server.pids("started")[-1]
        server.ask({"kill": pid})
        wait_for(lambda: pid in server.pids("exited"), 30, f"attempt {index} to be killed")  # noqa: B023
    assert [m["code"] for m in server.said if "exited" in m] == [-9] * 10


def test_when_its_stdin_closes_the_server_kills_what_runs_and_exits(server: Server) -> None:
    """Its executor is gone (or done with it): no attempt runs on unwatched."""
    sleeper = server.attempt("sleeper", "sleep")
    wait_for(lambda: "hello" in _text(sleeper / "stdout"), 60, "the attempt to run")
    assert server.process.stdin is not None
    closed_at = time.monotonic()
    server.process.stdin.close()
    assert server.process.wait(timeout=30) == 0
    assert time.monotonic() - closed_at < 30
    (pid,) = server.pids("started")
    assert server.said[-1] == {"exited": pid, "code": -9}
    assert not (sleeper / "result").exists()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
