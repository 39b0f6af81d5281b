"""How a deployment is doing, from its last runs: failure rate, how long runs take and
whether that grows, and the last failure with its error and how to resume it. One home
for ``ledgerflow deployments show`` and the web UI's deployments page."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import common_pb2, records_pb2

_FINISHED = (common_pb2.STATUS_SUCCEEDED, common_pb2.STATUS_FAILED)
_BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class LastFailure:
    run: records_pb2.Run
    # "step: ErrorType: message" of the failed task ("" when no task failed: say, a
    # cancelled run or one whose start could not be run).
    error: str
    # How to resume it on a laptop (production stays untouched); --remote runs the
    # resume on the executors.
    resume: str


@dataclass(frozen=True)
class Health:
    finished: int
    failed: int
    # Seconds each finished run took, oldest first.
    durations: list[float]
    last_failure: LastFailure | None

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None

    @property
    def trend(self) -> str:
        """The durations as a sparkline, oldest first ("▁▂▂▇")."""
        if not self.durations:
            return ""
        low, high = min(self.durations), max(self.durations)
        span = (high - low) or 1.0
        return "".join(_BARS[round((d - low) / span * (len(_BARS) - 1))] for d in self.durations)

    @property
    def median_seconds(self) -> float | None:
        return median(self.durations) if self.durations else None

    def summary(self) -> str:
        """ "10 finished, 2 failed (20%); median 41 s, last 55 s ▁▂▂▇" ("" when none)."""
        if not self.finished:
            return ""
        rate = self.failure_rate or 0.0
        text = f"{self.finished} finished, {self.failed} failed ({rate:.0%})"
        if self.durations:
            text += (f"; median {seconds_text(self.median_seconds or 0)}, last "
                     f"{seconds_text(self.durations[-1])} {self.trend}")  # fmt: skip
        return text


def seconds_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run_seconds(run: records_pb2.Run) -> float | None:
    if not run.HasField("finished_at"):
        return None
    return (run.finished_at.ToMicroseconds() - run.created_at.ToMicroseconds()) / 1e6


def task_error(metadata: MetadataClient, run: records_pb2.Run) -> str:
    """ "step: ErrorType: message" of the run's failed task ("" when none failed)."""
    for task in metadata.tasks(run.flow_name, run.run_id):
        if task.status == common_pb2.STATUS_FAILED and task.attempts:
            last = task.attempts[-1]
            return f"{task.step_name}: {last.error_type}: {last.error_message}"
    return ""


def resume_command(run: records_pb2.Run) -> str:
    """The flow file's name is the user's (a run does not record it)."""
    return f"python <{run.flow_name}'s file> resume --origin-run-id {run.run_id}"


def health_of(metadata: MetadataClient, runs: list[records_pb2.Run]) -> Health:
    """The health of a deployment from its last `runs` (newest first, as listed); one
    more call reads the last failure's error."""
    finished = [run for run in runs if run.status in _FINISHED]
    failed = [run for run in finished if run.status == common_pb2.STATUS_FAILED]
    durations = [d for d in (run_seconds(run) for run in reversed(finished)) if d is not None]
    last_failure = None
    if failed:
        run = failed[0]
        last_failure = LastFailure(run, task_error(metadata, run), resume_command(run))
    return Health(len(finished), len(failed), durations, last_failure)
