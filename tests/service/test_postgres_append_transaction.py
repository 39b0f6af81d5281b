"""Postgres only: what an append's transaction promises beyond its rows. Its notification
to other processes is sent with its writes and delivered only if it commits, and its
planner setting (generic plans, planned once per connection) ends with it."""

from __future__ import annotations

from collections.abc import Iterator

import events as ev
import psycopg
import pytest
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.errors import LedgerError
from ledgerflow_service.store.postgres import NOTIFY_CHANNEL, PostgresDatabase

ALICE = Principal("alice", authenticated=False)


@pytest.fixture
def listener(fresh_postgres_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection listening on the ledger's channel, as another service process does."""
    with psycopg.connect(fresh_postgres_url, autocommit=True) as connection:
        connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        yield connection


def notices(connection: psycopg.Connection[tuple[object, ...]], wait: float) -> list[str]:
    return [notice.payload for notice in connection.notifies(timeout=wait)]


def append(app: LedgerApplication, *events: object) -> None:
    app.append(ledger_api.AppendRequest(events=events), ALICE)  # type: ignore[arg-type]


def test_a_committed_append_notifies_its_position_and_runs(
    postgres_app: LedgerApplication, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    append(postgres_app, ev.run_started("F", "1"), ev.run_started("G", "2"))
    (payload,) = notices(listener, 2.0)
    _tag, position, runs = payload.split(":")
    assert (position, runs) == ("2", "F/1,G/2")


def test_an_append_refused_by_the_database_notifies_nobody(
    postgres_app: LedgerApplication, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    append(postgres_app, ev.run_started("F", "1"), ev.task_started("F", "1", "a", "1"))
    append(postgres_app, ev.artifacts("F", "1", "a", "1", x="key-1"))
    assert len(notices(listener, 2.0)) == 2
    # The artifacts table's key refuses the second x, after the notification was queued.
    with pytest.raises(LedgerError):
        append(postgres_app, ev.artifacts("F", "1", "a", "1", x="key-2"))
    assert notices(listener, 0.5) == []
    append(postgres_app, ev.run_heartbeat("F", "1"))
    (payload,) = notices(listener, 2.0)
    assert payload.split(":")[1:] == ["4", "F/1"]


def test_a_notification_no_insert_carried_is_sent_at_commit(
    postgres_app: LedgerApplication, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    database = postgres_app.database
    assert isinstance(database, PostgresDatabase)
    with database.write() as tx:
        database.notify_appended(tx, 7, {"F/1"})
    (payload,) = notices(listener, 2.0)
    assert payload.split(":")[1:] == ["7", "F/1"]


def test_generic_plans_are_used_in_appends_only(postgres_app: LedgerApplication) -> None:
    database = postgres_app.database
    setting = "SELECT current_setting('plan_cache_mode')"
    with database.write() as tx:
        assert tx.query(setting) == [("force_generic_plan",)]
    # The pool hands the same connection out again: the setting ended with the append.
    for _ in range(3):
        with database.read() as tx:
            assert tx.query(setting) == [("auto",)]


def test_only_a_database_out_of_reach_is_unreachable(fresh_postgres_url: str) -> None:
    """What the service answers UNAVAILABLE, and what keeps leases from expiring: a
    connection refused or lost, not a statement the server stopped or refused."""
    database = PostgresDatabase(fresh_postgres_url)
    try:
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=2)
        assert database.is_unreachable(refused.value)
        with psycopg.connect(fresh_postgres_url, autocommit=True) as connection:
            connection.execute("SET statement_timeout = '10ms'")
            with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
                connection.execute("SELECT pg_sleep(1)")
            with pytest.raises(psycopg.errors.UndefinedTable) as bad:
                connection.execute("SELECT * FROM no_such_table")
        assert not database.is_unreachable(cancelled.value)
        assert not database.is_unreachable(bad.value)
    finally:
        database.close()


def test_a_query_later_answers_as_the_transaction_stood_when_it_was_asked(
    postgres_app: LedgerApplication,
) -> None:
    """A query asked for later (Tx.query_later: sent in the append's pipeline, its rows
    come back with the COMMIT's) sees the writes made before it, not those after."""
    insert = "INSERT INTO run_tags (run_pathspec, tag, is_system) VALUES (?, ?, 0)"
    tags = "SELECT tag FROM run_tags WHERE run_pathspec = ? ORDER BY tag"
    with postgres_app.database.write() as tx:
        tx.execute(insert, ["F/1", "a"])
        tags_then = tx.query_later(tags, ["F/1"])
        tx.execute(insert, ["F/1", "b"])
    assert [str(row[0]) for row in tags_then()] == ["a"]
    with postgres_app.database.read() as tx:
        assert [str(row[0]) for row in tx.query(tags, ["F/1"])] == ["a", "b"]
