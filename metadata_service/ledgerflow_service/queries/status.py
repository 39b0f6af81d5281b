"""Status, derived at read time from what the events recorded and how long ago the
last heartbeat arrived: never stored, so it cannot go stale or race."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow.v1 import common_pb2

from ledgerflow_service.read_models.runs import RunRow

S = common_pb2.Status


@dataclass(frozen=True)
class Clock:
    """`now_us` and the heartbeat silence after which a run or task counts as lost."""

    now_us: int
    lost_after_us: int

    @property
    def cutoff_us(self) -> int:
        return self.now_us - self.lost_after_us


def run_status(row: RunRow, clock: Clock) -> common_pb2.Status:
    if row.end_succeeded:
        return S.STATUS_SUCCEEDED
    if row.finished_at_us is not None:
        return S.STATUS_FAILED
    # An orchestrated run's queued tasks send no heartbeats: it is the service's to run
    # (its leases expire and its tasks are queued again), so it is never lost.
    if row.last_heartbeat_at_us < clock.cutoff_us and not row.orchestrated:
        return S.STATUS_LOST
    return S.STATUS_RUNNING


# (Read once: each read of an enum's value through its wrapper is a Python call.)
_SUCCEEDED, _FAILED = S.STATUS_SUCCEEDED, S.STATUS_FAILED
_LOST, _RUNNING = S.STATUS_LOST, S.STATUS_RUNNING


def outcome_status(succeeded: int | None, heartbeat_us: int, clock: Clock) -> common_pb2.Status:
    if succeeded == 1:
        return _SUCCEEDED
    if succeeded == 0:
        return _FAILED
    if heartbeat_us < clock.now_us - clock.lost_after_us:
        return _LOST
    return _RUNNING


# outcome_status as a condition on the tasks table (LOST and RUNNING take the cutoff).
TASK_STATUS_SQL = {
    S.STATUS_SUCCEEDED: "succeeded = 1",
    S.STATUS_FAILED: "succeeded = 0",
    S.STATUS_LOST: "(succeeded IS NULL AND last_heartbeat_at_us < ?)",
    S.STATUS_RUNNING: "(succeeded IS NULL AND last_heartbeat_at_us >= ?)",
}

_UNFINISHED = "end_succeeded = 0 AND finished_at_us IS NULL"
# A run status as a condition on the runs table (LOST and RUNNING take the cutoff).
RUN_STATUS_SQL = {
    S.STATUS_SUCCEEDED: "end_succeeded = 1",
    S.STATUS_FAILED: "(end_succeeded = 0 AND finished_at_us IS NOT NULL)",
    S.STATUS_LOST: f"({_UNFINISHED} AND orchestrated = 0 AND last_heartbeat_at_us < ?)",
    S.STATUS_RUNNING: f"({_UNFINISHED} AND (orchestrated = 1 OR last_heartbeat_at_us >= ?))",
}
