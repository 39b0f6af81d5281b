"""Postgres only: the service refreshes the planner's statistics of the read models it
looks up by key when they have doubled, and leaves the others alone."""

from __future__ import annotations

import time

import events as ev
import psycopg
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.store.postgres import PostgresDatabase

ALICE = Principal("alice", authenticated=False)


def analyze_counts(url: str) -> dict[str, int]:
    """How many times each read model was ANALYZEd (by hand, not by autovacuum)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, analyze_count FROM pg_stat_user_tables "
            "WHERE relname IN ('runs', 'tasks')"
        ).fetchall()
    return {name: int(count) for name, count in rows}


def test_grown_read_models_are_analyzed_once(
    postgres_app: LedgerApplication, fresh_postgres_url: str
) -> None:
    database = postgres_app.database
    assert isinstance(database, PostgresDatabase)
    database.stats_check_every = 1  # look after every append
    database.stats_min_changes = 10  # and analyze from 10 changed rows on
    append = postgres_app.append
    append(ledger_api.AppendRequest(events=[ev.run_started("F", "1")]), ALICE)
    append(
        ledger_api.AppendRequest(
            events=[ev.task_started("F", "1", "a", str(task)) for task in range(20)]
        ),
        ALICE,
    )
    # Heartbeats keep the checks coming (and touch runs, never tasks) until the
    # server's statistics, flushed about once a second, show tasks as grown.
    deadline = time.monotonic() + 30
    while analyze_counts(fresh_postgres_url).get("tasks", 0) == 0:
        assert time.monotonic() < deadline, "tasks was never analyzed"
        append(ledger_api.AppendRequest(events=[ev.run_heartbeat("F", "1")]), ALICE)
        time.sleep(0.2)
    # Tasks has not grown since: later checks leave it alone.
    for _ in range(8):  # over a second: past the next flush of the statistics
        append(ledger_api.AppendRequest(events=[ev.run_heartbeat("F", "1")]), ALICE)
        time.sleep(0.2)
    assert analyze_counts(fresh_postgres_url)["tasks"] == 1
