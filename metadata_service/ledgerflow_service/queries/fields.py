"""What requests and records share: run keys, time ranges and timestamps."""

from __future__ import annotations

from typing import Any

from ledgerflow_service.errors import NotFound
from ledgerflow_service.names import check_id, check_identifier
from ledgerflow_service.store.backend import Tx
from ledgerflow_service.validation import timestamp_us


def add_time_range(
    where: list[str],
    params: list[Any],
    column: str,
    request: Any,
    after_field: str,
    before_field: str,
) -> None:
    """Adds `column > after AND column < before` for the timestamp fields that are set."""
    for field_name, operator in ((after_field, ">"), (before_field, "<")):
        if request.HasField(field_name):
            where.append(f"{column} {operator} ?")
            params.append(timestamp_us(field_name, getattr(request, field_name)))


def check_run_key(flow_name: str, run_id: str) -> str:
    """The pathspec of a run named in a request."""
    return f"{check_identifier('flow_name', flow_name)}/{check_id('run_id', run_id)}"


def set_time(target: Any, micros: int | None) -> None:
    """Sets the Timestamp `target` to `micros`, when there is a time. (As
    Timestamp.FromMicroseconds does, a fifth of its cost: a page of tasks sets
    five times each.)"""
    if micros is not None:
        seconds, rest = divmod(micros, 1_000_000)
        target.seconds = seconds
        target.nanos = rest * 1000


def require_run(tx: Tx, flow_name: str, run_id: str) -> str:
    path = check_run_key(flow_name, run_id)
    if tx.query_one("SELECT 1 FROM runs WHERE pathspec = ?", (path,)) is None:
        raise NotFound(f"run {path} does not exist")
    return path
