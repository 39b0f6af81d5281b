"""A throwaway Postgres server for tests and benchmarks, from the machine's own binaries.

`initdb` and `postgres` refuse to run as root, so as root the server runs as the
`postgres` user (``runuser``). Set LEDGERFLOW_TEST_POSTGRES_URL to use an existing
server instead."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("Postgres server binaries not found: apt-get install -y postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    """A server of the tests' own in a temporary folder, which a test may stop and start
    again (a database outage) on the same port and data."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ledgerflow-pg-"))
        self.data = self.root / "data"
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
        self.port = _free_port()
        subprocess.run(
            _as_server_user(
                [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                 "postgres", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        if not durable:
            self.options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._pg_ctl("-o", self.options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (`fast`: its clients are disconnected)."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            _as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]),
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=None if check else subprocess.DEVNULL,
        )


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Yields the URL of a fresh server's `postgres` database; stops it afterwards.

    By default the server trades durability for speed (fsync, synchronous_commit and
    full_page_writes off: tests need no crash safety). `durable` keeps Postgres's
    production defaults, for benchmarks that should say what a real database costs."""
    existing = os.environ.get("LEDGERFLOW_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return
    server = PostgresServer(durable=durable)
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


def create_database(server_url: str, name: str) -> str:
    """Creates an empty database on the server and returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
