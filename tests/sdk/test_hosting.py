"""Hosting over real HTTP: the talk's example answers from the latest successful run,
switches to a newer run while a client keeps asking (no request fails), and answers
bad input, failing handlers and a flow without runs with clear errors. Embedded and
service mode (see conftest.flow_env)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hosting_server import call, hosting
from waiting import wait_for

pytestmark = pytest.mark.slow


def test_the_talks_example_answers_and_follows_new_runs(flow_env) -> None:
    flow_env.run("hosted_flow", "run")
    from ledgerflow import Flow

    first = Flow("HostedFlow").latest_run.pathspec
    with hosting(flow_env, "HostedFlow") as url:
        status, body, headers = call(f"{url}/show_data")
        assert (status, body) == (200, {"result": 3})
        assert headers["x-ledgerflow-run"] == first
        answers: list[tuple[int, Any]] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                status, body, _ = call(f"{url}/show_data")
                answers.append((status, body.get("result")))

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            flow_env.run("hosted_flow", "run", "--x", "5")
            wait_for(lambda: bool(answers) and answers[-1] == (200, 5), 10, "the answer from x=5")
        finally:
            stop.set()
            asker.join()
        assert all(status == 200 for status, _ in answers)  # no request failed
        assert {result for _, result in answers} <= {3, 5}
        assert call(f"{url}/ready")[1] == {
            "ready": True,
            "run": Flow("HostedFlow").latest_run.pathspec,
        }


def test_bad_requests_and_failing_endpoints(flow_env) -> None:
    flow_env.run("hosted_flow", "run")
    with hosting(flow_env, "HostedFlow") as url:
        assert call(f"{url}/echo?a=1&b=two")[:2] == (200, {"got": {"a": "1", "b": "two"}})
        assert call(f"{url}/echo", b'{"k": [1, 2]}')[:2] == (200, {"got": {"k": [1, 2]}})
        status, body, _ = call(f"{url}/echo", b"{not json")
        assert status == 400 and "not JSON" in body["error"]
        status, body, _ = call(f"{url}/echo", b"[1, 2]")
        assert status == 400 and "JSON object" in body["error"]
        status, body, _ = call(f"{url}/echo", b"[" * 100_000 + b"]" * 100_000)
        assert status == 400 and "nested too deeply" in body["error"]
        # A body over the limit is refused before it is read.
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 17000000\r\n\r\n")  # fmt: skip
            reply = ""
            while not reply.endswith("}"):
                chunk = raw.recv(65536).decode()
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith("HTTP/1.1 413") and "over 16,777,216 bytes" in reply
        status, body, headers = call(f"{url}/broken")
        assert status == 500 and body == {"error": "ValueError: this endpoint always fails"}
        assert headers["x-ledgerflow-run"].startswith("HostedFlow/")
        assert call(f"{url}/health")[:2] == (200, {"status": "ok"})
        spec = call(f"{url}/openapi.json")[1]
        assert set(spec["paths"]) == {"/show_data", "/echo", "/broken"}
        assert spec["paths"]["/echo"]["get"]["summary"] == "Answers with what it was given."
        results: list[int] = []

        def burst() -> None:
            results.extend(call(f"{url}/show_data")[0] for _ in range(20))

        threads = [threading.Thread(target=burst) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 320


def test_no_successful_run_yet_is_503_until_one_succeeds(flow_env) -> None:
    # Started before any run: on the embedded ledger, before its file exists.
    with hosting(flow_env, "HostedFlow") as url:
        status, body, _ = call(f"{url}/show_data")
        assert status == 503 and "no successful run of HostedFlow" in body["error"]
        assert call(f"{url}/ready")[0] == 503
        flow_env.run("branch_flow", "run")  # some other flow: still nothing to serve
        assert call(f"{url}/show_data")[0] == 503
        flow_env.run("hosted_flow", "run", "--x", "7")
        wait_for(lambda: call(f"{url}/show_data")[:2] == (200, {"result": 7}), 10, "the first run")
        flow_env.run("hosted_flow", "run", "--x", "9")
        wait_for(lambda: call(f"{url}/show_data")[:2] == (200, {"result": 9}), 10, "a later run")


def _service(method: str) -> str:
    """A service file whose one class S has `method` (its source, indented once)."""
    return f"from ledgerflow import WebServiceSpec, endpoint\n\nclass S(WebServiceSpec):\n{method}"


# (the file, what the refusal says)
REFUSED_SERVICES = [
    ("x = 1\n", "exactly one WebServiceSpec subclass, found 0"),
    (_service("    pass\n"), "S has no @endpoint method"),
    (_service("    @endpoint\n    def health(self): pass\n"), "S.health: /health is the server's"),
    (_service("    @endpoint\n    def two(self, a, b): pass\n"), "S.two: an endpoint takes (self) "
     "or (self, request)"),
    (_service("    @endpoint\n    def typo(self, request: 'Featurs'): pass\n"), "S.typo: cannot "
     "resolve the type 'Featurs' of request: NameError"),
    (_service("    @endpoint\n    def a(self): pass\n    async def accept(self, run): pass\n"),
     "S.accept: a plain def, not async def"),
]  # fmt: skip


def test_serve_refuses_a_service_it_cannot_serve(flow_env, tmp_path: Path) -> None:
    for number, (source, message) in enumerate(REFUSED_SERVICES):
        service = tmp_path / f"service_{number}.py"
        service.write_text(source)
        refused = subprocess.run(
            [sys.executable, "-m", "ledgerflow", "host", "serve", str(service), "--flow", "F"],
            env=flow_env.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and message in refused.stderr, (source, refused.stderr)
        assert "Traceback" not in refused.stderr
