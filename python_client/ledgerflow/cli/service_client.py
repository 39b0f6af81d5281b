"""The metadata service's client, for the commands that need the service itself."""

from __future__ import annotations

import click

from ledgerflow import client
from ledgerflow.metadata_client import MetadataClient


def service_metadata() -> MetadataClient:
    """The service's client: deployments and the events that start them live only
    there (nothing fires them in the embedded ledger)."""
    if client._config().metadata != "service":
        raise click.UsageError(
            "deployments and the events that start them live in the metadata service: set "
            "LEDGERFLOW_SERVICE=HOST:PORT (see `ledgerflow service --help`)"
        )
    return client._clients()[0]
