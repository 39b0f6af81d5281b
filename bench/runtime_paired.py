"""The local runtime's speed at two git commits, measured in alternating pairs.

    python bench/runtime_paired.py [--old c9a691a] [--new HEAD|WORKTREE] [--rounds 3]
                                   [--items 100] [--big 10000] [--workers 4]

What it measures: ``python flow.py run --max-workers W`` as a user runs it, embedded
SQLite mode (no LEDGERFLOW_SERVICE), on three flows written into a temporary folder:

- items: a foreach over ``--items`` trivial items (default 100), then a join;
- branch: start -> a, b -> join -> end (x = 0, then x += 2 and x += 3, joined by max);
- big: a foreach over ``--big`` items (default 10,000), then a join.

The flows use only FlowSpec, @step, self.next(..., foreach=...) and joins, so the same
source runs on both commits (neither has a limit on the number of splits to lift).

How: each side runs from a checkout of its own. A commit (or any git ref) gets a
``git worktree add --detach`` in a temporary folder, removed at the end, on error too;
``WORKTREE`` (the default for --new) is this checkout as it is, uncommitted changes
included. Every run has ``PYTHONPATH=<checkout>/python_client:<checkout>/metadata_service:
<checkout>/executor`` (checked before the first run: each side imports its own
ledgerflow, ledgerflow_service and ledgerflow_executor; a package a commit does not have,
such as the executor before it was written, is replaced by a stand-in that fails to
import, so the side cannot fall back on the editable install), a fresh LEDGERFLOW_HOME and a
fresh working folder, ``LEDGERFLOW_PYLINT=0`` and ``USERNAME=bench``; every other
LEDGERFLOW_* variable is dropped. Each side's packages are compiled to bytecode in place
before the first run (as ``pip install`` does; see bench/checkouts.py), and one untimed
run of the branch flow warms the file cache, so that neither side pays for compiling or
first reads in the timed runs.

Pairing: in every round each case runs on both sides back to back, old then new in odd
rounds and new then old in even ones, so that the speed of the machine drifting (by tens
of percent within minutes on a shared VM) and the order within a pair fall on both sides
alike. The rounds' figures are pooled per side.

The figures, a table per case:

- wall s: the median over the rounds of the time from starting ``python flow.py run`` to
  its exit, interpreter start and imports included (what a user waits for). It is
  measured by a small wrapper process around the run, so the wrapper's own start is not in
  it. ``each run`` lists every round's wall time, to show the spread.
- runtime s: the median of the runtime's own figure, its closing line
  ``FLOW/RUN succeeded in X.XXs`` (the run from its first task to its end, without the
  interpreter's start and the imports).
- ms/task: wall time divided by the number of tasks (a foreach over N has N + 3: start,
  the N splits, the join and end).
- peak RSS MB: ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` in the wrapper, that is,
  the peak resident memory of the largest single process in the run's process tree (in
  practice the runtime process; the forked tasks are smaller), not a sum over the
  processes. The median over the rounds.
- new/old: the ratio of the two sides' medians; below 1 the new side is faster. With few
  rounds, read a ratio within the spread of ``each run`` as no difference.

The exit status is non-zero only when something fails to run (a checkout, a flow), never
because of a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from checkouts import WORKTREE, BenchError, Checkout, describe, in_turn, paired_checkouts
from rich.console import Console
from rich.table import Table

FOREACH = """
from ledgerflow import FlowSpec, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.items = list(range({count}))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == {count} * ({count} - 1), self.total


if __name__ == "__main__":
    {name}()
"""

BRANCH = """
from ledgerflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.x = 0
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x += 2
        self.next(self.join)

    @step
    def b(self):
        self.x += 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.x = max(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.x == 3, self.x


if __name__ == "__main__":
    BranchFlow()
"""

# Runs argv[2:] with its output in the file argv[1]; prints its wall time and the peak
# RSS of the largest process of its tree (Linux: ru_maxrss in KiB).
MEASURE = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as log:
    started = time.perf_counter()
    code = subprocess.run(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT).returncode
    elapsed = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_mb": peak_kb / 1024, "code": code}))
"""

SUCCEEDED = re.compile(r"succeeded in (\d+(?:\.\d+)?)s")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Case:
    key: str
    title: str
    filename: str
    source: str
    tasks: int


@dataclass
class Run:
    seconds: float
    runtime_seconds: float | None
    peak_mb: float


@dataclass
class Side:
    """A commit's checkout and the runs measured on it."""

    checkout: Checkout
    runs: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.checkout.role

    @property
    def ref(self) -> str:
        return self.checkout.ref

    @property
    def label(self) -> str:
        return self.checkout.label

    @property
    def missing(self) -> list[str]:
        return self.checkout.missing

    def env(self, home: Path) -> dict[str, str]:
        env = self.checkout.python_env()
        env["LEDGERFLOW_HOME"] = str(home)
        env["LEDGERFLOW_PYLINT"] = "0"
        # The big foreach is over the default --max-num-splits (100); a variable, not
        # the option, so that a commit from before the option runs the same command.
        env["LEDGERFLOW_RUN_MAX_NUM_SPLITS"] = "10000"
        env["USERNAME"] = "bench"
        return env


def run_flow(side: Side, case: Case, flows: Path, runs: Path, workers: int, timeout: float) -> Run:
    folder = Path(tempfile.mkdtemp(prefix=f"{case.key}-{side.role}-", dir=runs))
    try:
        home, cwd, log = folder / "home", folder / "cwd", folder / "output.log"
        cwd.mkdir()
        command = [sys.executable, str(flows / case.filename), "run", "--max-workers", str(workers)]
        try:
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(log), *command],
                env=side.env(home),
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{case.key} on {side.label}: no exit after {timeout:.0f}s") from exc
        output = ANSI.sub("", log.read_text(errors="replace")) if log.exists() else ""
        if done.returncode != 0:
            raise BenchError(f"{case.key} on {side.label}: the wrapper failed: {done.stderr}")
        figures = json.loads(done.stdout)
        if figures["code"] != 0:
            raise BenchError(
                f"{case.key} on {side.label} exited with {figures['code']}:\n{output[-3000:]}"
            )
        found = SUCCEEDED.findall(output)
        return Run(figures["seconds"], float(found[-1]) if found else None, figures["peak_mb"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(new: float | None, old: float | None) -> str:
    return f"{new / old:.3f}" if new is not None and old else "-"


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def case_table(case: Case, old: Side, new: Side, rounds: int) -> Table:
    table = Table(title=f"{case.title}: {case.tasks} tasks, median of {rounds} run(s) a side")
    table.add_column("side")
    table.add_column("wall s", justify="right")
    table.add_column("runtime s", justify="right")
    table.add_column("ms/task", justify="right")
    table.add_column("peak RSS MB", justify="right")
    table.add_column("each run (wall s)")
    medians: dict[str, list[float | None]] = {}
    for side in (old, new):
        runs = side.runs[case.key]
        wall = median([r.seconds for r in runs])
        figures = [
            wall,
            median([r.runtime_seconds for r in runs]),
            None if wall is None else wall / case.tasks * 1000,
            median([r.peak_mb for r in runs]),
        ]
        medians[side.role] = figures
        table.add_row(
            f"{side.role} {side.label}",
            number(figures[0], 3),
            number(figures[1], 2),
            number(figures[2], 2),
            number(figures[3], 1),
            " ".join(f"{r.seconds:.2f}" for r in runs),
        )
    table.add_row(
        "new/old", *(ratio(n, o) for n, o in zip(medians["new"], medians["old"], strict=True)), ""
    )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", default="c9a691a", help="a commit or ref (default c9a691a)")
    parser.add_argument(
        "--new", default=WORKTREE, help="a commit or ref, or WORKTREE: this checkout as it is"
    )
    parser.add_argument("--rounds", type=int, default=3, help="pairs per case (default 3)")
    parser.add_argument("--items", type=int, default=100, help="the small foreach's width")
    parser.add_argument("--big", type=int, default=10_000, help="the big foreach's width")
    parser.add_argument("--workers", type=int, default=4, help="--max-workers, both sides")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a run may take")
    args = parser.parse_args()
    if args.rounds < 1 or args.items < 1 or args.big < 1:
        parser.error("--rounds, --items and --big must be at least 1")

    # SIGTERM ends the benchmark like Ctrl-C does, through the clean-up below.
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)

    console = Console(highlight=False) if sys.stdout.isatty() else Console(width=120)
    cases = [
        Case(
            "items",
            f"(1) foreach over {args.items} + join",
            "items_flow.py",
            FOREACH.format(name="ItemsFlow", count=args.items),
            args.items + 3,
        ),
        Case("branch", "(2) branch: start -> a, b -> join -> end", "branch_flow.py", BRANCH, 5),
        Case(
            "big",
            f"(3) foreach over {args.big:,} + join",
            "big_flow.py",
            FOREACH.format(name="BigFlow", count=args.big),
            args.big + 3,
        ),
    ]
    try:
        with paired_checkouts(args.old, args.new, prefix="runtime-paired-") as (root, checkouts):
            flows, runs = root / "flows", root / "runs"
            flows.mkdir()
            runs.mkdir()
            for case in cases:
                (flows / case.filename).write_text(textwrap.dedent(case.source).lstrip())
            old, new = (Side(checkout) for checkout in checkouts)
            console.print(
                f"runtime_paired: {args.rounds} round(s), --max-workers {args.workers}, "
                f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, embedded SQLite"
            )
            new_before = describe(new.ref)
            for side in (old, new):
                absent = f" (has no {', '.join(side.missing)})" if side.missing else ""
                console.print(f"  {side.role}: {describe(side.ref)}{absent}")
                # Untimed: warms the file cache, and proves the side runs.
                run_flow(side, cases[1], flows, runs, args.workers, args.timeout)
                side.runs = {case.key: [] for case in cases}
            for number_ in range(args.rounds):
                for case in cases:
                    for side in in_turn((old, new), number_):
                        run = run_flow(side, case, flows, runs, args.workers, args.timeout)
                        side.runs[case.key].append(run)
                        print(
                            f"round {number_ + 1}/{args.rounds} {case.key:6} {side.role} "
                            f"{side.label}: {run.seconds:.2f}s wall, runtime "
                            f"{number(run.runtime_seconds, 2)}s, peak {run.peak_mb:.0f} MB",
                            file=sys.stderr,
                            flush=True,
                        )
            if new.ref == WORKTREE and describe(WORKTREE) != new_before:
                console.print(
                    f"note: this checkout changed during the benchmark: now {describe(WORKTREE)}"
                )
            console.print()
            for case in cases:
                console.print(case_table(case, old, new, args.rounds))
            console.print(
                "wall s: python flow.py run, start to exit; runtime s: its 'succeeded in' line; "
                "peak RSS: the largest process (ru_maxrss); new/old < 1: new is faster"
            )
            return 0
    except BenchError as exc:
        print(f"runtime_paired: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
