"""The ``ledgerflow`` console script."""

from __future__ import annotations

import click
from ledgerflow_executor.cli import executor
from ledgerflow_service.cli import service

from ledgerflow._client_cli import audit, cancel, events, flows, host, runs
from ledgerflow._ui_cli import ui


@click.group()
@click.version_option(package_name="ledgerflow")
def main() -> None:
    """Ledgerflow: workflows whose every run is an append-only ledger of events."""


for command in (service, flows, runs, audit, events, host, executor, cancel, ui):
    main.add_command(command)


if __name__ == "__main__":
    main()
