"""The tables pages: every table steps wrote (ledgerflow.Table), and one table's
versions with their lineage (the task that wrote each, the tasks that read it), read
with the same QueryService calls as `ledgerflow tables list/show`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import records_pb2

# The most tables the list shows (newest names first would need a sort the service
# lacks; past this, the page says to filter by namespace).
MAX_TABLES = 5000


@dataclass
class TablesPage:
    tables: list[records_pb2.TableSummary]
    # More tables than MAX_TABLES matched.
    cut: bool


def list_tables(metadata: MetadataClient, namespace: str) -> TablesPage:
    """The tables of `namespace` ("" for every namespace) by name, with their newest
    version."""
    found = list(itertools.islice(metadata.tables(namespace), MAX_TABLES + 1))
    return TablesPage(found[:MAX_TABLES], len(found) > MAX_TABLES)


def table_versions(
    metadata: MetadataClient, namespace: str, table: str
) -> list[records_pb2.TableVersion]:
    """The table's versions, newest first, each with its writer and readers (raises
    LedgerflowNotFound for a table that has none)."""
    return metadata.table_versions(namespace, table)[::-1]
