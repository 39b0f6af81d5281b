"""How long a run takes whose one step prints 100,000 lines at once (the runtime shows
every line after the task's name), against the same run printing nothing: what showing
the output costs. Embedded ledger in a temporary home, best of three.

    python bench/loud_step.py [--lines 100000]

Goal (issue 32): the 100,000-line step's run <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOW = Path(__file__).parent / "flows" / "loud_step.py"


def best_of_three(lines: int) -> float:
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="ledgerflow-bench-loud-") as home:
            env = {**os.environ, "LEDGERFLOW_HOME": home}
            started = time.perf_counter()
            subprocess.run([sys.executable, str(FLOW), "run", "--lines", str(lines)],
                           env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    quiet, loud = best_of_three(0), best_of_three(args.lines)
    print(f"a run whose step prints nothing: {quiet:.2f} s (the command, end to end)")
    print(f"the same printing {args.lines:,} lines: {loud:.2f} s (goal: <= 2 s)")


if __name__ == "__main__":
    main()
