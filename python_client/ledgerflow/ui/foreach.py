"""How many tasks a foreach plans: its tasks' TaskSucceeded events say how many items
each split into, so a run's page can say "127/200 tasks" while the later ones have not
begun (the counts by status only know the tasks begun so far)."""

from __future__ import annotations

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui.model import StepView, tasks_of
from ledgerflow.v1 import audit_service_pb2

# The most tasks of one foreach step read for their splits (a nested foreach has one
# task per outer item); past it the plan is left unknown.
MAX_FOREACH_TASKS = 50


def plan_counts(
    metadata: MetadataClient, flow: str, run_id: str, steps: dict[str, StepView]
) -> None:
    """Sets `planned` on the step each succeeded foreach fans out to (the sum of its
    tasks' splits, once all of them succeeded) and on the linear steps after it inside
    the foreach (as many tasks each), up to the join."""
    for name, view in steps.items():
        if view.kind != "foreach" or not view.counts.get("succeeded"):
            continue
        if view.total != view.counts["succeeded"] or view.total > MAX_FOREACH_TASKS:
            continue
        if view.planned is not None and view.total < view.planned:
            continue  # some of the foreach's own tasks have not run yet
        splits = _splits(metadata, flow, run_id, name)
        if splits is None:
            continue
        targets = [s for s in steps.values() if name in s.inputs]
        while len(targets) == 1 and targets[0].kind not in ("join", "end"):
            target = targets[0]
            target.planned = splits
            if target.kind == "foreach":
                break  # a nested foreach: its own tasks say how its items split
            targets = [s for s in steps.values() if target.name in s.inputs]


def _splits(metadata: MetadataClient, flow: str, run_id: str, step: str) -> int | None:
    total = 0
    for task in tasks_of(metadata, flow, run_id, step, most=MAX_FOREACH_TASKS):
        # A clone (resume) did not split: the task it was cloned from did.
        where = task.origin_pathspec or task.pathspec
        asked = audit_service_pb2.ListEventsRequest(task_pathspec=where)
        asked.page.page_size = 1000
        found = [
            e.task_succeeded.num_splits
            for e in metadata.list_events(asked).events
            if e.WhichOneof("payload") == "task_succeeded"
        ]
        if not found:
            return None  # not done yet
        total += found[-1]
    return total
