"""What a local run records while its attempts run: heartbeats (a long task must not
look lost, and the run's other events may be rare) and each attempt's output as it
grows, so that it can be followed live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ledgerflow.engine import new_event
from ledgerflow.runtime.launcher import AttemptFiles, output_size, read_output
from ledgerflow.runtime.task import TaskSpec
from ledgerflow.v1 import events_pb2

# Output of an attempt younger than this is recorded at its end, not while it runs.
QUICK_TASK_SECONDS = 0.05


@dataclass
class RunningAttempt:
    spec: TaskSpec
    handle: int  # the launcher's
    started: float
    deadline: float | None
    files: AttemptFiles
    timed_out: bool = False
    # Set when the runtime stopped it (a node of its gang failed): why.
    stopped_because: str = ""
    # The sizes of stdout and stderr when they were last recorded.
    log_sizes: tuple[int, int] = (0, 0)


class LiveRecorder:
    """Says which heartbeats and output records are due; `ref` names an attempt's task."""

    def __init__(
        self,
        store: Any,
        ref: Callable[[TaskSpec], events_pb2.TaskRef],
        *,
        heartbeat_every: float,
        log_every: float,
    ) -> None:
        self.store, self.ref = store, ref
        self.heartbeat_every, self.log_every = heartbeat_every, log_every
        self.last_heartbeat = time.monotonic()
        self.logs_due = time.monotonic() + log_every

    def next_due(self) -> float:
        """When the loop must wake up next for a heartbeat or for output."""
        return min(self.last_heartbeat + self.heartbeat_every, self.logs_due)

    def heartbeats(
        self, running: Iterable[RunningAttempt], flow_name: str, run_id: str
    ) -> list[events_pb2.Event]:
        """Every heartbeat interval: a TaskHeartbeat per running attempt and a
        RunHeartbeat."""
        now = time.monotonic()
        if now - self.last_heartbeat < self.heartbeat_every:
            return []
        self.last_heartbeat = now
        found = [
            new_event(task_heartbeat=events_pb2.TaskHeartbeat(
                task=self.ref(r.spec), attempt=r.spec.attempt))
            for r in running
        ]  # fmt: skip
        run = events_pb2.RunHeartbeat(flow_name=flow_name, run_id=run_id)
        return [*found, new_event(run_heartbeat=run)]

    def output(self, running: Iterable[RunningAttempt]) -> list[events_pb2.Event]:
        """The output of running attempts that printed since the last time. Each time
        stores the whole output so far; the next time is put off so that this costs at
        most a tenth of the time."""
        now = time.monotonic()
        if now < self.logs_due:
            return []
        found = []
        for attempt in running:
            files = attempt.files
            grew = (output_size(files.stdout), output_size(files.stderr)) != attempt.log_sizes
            if grew and now - attempt.started >= QUICK_TASK_SECONDS:
                stdout, stderr = read_output(files.stdout), read_output(files.stderr)
                found.extend(self.logs(attempt, stdout, stderr))
        spent = time.monotonic() - now
        self.logs_due = time.monotonic() + max(self.log_every, 10 * spent)
        return found

    def logs(self, attempt: RunningAttempt, stdout: bytes, stderr: bytes) -> list[events_pb2.Event]:
        """A LogsRecorded event for the attempt's output, unless none came since the
        last one (while it ran, or at its end)."""
        if (len(stdout), len(stderr)) == attempt.log_sizes:
            return []
        attempt.log_sizes = (len(stdout), len(stderr))
        recorded = events_pb2.LogsRecorded(
            task=self.ref(attempt.spec),
            attempt=attempt.spec.attempt,
            stdout_key=self.store.save_bytes(stdout) if stdout else "",
            stderr_key=self.store.save_bytes(stderr) if stderr else "",
        )
        return [new_event(logs_recorded=recorded)]
