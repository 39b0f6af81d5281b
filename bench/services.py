"""Processes the benchmarks start on loopback: a metadata service, and ports for others
(run as `python bench/NAME.py`, so this folder is on the import path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

# A benchmark stopped by SIGTERM (a `timeout`, say) unwinds as one stopped by Ctrl-C
# does, so that its `finally` blocks stop the services it started: by default SIGTERM
# ends Python at once, and a `ledgerflow service` and its workers outlived it.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """The user and system CPU time process `pid` has used, in seconds (with
    `reaped_children`, also what its children that it waited for used)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = fields[11:15] if reaped_children else fields[11:13]
    return sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run (or wait to be reaped)."""
    found = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as children:
                found += [int(child) for child in children.read().split()]
        except OSError:
            continue  # the thread ended
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, what: str, seconds: float = 30) -> None:
    """Waits until something listens on the loopback `port`; exits naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start on port {port}")


def start_service(
    database_url: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """`ledgerflow service` on a port of its choosing; the process and its port, once it
    listens. Its log is read (and dropped) meanwhile, so it never blocks on a full pipe."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "service", "--database-url", database_url,
         "--port", "0", "--workers", str(workers)],
        stderr=subprocess.PIPE,
        text=True,
        env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"the service did not start: {line}{process.stderr.read()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, int(line.split("127.0.0.1:")[1].split()[0])
