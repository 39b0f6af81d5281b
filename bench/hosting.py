"""Hosting benchmark: `ledgerflow host serve` answering the talk's `show_data` endpoint
over loopback, from 16 concurrent clients with keep-alive connections (each a thread
of this process). Prints requests/s and latency percentiles.

    python bench/hosting.py [--clients 16] [--requests 500]

The flow runs once on an embedded ledger in a scratch folder; the server is a separate
process (one uvicorn worker), so client and server do not share a GIL. The goal in the
issue: at least 2,000 requests/s and p99 under 20 ms on this machine.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from figures import percentile

HERE = Path(__file__).resolve().parent
FLOW = HERE.parent / "tests" / "sdk" / "flows" / "hosted_flow.py"
SERVICE = HERE.parent / "tests" / "sdk" / "services" / "talk_service.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500, help="per client")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env["LEDGERFLOW_HOME"] = str(Path(scratch) / ".ledgerflow")
        env["LEDGERFLOW_PYLINT"] = "0"
        subprocess.run([sys.executable, str(FLOW), "run"], env=env, cwd=scratch, check=True,
                       capture_output=True)  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "ledgerflow", "host", "serve", str(SERVICE),
             "--flow", "HostedFlow", "--port", "0"],
            env=env, cwd=scratch, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stderr is not None
            line = ""
            while not line.startswith("serving "):
                line = server.stderr.readline()
                if not line:
                    raise SystemExit("the server did not start")
            port = int(line.split("http://127.0.0.1:")[1].split()[0])
            threading.Thread(target=server.stderr.read, daemon=True).start()
            latencies: list[float] = []
            failures = [0]
            lock = threading.Lock()

            def client() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                mine = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    connection.request("GET", "/show_data")
                    response = connection.getresponse()
                    response.read()
                    mine.append(time.perf_counter() - started)
                    if response.status != 200:
                        failures[0] += 1
                with lock:
                    latencies.extend(mine)

            warm = threading.Thread(target=client)
            warm.start()
            warm.join()
            latencies.clear()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
        finally:
            server.terminate()
            server.wait(timeout=20)
    total = len(latencies)
    print(f"hosting show_data: {args.clients} clients, {total} requests, {failures[0]} failed, "
          f"{os.cpu_count()} cores, loopback")  # fmt: skip
    print(
        f"  {total / elapsed:,.0f} requests/s  p50 {percentile(latencies, 50) * 1e3:.2f} ms  "
        f"p99 {percentile(latencies, 99) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
