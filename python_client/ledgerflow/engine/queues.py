"""A remote run's queue policy (records_pb2.QueuePolicy): its bounds and their check.

One home, because two places apply them: the command line (`run --remote`, `resume
--remote` and `deploy` refuse a value out of bounds before anything is sent) and the
service (whose queue read model refuses a RunStarted or DeploymentCreated that any
other client sent with one).
"""

from __future__ import annotations

from ledgerflow.v1 import records_pb2

MAX_PRIORITY = 1000  # --priority: -MAX_PRIORITY to MAX_PRIORITY
MAX_WORKERS = 100_000  # --max-workers of a remote run: 0 (no cap) to this
MAX_QUEUE_TIMEOUT_SECONDS = 30 * 24 * 3600  # --queue-timeout: 0 (none) to 30 days


def policy_problem(name: str, policy: records_pb2.QueuePolicy) -> str | None:
    """What is out of bounds in `policy` (the field named `name`), or None."""
    if not -MAX_PRIORITY <= policy.priority <= MAX_PRIORITY:
        return f"{name}.priority must be -{MAX_PRIORITY} to {MAX_PRIORITY}, got {policy.priority}"
    if policy.max_workers > MAX_WORKERS:
        return f"{name}.max_workers must be 0 (no cap) to {MAX_WORKERS:,}, got {policy.max_workers}"
    if policy.queue_timeout_seconds > MAX_QUEUE_TIMEOUT_SECONDS:
        return (
            f"{name}.queue_timeout_seconds must be 0 (none) to {MAX_QUEUE_TIMEOUT_SECONDS} "
            f"(30 days), got {policy.queue_timeout_seconds}"
        )
    return None
