"""Replaying events into the read models: a full rebuild, and the partial replays of
as-of audit queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledgerflow_service.store.addressing import address_of
from ledgerflow_service.store.backend import Database, Tx
from ledgerflow_service.store.events import read_events
from ledgerflow_service.store.projector import PendingEvent, Projector, position_row


def rebuild_projections(
    database: Database,
    projector: Projector[Any],
    *,
    chunk_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Empties every read model and refolds it from the events alone, in one
    transaction (readers see the old or the new models, never half of either).
    `on_progress(done, total)` is called after each chunk. Returns the number of
    events replayed."""
    replayed = 0
    with database.write() as tx:
        for table in (*projector.tables, "projection_position"):
            tx.execute(f"DELETE FROM {table}")
        total_row = tx.query_one("SELECT COUNT(*) FROM events")
        total = int(total_row[0]) if total_row else 0
        replayed = replay(
            tx, projector, "1 = 1", (), chunk_size=chunk_size,
            on_chunk=(lambda done: on_progress(done, total)) if on_progress else None,
        )  # fmt: skip
    return replayed


def replay(
    tx: Tx,
    projector: Projector[Any],
    where: str,
    params: Sequence[Any],
    *,
    chunk_size: int = 1000,
    source: Tx | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Folds the events matching `where` (read from `source`, default `tx`) into the
    read models of `tx`, oldest first. Used by rebuilds and by as-of audit queries."""
    source = source or tx
    after = 0
    replayed = 0
    while True:
        chunk = read_events(
            source, f"global_position > ? AND ({where})", [after, *params], chunk_size
        )
        if not chunk:
            return replayed
        pending = [
            PendingEvent(
                e, address_of(e), e.global_position, e.recorded_at.ToMicroseconds(), e.actor
            )
            for e in chunk
        ]
        fold = projector.load(tx, pending)
        for item in pending:
            fold.apply(item)
        after = chunk[-1].global_position
        fold.save(tx, also=[position_row(after)])
        replayed += len(chunk)
        if on_chunk is not None:
            on_chunk(replayed)
