"""Names a run gets wherever it runs: its id, its pathspecs, this version's tag."""

from __future__ import annotations

import time

from ledgerflow.v1 import events_pb2

VERSION = "0.1.0"


def new_run_id() -> str:
    """Sortable and unique enough for one writer: microseconds since the epoch."""
    return str(time.time_ns() // 1000)


def task_pathspec(ref: events_pb2.TaskRef) -> str:
    return f"{ref.flow_name}/{ref.run_id}/{ref.step_name}/{ref.task_id}"
