"""One leased attempt, from the lease to its events: the task request the entry point
reads, and the events its outcome becomes. The attempt itself runs the same task entry
point as a local run (``python FLOW_FILE task --spec SPEC --result RESULT``), and never
writes to the ledger: the executor records its outcome under the lease."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerflow._lineage import lineage_events
from ledgerflow._metadata import MetadataClient
from ledgerflow._run_events import new_event
from ledgerflow._task import TaskInput, TaskOutcome, TaskRequest, TaskSpec
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


def artifacts_of(metadata: MetadataClient, task_pathspec: str) -> dict[str, records_pb2.Artifact]:
    """The artifacts a finished task recorded, by name."""
    flow, run_id, step_name, task_id = task_pathspec.split("/")
    return {a.name: a for a in metadata.artifacts(flow, run_id, step_name, task_id)}


def task_request(
    lease: Lease, artifacts: Callable[[str], dict[str, records_pb2.Artifact]]
) -> TaskRequest:
    """What the task entry point needs: the inputs' artifacts (`artifacts(pathspec)`),
    the foreach frames, the catch settings of this attempt, and current's facts."""
    task, step, run = lease.task, lease.step, lease.run
    inputs = [TaskInput(path.split("/")[2], path, artifacts(path)) for path in task.input_pathspecs]
    spec = TaskSpec(
        step_name=task.step_name,
        task_id=task.task_id,
        inputs=inputs,
        foreach_stack=[(f.step_name, f.index, f.num_splits) for f in task.foreach_stack],
        attempt=task.attempt,
        catch_var=step.catch_var or None,
        catch_on_failure=step.catch and task.attempt >= step.retries,
        catch_print=step.catch_print,
    )
    facts: dict[str, Any] = dict(
        flow_name=task.flow_name,
        run_id=task.run_id,
        step_name=task.step_name,
        task_id=task.task_id,
        retry_count=task.attempt,
        namespace=f"user:{run.user}",
        username=run.user,
        tags=[*run.tags, *run.system_tags],
        origin_run_id=run.origin_run_id or None,
        parameter_names=sorted(run.parameters),
    )
    return TaskRequest(spec, facts, dict(run.parameters))


def started_event(lease: Lease) -> events_pb2.Event:
    task = lease.task
    return new_event(
        task_started=events_pb2.TaskStarted(
            task=lease.ref,
            attempt=task.attempt,
            input_pathspecs=task.input_pathspecs,
            foreach_stack=task.foreach_stack,
            resources=task.resources,
            lease_id=lease.lease_id,
        )
    )


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


def outcome_events(lease: Lease, outcome: TaskOutcome) -> list[events_pb2.Event]:
    """The events that record an attempt's outcome (after its logs)."""
    ref, attempt, lease_id = lease.ref, lease.task.attempt, lease.lease_id
    found = []
    if outcome.artifacts:
        found.append(
            new_event(
                artifacts_recorded=events_pb2.ArtifactsRecorded(
                    task=ref, attempt=attempt, artifacts=outcome.artifacts, lease_id=lease_id
                )
            )
        )
    found.extend(lineage_events(outcome.lineage, ref, attempt, lease_id))
    if outcome.ok:
        found.append(
            new_event(
                task_succeeded=events_pb2.TaskSucceeded(
                    task=ref, attempt=attempt, lease_id=lease_id, num_splits=outcome.num_splits
                )
            )
        )
    else:
        found.append(
            new_event(
                task_failed=events_pb2.TaskFailed(
                    task=ref,
                    attempt=attempt,
                    lease_id=lease_id,
                    error_type=outcome.error_type,
                    error_message=outcome.error_message,
                    traceback=outcome.traceback,
                )
            )
        )
    return found


def read_outcome(
    result_path: Path, exit_code: int, lease: Lease, *, killed_for: str, memory_killed: bool
) -> TaskOutcome:
    """The attempt's outcome: what it reported, or why it has none."""
    memory = lease.task.resources.memory_mb
    if result_path.exists():
        outcome = TaskOutcome.from_bytes(result_path.read_bytes())
        if not outcome.ok and outcome.error_type == "MemoryError":
            outcome.error_message = (
                f"exceeded memory={memory} MB (@resources): {outcome.error_message}".rstrip(": ")
            )
        return outcome
    if killed_for:
        kind, message = killed_for.split(":", 1)
        return TaskOutcome(ok=False, error_type=kind, error_message=message.strip())
    if memory_killed:
        return TaskOutcome(
            ok=False,
            error_type="OutOfMemory",
            error_message=f"exceeded memory={memory} MB: the task was killed for using more "
            f"memory than its @resources(memory=...) allows (exit {exit_code})",
        )
    return TaskOutcome(
        ok=False,
        error_type="TaskProcessDied",
        error_message=f"the task process exited with code {exit_code} before reporting",
    )
