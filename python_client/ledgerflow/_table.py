"""Tables: named Parquet datasets whose versions and readers the ledger records.

    from ledgerflow import Table

    frame = Table("vtuulos", "input_table").to_pandas()              # the newest version
    Table("vtuulos", "scores").write(frame)                          # in a step: a new version
    Table("vtuulos", "input_table").to_arrow(version=3, columns=["x"], filters=[("x", ">", 0)])
    Table("vtuulos", "input_table").history()                        # who wrote and read what

A table lives under a root, a local folder or an ``s3://`` prefix
(``LEDGERFLOW_TABLE_ROOT``; by default the datastore's root + ``/tables``), at
ROOT/NAMESPACE/TABLE/WRITE-ID/part-NNNNN.parquet. Every write goes to a folder of its own
(a fresh id), so concurrent writers never touch one another's files, and the version
exists once its step has succeeded: the runtime then records its TableVersionWritten
event and the ledger numbers it (1, 2, ...). Readers find a version's files in the
ledger, never by listing storage, and read them in parallel; a read inside a step is
recorded as a TableVersionRead event, so ``history()`` answers which runs produced the
table and which runs consumed each version.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerflow import _lineage
from ledgerflow._current import current
from ledgerflow.exceptions import LedgerflowException
from ledgerflow.v1 import events_pb2, records_pb2

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Rows per Parquet file of a write, unless the writer says otherwise.
ROWS_PER_FILE = 1_000_000
# Files read or written at once.
TRANSFER_THREADS = 16


class TableException(LedgerflowException):
    """A table cannot be written or read as asked (the message says why)."""


@dataclass(frozen=True)
class TableRead:
    """A task that read a version: its pathspec (Flow/run/step/task) and run."""

    read_by: str
    run_pathspec: str
    read_at: datetime


@dataclass(frozen=True)
class TableVersion:
    """One version of a table: where its files are, what it holds, which task wrote
    it and which tasks have read it."""

    namespace: str
    table: str
    version: int
    location: str
    files: tuple[str, ...]
    num_rows: int
    num_bytes: int
    schema: str
    written_by: str
    run_pathspec: str
    written_at: datetime
    reads: tuple[TableRead, ...] = field(default=())

    @classmethod
    def from_record(cls, record: records_pb2.TableVersion) -> TableVersion:
        return cls(
            record.namespace, record.table, record.version, record.location, tuple(record.files),
            record.num_rows, record.num_bytes, record.schema, record.written_by,
            record.run_pathspec, record.written_at.ToDatetime(),
            tuple(TableRead(r.read_by, r.run_pathspec, r.read_at.ToDatetime())
                  for r in record.reads),
        )  # fmt: skip


def default_root() -> str:
    """Where tables live unless Table(root=...) says: LEDGERFLOW_TABLE_ROOT, else the
    datastore's root + /tables."""
    root = os.environ.get("LEDGERFLOW_TABLE_ROOT")
    if root:
        return root.rstrip("/")
    from ledgerflow.config import load_config

    return load_config().datastore_root.rstrip("/") + "/tables"


class Table:
    """A named, versioned Parquet dataset: ``Table(namespace, name)``."""

    def __init__(self, namespace: str, name: str, *, root: str | None = None) -> None:
        self.namespace = _checked_name("namespace", namespace)
        self.name = _checked_name("table", name)
        self._root = root.rstrip("/") if root else None

    def __repr__(self) -> str:
        return f"Table({self.namespace!r}, {self.name!r})"

    # ---- the ledger's side -------------------------------------------------------------

    def history(self) -> list[TableVersion]:
        """Every version, oldest first, with the task that wrote it and the tasks that
        read it. Raises LedgerflowNotFound (naming the namespace's tables) when the table
        has no version."""
        return self._versions()

    def version(self, version: int | None = None) -> TableVersion:
        """One version (the newest when None)."""
        if version is not None and version < 1:
            raise TableException(f"{self}: versions are numbered from 1, not {version}")
        return self._versions(version or 0, latest=version is None)[0]

    def _versions(self, version: int = 0, *, latest: bool = False) -> list[TableVersion]:
        from ledgerflow.client import _clients

        metadata, _ = _clients()
        found = metadata.table_versions(self.namespace, self.name, version, latest=latest)
        return [TableVersion.from_record(v) for v in found]

    # ---- reading -----------------------------------------------------------------------

    def to_arrow(
        self,
        version: int | None = None,
        *,
        columns: Sequence[str] | None = None,
        filters: Any = None,
    ) -> pa.Table:
        """The version's rows as an Arrow table, its files read in parallel. `columns`
        and `filters` (pyarrow's: an Expression, or [("x", ">", 3), ...]) are pushed
        down into the Parquet reader, which skips the row groups a filter rules out."""
        import pyarrow as pa

        chosen = self.version(version)
        storage = _storage_for(chosen.location)
        wanted = list(columns) if columns is not None else None

        def read(name: str) -> pa.Table:
            return storage.read_parquet(name, wanted, filters)

        with ThreadPoolExecutor(min(TRANSFER_THREADS, max(1, len(chosen.files)))) as pool:
            parts = list(pool.map(read, chosen.files))
        if current.is_running_flow:
            _lineage.note_read(self.namespace, self.name, chosen.version)
        return pa.concat_tables(parts) if parts else pa.table({})

    def to_pandas(
        self,
        version: int | None = None,
        *,
        columns: Sequence[str] | None = None,
        filters: Any = None,
    ) -> pd.DataFrame:
        """The version's rows as a pandas frame (dictionary columns as categoricals)."""
        return self.to_arrow(version, columns=columns, filters=filters).to_pandas()

    # ---- writing -----------------------------------------------------------------------

    def write(self, data: Any, *, rows_per_file: int = ROWS_PER_FILE) -> str:
        """Writes `data` (a pandas frame or an Arrow table) as the table's next version,
        in Parquet files of at most `rows_per_file` rows; returns where. Only inside a
        step: the version is published, and numbered, when the step succeeds."""
        import pyarrow as pa

        if not current.is_running_flow:
            raise TableException(
                f"{self}.write() publishes a version from a step; call it inside a flow's "
                "step (outside one, nothing could record who wrote it)"
            )
        if rows_per_file < 1:
            raise TableException(f"rows_per_file must be at least 1, not {rows_per_file}")
        if isinstance(data, pa.Table):
            table = data
        elif hasattr(data, "to_numpy") and hasattr(data, "columns"):  # a pandas frame
            table = pa.Table.from_pandas(data, preserve_index=False)
        else:
            raise TableException(
                f"{self}.write() takes a pandas DataFrame or a pyarrow Table, "
                f"not {type(data).__name__}"
            )
        location = f"{self._table_root()}/{uuid.uuid4().hex}"
        storage = _storage_for(location)
        slices = [
            (f"part-{index:05d}.parquet", table.slice(start, rows_per_file))
            for index, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file))
        ]
        with ThreadPoolExecutor(min(TRANSFER_THREADS, len(slices))) as pool:
            sizes = list(pool.map(lambda part: storage.write_parquet(*part), slices))
        _lineage.note_written(
            events_pb2.TableVersionWritten(
                namespace=self.namespace, table=self.name, location=location,
                files=[name for name, _ in slices], num_rows=table.num_rows,
                num_bytes=sum(sizes), schema=str(table.schema.remove_metadata()),
            )
        )  # fmt: skip
        return location

    def _table_root(self) -> str:
        return f"{self._root or default_root()}/{self.namespace}/{self.name}"


# The rule of proto/ledgerflow/v1/events.proto (TableVersionWritten), which the service
# enforces: checked here too, so that a bad name fails before any file is written.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _checked_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise TableException(
            f"the {kind} {value[:130]!r} is not a valid table name: 1 to 128 letters, "
            "digits, '_', '.' or '-', not starting with '.' or '-', without '..'"
        )
    return value


# ---- storage: a local folder or an s3:// prefix -------------------------------------------


class _LocalFolder:
    def __init__(self, location: str) -> None:
        self.folder = Path(location)

    def write_parquet(self, name: str, table: pa.Table) -> int:
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        pq.write_table(table, path)
        return path.stat().st_size

    def read_parquet(self, name: str, columns: list[str] | None, filters: Any) -> pa.Table:
        import pyarrow.parquet as pq

        path = self.folder / name
        if not path.exists():
            raise TableException(f"{path} is missing: the version's files were removed")
        return pq.read_table(path, columns=columns, filters=filters, use_threads=True)


class _S3Prefix:
    """Whole objects, one GET each (many small ranged reads cost more than they save
    for files of a few MB and up), parsed in memory."""

    def __init__(self, location: str) -> None:
        from ledgerflow._s3 import shared_s3_client, split_url

        self.bucket, self.prefix = split_url(location)
        self.client = shared_s3_client(TRANSFER_THREADS)

    def write_parquet(self, name: str, table: pa.Table) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        body = sink.getvalue().to_pybytes()
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=body)
        return len(body)

    def read_parquet(self, name: str, columns: list[str] | None, filters: Any) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = f"{self.prefix}/{name}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise TableException(
                f"s3://{self.bucket}/{key} is missing: the version's files were removed"
            ) from None
        return pq.read_table(
            pa.BufferReader(body), columns=columns, filters=filters, use_threads=False
        )


def _storage_for(location: str) -> _LocalFolder | _S3Prefix:
    return _S3Prefix(location) if location.startswith("s3://") else _LocalFolder(location)
