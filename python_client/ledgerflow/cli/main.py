"""The ``ledgerflow`` console script."""

from __future__ import annotations

import click
from ledgerflow_executor.cli import executor
from ledgerflow_service.cli import service

from ledgerflow.cli.deployments import deployments
from ledgerflow.cli.executors import executors
from ledgerflow.cli.host import host
from ledgerflow.cli.ledger import audit, cancel, events, flows, runs
from ledgerflow.cli.startup import freeze_imported_objects
from ledgerflow.cli.tables import tables
from ledgerflow.cli.ui import ui


@click.group()
@click.version_option(package_name="ledgerflow")
def main() -> None:
    """Ledgerflow: workflows whose every run is an append-only ledger of events."""


for command in (
    service,
    flows,
    runs,
    audit,
    events,
    tables,
    host,
    executor,
    executors,
    cancel,
    deployments,
    ui,
):
    main.add_command(command)


def run() -> None:
    """The console script, and ``python -m ledgerflow``: the command line as a process
    of its own (`main` itself may be called in a process that goes on, as tests do)."""
    freeze_imported_objects()
    main()
