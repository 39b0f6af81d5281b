"""The production backend: Postgres through psycopg 3 and a connection pool.

Besides the :class:`Tx` interface it owns what only Postgres has: key lists and row
columns passed as delimited texts (planned once, split in C), pipelined writes, the
LISTEN/NOTIFY wake-up of other processes' watchers, a background ANALYZE of young
tables, and the grant of a least-privilege service role.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import PermissionDenied
from ledgerflow_service.store.backend import (
    HEAD_SQL,
    Database,
    Dialect,
    Query,
    Row,
    RowInsert,
    Tx,
    stopped,
)
from ledgerflow_service.store.schema import migration_files

if TYPE_CHECKING:  # psycopg is imported only when a Postgres ledger is opened
    import psycopg

# Any constant works; it names the one lock all appenders share.
_APPEND_LOCK_KEY = 0x1ED6E7F10
NOTIFY_CHANNEL = "ledgerflow_events"
# A notification names the runs of its append in at most this many characters (NOTIFY
# takes 8,000 bytes); past that it says "any run".
_NOTIFY_RUNS_CHARACTERS = 7000
_ANY_RUN = "*"
# Tables the store keeps for itself; every other table of the schema is a read model.
_STORE_TABLES = ("events", "schema_migrations")
# Planner statistics (see PostgresDatabase.after_commit): how many appended events
# between two looks at the read models' freshness, and how many rows a table must
# have gained before it is worth analyzing.
_STATS_CHECK_EVERY = 1000
_STATS_MIN_CHANGES = 1000


_TEXT_SEPARATOR = "\x1e"  # ASCII record separator: absent from names, ids and keys
_SPLIT_TEXTS = "string_to_array(?::text, E'\\x1e')"
_NUMBER_TYPES = ("bigint", "integer")


def _joined_texts(values: Sequence[Any]) -> str | None:
    """`values` joined by the separator, when ``string_to_array`` will split them back
    into the same texts: not for a text holding the separator, nor for a lone empty
    text (it would split into no text at all), nor for values that are not texts."""
    try:
        joined = _TEXT_SEPARATOR.join(values)
    except TypeError:  # a None or a non-text value
        return None
    if joined.count(_TEXT_SEPARATOR) != len(values) - 1 or (not joined and len(values) == 1):
        return None
    return joined


class PostgresDialect(Dialect):
    """Lists of keys travel as one delimited text parameter, so that a query's text
    does not depend on how many keys it looks up: it is planned once, and a long list
    costs no planning time."""

    def one_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        joined = _joined_texts(values)
        if joined is None:
            return super().one_of(column, values)
        return f"{column} = ANY({_SPLIT_TEXTS})", [joined]

    def stream_versions(self, streams: Sequence[str]) -> Query | None:
        joined = _joined_texts(streams)
        if joined is None:
            return super().stream_versions(streams)
        probe = "(SELECT MAX(stream_version) FROM events WHERE events.stream = s.stream)"
        return (
            f"SELECT s.stream, {probe}, {HEAD_SQL} FROM unnest({_SPLIT_TEXTS}) AS s (stream)",
            [joined],
        )


def _notified_runs(after_tag: str) -> frozenset[str] | None:
    """The runs a notification's payload (past its tag: "position:run,run") names;
    None for any run (too many to name, or a notice of an older service)."""
    _, _, named = after_tag.partition(":")
    return None if named in ("", _ANY_RUN) else frozenset(named.split(","))


@functools.lru_cache(maxsize=512)
def _to_psycopg(sql: str) -> str:
    return sql.replace("?", "%s")


def _array_parameter(pg_type: str, values: Sequence[Any], number: int) -> tuple[str, Any]:
    """The SQL (using placeholder ``$number``) and parameter that pass one column of
    rows as an array.

    Texts, numbers and bytes travel as one delimited string that Postgres splits with
    ``string_to_array``: joining happens in C on both sides, where psycopg's array
    dumper loops over every element in Python (the largest cost of an append). Texts
    that would not survive the round trip (see _joined_texts) and other types use the
    dumper."""
    if pg_type == "text":
        joined = _joined_texts(values)
        if joined is not None:
            return _SPLIT_TEXTS.replace("?", f"${number}"), joined
    elif pg_type in _NUMBER_TYPES:  # ints or None (a value of another type fails loudly)
        return (
            f"string_to_array(${number}::text, ',', 'None')::{pg_type}[]",
            ",".join(map(str, values)),
        )
    elif pg_type == "bytea" and all(isinstance(value, bytes) for value in values):
        # As texts in bytea's hex input format ("\x0a1b..."), which hold no separator.
        return (
            f"{_SPLIT_TEXTS.replace('?', f'${number}')}::bytea[]",
            _TEXT_SEPARATOR.join(["\\x" + value.hex() for value in values]),
        )
    return f"${number}::{pg_type}[]", list(values)


class _PostgresTx(Tx):
    dialect = PostgresDialect()

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        column_types: dict[str, str],
        scope: CallScope | None = None,
        *,
        pipelined: bool = False,
    ) -> None:
        """`pipelined`: the connection is in pipeline mode for the whole transaction
        (an append, see PostgresDatabase.write)."""
        self._conn = conn
        self._column_types = column_types
        self._scope = scope
        self._pipelined = pipelined
        # A NOTIFY payload that travels with the next multi-row insert (see notify):
        # one statement fewer per append.
        self._notice: str | None = None

    def notify(self, payload: str) -> None:
        """Queues a notification on the ledger's channel, delivered at commit. It
        rides with the next insert_all (its final SELECT), or is sent alone by
        flush_notice."""
        self._notice = payload

    def flush_notice(self) -> None:
        """Sends a queued notification that no insert carried."""
        if self._notice is not None:
            self._conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, self._notice))
            self._notice = None

    def _check_scope(self) -> None:
        """A cancel request reaches only a statement already running: one that was
        cancelled before it started is refused here instead."""
        if self._scope is not None and self._scope.cancelled:
            raise stopped(self._scope)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], suffix: str = ""
    ) -> None:
        self.insert_all([RowInsert(table, columns, rows, suffix)])

    def insert_all(self, inserts: Sequence[RowInsert]) -> None:
        """One statement for every table: ``INSERT ... SELECT FROM unnest(arrays)`` per
        table, each in a data-modifying WITH clause (all run, in order of writing).
        A statement's shape depends only on which tables get rows, so it is prepared
        once and reused. Its placeholders are Postgres's own (``$1``), sent through a
        raw cursor: psycopg would otherwise parse the long statement on every append
        (it caches the parsing of short statements only)."""
        import psycopg

        clauses: list[str] = []
        params: list[Any] = []
        for insert in inserts:
            if not insert.rows:
                continue
            arrays = []
            for column, values in zip(insert.columns, zip(*insert.rows, strict=True), strict=True):
                column_type = self._column_type(insert.table, column)
                sql, param = _array_parameter(column_type, values, len(params) + 1)
                arrays.append(sql)
                params.append(param)
            clauses.append(
                f"INSERT INTO {insert.table} ({', '.join(insert.columns)}) "
                f"SELECT * FROM unnest({', '.join(arrays)}) {insert.suffix}"
            )
        if not clauses:
            return
        final = "SELECT 1"
        if self._notice is not None:
            final = f"SELECT pg_notify(${len(params) + 1}, ${len(params) + 2})"
            params.extend([NOTIFY_CHANNEL, self._notice])
            self._notice = None
        if len(clauses) == 1 and final == "SELECT 1":
            statement = clauses[0]
        else:
            with_clauses = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(clauses))
            statement = f"WITH {with_clauses} {final}"
        psycopg.RawCursor(self._conn).execute(statement, params)

    def query_all(self, queries: Sequence[Query | None]) -> list[list[Row]]:
        self._check_scope()
        if self._pipelined:
            # Fetching asks the server to flush what it has: the statements sent
            # before (BEGIN, the lock) and these come back in one round trip. A
            # nested pipeline would first wait for those alone (a Sync), then for
            # these (another).
            return self._send_and_fetch(queries)
        with self._conn.pipeline():
            return self._send_and_fetch(queries)

    def _send_and_fetch(self, queries: Sequence[Query | None]) -> list[list[Row]]:
        cursors = [
            self._conn.execute(_to_psycopg(query[0]), query[1]) if query else None
            for query in queries
        ]
        return [cursor.fetchall() if cursor else [] for cursor in cursors]

    def _column_type(self, table: str, column: str) -> str:
        key = f"{table}.{column}"
        if key not in self._column_types:
            for name, data_type in self._conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema()",
                (table,),
            ):
                self._column_types[f"{table}.{name}"] = data_type
        return self._column_types[key]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(_to_psycopg(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_to_psycopg(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._check_scope()
        return self._conn.execute(_to_psycopg(sql), params).fetchall()

    def query_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[Row]]:
        if not self._pipelined:
            return super().query_later(sql, params)
        self._check_scope()
        # Sent, not waited for: the pipeline's next sync (at the latest, the COMMIT's)
        # brings its rows back into the cursor.
        return self._conn.execute(_to_psycopg(sql), params).fetchall


# admin_shutdown, crash_shutdown, cannot_connect_now: the server stops or starts.
_SERVER_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})


class PostgresDatabase(Database):
    """The production ledger: psycopg 3 with a connection pool."""

    kind = "postgres"
    dialect = PostgresDialect()
    notifies_other_processes = True

    def guard_warning(self) -> str | None:
        with self.read() as tx:
            # A member of the owning role has the owner's rights too.
            row = tx.query_one(
                "SELECT current_user, EXISTS (SELECT 1 FROM pg_tables t WHERE "
                "t.tablename = 'events' AND pg_has_role(current_user, t.tableowner, "
                "'MEMBER')), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                (),
            )
        if row is None:
            return None
        user, owns, superuser = row
        if not (owns or superuser):
            return None
        what = "a superuser" if superuser else "an owner of the events table (its role's member)"
        return (
            f"the service runs as {user}, {what}: it could switch off the triggers that "
            "keep the ledger append-only. In production run it as a role granted with "
            "`ledgerflow service grant ROLE` (docs/security.md)"
        )

    def __init__(
        self,
        conninfo: str,
        *,
        max_connections: int = 10,
        statement_timeout_seconds: float | None = None,
    ) -> None:
        """`statement_timeout_seconds` caps every statement of this process (the
        service's --statement-timeout); reads with a shorter deadline get less."""
        import psycopg
        import psycopg_pool

        self.conninfo = conninfo
        self.statement_timeout_seconds = statement_timeout_seconds
        session: dict[str, Any] = {"autocommit": True}
        if statement_timeout_seconds:
            session["options"] = f"-c statement_timeout={int(statement_timeout_seconds * 1000)}"
        # Fail at once, with the server's own message, when it cannot be reached: the
        # pool alone would retry silently until its timeout.
        psycopg.connect(conninfo, connect_timeout=10).close()
        # Autocommit: transactions are begun explicitly (see write() and read()).
        self._pool = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            open=True,
            timeout=30.0,
            kwargs=session,
        )
        self._pool.wait(timeout=30.0)
        self._column_types: dict[str, str] = {}
        self._stats_lock = threading.Lock()
        self._appended_since_check = 0
        self.stats_check_every = _STATS_CHECK_EVERY
        self.stats_min_changes = _STATS_MIN_CHANGES
        self._analyzing = False
        self._notify_tag = uuid.uuid4().hex[:16]

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """The whole transaction runs in pipeline mode: BEGIN and the lock travel with
        the first query, and every write travels with COMMIT, so an append costs two
        round trips. Errors of the writes therefore raise when the block ends.

        Its statements are planned generically: a prepared statement whose key list
        is a parameter would otherwise be planned anew on every execution (Postgres
        judges the plan for each concrete list cheaper than the generic one), which
        cost more than running it."""
        with self._pool.connection() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s), "
                        "set_config('plan_cache_mode', 'force_generic_plan', true)",
                        (_APPEND_LOCK_KEY,),
                    )
                    tx = _PostgresTx(conn, self._column_types, pipelined=True)
                    yield tx
                    tx.flush_notice()
                    conn.execute("COMMIT")
            except BaseException:
                with suppress(Exception):  # a broken connection is discarded by the pool
                    conn.rollback()
                raise

    @contextmanager
    def read(self, scope: CallScope | None = None) -> Iterator[Tx]:
        if scope is None:
            with self._pool.connection() as conn, conn.transaction():
                yield _PostgresTx(conn, self._column_types)
            return
        import psycopg
        import psycopg_pool

        if scope.expired():
            raise stopped(scope)
        try:
            with (
                self._pool.connection(timeout=max(0.001, scope.remaining())) as conn,
                scope.interruptible(conn.cancel_safe),
                conn.transaction(),
            ):
                # The session's statement_timeout is already the cap: a read sets a
                # shorter one only when its caller's deadline comes first (one more
                # statement, which most calls, with deadlines past the cap, skip).
                timeout_ms = max(1, int(scope.remaining() * 1000))
                cap = self.statement_timeout_seconds
                by_caller = scope.caller_deadline is not None and (
                    scope.caller_deadline <= scope.deadline
                )
                if cap is None or (by_caller and timeout_ms < cap * 1000):
                    conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                 (f"{timeout_ms}ms",))  # fmt: skip
                yield _PostgresTx(conn, self._column_types, scope)
        except (psycopg.errors.QueryCanceled, psycopg_pool.PoolTimeout):
            raise stopped(scope) from None

    def is_unreachable(self, error: Exception) -> bool:
        """A lost or refused connection (the client's own error, with no SQLSTATE; class
        08; a server shutting down or starting), or none to be had from the pool. Not
        the other OperationalErrors: a cancelled statement, a deadlock, a full disk."""
        import psycopg
        import psycopg_pool

        if isinstance(error, psycopg_pool.PoolTimeout):
            return True
        if not isinstance(error, psycopg.OperationalError):
            return False
        state = error.sqlstate
        return state is None or state.startswith("08") or state in _SERVER_GOING_AWAY

    def pending_migrations(self) -> list[str]:
        """The migrations not yet applied, found with reads alone (a service role that
        may not create tables can still check that the schema is current)."""
        with self._pool.connection() as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
            done: set[int] = set()
            if exists and exists[0] is not None:
                done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        return [name for number, name, _ in migration_files(self.kind) if number not in done]

    def migrate(self) -> list[str]:
        if not self.pending_migrations():
            return []
        import psycopg

        applied: list[str] = []
        try:
            self._apply_migrations(applied)
        except psycopg.errors.InsufficientPrivilege as error:
            raise PermissionDenied(
                f"this database role may not migrate the schema ({error}): run "
                "`ledgerflow service migrate` as the role that owns the ledger's tables"
            ) from None
        return applied

    def grant_service_role(self, role: str) -> None:
        """Grants `role` what the service needs and nothing more: to read and append
        events (never UPDATE, DELETE or TRUNCATE them; and not being their owner, it
        can neither disable the append-only triggers nor alter the table) and to
        read and write the read models. Run it as the owner after each migration."""
        from psycopg import sql

        who = sql.Identifier(role)
        with self._pool.connection() as conn, conn.transaction():
            schema = conn.execute("SELECT current_schema()").fetchone()
            assert schema is not None
            read_models = [
                name
                for (name,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                    "AND table_name <> ALL(%s) ORDER BY table_name",
                    (list(_STORE_TABLES),),
                )
            ]
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema[0]), who)
            )
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON events TO {}").format(who))
            conn.execute(sql.SQL("GRANT SELECT ON schema_migrations TO {}").format(who))
            if read_models:
                tables = sql.SQL(", ").join(sql.Identifier(t) for t in read_models)
                conn.execute(
                    sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(tables, who)
                )

    def _apply_migrations(self, applied: list[str]) -> None:
        with self._pool.connection() as conn, conn.transaction():
            # One migrator at a time, even when several servers start together.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK_KEY + 1,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for number, name, sql in migration_files(self.kind):
                if number in done:
                    continue
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (number, name, int(time.time() * 1e6)),
                )
                applied.append(name)

    def notify_appended(self, tx: Tx, position: int, runs: Collection[str]) -> None:
        # Delivered at commit, so a listener never hears of an uncommitted event.
        # The payload names this database object, whose own watchers heard of the
        # append already (see listen), and the runs the append touched: a process
        # none of whose watchers waits for them need not read the events at once.
        named = ",".join(sorted(runs))
        if len(named) > _NOTIFY_RUNS_CHARACTERS:
            named = _ANY_RUN
        assert isinstance(tx, _PostgresTx)
        tx.notify(f"{self._notify_tag}:{position}:{named}")

    def after_commit(self, appended: int) -> None:
        """Every `stats_check_every` events appended by this process, asks (in the background)
        whether the read models an append looks up by key need fresh planner
        statistics. Autovacuum refreshes them too, but only every minute or so: a young
        ledger ingesting thousands of events a second would meanwhile be planned as if
        it were tiny (sequential scans where the primary key serves)."""
        with self._stats_lock:
            self._appended_since_check += appended
            if self._analyzing or self._appended_since_check < self.stats_check_every:
                return
            self._analyzing = True
            self._appended_since_check = 0
        threading.Thread(target=self._analyze, name="ledgerflow-analyze", daemon=True).start()

    def _analyze(self) -> None:
        """ANALYZEs the tables that doubled in size since their last ANALYZE (by any
        server or by autovacuum: the server's own statistics say so), one server at a
        time. Doubling keeps the estimates within a factor of two, which is all the
        choice between an index and a scan needs, and ANALYZE costs CPU the appends
        want: a ledger of a million tasks is analyzed about ten times in its life."""
        import psycopg

        try:
            with self._pool.connection() as conn, conn.transaction():
                locked = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (_APPEND_LOCK_KEY + 2,)
                ).fetchone()
                if not locked or not locked[0]:
                    return  # another server is analyzing
                stale = conn.execute(
                    "SELECT relname FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname <> ALL(%s) "
                    "AND n_mod_since_analyze >= GREATEST(%s, (n_live_tup + 1) / 2)",
                    (list(_STORE_TABLES), self.stats_min_changes),
                ).fetchall()
                if stale:
                    conn.execute("ANALYZE " + ", ".join(name for (name,) in stale))
        except psycopg.Error:
            pass  # statistics are an optimisation; autovacuum will catch up
        finally:
            with self._stats_lock:
                self._analyzing = False

    def is_unique_violation(self, error: Exception) -> bool:
        import psycopg.errors

        return isinstance(error, psycopg.errors.UniqueViolation)

    def listen(
        self, on_append: Callable[[frozenset[str] | None], None], stop: threading.Event
    ) -> None:
        import psycopg

        while not stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # What was appended while nobody listened here (before the first
                    # connection, or while reconnecting) was told to no one: any run
                    # may have changed.
                    on_append(None)
                    while not stop.is_set():
                        # Every append of this process notifies it too: each such
                        # notice must cost little (one generator serves them all).
                        for notice in conn.notifies(timeout=0.5):
                            tag, _, rest = notice.payload.partition(":")
                            if tag != self._notify_tag:
                                on_append(_notified_runs(rest))
            except psycopg.OperationalError:
                if stop.wait(1.0):
                    return

    def close(self) -> None:
        self._pool.close()
