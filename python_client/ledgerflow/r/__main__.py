"""``python -m ledgerflow.r SPEC_JSON -- ARGS...``: what the R package's run() starts,
from a script (the spec's ``script``) or from an R session (``session``: ``script`` is
then the RDS file run() saved the session's flow to)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ledgerflow.r.codegen import InvalidRFlow, flow_file_for, generate


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m ledgerflow.r SPEC_JSON -- ARGS... (started by run() in R)",
              file=sys.stderr)  # fmt: skip
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    script = Path(spec["script"])
    try:
        source = generate(spec, script)
    except InvalidRFlow as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    flow_file = flow_file_for(script)
    if not flow_file.exists() or flow_file.read_text() != source:
        partial = flow_file.with_name(f"{flow_file.name}.{os.getpid()}")
        partial.write_text(source)
        os.replace(partial, flow_file)  # runs of the same script may start together
    os.environ.pop("LD_LIBRARY_PATH", None)
    _huge_pages_for_malloc()
    # How the user runs it: a script's command line, or run() from an R session (whose
    # flow run() saved as SCRIPT, an RDS file the flow file loads instead of a script).
    os.environ["LEDGERFLOW_PROG_NAME"] = (
        "run(flow, ...)" if spec.get("session") else f"Rscript {script.name}"
    )
    os.execv(sys.executable, [sys.executable, str(flow_file), *argv[2:]])
    return 0  # not reached


def _huge_pages_for_malloc() -> None:
    """Transparent huge pages for what malloc hands out (R's heap), in the runtime this
    execs and the tasks it forks: a fork then copies a few page-table entries per 2 MiB
    instead of one per 4 KiB page, ~2 ms instead of ~7 ms with R loaded (a task writing
    to a shared huge page still copies only 4 KiB of it). glibc 2.35+ reads it at start;
    older glibc and kernels without THP ignore it; a user's own setting wins."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [tunables, "glibc.malloc.hugetlb=1"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
