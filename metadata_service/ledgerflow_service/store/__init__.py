"""The event store: events in streams, appended atomically and idempotently, read by
position, folded into read models by an injected :class:`Projector`; and the two
backends (SQLite embedded, Postgres in production) with their migrations.

The store knows events and streams, not read models: what an event does to the read
models is the projector's business (see ``ledgerflow_service.read_models``).
"""

from __future__ import annotations

from ledgerflow_service.store.backend import Database, Dialect, Row, RowInsert, Tx


def open_database(
    url: str, *, migrate: bool = True, statement_timeout_seconds: float | None = None
) -> Database:
    """Opens ``sqlite:///path/to/file.db``, ``sqlite://:memory:`` or ``postgresql://...``.
    `statement_timeout_seconds` caps each statement (Postgres; SQLite reads are bounded
    by their call scope)."""
    if url.startswith(("postgresql://", "postgres://")):
        from ledgerflow_service.store import postgres  # each backend only when used

        database: Database = postgres.PostgresDatabase(
            url, statement_timeout_seconds=statement_timeout_seconds
        )
    elif url.startswith("sqlite://"):
        from ledgerflow_service.store import sqlite

        path = url.removeprefix("sqlite://")
        path = path.removeprefix("/") if path.startswith("/:memory:") else path
        database = sqlite.SqliteDatabase(path or ":memory:")
    else:
        from ledgerflow_service.errors import InvalidArgument

        raise InvalidArgument(
            f"database URL {url!r} is not supported: use sqlite:///PATH or postgresql://..."
        )
    if migrate:
        database.migrate()
    return database


__all__ = ["Database", "Dialect", "Row", "RowInsert", "Tx", "open_database"]
