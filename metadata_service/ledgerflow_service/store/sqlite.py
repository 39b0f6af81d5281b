"""The embedded backend: SQLite, one file, no server."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.store.backend import Database, Row, Tx, stopped
from ledgerflow_service.store.schema import migration_files


def _statements(script: str) -> Iterator[str]:
    """Splits a migration into statements (trigger bodies hold semicolons too)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"migration ends in an incomplete statement: {pending[:80]!r}")


class _SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()


class SqliteDatabase(Database):
    """The embedded default: one file, no server.

    One connection shared under a lock: SQLite has one writer anyway, and the local
    runtime is the only process that writes a run's events."""

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(Path(path).expanduser()) if path != ":memory:" else path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
        )
        self._lock = threading.RLock()
        self._stamp_conn: sqlite3.Connection | None = None  # change_stamp's own
        self._stamp_lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout=30000")
            if path != ":memory:":
                self._use_wal()
            self._conn.execute("PRAGMA synchronous=NORMAL")

    def change_stamp(self) -> object:
        """SQLite's data_version, on a connection of its own that never writes: it
        changes with every commit of any other connection, this process's included (a
        look at the shared WAL index, no read of the ledger)."""
        if self.path == ":memory:":
            return None
        with self._stamp_lock:
            if self._stamp_conn is None:
                self._stamp_conn = sqlite3.connect(
                    str(Path(self.path).expanduser()), isolation_level=None,
                    check_same_thread=False, timeout=30.0,
                )  # fmt: skip
            return self._stamp_conn.execute("PRAGMA data_version").fetchone()[0]

    def _use_wal(self) -> None:
        """Switches a new file to WAL (readers never wait for the writer). The switch
        needs the file to itself and does not wait for a busy one, so when another
        process is creating the same ledger it is retried for a while; WAL then stays
        recorded in the file and later openers find it set."""
        deadline = time.monotonic() + 30
        while self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self, scope: CallScope | None = None) -> Iterator[Tx]:
        with self._lock:
            if scope is not None:
                # SQLite has no statement timeout: the progress handler, called every
                # few thousand VM steps, ends a statement whose scope has expired.
                self._conn.set_progress_handler(lambda: int(scope.expired()), 10_000)
            self._conn.execute("BEGIN")
            try:
                if scope is None:
                    yield _SqliteTx(self._conn)
                else:
                    with scope.interruptible(self._conn.interrupt):
                        yield _SqliteTx(self._conn)
            except sqlite3.OperationalError as error:
                if scope is not None and "interrupted" in str(error):
                    raise stopped(scope) from None
                raise
            finally:
                self._conn.execute("COMMIT")
                if scope is not None:
                    self._conn.set_progress_handler(None, 0)

    def migrate(self) -> list[str]:
        """Applies pending migrations in one IMMEDIATE transaction, so processes that
        open a new ledger file at the same moment do not both try to create it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)"
                )
                done = {r[0] for r in self._conn.execute("SELECT version FROM schema_migrations")}
                applied = []
                for number, name, sql in migration_files(self.kind):
                    if number in done:
                        continue
                    for statement in _statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (number, name, int(time.time() * 1e6)),
                    )
                    applied.append(name)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return applied

    def notify_appended(self, tx: Tx, position: int, runs: Collection[str]) -> None:
        """SQLite has no cross-process notification; watchers poll."""

    def is_unique_violation(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        with self._stamp_lock:
            if self._stamp_conn is not None:
                self._stamp_conn.close()
                self._stamp_conn = None
