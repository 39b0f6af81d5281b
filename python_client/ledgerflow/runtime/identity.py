"""Names a run gets wherever it runs: its id, its pathspecs, this version's tag."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path

from ledgerflow.v1 import events_pb2

VERSION = "0.1.0"


def run_system_tags(user: str | None, runtime: str, extra: Iterable[str] = ()) -> list[str]:
    """A run's system tags: its namespace (``user:NAME``; a deployment's runs have
    ``production:NAME`` in `extra` instead), where it ran, the versions, and `extra`
    (a project's branch)."""
    return [
        *([f"user:{user}"] if user is not None else []),
        f"runtime:{runtime}",
        f"python_version:{platform.python_version()}",
        f"ledgerflow_version:{VERSION}",
        *extra,
    ]


def new_run_id() -> str:
    """Sortable and unique enough for one writer: microseconds since the epoch."""
    return str(time.time_ns() // 1000)


def write_run_id(path: str, run_id: str) -> None:
    """Writes a run's id to the file of ``--run-id-file``, whole or not at all: the id goes
    to a file beside it that is then renamed over it, so a reader that polls the file
    while the run starts (``ledgerflow.Runner``) never reads half an id."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text(run_id)
    os.replace(partial, target)


def task_pathspec(ref: events_pb2.TaskRef) -> str:
    return f"{ref.flow_name}/{ref.run_id}/{ref.step_name}/{ref.task_id}"
