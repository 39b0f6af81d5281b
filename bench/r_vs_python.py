"""R against Python: a foreach of 100 trivial tasks written in R (bench/flows/
foreach_100.R, each step run in R embedded in the runtime) and the same flow in Python
(foreach_100.py), both `--max-workers 4` on an embedded ledger; and reading one
artifact from each of the 100 tasks from R (`get_artifact()` over the client's helper,
in a fresh `Rscript`, start-up included). Prints figures, best of --repeat.

    python bench/r_vs_python.py [--count 100] [--repeat 3]

A task's cost is the foreach's time less the same flow's with one item, over the extra
items. The goals in the issue: an R task at most 2x a Python task; the 100 reads under
2 s including start-up.
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
        per_task = {}
        for language, command in flows.items():
            best = {}
            for count in (1, args.count):
                run = [*command, "run", "--max-workers", "4", "--count", str(count)]
                best[count] = min(timed(run, env, scratch)[0] for _ in range(args.repeat))
            per_task[language] = (best[args.count] - best[1]) / (args.count - 1)
            print(f"{language}: foreach of {args.count} {best[args.count]:.2f} s, of 1 "
                  f"{best[1]:.2f} s: {per_task[language] * 1000:.1f} ms a task")  # fmt: skip
        ratio = per_task["R"] / per_task["Python"]
        print(f"an R task costs {ratio:.2f}x a Python task (goal <= 2x)")

        read = (
            "suppressPackageStartupMessages(library(ledgerflow)); "
            'run <- list_runs("ForeachR", limit = 1)$pathspec; '
            f'tasks <- paste0(run, "/work/", seq_len({args.count}) + 1); '
            'values <- get_artifact(tasks, "y"); cat(length(values), sum(unlist(values)))'
        )
        seconds = []
        for _ in range(args.repeat):
            took, out = timed(["Rscript", "-e", read], env, scratch)
            seconds.append(took)
        expected = f"{args.count} {args.count * (args.count + 1)}"
        if out.strip() != expected:
            raise SystemExit(f"the reads gave {out!r}, not {expected!r}")
        print(f"R reads one artifact from each of {args.count} tasks: {min(seconds):.2f} s "
              "with Rscript's and the helper's start (goal < 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
