"""A remote run's queue policy bounds (engine/queues.py), the one home the command line
and the service's queue read model both take them from."""

from __future__ import annotations

import pytest
from ledgerflow.engine.queues import (
    MAX_PRIORITY,
    MAX_QUEUE_TIMEOUT_SECONDS,
    MAX_WORKERS,
    policy_problem,
)
from ledgerflow.v1 import records_pb2


@pytest.mark.parametrize(
    "fields",
    [{}, {"priority": MAX_PRIORITY}, {"priority": -MAX_PRIORITY}, {"max_workers": MAX_WORKERS},
     {"queue_timeout_seconds": MAX_QUEUE_TIMEOUT_SECONDS}],
)  # fmt: skip
def test_a_policy_at_its_bounds_is_fine(fields: dict[str, int]) -> None:
    assert policy_problem("p", records_pb2.QueuePolicy(**fields)) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"priority": MAX_PRIORITY + 1}, "p.priority must be -1000 to 1000, got 1001"),
        ({"priority": -MAX_PRIORITY - 1}, "p.priority must be -1000 to 1000, got -1001"),
        ({"max_workers": MAX_WORKERS + 1}, "p.max_workers must be 0 (no cap) to 100,000"),
        ({"queue_timeout_seconds": MAX_QUEUE_TIMEOUT_SECONDS + 1}, "(30 days), got 2592001"),
    ],
)
def test_a_policy_past_its_bounds_says_which_field_and_why(
    fields: dict[str, int], message: str
) -> None:
    problem = policy_problem("p", records_pb2.QueuePolicy(**fields))
    assert problem is not None and message in problem
