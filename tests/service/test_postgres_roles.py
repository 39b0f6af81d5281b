"""Append-only by privilege: the service's database role can append and read events
but can neither rewrite history nor switch the guards off (docs/security.md)."""

from __future__ import annotations

import itertools
import uuid

import events as ev
import psycopg
import pytest
from click.testing import CliRunner
from ledgerflow.v1 import ledger_service_pb2, query_service_pb2
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.cli import service
from ledgerflow_service.errors import PermissionDenied

_numbers = itertools.count()


def _url(server_url: str, user: str, database: str) -> str:
    host = server_url.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{user}@{host}/{database}"


@pytest.fixture
def owner_and_service_urls(postgres_url: str) -> tuple[str, str]:
    """A ledger database owned by one role, migrated by it, and a second role granted
    the service's privileges with `ledgerflow service grant`."""
    suffix = f"{next(_numbers)}_{uuid.uuid4().hex[:6]}"
    owner, service_role, name = f"lf_owner_{suffix}", f"lf_service_{suffix}", f"lf_roles_{suffix}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'CREATE ROLE "{service_role}" LOGIN')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    owner_url = _url(postgres_url, owner, name)
    result = CliRunner().invoke(service, ["--database-url", owner_url, "migrate"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(service, ["--database-url", owner_url, "grant", service_role])
    assert result.exit_code == 0, result.output
    return owner_url, _url(postgres_url, service_role, name)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET actor = 'mallory'",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
        "DROP TABLE events",
        "CREATE TABLE sneaky (x int)",
    ],
)
def test_the_service_role_cannot_rewrite_or_unguard_history(
    owner_and_service_urls: tuple[str, str], statement: str
) -> None:
    _, service_url = owner_and_service_urls
    app = LedgerApplication(open_database(service_url))  # the schema is current: no DDL
    app.append(
        ledger_service_pb2.AppendRequest(events=[ev.run_started("MyFlow", "1")]),
        Principal("alice", False),
    )
    app.close()
    with psycopg.connect(service_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()  # type: ignore[misc]
        (actor,) = conn.execute("SELECT actor FROM events").fetchone()  # type: ignore[misc]
    assert (count, actor) == (1, "alice")


def test_the_service_role_runs_the_service_but_not_migrations(
    owner_and_service_urls: tuple[str, str],
) -> None:
    owner_url, service_url = owner_and_service_urls
    app = LedgerApplication(open_database(service_url))
    try:
        app.append(
            ledger_service_pb2.AppendRequest(events=ev.successful_run("MyFlow", "1")),
            Principal("alice", False),
        )
        run = app.get_run(query_service_pb2.GetRunRequest(flow_name="MyFlow", run_id="1")).run
        assert run.user == "alice"
        assert app.rebuild_projections() == len(ev.successful_run("MyFlow", "1"))
    finally:
        app.close()
    # A migration the service role would have to apply is refused with what to do.
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")
    with pytest.raises(PermissionDenied, match="as the role that owns"):
        open_database(service_url)


def test_a_service_that_could_undo_append_only_says_so_on_start(
    owner_and_service_urls: tuple[str, str], postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledgerflow_service.cli import warn_about_guards

    owner_url, service_url = owner_and_service_urls
    for url, expected in [
        (owner_url, "an owner of the events table (its role's member): it could switch off"),
        (postgres_url, "a superuser: it could switch off the triggers"),
    ]:
        database = open_database(url)
        try:
            warn_about_guards(database.guard_warning())
        finally:
            database.close()
        said = capsys.readouterr().err
        assert said.startswith("warning: the service runs as ") and expected in said
        assert "ledgerflow service grant ROLE" in said
    # A login role that is a member of the owner's role has the owner's rights.
    member = f"lf_member_{uuid.uuid4().hex[:6]}"
    owner_role = owner_url.split("//", 1)[1].split("@", 1)[0]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{member}" LOGIN IN ROLE "{owner_role}"')
    database = open_database(_url(postgres_url, member, owner_url.rsplit("/", 1)[1]))
    try:
        warn_about_guards(database.guard_warning())
    finally:
        database.close()
    assert "an owner of the events table" in capsys.readouterr().err
    database = open_database(service_url)  # the role `grant` made: nothing to say
    try:
        warn_about_guards(database.guard_warning())
    finally:
        database.close()
    assert capsys.readouterr().err == ""
