"""Shared fixtures: a real Postgres server per test session, a fresh database per test,
the same tests run against SQLite and Postgres, and a real gRPC server on loopback."""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ledgerflow_service import LedgerApplication, open_database
from ledgerflow_service.api.server import build_server
from postgres_server import create_database, postgres_server

_database_numbers = itertools.count()
# Caches of the tools the flows run (pylint's clean reports) live in this session's own
# folder, not the user's: a test of the check never meets a report of an earlier run.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ledgerflow-test-cache-")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    return create_database(postgres_url, f"ledgerflow_test_{next(_database_numbers)}")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty ledger, once per backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@contextmanager
def _application(url: str) -> Iterator[LedgerApplication]:
    application = LedgerApplication(open_database(url))
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def app(database_url: str) -> Iterator[LedgerApplication]:
    with _application(database_url) as application:
        yield application


@pytest.fixture
def postgres_app(fresh_postgres_url: str) -> Iterator[LedgerApplication]:
    """The application on an empty Postgres ledger, for what only Postgres does."""
    with _application(fresh_postgres_url) as application:
        yield application


@pytest.fixture
def grpc_channel(app: LedgerApplication) -> Iterator[grpc.Channel]:
    """A channel to a real gRPC server (on loopback) serving `app`."""
    server, port = build_server(app, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(grace=1).wait()
