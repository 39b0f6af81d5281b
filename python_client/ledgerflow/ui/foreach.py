"""How many tasks a foreach plans: its tasks' TaskSucceeded events say how many items
each split into, so a run's page can say "127/200 tasks" while the later ones have not
begun (the counts by status only know the tasks begun so far).

A succeeded task's split never changes, so each UI server keeps those it read
(SplitCounts): a run page's live update then costs one ListTasks a foreach step, not one
ListEvents a task besides."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui.model import StepView, tasks_of
from ledgerflow.v1 import audit_service_pb2

# The most tasks of one foreach step read for their splits (a nested foreach has one
# task per outer item); past it the plan is left unknown.
MAX_FOREACH_TASKS = 50


class SplitCounts:
    """The splits of succeeded foreach tasks, by the pathspec of the task that split,
    as one UI server read them: the last `kept` of them (they never change)."""

    def __init__(self, kept: int = 10_000) -> None:
        self._kept = kept
        self._splits: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, metadata: MetadataClient, pathspec: str) -> int | None:
        """The task's split (its TaskSucceeded's num_splits); None while it has none."""
        with self._lock:
            if pathspec in self._splits:
                self._splits.move_to_end(pathspec)
                return self._splits[pathspec]
        asked = audit_service_pb2.ListEventsRequest(task_pathspec=pathspec)
        asked.page.page_size = 1000
        found = [
            e.task_succeeded.num_splits
            for e in metadata.list_events(asked).events
            if e.WhichOneof("payload") == "task_succeeded"
        ]
        if not found:
            return None  # not done yet: asked again next time
        with self._lock:
            self._splits[pathspec] = found[-1]
            while len(self._splits) > self._kept:
                self._splits.popitem(last=False)
        return found[-1]


def plan_counts(
    metadata: MetadataClient,
    flow: str,
    run_id: str,
    steps: dict[str, StepView],
    known: SplitCounts | None = None,
) -> None:
    """Sets `planned` on the step each succeeded foreach fans out to (the sum of its
    tasks' splits, once all of them succeeded) and on the linear steps after it inside
    the foreach (as many tasks each), up to the join. `known`: the splits already read
    (the UI server's; a fresh one when None)."""
    known = SplitCounts() if known is None else known
    for name, view in steps.items():
        if view.kind != "foreach" or not view.counts.get("succeeded"):
            continue
        if view.total != view.counts["succeeded"] or view.total > MAX_FOREACH_TASKS:
            continue
        if view.planned is not None and view.total < view.planned:
            continue  # some of the foreach's own tasks have not run yet
        splits = _splits(metadata, flow, run_id, name, known)
        if splits is None:
            continue
        targets = [s for s in steps.values() if name in s.inputs]
        while len(targets) == 1 and targets[0].kind not in ("join", "end"):
            target = targets[0]
            target.planned = splits
            if target.kind == "foreach":
                break  # a nested foreach: its own tasks say how its items split
            targets = [s for s in steps.values() if target.name in s.inputs]


def _splits(
    metadata: MetadataClient, flow: str, run_id: str, step: str, known: SplitCounts
) -> int | None:
    total = 0
    for task in tasks_of(metadata, flow, run_id, step, most=MAX_FOREACH_TASKS):
        # A clone (resume) did not split: the task it was cloned from did.
        split = known.of(metadata, task.origin_pathspec or task.pathspec)
        if split is None:
            return None  # not done yet
        total += split
    return total
