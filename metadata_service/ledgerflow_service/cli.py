"""``ledgerflow service``: run the metadata service and maintain its database."""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import click

from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.workers import Workers, reserve_port
from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.call_scope import DEFAULT_STATEMENT_TIMEOUT_SECONDS
from ledgerflow_service.errors import LedgerError
from ledgerflow_service.store import Database, open_database

# The default of --max-watchers (kept here: importing the server loads grpc).
DEFAULT_MAX_WATCHERS = 10_000


class ServerLimits(NamedTuple):
    max_watchers: int
    statement_timeout: float
    # @notify: whether commands may run here, and how long one attempt may take.
    allow_notify_commands: bool = False
    notify_timeout: float = 10.0

    def app_options(self) -> dict[str, Any]:
        return dict(
            allow_notify_commands=self.allow_notify_commands,
            notify_timeout_seconds=self.notify_timeout,
        )


DEFAULT_DATABASE_URL = f"sqlite://{Path.home() / '.ledgerflow' / 'service.db'}"


DATABASE_HELP = (
    "sqlite:///PATH (embedded file) or postgresql://USER@HOST:PORT/DB [env LEDGERFLOW_DATABASE_URL]"
)


def subcommand_database_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--database-url on a subcommand; without it the `service` group's value applies."""
    return click.option(
        "--database-url", default=None, help=DATABASE_HELP + " (default: as given to `service`)"
    )(command)


def _database_url(ctx: click.Context, own: str | None) -> str:
    return own or ctx.find_root().meta["ledgerflow.database_url"]


def open_or_fail(
    url: str, *, migrate: bool = True, statement_timeout: float | None = None
) -> Database:
    """Opens the database or stops with a one-line error instead of a traceback."""
    try:
        return open_database(url, migrate=migrate, statement_timeout_seconds=statement_timeout)
    except LedgerError as error:
        raise click.ClickException(error.message) from None
    except (OSError, sqlite3.Error) as error:
        raise click.ClickException(f"cannot open {url}: {error}".strip()) from None
    except Exception as error:
        if type(error).__module__.split(".")[0] != "psycopg":
            raise
        raise click.ClickException(f"cannot open {url}: {error}".strip()) from None


def warn_about_guards(warning: str | None) -> None:
    """Says so, on the service's start (after the line that says where it listens,
    which scripts read first), when its role could undo append-only."""
    if warning:
        click.echo(f"warning: {warning}", err=True)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LedgerError as error:
            raise click.ClickException(error.message) from None

    return wrapper


@click.group(invoke_without_command=True)
@click.option(
    "--database-url",
    envvar="LEDGERFLOW_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help=DATABASE_HELP,
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default).",
)
@click.option(
    "--port",
    default=50051,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--auth-tokens",
    type=click.Path(exists=True, dir_okay=False),
    help="File of 'TOKEN PRINCIPAL' lines: require bearer tokens and stamp the "
    "token's principal on every event.",
)
@click.option(
    "--lost-after",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds without a heartbeat after which a run or task counts as lost.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (SO_REUSEPORT, Linux): each uses a core of "
    "its own. Appends keep one global order whatever the number.",
)
@click.option(
    "--max-watchers",
    default=DEFAULT_MAX_WATCHERS,
    show_default=True,
    type=click.IntRange(1),
    help="Concurrent WatchEvents streams each server process holds; beyond it a new "
    "stream is refused with RESOURCE_EXHAUSTED.",
)
@click.option(
    "--statement-timeout",
    default=DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds any one database statement may run, whatever the caller's deadline "
    "(a shorter deadline stops it sooner).",
)
@click.option(
    "--allow-notify-commands",
    is_flag=True,
    help="Let deployments' @notify(command=...) run on this machine, as this service's "
    "user (off: only webhooks; anyone who may deploy could run commands here).",
)
@click.option(
    "--notify-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=600),
    help="Seconds one notification attempt (a webhook call, a command) may take.",
)
@click.pass_context
@friendly_errors
def service(
    ctx: click.Context,
    database_url: str,
    host: str,
    port: int,
    auth_tokens: str | None,
    lost_after: float,
    workers: int,
    max_watchers: int,
    statement_timeout: float,
    allow_notify_commands: bool,
    notify_timeout: float,
) -> None:
    """Run the gRPC metadata service (or one of the maintenance commands below).

    With no command it serves until SIGTERM/SIGINT, then drains in-flight calls.
    Migrations are applied on start. Health checking and server reflection are on,
    so `grpcurl -plaintext 127.0.0.1:50051 list` works.
    """
    ctx.find_root().meta["ledgerflow.database_url"] = database_url
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tokens = TokenTable.from_file(auth_tokens) if auth_tokens else None
    limits = ServerLimits(max_watchers, statement_timeout, allow_notify_commands, notify_timeout)
    if workers > 1:
        sys.exit(_serve_with_workers(database_url, host, port, tokens, lost_after, workers, limits))
    from ledgerflow_service.api.server import build_server, serve_until_signalled

    database = open_or_fail(database_url, statement_timeout=statement_timeout)
    guard_warning = database.guard_warning()
    app = LedgerApplication(database, lost_after_seconds=lost_after, **limits.app_options())
    try:
        server, bound = build_server(
            app, host=host, port=port, tokens=tokens, max_watchers=max_watchers,
            statement_timeout=statement_timeout,
        )  # fmt: skip
    except OSError as error:
        app.close()
        raise click.ClickException(str(error)) from None
    click.echo(
        f"ledgerflow metadata service listening on {host}:{bound} "
        f"({app.database.kind}{', bearer tokens required' if tokens else ''})",
        err=True,
    )
    warn_about_guards(guard_warning)
    serve_until_signalled(app, server)


def _serve_with_workers(
    database_url: str,
    host: str,
    port: int,
    tokens: TokenTable | None,
    lost_after: float,
    count: int,
    limits: ServerLimits,
) -> int:
    """Migrates once, then forks `count` servers on one port (see api/workers.py)."""
    database = open_or_fail(database_url)
    kind = database.kind
    guard_warning = database.guard_warning()
    database.close()  # no connection may cross the fork
    try:
        reservation, bound = reserve_port(host, port)
    except OSError as error:
        raise click.ClickException(str(error)) from None

    def serve(ready: Callable[[], None]) -> None:
        from ledgerflow_service.api.server import build_server, serve_until_signalled

        database = open_database(database_url, statement_timeout_seconds=limits.statement_timeout)
        app = LedgerApplication(database, lost_after_seconds=lost_after, **limits.app_options())
        server, _ = build_server(
            app, host=host, port=bound, tokens=tokens, reuse_port=True,
            max_watchers=limits.max_watchers, statement_timeout=limits.statement_timeout,
        )  # fmt: skip
        ready()
        serve_until_signalled(app, server)

    pool = Workers(count)
    try:
        pool.start(serve)
    except OSError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"ledgerflow metadata service listening on {host}:{bound} "
        f"({kind}, {count} workers{', bearer tokens required' if tokens else ''})",
        err=True,
    )
    warn_about_guards(guard_warning)
    try:
        return pool.supervise()
    finally:
        reservation.close()


@service.command()
@subcommand_database_option
@click.pass_context
def migrate(ctx: click.Context, database_url: str | None) -> None:
    """Apply pending schema migrations."""
    database = open_or_fail(_database_url(ctx, database_url), migrate=False)
    try:
        applied = database.migrate()
    finally:
        database.close()
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@service.command("grant")
@click.argument("role")
@subcommand_database_option
@click.pass_context
@friendly_errors
def grant(ctx: click.Context, role: str, database_url: str | None) -> None:
    """Give a Postgres ROLE exactly what the service needs (run as the tables' owner).

    ROLE may then read and append events but never update, delete or truncate them,
    nor disable the append-only triggers (only the owner could); it reads and writes
    the read models. Run the service as ROLE and migrations as the owner, and run
    this again after each migration. See docs/security.md.
    """
    from ledgerflow_service.store.postgres import PostgresDatabase

    database = open_or_fail(_database_url(ctx, database_url))
    try:
        if not isinstance(database, PostgresDatabase):
            raise click.ClickException("roles exist only on Postgres; SQLite has no roles")
        try:
            database.grant_service_role(role)
        except Exception as error:
            if type(error).__module__.split(".")[0] != "psycopg":
                raise
            raise click.ClickException(f"could not grant to {role!r}: {error}") from None
    finally:
        database.close()
    click.echo(f"granted {role} the service's privileges (events: SELECT, INSERT only)")


@service.command("rebuild-projections")
@subcommand_database_option
@click.pass_context
@friendly_errors
def rebuild_projections(ctx: click.Context, database_url: str | None) -> None:
    """Empty the read models and refold them from the events alone."""
    from rich.progress import Progress

    app = LedgerApplication(open_or_fail(_database_url(ctx, database_url)))
    try:
        with Progress(transient=True) as progress:
            bar = progress.add_task("replaying events", total=None)
            count = app.rebuild_projections(
                on_progress=lambda done, total: progress.update(bar, completed=done, total=total)
            )
    finally:
        app.close()
    click.echo(f"rebuilt projections from {count} events")
