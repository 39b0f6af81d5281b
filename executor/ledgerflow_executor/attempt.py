"""One leased attempt, from the lease to its events: the task request the entry point
reads, and the events its outcome becomes. The attempt itself runs the same task entry
point as a local run (``python FLOW_FILE task --spec SPEC --result RESULT``), and never
writes to the ledger: the executor records its outcome under the lease."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ledgerflow.engine import (
    TaskOutcome,
    catches_in_process,
    died_outcome,
    gang_key,
    is_infrastructure,
    new_event,
    note_death,
    outcome_events,
    runs_fallback,
    started_event,
    task_facts,
)
from ledgerflow.metadata_client import MAX_TASK_IDS, MetadataClient
from ledgerflow.runtime.task import TaskInput, TaskRequest, TaskSpec
from ledgerflow.v1 import audit_service_pb2 as audit_api
from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow.v1 import executor_service_pb2 as executor_api


@dataclass(frozen=True)
class Lease:
    """A leased attempt, as the service handed it out."""

    response: executor_api.LeaseTaskResponse

    @property
    def task(self) -> records_pb2.QueuedTask:
        return self.response.task

    @property
    def step(self) -> records_pb2.StepSpec:
        return self.response.step

    @property
    def run(self) -> records_pb2.Run:
        return self.response.run

    @property
    def lease_id(self) -> str:
        return self.response.lease_id

    @property
    def ref(self) -> events_pb2.TaskRef:
        t = self.task
        return events_pb2.TaskRef(
            flow_name=t.flow_name, run_id=t.run_id, step_name=t.step_name, task_id=t.task_id
        )

    @property
    def label(self) -> str:
        return f"{self.task.pathspec} attempt {self.task.attempt}"


def artifacts_of(
    metadata: MetadataClient, task_pathspecs: Iterable[str]
) -> dict[str, dict[str, records_pb2.Artifact]]:
    """The artifacts finished tasks recorded, by task pathspec and name: the tasks of
    one step (a join's inputs) in calls of up to MAX_TASK_IDS tasks, not a call each."""
    found: dict[str, dict[str, records_pb2.Artifact]] = {}
    by_step: dict[tuple[str, str, str], list[str]] = {}
    for path in task_pathspecs:
        flow, run_id, step_name, task_id = path.split("/")
        found[path] = {}
        by_step.setdefault((flow, run_id, step_name), []).append(task_id)
    for (flow, run_id, step_name), task_ids in by_step.items():
        for start in range(0, len(task_ids), MAX_TASK_IDS):
            chunk = task_ids[start : start + MAX_TASK_IDS]
            if len(chunk) == 1:
                listed = metadata.artifacts(flow, run_id, step_name, chunk[0])
            else:
                listed = metadata.artifacts(flow, run_id, step_name, task_ids=chunk)
            for artifact in listed:
                # (A service older than task_ids answers with the whole step.)
                if artifact.task_pathspec in found:
                    found[artifact.task_pathspec][artifact.name] = artifact
    return found


def last_failure(metadata: MetadataClient, lease: Lease) -> events_pb2.TaskFailed:
    """The task's last failure of its own, as the ledger has it: what @catch's fallback
    records (an attempt lost with its executor, or one the infrastructure failed, may
    have come after it)."""
    request = audit_api.ListEventsRequest(task_pathspec=lease.task.pathspec)
    own = events_pb2.TaskFailed(error_type="TaskProcessDied")
    while True:
        response = metadata.list_events(request)
        for event in response.events:
            if event.HasField("task_failed") and not is_infrastructure(event.task_failed.kind):
                own = event.task_failed
        if not response.page.next_page_token:
            return own
        request.page.page_token = response.page.next_page_token


def task_request(
    lease: Lease,
    artifacts: Callable[[str], dict[str, records_pb2.Artifact]],
    last_failure: Callable[[], events_pb2.TaskFailed],
) -> TaskRequest:
    """What the task entry point needs: the inputs' artifacts (`artifacts(pathspec)`),
    the foreach frames, this attempt's @catch settings (for @catch's fallback, the
    failure it records: `last_failure()`), and current's facts."""
    task, step, run = lease.task, lease.step, lease.run
    inputs = [TaskInput(path.split("/")[2], path, artifacts(path)) for path in task.input_pathspecs]
    spec = TaskSpec(
        step_name=task.step_name,
        task_id=task.task_id,
        inputs=inputs,
        foreach_stack=[(f.step_name, f.index, f.num_splits) for f in task.foreach_stack],
        attempt=task.attempt,
        failures=task.failures,
        catch_var=step.catch_var or None,
        catch_on_failure=catches_in_process(step, task.failures),
        catch_print=step.catch_print,
        max_num_splits=step.max_num_splits,
    )
    if runs_fallback(step, task.failures):
        failed = last_failure()
        spec.fallback_error = dict(
            type=failed.error_type, message=failed.error_message, traceback=failed.traceback
        )
    facts = task_facts(
        flow_name=task.flow_name,
        run_id=task.run_id,
        step_name=task.step_name,
        task_id=task.task_id,
        attempt=task.attempt,
        user=run.user,
        tags=[*run.tags, *run.system_tags],
        origin_run_id=run.origin_run_id,
        parameter_names=run.parameters,
        trigger=run.trigger if run.HasField("trigger") else None,
    )
    return TaskRequest(spec, facts, dict(run.parameters))


def started(lease: Lease, backend: str, backend_handle: str) -> events_pb2.Event:
    """TaskStarted for a leased attempt, with where its backend runs it."""
    task = lease.task
    return started_event(lease.ref, task.attempt, task.input_pathspecs, task.foreach_stack,
                         task.resources, lease.lease_id, backend, backend_handle)  # fmt: skip


def logs_event(lease: Lease, stdout_key: str, stderr_key: str) -> events_pb2.Event:
    return new_event(
        logs_recorded=events_pb2.LogsRecorded(
            task=lease.ref,
            attempt=lease.task.attempt,
            stdout_key=stdout_key,
            stderr_key=stderr_key,
            lease_id=lease.lease_id,
        )
    )


def not_started(lease: Lease, why: TaskOutcome) -> events_pb2.Event:
    """TaskNotStarted: the lease given back for an attempt its engine never began, with
    the engine's reason (`why`, an infrastructure failure)."""
    return new_event(
        task_not_started=events_pb2.TaskNotStarted(
            task=lease.ref,
            attempt=lease.task.attempt,
            lease_id=lease.lease_id,
            kind=records_pb2.FAILURE_KIND_INFRASTRUCTURE,
            error_type=why.error_type,
            error_message=why.error_message,
        )
    )


def recorded_outcome(lease: Lease, outcome: TaskOutcome) -> list[events_pb2.Event]:
    """The events that record an attempt's outcome under its lease (after its logs)."""
    return outcome_events(lease.ref, lease.task.attempt, outcome, lease.lease_id)


def read_outcome(
    result_path: Path,
    stderr_path: Path,
    exit_code: int,
    lease: Lease,
    *,
    ended: TaskOutcome | None,
) -> TaskOutcome:
    """The attempt's outcome: what it reported, or why it has none (then also said at
    the end of its stderr): `ended` when the executor ended it (its timeout, its run
    cancelled) or its backend knows why (Backend.why_ended), else its exit code."""
    memory = lease.task.resources.memory_mb
    if result_path.exists():
        outcome = TaskOutcome.from_bytes(result_path.read_bytes())
        if not outcome.ok and outcome.kind == records_pb2.FAILURE_KIND_OUT_OF_MEMORY:
            outcome.error_message = (
                f"exceeded memory={memory} MB (@resources): {outcome.error_message}".rstrip(": ")
            )
        return outcome
    outcome = ended or died_outcome(exit_code)
    note_death(stderr_path, outcome)
    return outcome


def gang_of(lease: Lease) -> tuple[str, ...]:
    """Which @parallel gang a leased node belongs to: its run and the engine's key."""
    task = lease.task
    return (task.flow_name, task.run_id, *gang_key(task.step_name, task.foreach_stack))
