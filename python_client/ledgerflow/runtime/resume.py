"""Resume planning: which run to resume, from which step, and which of its
successful tasks the new run reuses (clones) instead of running again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgerflow._graph import FlowGraph
from ledgerflow.exceptions import LedgerflowException
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import common_pb2, query_service_pb2, records_pb2


class ResumeError(LedgerflowException):
    """The run cannot be resumed as asked; the message says what to do instead."""


@dataclass
class ResumeOrigin:
    """What a resumed run reuses from its origin run."""

    run_id: str
    clone_steps: set[str]
    # (step, foreach indices) -> (task id, artifacts) of the origin's successful tasks
    tasks: dict[tuple[str, tuple[int, ...]], tuple[str, dict[str, records_pb2.Artifact]]]
    max_task_id: int
    # The step the new run starts running again from.
    from_step: str = ""
    # What fired the origin, when a deployment did: the resumed run's tasks see it as
    # current.trigger, so that yesterday's production run is debugged on its own
    # partition.
    trigger: records_pb2.Trigger | None = None

    def cloned_steps(self) -> list[str]:
        """The steps whose tasks the resume clones: those before the step resumed from
        that ran in the origin (a switch's case not taken has nothing to clone)."""
        return sorted({step for step, _ in self.tasks if step in self.clone_steps})


def find_origin(
    metadata: MetadataClient, flow: str, username: str, origin_run_id: str | None
) -> records_pb2.Run:
    """The run to resume: the one named, else the user's latest run of the flow."""
    if origin_run_id:
        return metadata.run(flow, origin_run_id)
    runs = metadata.list_runs(
        query_service_pb2.ListRunsRequest(
            flow_name=flow, tags=[f"user:{username}"], page={"page_size": 1}
        ),
    ).runs
    if not runs:
        raise ResumeError(
            f"{flow} has no run of yours to resume: run it first, or pass --origin-run-id"
        )
    return runs[0]


def plan_resume(
    metadata: MetadataClient, graph: FlowGraph, origin_run: Any, step: str | None
) -> ResumeOrigin:
    """What a resume of `origin_run` from `step` (default: its first failed step)
    clones: the successful tasks of every step not downstream of `step`."""
    flow, run_id = graph.name, origin_run.run_id
    tasks = metadata.tasks(flow, run_id)
    if step is None:
        failed = [t for t in tasks if t.status != common_pb2.STATUS_SUCCEEDED]
        if not failed:
            if origin_run.status == common_pb2.STATUS_SUCCEEDED:
                raise ResumeError(
                    f"run {run_id} succeeded: name the step to resume from, e.g. resume end"
                )
            raise ResumeError(f"run {run_id} has no failed task to resume from")
        order = list(graph.nodes)
        step = min((t.step_name for t in failed), key=order.index)
    if step not in graph.nodes:
        raise ResumeError(f"{step!r} is not a step of {flow}")
    _check_step_ran(graph, tasks, step, run_id)
    artifacts: dict[str, dict[str, Any]] = {}
    for artifact in metadata.artifacts(flow, run_id):
        artifacts.setdefault(artifact.task_pathspec, {})[artifact.name] = artifact
    clone_steps = set(graph.nodes) - graph.downstream_of(step)
    reusable = {}
    for task in tasks:
        if task.status == common_pb2.STATUS_SUCCEEDED and task.step_name in clone_steps:
            key = (task.step_name, tuple(f.index for f in task.foreach_stack))
            reusable[key] = (task.task_id, artifacts.get(task.pathspec, {}))
    max_id = max((int(t.task_id) for t in tasks if t.task_id.isdigit()), default=0)
    trigger = origin_run.trigger if origin_run.HasField("trigger") else None
    return ResumeOrigin(run_id, clone_steps, reusable, max_id, step, trigger)


def _check_step_ran(graph: FlowGraph, tasks: list[Any], step: str, run_id: str) -> None:
    """Refuses to resume from a case a switch of the origin did not take: the resumed
    run would clone the switch, go down the case it chose, and never run `step`."""
    ran = {task.step_name for task in tasks if task.status == common_pb2.STATUS_SUCCEEDED}
    switches = [name for name in graph[step].in_funcs if graph[name].condition]
    if step in {task.step_name for task in tasks} or not switches:
        return
    if all(name in ran for name in graph[step].in_funcs):
        raise ResumeError(
            f"{step!r} did not run in run {run_id}: switch {switches[0]!r} chose another "
            "case; resume from a step that ran there"
        )
