"""How fast the client API opens a task by its pathspec, as a notebook does.

    python bench/client_open.py [--tasks 100] [--ledger embedded|service]

Runs tests/sdk/flows/wide_flow.py with a foreach of --tasks items on a fresh ledger
(the embedded one, or a service on a temporary SQLite file on loopback), then opens
each of the foreach's tasks with ``Task('WideFlow/RUN/square/ID')`` and reads one
artifact of each, in a fresh process. Prints the time per open and for all of them
(issue 29's goal: < 5 ms an open, 100 of them in < 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
FLOW = ROOT / "tests" / "sdk" / "flows" / "wide_flow.py"
MEASURE = """
import json, sys, time
from ledgerflow import Flow, Task, namespace
namespace(None)
run = Flow("WideFlow").latest_run
paths = [t.pathspec for t in run["square"]]
began = time.perf_counter()
for path in paths:
    Task(path)
opened = time.perf_counter() - began
began = time.perf_counter()
for path in paths:
    Task(path).data.value
read = time.perf_counter() - began
print(json.dumps({"tasks": len(paths), "open": opened, "open_and_read": read}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--ledger", choices=["embedded", "service"], default="embedded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env.update(LEDGERFLOW_HOME=str(Path(scratch) / "home"), LEDGERFLOW_PYLINT="0")
        service = None
        if args.ledger == "service":
            port = free_port()
            service = subprocess.Popen(
                [sys.executable, "-m", "ledgerflow.cli", "service", "--port", str(port),
                 "--database-url", f"sqlite://{Path(scratch) / 'service.db'}"],
                env=env, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            env["LEDGERFLOW_SERVICE"] = f"127.0.0.1:{port}"
            time.sleep(3)
        try:
            subprocess.run(
                [sys.executable, str(FLOW), "run", "--width", str(args.tasks),
                 "--max-num-splits", str(max(args.tasks, 100))],
                env=env, cwd=scratch, check=True, capture_output=True,
            )  # fmt: skip
            done = subprocess.run([sys.executable, "-c", MEASURE], env=env, cwd=scratch,
                                  check=True, capture_output=True, text=True)  # fmt: skip
        finally:
            if service is not None:
                service.terminate()
                service.wait()
    found = json.loads(done.stdout)
    tasks = found["tasks"]
    print(f"{args.ledger} ledger, {tasks} tasks of one foreach step:")
    print(f"  Task(pathspec): {found['open'] / tasks * 1e3:.1f} ms an open, "
          f"{found['open']:.2f} s for all")  # fmt: skip
    print(f"  and one artifact read: {found['open_and_read'] / tasks * 1e3:.1f} ms a task, "
          f"{found['open_and_read']:.2f} s for all")  # fmt: skip


if __name__ == "__main__":
    main()
