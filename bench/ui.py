"""Web UI benchmark, in Debian's chromium driven by Playwright: the time for the run page
of a foreach of 10,000 tasks to show its graph and counts (from navigation to the graph
drawn) and to draw every task's bar on its timeline, and the delay from an event's
append (a tag added) to the runs page showing it without a reload (to the moment the
page swapped in the new rows). Prints figures.

    python bench/ui.py [--tasks 10000] [--events 50] [--ledger embedded|service]

The run is a real foreach (bench/flows/foreach_100.py with --count), recorded in a
scratch folder's embedded ledger and, separately, by a metadata service on a throwaway
Postgres (both unless --ledger picks one); `ledgerflow ui` serves it from a process of
its own (with --service for the second). The embedded UI learns of appends by asking
SQLite every 20 ms whether another connection committed (then it reads); against a service it
follows the watch stream. The goals: the run page with every bar drawn under 0.5 s;
the append-to-browser delay p99 under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import percentile
from services import start_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import create_database, postgres_server

FLOW = Path(__file__).resolve().parent / "flows" / "foreach_100.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--ledger", choices=["embedded", "service"])
    args = parser.parse_args()
    if args.ledger is None:  # each ledger in a process of its own: one client each
        for ledger in ("embedded", "service"):
            again = ["--tasks", str(args.tasks), "--events", str(args.events), "--ledger", ledger]
            subprocess.run([sys.executable, __file__, *again], check=True)
        return
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env.update(LEDGERFLOW_HOME=str(Path(scratch) / ".ledgerflow"), LEDGERFLOW_PYLINT="0")
        if args.ledger == "embedded":
            bench_ledger(args, env, scratch, [])
            return
        with postgres_server() as server_url:
            service, port = start_service(create_database(server_url, "bench_ui"), env=env)
            try:
                env["LEDGERFLOW_SERVICE"] = f"127.0.0.1:{port}"
                bench_ledger(args, env, scratch, ["--service", env["LEDGERFLOW_SERVICE"]])
            finally:
                service.terminate()
                service.wait(30)


def bench_ledger(
    args: argparse.Namespace, env: dict[str, str], scratch: str, ui_args: list[str]
) -> None:
    """Runs the foreach on the ledger `env` names, then measures the UI over it."""
    os.environ.update(env)
    print(f"{args.ledger} ledger: running a foreach of {args.tasks:,} tasks ...", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(FLOW), "run", "--count", str(args.tasks),
                    "--max-num-splits", str(max(args.tasks, 100)),
                    "--max-workers", "4"], env=env, cwd=scratch, check=True,
                   capture_output=True)  # fmt: skip
    print(f"  ran in {time.perf_counter() - started:.0f} s")
    server = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow.cli", "ui", "--port", "0", *ui_args],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        found = re.search(r"http://[\d.:]+", server.stderr.readline())
        assert found, "the UI did not start"
        measure(found[0], args)
    finally:
        server.terminate()
        server.wait(10)


def measure(address: str, args: argparse.Namespace) -> None:
    from ledgerflow import Flow
    from playwright.sync_api import sync_playwright

    run = Flow("ForeachPy").latest_run
    assert run is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox"])  # fmt: skip
        page = browser.new_page()
        page.goto(address)  # warm: the server's first page
        # Every task's bar painted on the timeline's canvas (timeline.js counts them).
        drawn = (
            "() => { const c = document.querySelector('[data-timeline] canvas'); return !!c"
            " && !!c.timeline && Number(c.dataset.bars) === c.timeline.data.tasks.length; }"
        )
        began = time.perf_counter()
        page.goto(f"{address}/runs/{run.pathspec}")  # the run's tasks read from the ledger
        page.wait_for_function(drawn)
        first = time.perf_counter() - began
        loads, full = [], []
        for _ in range(5):
            began = time.perf_counter()
            page.goto(f"{address}/runs/{run.pathspec}")
            page.wait_for_selector('svg.dag a.step[data-step="work"]')
            loads.append(time.perf_counter() - began)
            page.wait_for_function(drawn)
            full.append(time.perf_counter() - began)
        counts = page.locator('svg.dag a.step[data-step="work"] .counts').text_content()
        bars = page.locator("[data-timeline] canvas").get_attribute("data-bars")
        print(f"run page of {args.tasks:,} tasks, graph and counts shown ({counts}): "
              f"best {min(loads):.2f} s, median {sorted(loads)[2]:.2f} s (goal < 1 s)")  # fmt: skip
        print(f"run page of {args.tasks:,} tasks with all {bars} timeline bars drawn: first "
              f"view {first:.2f} s (its tasks read from the ledger), then (the finished run's "
              f"timeline kept) best {min(full):.2f} s, median {sorted(full)[2]:.2f} s "
              "(goal < 0.5 s)")  # fmt: skip

        page.goto(address)
        live = page.locator("[data-live]")
        # Appends start once the page follows the ledger (and has refreshed on opening).
        page.wait_for_selector("[data-live][data-connected][data-updated]")
        delays = []
        for index in range(args.events):
            tag = f"bench-{index}"
            began = time.time()
            run.add_tag(tag)
            page.wait_for_selector(f'tr[data-run="{run.pathspec}"] >> text={tag}', timeout=10_000)
            # When the page swapped in the new rows (ui.js stamps it), not when Playwright's
            # polling noticed: that backs off to half a second when the page is quiet.
            delays.append(int(live.get_attribute("data-updated") or 0) / 1000 - began)
        p50, p99 = (percentile(delays, p) * 1000 for p in (50, 99))
        print(f"append to browser, {args.events} tags added: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
              f"max {max(delays) * 1000:.0f} ms (goal p99 < 300 ms)")  # fmt: skip
        browser.close()


if __name__ == "__main__":
    main()
