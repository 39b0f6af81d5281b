"""Tables and their lineage: the tables of a namespace, and a table's versions with the
tasks that wrote and read each one (read_models/lineage.py)."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow.v1 import records_pb2

from ledgerflow_service.errors import InvalidArgument, NotFound
from ledgerflow_service.queries.fields import set_time
from ledgerflow_service.queries.paging import (
    BAD_TOKEN,
    decode_token,
    page_size,
    position_token,
    take_page,
)
from ledgerflow_service.read_models.lineage import check_table_name
from ledgerflow_service.store.backend import Tx
from ledgerflow_service.validation import check_int64


def _table_token(token: str) -> tuple[str, str]:
    value = decode_token(token)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidArgument(BAD_TOKEN)
    return value[0], value[1]


def list_tables(tx: Tx, request: Any) -> tuple[list[records_pb2.TableSummary], str]:
    """A page of tables, by namespace and name, each with its newest version."""
    size = page_size(request.page)
    where, params = ["1 = 1"], []
    if request.namespace:
        where.append("namespace = ?")
        params.append(check_table_name("namespace", request.namespace))
    if request.page.page_token:
        namespace, table = _table_token(request.page.page_token)
        where.append("(namespace > ? OR (namespace = ? AND table_name > ?))")
        params.extend([namespace, namespace, table])
    rows = tx.query(
        "SELECT namespace, table_name, MAX(version), MAX(written_at_us) FROM table_versions "
        f"WHERE {' AND '.join(where)} GROUP BY namespace, table_name "
        "ORDER BY namespace, table_name LIMIT ?",
        [*params, size + 1],
    )
    records = []
    for namespace, table, latest, at in rows:
        summary = records_pb2.TableSummary(namespace=namespace, table=table, latest_version=latest)
        set_time(summary.written_at, at)
        records.append(summary)
    return take_page(records, [[r[0], r[1]] for r in rows], size)


def list_table_versions(tx: Tx, request: Any) -> tuple[list[records_pb2.TableVersion], str]:
    """A page of a table's versions, oldest first, each with its reads. NOT_FOUND for a
    table with no versions, naming the namespace's tables."""
    namespace = check_table_name("namespace", request.namespace)
    table = check_table_name("table", request.table)
    check_int64("version", request.version)
    size = page_size(request.page)
    where = ["namespace = ?", "table_name = ?"]
    params: list[Any] = [namespace, table]
    if request.version and request.latest:
        raise InvalidArgument("give version or latest, not both")
    if request.version:
        where.append("version = ?")
        params.append(request.version)
    if request.latest:
        where.append(
            "version = (SELECT MAX(version) FROM table_versions WHERE namespace = ? "
            "AND table_name = ?)"
        )
        params.extend([namespace, table])
    if request.page.page_token:
        where.append("version > ?")
        params.append(position_token(request.page.page_token))
    rows = tx.query(
        "SELECT version, location, files_json, num_rows, num_bytes, schema_text, "
        "task_pathspec, attempt, run_pathspec, written_at_us FROM table_versions "
        f"WHERE {' AND '.join(where)} ORDER BY version LIMIT ?",
        [*params, size + 1],
    )
    if not rows and not request.page.page_token:
        raise _missing(tx, namespace, table, request.version)
    versions = {
        row[0]: records_pb2.TableVersion(
            namespace=namespace, table=table, version=row[0], location=row[1],
            files=json.loads(row[2]), num_rows=row[3], num_bytes=row[4], schema=row[5],
            written_by=row[6], attempt=row[7], run_pathspec=row[8],
        )
        for row in rows
    }  # fmt: skip
    for row in rows:
        set_time(versions[row[0]].written_at, row[9])
    if versions:
        condition, version_params = tx.dialect.one_of("version", sorted(versions))
        for version, task, attempt, run, at in tx.query(
            "SELECT version, task_pathspec, attempt, run_pathspec, read_at_us FROM table_reads "
            f"WHERE namespace = ? AND table_name = ? AND {condition} "
            "ORDER BY version, read_at_us, task_pathspec, attempt",
            [namespace, table, *version_params],
        ):
            read = versions[version].reads.add(read_by=task, attempt=attempt, run_pathspec=run)
            set_time(read.read_at, at)
    return take_page(list(versions.values()), [r[0] for r in rows], size)


def _missing(tx: Tx, namespace: str, table: str, version: int) -> NotFound:
    newest = tx.query(
        "SELECT MAX(version) FROM table_versions WHERE namespace = ? AND table_name = ?",
        [namespace, table],
    )[0][0]
    if newest:
        return NotFound(f"table {namespace}/{table} has no version {version} (newest: {newest})")
    names = [
        name
        for (name,) in tx.query(
            "SELECT DISTINCT table_name FROM table_versions WHERE namespace = ? "
            "ORDER BY table_name LIMIT 21",
            [namespace],
        )
    ]
    if not names:
        return NotFound(f"no table {namespace}/{table}: namespace {namespace!r} has no tables")
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return NotFound(f"no table {namespace}/{table}; the tables of {namespace!r}: {listed}")
