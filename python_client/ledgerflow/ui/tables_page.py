"""The tables pages: every table steps wrote (ledgerflow.Table), and one table's
versions with their lineage (the task that wrote each, the tasks that read it), read
with the same QueryService calls as `ledgerflow tables list/show`."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui.model import read_pages
from ledgerflow.v1 import query_service_pb2, records_pb2

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
    request = query_service_pb2.ListTablesRequest(namespace=namespace)
    request.page.page_size = 1000
    found, left = read_pages(metadata.list_tables, request, "tables", MAX_TABLES)
    return TablesPage(found[:MAX_TABLES], bool(left) or len(found) > MAX_TABLES)


def table_versions(
    metadata: MetadataClient, namespace: str, table: str
) -> list[records_pb2.TableVersion]:
    """The table's versions, newest first, each with its writer and readers (raises
    LedgerflowNotFound for a table that has none)."""
    request = query_service_pb2.ListTableVersionsRequest(namespace=namespace, table=table)
    request.page.page_size = 1000
    return read_pages(metadata.list_table_versions, request, "versions")[0][::-1]
