"""The step page's rows: each task with the foreach item it took (its index, and a short
preview of the item's value), filtered by status, PAGE_ROWS a page.

The ledger records a task's position in each foreach (ForeachFrame: the splitting step,
the index, the count) but not which artifact the split went over (`foreach='grid'`
names it only in the flow's source). So the value is found as the task itself finds
it: in the splitting task's artifacts, the one list (or tuple, or array) as long as the
split; one of those read per splitting task, whatever the number of tasks. When no
artifact, or more than one, fits, the page shows the index alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ledgerflow.datastore.safe_load import load_data_only
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui import model
from ledgerflow.ui.text import cut
from ledgerflow.v1 import records_pb2

# What the status filter offers ("" : every task).
STATUS_FILTERS = ("running", "succeeded", "failed", "lost")
# Types a foreach may split over, as artifacts record them (type_name_of).
SEQUENCES = frozenset({"list", "tuple", "range", "numpy.ndarray", "pandas.core.series.Series"})
# A larger list is not read to preview one item of it.
MAX_SPLIT_BYTES = 2 << 20
PREVIEW_CHARS = 60
# The tasks one page lists (a foreach may have 10,000): next/previous links page on.
PAGE_ROWS = 500


@dataclass
class TaskRow:
    task: records_pb2.Task
    # "2 of 3" for each enclosing foreach, outermost first.
    positions: list[str]
    # repr() of this task's item, cut to PREVIEW_CHARS; "" when not known.
    item: str
    # The whole repr() (up to model.PREVIEW_BYTES), for the preview's title.
    item_full: str


@dataclass
class StepRows:
    # This page's tasks (of those with the status asked for).
    rows: list[TaskRow]
    # Every task of the step counted by status (for the filter's labels).
    counts: dict[str, int]
    # This page's number (from 1) and how many pages the tasks asked for fill (at least 1).
    page: int
    pages: int


def step_rows(
    metadata: MetadataClient,
    store: Any,
    flow: str,
    run_id: str,
    step: str,
    status: str,
    page: int = 1,
) -> StepRows:
    """Page `page` (from 1; past the last: the last) of the step's tasks with `status`
    ("" for all) as rows, and every task counted by status. Only the page's tasks have
    their foreach items looked up."""
    tasks = model.tasks_of(metadata, flow, run_id, step)
    counts: dict[str, int] = defaultdict(int)
    for task in tasks:
        counts[model.STATUS[task.status]] += 1
    matching = [t for t in tasks if not status or model.STATUS[t.status] == status]
    pages = max(1, -(-len(matching) // PAGE_ROWS))
    page = min(max(1, page), pages)
    shown = matching[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    items = _Items(metadata, store, flow, run_id)
    rows = []
    for task in shown:
        frames = list(task.foreach_stack)
        text = items.of(task) if frames else None
        full = "" if text is None else text
        positions = [f"{f.index} (of {f.num_splits})" if f.num_splits else str(f.index)
                     for f in frames]  # fmt: skip
        rows.append(TaskRow(task, positions, cut(full, PREVIEW_CHARS), full))
    return StepRows(rows, dict(counts), page, pages)


class _Items:
    """The candidate foreach lists of one run's splitting tasks, each read once."""

    def __init__(self, metadata: MetadataClient, store: Any, flow: str, run_id: str) -> None:
        self.metadata, self.store, self.flow, self.run_id = metadata, store, flow, run_id
        # split step -> a splitting task's foreach indices -> its sequence artifacts' values
        self.lists: dict[str, dict[tuple[int, ...], list[Any]]] = {}

    def of(self, task: records_pb2.Task) -> str | None:
        """repr() of the task's item of its innermost foreach; None when not known."""
        frame = task.foreach_stack[-1]
        outer = tuple(f.index for f in task.foreach_stack[:-1])
        candidates = self._lists(frame.step_name).get(outer, [])
        fitting = [c for c in candidates if _length(c) == frame.num_splits]
        if len(fitting) != 1 or frame.index >= len(fitting[0]):
            return None
        try:
            text = repr(fitting[0][frame.index])
        except Exception:  # a value whose repr fails
            return None
        return cut(text, model.PREVIEW_BYTES)

    def _lists(self, split_step: str) -> dict[tuple[int, ...], list[Any]]:
        if split_step not in self.lists:
            self.lists[split_step] = self._read(split_step)
        return self.lists[split_step]

    def _read(self, split_step: str) -> dict[tuple[int, ...], list[Any]]:
        """Two calls whatever the number of splitting tasks: their tasks (for their own
        foreach indices) and their artifacts, then the sequences among those read."""
        splitters = model.tasks_of(self.metadata, self.flow, self.run_id, split_step)
        by_task: dict[str, list[records_pb2.Artifact]] = defaultdict(list)
        for artifact in self.metadata.artifacts(self.flow, self.run_id, split_step):
            if (artifact.type_name in SEQUENCES and not artifact.name.startswith("_")
                    and artifact.size <= MAX_SPLIT_BYTES):  # fmt: skip
                by_task[artifact.task_pathspec].append(artifact)
        lists: dict[tuple[int, ...], list[Any]] = {}
        for splitter in splitters:
            values = []
            for artifact in by_task.get(splitter.pathspec, []):
                try:
                    values.append(
                        load_data_only(self.store, artifact.content_key, artifact.serializer)
                    )
                except Exception:  # not plain data, or not readable here: no preview
                    continue
            lists[tuple(f.index for f in splitter.foreach_stack)] = values
        return lists


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None
