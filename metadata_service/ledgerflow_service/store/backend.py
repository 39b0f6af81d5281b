"""The storage interface both backends implement: a transaction (:class:`Tx`), a
database (:class:`Database`) and the SQL that differs between them (:class:`Dialect`).

SQL in the service is written once, with ``?`` placeholders, in the dialect both
SQLite (3.35+) and Postgres understand; the Postgres backend swaps the placeholders.

Writes go through :meth:`Database.write`, which serializes appends: in Postgres with a
transaction-scoped advisory lock, in SQLite with ``BEGIN IMMEDIATE``. Serializing means
global positions are assigned and committed in the same order, so a watcher that reads
"everything after position N" can never skip an event that commits late.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import Cancelled, DeadlineExceeded, LedgerError

Row = tuple[Any, ...]
# A statement and its parameters. Where a query is known to match nothing (say, rows
# looked up by an empty set of keys) it is None instead, and is not sent at all: a
# statement costs an append about as much CPU as the work it does.
Query = tuple[str, Sequence[Any]]
# The ledger's head: the newest global position (0 for an empty ledger).
HEAD_SQL = "(SELECT COALESCE(MAX(global_position), 0) FROM events)"


class RowInsert(NamedTuple):
    """Rows for one table, with an optional ON CONFLICT clause as `suffix`."""

    table: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    suffix: str = ""


# Bound parameters per statement: SQLite allows 32766, Postgres 65535.
_MAX_PARAMS = 30000


class Dialect:
    """SQL that differs between the backends, for queries built before a transaction
    exists. This base class speaks the dialect both understand."""

    def one_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """`column` equals one of `values` (no value matches nothing)."""
        marks = ", ".join("?" for _ in values) or "NULL"
        return f"{column} IN ({marks})", list(values)

    def stream_versions(self, streams: Sequence[str]) -> Query | None:
        """(stream, current version or NULL, the ledger's head) for each stream: one
        index probe per stream (a backward scan of UNIQUE(stream, stream_version)),
        whatever the planner thinks of the table's size. The head (the same on every
        row) comes along because every append needs both: one statement fewer. None
        for no streams. (The streams are rows of one VALUES list, not SELECTs joined by
        UNION ALL: SQLite refuses more than 500 terms in a compound SELECT.)"""
        if not streams:
            return None
        rows = ", ".join("(?)" for _ in streams)
        probe = "(SELECT MAX(stream_version) FROM events WHERE events.stream = s.stream)"
        return (
            f"WITH s (stream) AS (VALUES {rows}) SELECT s.stream, {probe}, {HEAD_SQL} FROM s",
            list(streams),
        )


class Tx(abc.ABC):
    """One transaction (or read snapshot) on a backend."""

    dialect: Dialect = Dialect()

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def query_all(self, queries: Sequence[Query | None]) -> list[list[Row]]:
        """Runs independent queries and returns each one's rows, in order (Postgres sends
        them all in one round trip); a None query has no rows."""
        return [self.query(*query) if query else [] for query in queries]

    def query_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[Row]]:
        """Runs a query in the transaction, at this point of it, whose rows are wanted
        only once the transaction has ended: returns what gives them then. In an
        append on Postgres its answer comes back with the COMMIT's, costing no round
        trip of its own."""
        rows = self.query(sql, params)
        return lambda: rows

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], suffix: str = ""
    ) -> None:
        """Inserts many rows with one multi-row INSERT per chunk: one round trip where
        ``executemany`` would pay one per row. `suffix` is e.g. an ON CONFLICT clause."""
        if not rows:
            return
        one = "(" + ", ".join("?" for _ in columns) + ")"
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        per_chunk = max(1, _MAX_PARAMS // len(columns))
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            params = [value for row in chunk for value in row]
            self.execute(head + ", ".join(one for _ in chunk) + " " + suffix, params)

    def insert_all(self, inserts: Sequence[RowInsert]) -> None:
        """Runs several multi-row inserts, in order (Postgres sends them as one
        statement)."""
        for insert in inserts:
            self.insert_rows(insert.table, insert.columns, insert.rows, insert.suffix)


class Database(abc.ABC):
    """A ledger database: the events table plus the projections."""

    kind: str
    dialect: Dialect = Dialect()
    # Whether appends by other processes wake this process's watchers (see listen);
    # when not, watchers poll more often.
    notifies_other_processes = False

    def change_stamp(self) -> object:
        """Something that changes whenever another process may have appended, cheaper
        to read than the ledger (a database that does not notify: its files' sizes and
        times); None where appends are notified (then it tells nothing)."""
        return None

    @abc.abstractmethod
    def write(self) -> Any:
        """Context manager yielding a :class:`Tx` that holds the append lock."""

    @abc.abstractmethod
    def read(self, scope: CallScope | None = None) -> Any:
        """Context manager yielding a :class:`Tx` for queries. With a `scope`, no
        statement runs past its deadline, and cancelling it interrupts the statement
        that is running; either ends the block with a :class:`LedgerError`."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Applies pending migrations; returns the names applied."""

    def guard_warning(self) -> str | None:
        """Why the role this database is opened as could switch the append-only guards
        off (None: it cannot, or the backend has no roles)."""
        return None

    @abc.abstractmethod
    def notify_appended(self, tx: Tx, position: int, runs: Collection[str]) -> None:
        """Tells watchers in other processes that events up to `position` exist, and
        the runs of those just appended."""

    def listen(  # noqa: B027
        self, on_append: Callable[[frozenset[str] | None], None], stop: threading.Event
    ) -> None:
        """Blocks, calling `on_append(runs)` whenever another process appends, with the
        runs it touched (None: any run), until `stop`; and with None whenever it starts
        listening (again), for what nobody heard meanwhile. The appends made through
        this object signal its watchers directly.

        The default does nothing: a backend without cross-process notification is
        polled by the watchers instead."""

    def after_commit(self, appended: int) -> None:  # noqa: B027 - optional
        """Called after an append committed `appended` events (outside the lock)."""

    @abc.abstractmethod
    def is_unique_violation(self, error: Exception) -> bool:
        """Whether `error` is this backend's unique-constraint violation."""

    def is_unreachable(self, error: Exception) -> bool:
        """Whether `error` says the database did not answer (down, restarting, out of
        connections): the request may be retried, unlike a bug's error."""
        return False

    @abc.abstractmethod
    def close(self) -> None: ...


def stopped(scope: CallScope) -> LedgerError:
    """The error for a statement that was interrupted on behalf of `scope`."""
    if scope.cancelled:
        return Cancelled("the caller cancelled the request; its query was stopped")
    if scope.caller_deadline is not None and scope.caller_deadline <= scope.deadline:
        return DeadlineExceeded(
            "the query did not finish before the caller's deadline and was stopped; "
            "narrow the request (filters, a smaller page) or allow more time"
        )
    return DeadlineExceeded(
        "the query ran longer than the service's statement timeout and was stopped; "
        "narrow the request (filters, a smaller page)"
    )
