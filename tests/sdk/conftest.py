"""End-to-end fixtures for the SDK: every flow test runs twice, once on the embedded
ledger (no server) and once against the real gRPC service on a real Postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ledgerflow.client
import pytest
from ledgerflow_service import LedgerApplication, open_database
from ledgerflow_service.api.server import build_server
from moto.server import ThreadedMotoServer
from postgres_server import create_database

FLOWS = Path(__file__).parent / "flows"
# What boto3 needs to talk to moto's S3 server (moto checks nothing).
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class FlowEnv:
    mode: str
    home: Path
    env: dict[str, str]

    def run(
        self,
        flow: str,
        *args: str,
        user: str = "tester",
        extra_env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``python tests/sdk/flows/FLOW.py ARGS`` as a user would."""
        env = {**self.env, "USERNAME": user, **(extra_env or {})}
        result = subprocess.run(
            [sys.executable, str(FLOWS / f"{flow}.py"), *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{flow} {args} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture(params=["embedded", "service"])
def flow_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlowEnv]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["LEDGERFLOW_HOME"] = str(home / ".ledgerflow")
    server = app = None
    if request.param == "service":
        url = create_database(
            request.getfixturevalue("postgres_url"), f"sdk_{abs(hash(str(tmp_path)))}"
        )
        app = LedgerApplication(open_database(url))
        server, port = build_server(app, port=0)
        env["LEDGERFLOW_SERVICE"] = f"127.0.0.1:{port}"
    for key in [k for k in os.environ if k.startswith("LEDGERFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("LEDGERFLOW_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("USERNAME", "tester")
    ledgerflow.client.namespace(None)
    yield FlowEnv(request.param, home, env)
    ledgerflow.client._connection.clear()
    ledgerflow.client.default_namespace()
    if server is not None and app is not None:
        server.stop(0).wait()
        app.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright, for one test module's UI tests
    (each opens its own pages). Not kept for the session: Playwright's sync API holds an
    asyncio loop running on this thread while it is open, and later tests that call
    asyncio.run() (tests/sdk/test_runner.py) would find it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        yield launched
        launched.close()
