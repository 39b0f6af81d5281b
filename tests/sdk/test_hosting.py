"""Hosting over real HTTP: the talk's example answers from the latest successful run,
switches to a newer run while a client keeps asking (no request fails), and answers
bad input, failing handlers and a flow without runs with clear errors. Embedded and
service mode (see conftest.flow_env)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

pytestmark = pytest.mark.slow
SERVICE = Path(__file__).parent / "services" / "talk_service.py"


@contextmanager
def hosting(flow_env: Any, flow: str) -> Iterator[str]:
    """`ledgerflow host serve` on a free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "host", "serve", str(SERVICE), "--flow", flow,
         "--port", "0"],
        env={**flow_env.env, "USERNAME": "tester"}, cwd=flow_env.home,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("serving MyWebService on "):
                url = line.split(" on ", 1)[1].split()[0]
                break
        else:
            raise AssertionError(f"the server did not start (exit {process.wait()})")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def call(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


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
    flow_env.run("branch_flow", "run")  # some other flow exists; HostedFlow does not
    with hosting(flow_env, "HostedFlow") as url:
        status, body, _ = call(f"{url}/show_data")
        assert status == 503 and "no successful run of HostedFlow" in body["error"]
        assert call(f"{url}/ready")[0] == 503
        flow_env.run("hosted_flow", "run", "--x", "7")
        wait_for(lambda: call(f"{url}/show_data")[:2] == (200, {"result": 7}), 10, "the first run")


def test_serve_refuses_a_file_without_a_service(flow_env, tmp_path: Path) -> None:
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    refused = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "host", "serve", str(empty), "--flow", "F"],
        env=flow_env.env, capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 1 and "exactly one WebServiceSpec" in refused.stderr
    assert "Traceback" not in refused.stderr
