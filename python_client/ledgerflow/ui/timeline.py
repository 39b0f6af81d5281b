"""A run's timeline as compact JSON, drawn by the browser on a canvas (static/timeline.js):
every task is one bar from its start to its end (now, while it runs), in its step's band,
colored by its status. One row of numbers a task, so a run of 10,000 tasks is a few
hundred kilobytes and one canvas, not 10,000 elements.

A finished run's tasks no longer change, so its timeline is kept (the last few runs
asked for) and served again without reading the ledger. Finished means its RunFinished
is recorded (it has a finished_at): from then on the ledger refuses the run's task
events. A status alone is not enough: a run counts as succeeded once its end task
succeeded, before its RunFinished (and its timeline's end) is recorded."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui.model import STATUS
from ledgerflow.v1 import common_pb2, query_service_pb2

# Status codes in the JSON, by position (timeline.js has the same list).
STATUS_CODES = ["unknown", "running", "succeeded", "failed", "lost"]
_CODE = {value: STATUS_CODES.index(name) for value, name in STATUS.items()}
FINAL = frozenset({common_pb2.STATUS_SUCCEEDED, common_pb2.STATUS_FAILED})


def _ms(stamp: Any) -> int | None:
    """A Timestamp in ms since the epoch (None when unset), without a datetime: this
    runs twice a task."""
    seconds, nanos = stamp.seconds, stamp.nanos
    return None if not seconds and not nanos else seconds * 1000 + nanos // 1_000_000


class Timelines:
    """The timelines of one UI server: a finished run's read once, then kept."""

    def __init__(self, kept: int = 8) -> None:
        self._kept = kept
        self._finished: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def json(self, metadata: MetadataClient, flow: str, run_id: str) -> str:
        """The run's tasks as `{"start", "end", "now", "status", "steps", "tasks"}`:
        times in ms (since the epoch for start/end/now; since the run's start for the
        tasks), `end` null while the run goes on; each task `[step, task_id, start, end,
        status, attempts, cloned]` with `step` an index into `steps` (in the order their
        first task began), `end` -1 while it runs, `status` an index into STATUS_CODES,
        `cloned` 1 for a task resume reused from another run."""
        asked = query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id)
        run = metadata.get_run(asked).run
        final = run.status in FINAL and _ms(run.finished_at) is not None
        key = f"{flow}/{run_id}"
        with self._lock:
            if final and key in self._finished:
                self._finished.move_to_end(key)
                return self._finished[key]
        text = _build(metadata, flow, run_id, run)
        if final:
            with self._lock:
                self._finished[key] = text
                while len(self._finished) > self._kept:
                    self._finished.popitem(last=False)
        return text


def _build(metadata: MetadataClient, flow: str, run_id: str, run: Any) -> str:
    now = int(datetime.now(UTC).timestamp() * 1000)
    start = _ms(run.created_at) or now
    steps: dict[str, int] = {}
    rows: list[list[Any]] = []
    for page in metadata.task_span_pages(flow, run_id):
        # The page's step indexes, as indexes into the whole run's steps.
        index = [steps.setdefault(name, len(steps)) for name in page.step_names]
        for step, task_id, began, ended, status, attempts, cloned in zip(
            page.step_index, page.task_ids, page.started_at_us, page.finished_at_us,
            page.status, page.attempts, page.cloned, strict=True,
        ):  # fmt: skip
            rows.append([
                index[step], task_id, max(0, began // 1000 - start),
                -1 if not ended else max(0, ended // 1000 - start),
                _CODE.get(status, 0), attempts, int(cloned),
            ])  # fmt: skip
    data = {
        "start": start, "end": _ms(run.finished_at), "now": now,
        "status": STATUS[run.status], "steps": list(steps), "tasks": rows,
    }  # fmt: skip
    # "<" escaped, so that the text may sit in a <script> element of the page.
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
