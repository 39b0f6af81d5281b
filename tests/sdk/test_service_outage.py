"""A run survives the metadata service going away for a while: the runtime retries the
same events, and their ids keep anything from being recorded twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ledgerflow_service import LedgerApplication, open_database
from ledgerflow_service.api.server import build_server
from postgres_server import create_database

pytestmark = pytest.mark.slow
FLOW = Path(__file__).parent / "flows" / "sleepy_flow.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_run_rides_out_a_service_outage(postgres_url: str, tmp_path: Path) -> None:
    url = create_database(postgres_url, "outage")
    port = free_port()
    app = LedgerApplication(open_database(url))
    server, _ = build_server(app, port=port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(
        LEDGERFLOW_SERVICE=f"127.0.0.1:{port}",
        LEDGERFLOW_HOME=str(tmp_path / "home"),
        USERNAME="tester",
        LEDGERFLOW_HEARTBEAT_SECONDS="60",
    )
    process = subprocess.Popen(
        [sys.executable, str(FLOW), "run", "--seconds", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "nap/2" in line:
            break
    server.stop(0).wait()  # the service goes away while nap runs ...
    app.close()
    time.sleep(3.0)
    app = LedgerApplication(open_database(url))  # ... and comes back on the same port
    server, _ = build_server(app, port=port)
    try:
        output = process.stdout.read()
        assert process.wait(timeout=60) == 0, output
        assert "retrying" in output
        with app.database.read() as tx:
            types = [
                r[0]
                for r in tx.query(
                    "SELECT event_type FROM events WHERE stream LIKE ? ORDER BY global_position",
                    ("SleepyFlow/%/nap/%",),
                )
            ]
        # Each event once, the outage's retries notwithstanding (the nap's one line of
        # output is recorded while it runs or at its end, whichever comes first).
        assert [t for t in types if t != "LogsRecorded"] == [
            "TaskStarted", "ArtifactsRecorded", "TaskSucceeded"
        ]  # fmt: skip
        assert types.count("LogsRecorded") == 1
    finally:
        process.kill()
        server.stop(0).wait()
        app.close()
