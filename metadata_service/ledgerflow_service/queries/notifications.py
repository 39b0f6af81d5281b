"""Notifications that are due, and what a receiver is told of their run."""

from __future__ import annotations

from ledgerflow_service.read_models.notifications import NotificationRow
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

_SELECT = f"SELECT {', '.join(columns(NotificationRow))} FROM notifications WHERE "


def due(tx: Tx, now_us: int, limit: int) -> list[NotificationRow]:
    """Notifications to send now: pending ones whose time has come, and those whose
    sender's claim ran out (it died mid-attempt), earliest first."""
    rows = tx.query(
        _SELECT + "(state = 'pending' AND next_try_us <= ?) "
        "OR (state = 'sending' AND claimed_until_us <= ?) ORDER BY next_try_us LIMIT ?",
        (now_us, now_us, limit),
    )
    return [NotificationRow(*row) for row in rows]


def of_run(tx: Tx, run_pathspec: str) -> list[NotificationRow]:
    rows = tx.query(_SELECT + "run_pathspec = ? ORDER BY notification", (run_pathspec,))
    return [NotificationRow(*row) for row in rows]


def run_facts(tx: Tx, run_pathspec: str) -> tuple[int | None, bytes, str] | None:
    """(when the run finished, its Trigger message, "step: ErrorType: message" of a
    failed task or ""); None for no such run."""
    run = tx.query_one(
        "SELECT finished_at_us, trigger_message FROM runs WHERE pathspec = ?", (run_pathspec,)
    )
    if run is None:
        return None
    failed = tx.query_one(
        "SELECT t.step_name, a.error_type, a.error_message FROM tasks t JOIN attempts a "
        "ON a.task_pathspec = t.pathspec AND a.attempt = t.current_attempt "
        "WHERE t.run_pathspec = ? AND a.succeeded = 0 ORDER BY a.finished_at_us LIMIT 1",
        (run_pathspec,),
    )
    error = f"{failed[0]}: {failed[1]}: {failed[2]}" if failed else ""
    return run[0], bytes(run[1] or b""), error
