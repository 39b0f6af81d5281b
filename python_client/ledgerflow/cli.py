"""The ``ledgerflow`` console script."""

from __future__ import annotations

import click
from ledgerflow_service.cli import service


@click.group()
@click.version_option(package_name="ledgerflow")
def main() -> None:
    """Ledgerflow: workflows whose every run is an append-only ledger of events."""


main.add_command(service)
