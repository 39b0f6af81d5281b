"""R against Python: a foreach of 100 trivial tasks written in R (bench/flows/
foreach_100.R, each step run in R embedded in the runtime) and the same flow in Python
(foreach_100.py), both `--max-workers 4` on an embedded ledger; reading one artifact
from each of the 100 tasks from R, `lapply(tasks, get_artifact, name = "y")` over the
client's helper (its start not counted; the whole Rscript's time is printed too); and
a long vector, `rep(1.5, 1e7)`, stored by an R step and read by the next one and by the
R client's get_artifact() (bench/flows/big_vector.R). Prints figures, best of --repeat.

    python bench/r_vs_python.py [--count 100] [--repeat 3]

A task's cost is the foreach's time less the same flow's with one item, over the extra
items; R and Python run in turn. The store is the time from the step's function's
return to its task's end (converting, writing, the task's events); the read is timed in
R. The goals in issue 30: an R task at most 1.5x a Python task; storing rep(1.5, 1e7)
at most 1 s and reading it at most 0.5 s (in the next R step and with get_artifact());
the 100 reads under 1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWS = Path(__file__).resolve().parent / "flows"


def timed(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env.update(LEDGERFLOW_HOME=str(Path(scratch) / ".ledgerflow"), LEDGERFLOW_PYLINT="0",
                   LEDGERFLOW_PYTHON=sys.executable)  # fmt: skip
        flows = {
            "R": ["Rscript", str(FLOWS / "foreach_100.R")],
            "Python": [sys.executable, str(FLOWS / "foreach_100.py")],
        }
        # R and Python in turn, so that a change in the machine's load (it is shared)
        # falls on both alike; the best of --repeat each.
        seconds: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeat):
            for language, command in flows.items():
                for count in (1, args.count):
                    run = [*command, "run", "--max-workers", "4", "--count", str(count)]
                    seconds.setdefault((language, count), []).append(timed(run, env, scratch)[0])
        per_task = {}
        for language in flows:
            best = {count: min(seconds[language, count]) for count in (1, args.count)}
            per_task[language] = (best[args.count] - best[1]) / (args.count - 1)
            print(f"{language}: foreach of {args.count} {best[args.count]:.2f} s, of 1 "
                  f"{best[1]:.2f} s: {per_task[language] * 1000:.1f} ms a task")  # fmt: skip
        ratio = per_task["R"] / per_task["Python"]
        print(f"an R task costs {ratio:.2f}x a Python task (goal <= 1.5x)")
        lapply_reads(args, env, scratch)
        big_vector(args, env, scratch)


R_CODE = "suppressPackageStartupMessages(library(ledgerflow)); "


def lapply_reads(args: argparse.Namespace, env: dict[str, str], scratch: str) -> None:
    read = R_CODE + (
        'run <- list_runs("ForeachR", limit = 1)$pathspec; '
        'tasks <- list_tasks(paste0(run, "/work"))$pathspec; '
        'took <- system.time(values <- lapply(tasks, get_artifact, name = "y"))[["elapsed"]]; '
        "cat(length(values), sum(unlist(values)), took)"
    )
    seconds, whole = [], []
    for _ in range(args.repeat):
        took, out = timed(["Rscript", "-e", read], env, scratch)
        count, total, reads = out.split()
        expected = (str(args.count), str(args.count * (args.count + 1)))
        if (count, total) != expected:
            raise SystemExit(f"the reads gave {out!r}, not {expected}")
        seconds.append(float(reads))
        whole.append(took)
    print(f"R reads one artifact from each of {args.count} tasks with lapply(): "
          f"{min(seconds):.2f} s (goal < 1 s); the whole Rscript, with R's and the "
          f"helper's start: {min(whole):.2f} s")  # fmt: skip


def big_vector(args: argparse.Namespace, env: dict[str, str], scratch: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python_client"))
    from ledgerflow.client import Flow, metadata

    store, read, client_read = [], [], []
    for _ in range(args.repeat):
        timed(["Rscript", str(FLOWS / "big_vector.R"), "run"], env, scratch)
        metadata(f"local@{env['LEDGERFLOW_HOME']}")
        run = Flow("BigVectorR").latest_run
        assert run is not None
        start = run["start"].task
        finished = start.finished_at
        assert finished is not None
        store.append(finished.timestamp() - start["returned_at"].data)
        read.append(run["end"].task["read_seconds"].data)
        code = R_CODE + (
            f'invisible(get_run("{run.pathspec}")); '
            f'took <- system.time(x <- get_artifact("{run.pathspec}/start", "big"))[["elapsed"]]; '
            "stopifnot(identical(x, rep(1.5, 1e7))); cat(took)"
        )
        client_read.append(float(timed(["Rscript", "-e", code], env, scratch)[1]))
    print(f"rep(1.5, 1e7): stored by an R step in {min(store):.2f} s (goal <= 1 s), read "
          f"by the next in {min(read):.2f} s and by get_artifact() in {min(client_read):.2f} s "
          "(goal <= 0.5 s)")  # fmt: skip


if __name__ == "__main__":
    main()
