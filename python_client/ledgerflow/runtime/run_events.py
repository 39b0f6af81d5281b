"""A run's events on their way to the ledger: made with fresh ids, and appended with
retries while the metadata service is unreachable or slow (the ids make a retry
safe: nothing is recorded twice)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ledgerflow.exceptions import RpcError
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import events_pb2


def heartbeat_seconds() -> float:
    """How often a run and its running tasks say they are alive (the service calls them
    lost after --lost-after seconds of silence; keep this well below that)."""
    return float(os.environ.get("LEDGERFLOW_HEARTBEAT_SECONDS", "10"))


def log_seconds() -> float:
    """How often a running task's new output is recorded, so that readers (``logs``, the
    web UI) follow it while the task runs."""
    return float(os.environ.get("LEDGERFLOW_LOG_SECONDS", "1"))


def retry_delays() -> list[float]:
    """The waits between retries of an append while the service is unreachable:
    doubling from half a second (at most 30), until they add up to at least
    LEDGERFLOW_SERVICE_PATIENCE seconds (default 60); then the run gives up."""
    patience = float(os.environ.get("LEDGERFLOW_SERVICE_PATIENCE", "60"))
    delays: list[float] = []
    while sum(delays) < patience:
        delays.append(min(0.5 * 2 ** len(delays), 30.0))
    return delays


def append_with_retries(
    metadata: MetadataClient,
    batch: list[events_pb2.Event],
    warn: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Appends a batch, retrying while the service is unreachable or too slow to
    answer. A timed-out append was rolled back, or committed without our hearing of
    it: either way the retry (the same event ids) records it exactly once."""
    for delay in (*retry_delays(), None):
        try:
            metadata.append_events(batch)
            return
        except RpcError as error:
            if not error.retryable or delay is None:
                raise
            warn(f"{error.message}; retrying in {delay:g}s")
            sleep(delay)
