"""``run --remote``: submit a run to the metadata service, which orchestrates it on
executors, and follow it from the ledger's watch stream.

Submitting stores the code package and appends one RunStarted that carries the flow's
graph (each step's kind, transitions, resources, retry, catch and timeout). From then
on the service queues the tasks and executors run them: the submitting process only
watches, so it can be killed, or detach at once, and the run goes on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow._graph import FlowGraph
from ledgerflow._graph_message import StepDefaults, graph_message
from ledgerflow.engine import RunGraph, Tally, is_infrastructure, new_event, runs_fallback
from ledgerflow.exceptions import RpcError
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.runtime.code_package import save_package
from ledgerflow.runtime.identity import new_run_id, run_system_tags, task_pathspec
from ledgerflow.runtime.progress import RunReporter
from ledgerflow.runtime.resume import ResumeOrigin
from ledgerflow.runtime.run_events import retry_delays
from ledgerflow.runtime.task import transition_of
from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow.v1 import executor_service_pb2 as executor_api
from ledgerflow.v1 import ledger_service_pb2 as ledger_api

# How often the follower asks why queued tasks wait.
_WAITING_CHECK_SECONDS = 3.0


def resume_plan(origin: ResumeOrigin, graph: FlowGraph, store: Any) -> records_pb2.ResumePlan:
    """What the service clones for a remote resume: the origin's successful tasks of
    the steps before the one resumed from (a foreach with its item count)."""
    plan = records_pb2.ResumePlan(first_task_id=origin.max_task_id + 1)
    for (step_name, indices), (task_id, artifacts) in sorted(origin.tasks.items()):
        if step_name not in origin.clone_steps:
            continue
        splits, switch_step = transition_of(graph[step_name], artifacts, store)
        plan.clones.add(step_name=step_name, foreach_indices=indices, origin_task_id=task_id,
                        num_splits=splits, switch_step=switch_step)  # fmt: skip
    return plan


def submit(
    metadata: MetadataClient,
    store: Any,
    flow_class: type,
    graph: FlowGraph,
    flow_file: Path,
    *,
    username: str,
    parameters_json: dict[str, str],
    tags: tuple[str, ...],
    package_suffixes: tuple[str, ...],
    step_defaults: StepDefaults | None = None,
    origin: ResumeOrigin | None = None,
    project_tags: Sequence[str] = (),
    queue_policy: records_pb2.QueuePolicy | None = None,
) -> str:
    """Stores the code package and appends the run's RunStarted (with what it clones
    from `origin`, when it resumes one, and how the service's queue treats its tasks);
    returns the run id."""
    run_id = new_run_id()
    started = events_pb2.RunStarted(
        flow_name=graph.name,
        run_id=run_id,
        user=username,
        tags=list(tags),
        system_tags=run_system_tags(username, "remote", project_tags),
        parameters=parameters_json,
        code_package_key=save_package(store, flow_file, package_suffixes),
        graph=graph_message(flow_class, graph, step_defaults),
    )
    if queue_policy is not None and queue_policy.ByteSize():
        started.queue_policy.CopyFrom(queue_policy)
    if origin is not None:
        started.origin_run_id = origin.run_id
        started.resume.CopyFrom(resume_plan(origin, graph, store))
    metadata.append_events([new_event(run_started=started)])
    return run_id


@dataclass
class _Follower:
    """What the follower remembers of the run as its events go by."""

    flow: str
    run_id: str
    reporter: RunReporter
    started_at: dict[str, float] = field(default_factory=dict)
    failure: tuple[str, str] = ("", "")
    said: set[str] = field(default_factory=set)
    # The run's graph (from its RunStarted) and each task's failures so far, to tell
    # @catch's fallback attempt from a retry, by the engine's rule.
    rules: RunGraph | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)
    own_errors: dict[str, str] = field(default_factory=dict)

    def _catching(self, task: events_pb2.TaskRef) -> str:
        """The failure a starting attempt records as @catch's fallback ("" if none)."""
        if self.rules is None or task.step_name not in self.rules:
            return ""
        path = task_pathspec(task)
        failures = self.tallies.get(path, Tally()).failures
        if not runs_fallback(self.rules.step(task.step_name), failures):
            return ""
        return self.own_errors.get(path, "")

    def show(self, event: events_pb2.Event) -> bool | None:
        """Reports one event; the run's outcome when it is RunFinished."""
        kind = event.WhichOneof("payload")
        payload: Any = getattr(event, kind) if kind else None
        when = event.recorded_at.ToMicroseconds() / 1e6
        if kind == "run_started" and payload.HasField("graph"):
            self.rules = RunGraph(payload.graph)
        elif kind == "task_queued" and payload.attempt == 0:
            self.reporter.expect(payload.task.step_name, 1)
        elif kind == "task_started":
            self.started_at[task_pathspec(payload.task)] = when
            self.reporter.task_started(payload.task.step_name, payload.task.task_id,
                                       payload.attempt, self._catching(payload.task))  # fmt: skip
        elif kind in ("task_succeeded", "task_failed"):
            seconds = when - self.started_at.get(task_pathspec(payload.task), when)
            note = (
                "" if kind == "task_succeeded" else f"{payload.error_type}: {payload.error_message}"
            )
            if kind == "task_failed":
                path = task_pathspec(payload.task)
                self.tallies[path] = self.tallies.get(path, Tally()).after(payload.kind)
                if not is_infrastructure(payload.kind):
                    self.own_errors[path] = payload.error_type
                self.failure = (
                    f"{payload.task.step_name}/{payload.task.task_id}",
                    payload.traceback or note,
                )
            self.reporter.task_finished(
                payload.task.step_name,
                payload.task.task_id,
                kind == "task_succeeded",
                seconds,
                note,
            )
        elif kind == "task_queue_timed_out":
            name = f"{payload.task.step_name}/{payload.task.task_id}"
            self.failure = (name, payload.reason)
            self.reporter.warn(f"{name}: {payload.reason}")
        elif kind == "task_not_started":
            name = f"{payload.task.step_name}/{payload.task.task_id}"
            note = f"{payload.error_type}: {payload.error_message}"
            self.failure = (name, note)  # the run's failure, should it be the last try
            self.reporter.warn(f"{name}: never began: {note}")
        elif kind == "lease_expired":
            self.reporter.warn(
                f"{payload.task.step_name}/{payload.task.task_id}: executor "
                f"{payload.executor_id} stopped answering; the task is queued again"
            )
        elif kind == "run_cancel_requested":
            self.reporter.warn(f"cancel requested by {event.actor}: {payload.reason}")
        elif kind == "run_finished":
            return payload.succeeded
        return None

    def waiting(self, metadata: MetadataClient) -> None:
        """Says, once each, why tasks wait: a reason for queued tasks (no executor could
        take them, or the executors are busy) once for all the tasks it holds back, a
        leased task's (its executor's word: pending in Slurm, say) for each task."""
        request = executor_api.ListQueuedTasksRequest(flow_name=self.flow, run_id=self.run_id)
        queued: dict[str, list[str]] = {}
        for task in metadata.list_queued_tasks(request).tasks:
            if not task.waiting_reason:
                continue
            name = f"{task.step_name}/{task.task_id}"
            if task.state == records_pb2.QUEUE_STATE_QUEUED:
                queued.setdefault(task.waiting_reason, []).append(name)
            elif (line := f"{name} {task.waiting_reason}") not in self.said:
                self.said.add(line)
                self.reporter.warn(line)
        for reason, names in queued.items():
            if reason not in self.said:
                self.said.add(reason)
                more = f" and {len(names) - 1} more" if len(names) > 1 else ""
                self.reporter.warn(f"{names[0]}{more} {reason}")


def follow(metadata: MetadataClient, flow: str, run_id: str, reporter: RunReporter) -> bool:
    """Reports the run's progress from its events until it finishes; returns whether
    it succeeded. A lost service is waited for (the run goes on without us)."""
    follower = _Follower(flow, run_id, reporter)
    began = time.monotonic()
    stop = threading.Event()

    def check_waiting() -> None:
        while not stop.wait(_WAITING_CHECK_SECONDS):
            with contextlib.suppress(RpcError):  # the watch reports a lost service
                follower.waiting(metadata)

    checker = threading.Thread(target=check_waiting, name="ledgerflow-waiting", daemon=True)
    checker.start()
    after = 0
    delays = retry_delays()
    try:
        while True:
            request = ledger_api.WatchEventsRequest(
                after_position=after, run_pathspec=f"{flow}/{run_id}"
            )
            try:
                for event in metadata.watch_events(request):
                    after = event.global_position
                    delays = retry_delays()
                    outcome = follower.show(event)
                    if outcome is not None:
                        failed_at, text = follower.failure
                        reporter.run_finished(
                            flow,
                            run_id,
                            outcome,
                            time.monotonic() - began,
                            "" if outcome else text,
                            failed_at,
                        )
                        return outcome
            except RpcError as error:
                # A server that shuts down cancels its streams: reconnect, like when
                # it cannot be reached.
                if not (error.retryable or error.code == "CANCELLED") or not delays:
                    raise
                delay = delays.pop(0)
                reporter.warn(f"{error.message}; the run goes on, reconnecting in {delay:g}s")
                time.sleep(delay)
    finally:
        stop.set()
