"""Ledgerflow and Metaflow side by side on the same flows, in one script.

Each tool runs from a clean virtual environment of its own, installed the ordinary
(non-editable) way: bench/.venv-metaflow (`pip install metaflow==METAFLOW_VERSION
numpy`, made on first use and remade when the pinned version changes) and
bench/.venv-ledgerflow (this checkout, reinstalled on every run so the figures are of
the current code). Both use local metadata and a local datastore.
Each case is run as a user would (``python flow.py run``) in a fresh folder; the figures
are wall time and the peak RSS of the largest process.

    python bench/sdk_vs_metaflow.py [--repeat 3] [--workers 4]

Cases: (a) linear start -> end; (b) foreach over 100 and 500 items; (c) a 100 MB bytes
artifact and a 1e7 float64 numpy array written, then read back in the next step;
(d) reading one artifact from each of 500 tasks through the client API.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
METAFLOW_VENV = HERE / ".venv-metaflow"
# The peer the published figures were taken against: a newer Metaflow is a new baseline.
METAFLOW_VERSION = "2.19.39"
LEDGERFLOW_VENV = HERE / ".venv-ledgerflow"

LINEAR = """
from {lib} import FlowSpec, step

class LinearFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LinearFlow()
"""

FOREACH = """
from {lib} import FlowSpec, Parameter, step

class ForeachFlow(FlowSpec):
    width = Parameter("width", default=100)

    @step
    def start(self):
        self.items = list(range(int(self.width)))
        self.next(self.a, foreach="items")

    @step
    def a(self):
        self.x = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ForeachFlow()
"""

BIG = """
import numpy as np
from {lib} import FlowSpec, step

class BigFlow(FlowSpec):
    @step
    def start(self):
        self.blob = np.random.default_rng(0).bytes(100 * 1024 * 1024)
        self.array = np.random.default_rng(1).random(10_000_000)
        self.next(self.end)

    @step
    def end(self):
        assert len(self.blob) == 100 * 1024 * 1024
        assert self.array.shape == (10_000_000,)

if __name__ == "__main__":
    BigFlow()
"""

READ_500 = """
import time
from {lib} import Flow, namespace
namespace(None)
run = Flow("ForeachFlow").latest_run
values = [task.data.x for task in run["a"]]
assert len(values) == 500, len(values)
"""

MEASURE = """
import resource, subprocess, sys, time, json
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
elapsed = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_mb": peak_kb / 1024, "code": code}))
"""


def ensure_venv(folder: Path, *requirements: str) -> Path:
    """A venv with `requirements`, made anew when they differ from the last ones."""
    python = folder / "bin" / "python"
    wanted = folder / "requirements.txt"
    made_with = wanted.read_text() if wanted.exists() else None
    if python.exists() and made_with != "\n".join(requirements):
        shutil.rmtree(folder)
    if not python.exists():
        print(f"creating {folder.name} with {' '.join(requirements)} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        wanted.write_text("\n".join(requirements))
    return python


def ensure_ledgerflow() -> Path:
    python = ensure_venv(LEDGERFLOW_VENV, str(HERE.parent), "numpy")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
         str(HERE.parent)],
        check=True, capture_output=True,
    )  # fmt: skip
    return python


def measure(python: str, args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [python, "-c", MEASURE, python, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout)
    if figures["code"] != 0:
        raise RuntimeError(f"{args} failed in {cwd}: {out.stderr[-2000:]}")
    return figures


class Side:
    def __init__(
        self, name: str, lib: str, python: str, env: dict[str, str], foreach_args: list[str]
    ) -> None:
        self.name, self.lib, self.python, self.env = name, lib, python, env
        self.foreach_args = foreach_args

    def write(self, folder: Path, filename: str, template: str) -> Path:
        path = folder / filename
        path.write_text(textwrap.dedent(template.format(lib=self.lib)))
        return path


def run_case(side: Side, case: str, workers: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{side.name}-"))
    try:
        run = ["run", "--max-workers", str(workers)]
        if case == "a":
            flow = side.write(folder, "linear.py", LINEAR)
            return measure(side.python, [str(flow), *run], folder, side.env)
        if case in ("b100", "b500"):
            flow = side.write(folder, "foreach.py", FOREACH)
            width = case[1:]
            return measure(
                side.python,
                [str(flow), *run, *side.foreach_args, "--width", width],
                folder,
                side.env,
            )
        if case == "c":
            flow = side.write(folder, "big.py", BIG)
            return measure(side.python, [str(flow), *run], folder, side.env)
        if case == "d":
            flow = side.write(folder, "foreach.py", FOREACH)
            measure(
                side.python,
                [str(flow), *run, *side.foreach_args, "--width", "500"],
                folder,
                side.env,
            )
            reader = side.write(folder, "read.py", READ_500)
            return measure(side.python, [str(reader)], folder, side.env)
        raise ValueError(case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def best_of(side: Side, case: str, workers: int, repeat: int) -> dict[str, float]:
    results = [run_case(side, case, workers) for _ in range(repeat)]
    return min(results, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is kept")
    parser.add_argument("--workers", type=int, default=4, help="--max-workers for both")
    parser.add_argument("--cases", default="a,b100,b500,c,d")
    args = parser.parse_args()

    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LEDGERFLOW_", "METAFLOW_"))
    }
    base_env["USERNAME"] = "bench"
    metaflow_env = {
        **base_env,
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
    }
    sides = [
        Side(
            "ledgerflow",
            "ledgerflow",
            str(ensure_ledgerflow()),
            base_env,
            ["--max-num-splits", "1000"],
        ),
        Side(
            "metaflow",
            "metaflow",
            str(ensure_venv(METAFLOW_VENV, f"metaflow=={METAFLOW_VERSION}", "numpy")),
            metaflow_env,
            ["--max-num-splits", "1000"],
        ),
    ]
    version = subprocess.run(
        [sides[1].python, "-c", "import metaflow; print(metaflow.__version__)"],
        capture_output=True,
        text=True,
        env=metaflow_env,
    ).stdout.strip()
    labels = {
        "a": "(a) linear start->end",
        "b100": "(b) foreach x100",
        "b500": "(b) foreach x500",
        "c": "(c) 100 MB bytes + 1e7 float64",
        "d": "(d) read 1 artifact x 500 tasks",
    }
    print(
        f"ledgerflow vs metaflow {version}: best of {args.repeat}, --max-workers "
        f"{args.workers}, {os.cpu_count()} cores, local metadata and datastore"
    )
    print(
        f"{'case':34} {'ledgerflow':>11} {'metaflow':>10} {'MF/LF':>7}  "
        f"{'peak MB LF':>10} {'peak MB MF':>10}"
    )
    for case in args.cases.split(","):
        lf = best_of(sides[0], case, args.workers, args.repeat)
        mf = best_of(sides[1], case, args.workers, args.repeat)
        extra = ""
        if case.startswith("b"):
            width = int(case[1:])
            extra = (
                f"   per task: {lf['seconds'] / width * 1e3:.1f} ms vs "
                f"{mf['seconds'] / width * 1e3:.1f} ms"
            )
        print(
            f"{labels[case]:34} {lf['seconds']:>10.2f}s {mf['seconds']:>9.2f}s "
            f"{mf['seconds'] / lf['seconds']:>6.1f}x  {lf['peak_mb']:>10.0f} "
            f"{mf['peak_mb']:>10.0f}{extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
