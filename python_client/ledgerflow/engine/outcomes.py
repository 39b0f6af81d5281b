"""An attempt's outcome and the events it becomes.

A task process reports a :class:`TaskOutcome` through its result file; a process that
exits without one gets :func:`died_outcome` (timed out, cancelled, out of memory, killed
by a signal). Either way :func:`outcome_events` turns it into the same events, whoever
records them: the local runtime, or an executor under its lease.
"""

from __future__ import annotations

import os
import pickle
import signal
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.v1 import events_pb2, records_pb2

TIMEOUT_ERROR = "TimeoutException"
Kind = records_pb2.FailureKind


def new_event(**payload: Any) -> events_pb2.Event:
    """An event with a fresh id (the idempotency key of its append)."""
    return events_pb2.Event(event_id=str(uuid.uuid4()), **payload)


@dataclass
class TaskOutcome:
    """What one attempt reports back."""

    ok: bool
    artifacts: list[records_pb2.Artifact] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    num_splits: int = 0
    # For a switch: the case its condition chose.
    switch_step: str = ""
    caught: bool = False
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    # The tables it wrote and read (payload-only events: see _lineage.py).
    lineage: list[events_pb2.Event] = field(default_factory=list)
    # For a failure: which kind (records_pb2.FailureKind), as the attempt policy counts it.
    kind: int = Kind.FAILURE_KIND_UNSPECIFIED

    def write(self, result_path: str) -> None:
        """Writes the outcome where the launcher looks for it: atomically (a reader sees
        all of it or nothing), unless the launcher made the file already, which says
        it reads a cut-off outcome as none (the local runtime, which saves a new file a
        task that way)."""
        if os.path.exists(result_path):
            with open(result_path, "r+b") as out:
                out.write(self.to_bytes())
                out.truncate()
            return
        with open(result_path + ".tmp", "wb") as out:
            out.write(self.to_bytes())
        os.replace(result_path + ".tmp", result_path)

    def to_bytes(self) -> bytes:
        state = dict(vars(self))
        state["artifacts"] = [a.SerializeToString() for a in self.artifacts]
        state["lineage"] = [e.SerializeToString() for e in self.lineage]
        return pickle.dumps(state)

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskOutcome:
        state = pickle.loads(data)
        state["artifacts"] = [records_pb2.Artifact.FromString(a) for a in state["artifacts"]]
        state["lineage"] = [events_pb2.Event.FromString(e) for e in state.get("lineage", [])]
        return cls(**state)


def died_outcome(
    exit_code: int,
    *,
    timeout_seconds: float = 0.0,
    cancelled: str = "",
    memory_mb: int = 0,
) -> TaskOutcome:
    """The outcome of an attempt whose process exited without reporting one: killed at
    its @timeout (`timeout_seconds`), stopped because its run was cancelled (the
    reason), killed for exceeding `memory_mb`, or dead of its own (a signal, or an exit
    before the report)."""
    if timeout_seconds:
        message = f"the attempt ran longer than {timeout_seconds:g}s (@timeout) and was killed"
        return failed(TIMEOUT_ERROR, message, Kind.FAILURE_KIND_TIMEOUT)
    if cancelled:
        return failed("Cancelled", cancelled, Kind.FAILURE_KIND_CANCELLED)
    if memory_mb:
        message = (
            f"exceeded memory={memory_mb} MB: the task was killed for using more memory than "
            f"its @resources(memory=...) allows (exit {exit_code})"
        )
        return failed("OutOfMemory", message, Kind.FAILURE_KIND_OUT_OF_MEMORY)
    return failed("TaskProcessDied", death_note(exit_code), Kind.FAILURE_KIND_KILLED)


def failed(error_type: str, message: str, kind: int) -> TaskOutcome:
    """A failed outcome that has no traceback (the attempt did not report it)."""
    return TaskOutcome(ok=False, error_type=error_type, error_message=message, kind=kind)


def death_note(exit_code: int) -> str:
    """Why a task process ended without a report, for its stderr and its error."""
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "an unknown signal"
        return f"the task process was killed by signal {-exit_code} ({name}) before reporting"
    return f"the task process exited with code {exit_code} before reporting"


def note_death(stderr_path: str | os.PathLike[str], outcome: TaskOutcome) -> None:
    """Adds why an attempt died without reporting to the end of its stderr, where a
    person reading the task's output looks (``task.stderr``, ``logs``)."""
    with open(stderr_path, "a", encoding="utf-8") as stderr:
        stderr.write(f"\n[ledgerflow] {outcome.error_type}: {outcome.error_message}\n")


def started_event(
    task: events_pb2.TaskRef,
    attempt: int,
    inputs: Sequence[str],
    stack: Sequence[records_pb2.ForeachFrame],
    resources: records_pb2.Resources,
    lease_id: str = "",
    backend: str = "",
    backend_handle: str = "",
) -> events_pb2.Event:
    return new_event(
        task_started=events_pb2.TaskStarted(
            task=task,
            attempt=attempt,
            input_pathspecs=inputs,
            foreach_stack=stack,
            resources=resources,
            lease_id=lease_id,
            backend=backend,
            backend_handle=backend_handle,
        )
    )


def outcome_events(
    task: events_pb2.TaskRef, attempt: int, outcome: TaskOutcome, lease_id: str = ""
) -> list[events_pb2.Event]:
    """The events that record an attempt's outcome (after its logs): its artifacts,
    the tables it used, and how it ended."""
    found = []
    if outcome.artifacts:
        found.append(
            new_event(
                artifacts_recorded=events_pb2.ArtifactsRecorded(
                    task=task, attempt=attempt, artifacts=outcome.artifacts, lease_id=lease_id
                )
            )
        )
    found.extend(lineage_events(outcome.lineage, task, attempt, lease_id))
    if outcome.ok:
        succeeded = events_pb2.TaskSucceeded(
            task=task,
            attempt=attempt,
            lease_id=lease_id,
            num_splits=outcome.num_splits,
            switch_step=outcome.switch_step,
        )
        found.append(new_event(task_succeeded=succeeded))
    else:
        failure = events_pb2.TaskFailed(
            task=task,
            attempt=attempt,
            lease_id=lease_id,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            traceback=outcome.traceback,
            kind=outcome.kind,  # type: ignore[arg-type]
        )
        found.append(new_event(task_failed=failure))
    return found


def lineage_events(
    noted: list[events_pb2.Event], task: events_pb2.TaskRef, attempt: int, lease_id: str = ""
) -> list[events_pb2.Event]:
    """The events that record an attempt's table use, each naming the attempt."""
    events = []
    for event in noted:
        kind = event.WhichOneof("payload")
        payload = type(getattr(event, kind))()
        payload.CopyFrom(getattr(event, kind))
        payload.task.CopyFrom(task)
        payload.attempt = attempt
        payload.lease_id = lease_id
        events.append(new_event(**{kind: payload}))
    return events
