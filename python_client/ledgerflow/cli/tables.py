"""``ledgerflow tables``: the tables steps wrote with ``ledgerflow.Table``, and each
version's lineage (the task that wrote it, the tasks that read it), read from the
ledger, embedded or a service alike."""

from __future__ import annotations

import json

import click

from ledgerflow._table import Table, TableVersion
from ledgerflow.cli.errors import friendly_errors
from ledgerflow.cli.ledger import print_table, stamp
from ledgerflow.client import _clients
from ledgerflow.v1 import records_pb2


@click.group("tables")
def tables() -> None:
    """Tables written by steps (ledgerflow.Table) and their lineage."""


@tables.command("list")
@click.option("--namespace", default="", help="Only this namespace's tables.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table.")
@friendly_errors
def list_tables(namespace: str, as_json: bool) -> None:
    """Every table with its newest version."""
    found = _summaries(namespace)
    if as_json:
        for table in found:
            click.echo(json.dumps({"namespace": table.namespace, "table": table.table,
                                   "latest_version": table.latest_version,
                                   "written_at": stamp(table.written_at)}))  # fmt: skip
        return
    if not found:
        click.echo("no tables" + (f" in namespace {namespace!r}" if namespace else ""))
        return
    print_table(
        ([t.namespace, t.table, str(t.latest_version), stamp(t.written_at)] for t in found),
        ["NAMESPACE", "TABLE", "LATEST", "WRITTEN (UTC)"],
    )


@tables.command("show")
@click.argument("name", metavar="NAMESPACE/TABLE")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
@friendly_errors
def show(name: str, as_json: bool) -> None:
    """Each version of a table: its rows and bytes, the task that wrote it and the
    tasks that read it."""
    namespace, slash, table = name.partition("/")
    if not slash or not table:
        raise click.BadParameter(f"{name!r}: name a table as NAMESPACE/TABLE", param_hint="NAME")
    for version in Table(namespace, table).history():
        if as_json:
            click.echo(json.dumps(_version_json(version)))
            continue
        click.echo(
            f"version {version.version}: {version.num_rows:,} rows, {version.num_bytes:,} bytes, "
            f"written by {version.written_by} at {version.written_at.isoformat()}Z"
        )
        for read in version.reads:
            click.echo(f"  read by {read.read_by} at {read.read_at.isoformat()}Z")


def _summaries(namespace: str) -> list[records_pb2.TableSummary]:
    metadata, _ = _clients()
    return list(metadata.tables(namespace))


def _version_json(version: TableVersion) -> dict[str, object]:
    return {
        "namespace": version.namespace, "table": version.table, "version": version.version,
        "num_rows": version.num_rows, "num_bytes": version.num_bytes,
        "written_by": version.written_by, "written_at": version.written_at.isoformat() + "Z",
        "read_by": [read.read_by for read in version.reads],
    }  # fmt: skip
