"""The tables read model: each version of a table and each read of one, so the ledger
answers "which runs produced this table, and which runs consumed version N".

A table's versions are numbered here, in the order their TableVersionWritten events
are folded (under the append lock, so two writers never get the same number, and a
rebuild numbers them the same way). A version's files live under a location no other
version uses: publishing the event is what makes the version exist."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from ledgerflow_service.validation import check_int64, check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.backend import Query
    from ledgerflow_service.store.projector import PendingEvent

VERSION_COLUMNS = (
    "namespace", "table_name", "version", "location", "files_json", "num_rows", "num_bytes",
    "schema_text", "task_pathspec", "attempt", "run_pathspec", "written_at_us",
)  # fmt: skip
READ_COLUMNS = (
    "namespace", "table_name", "version", "task_pathspec", "attempt", "run_pathspec",
    "read_at_us",
)  # fmt: skip

# A namespace or table name is a folder name under the tables' root.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_FILES = 100_000


def check_table_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise InvalidArgument(
            f"{kind} {value[:130]!r} is not a valid table name: 1 to 128 letters, digits, "
            "'_', '.' or '-', not starting with '.' or '-', without '..'"
        )
    return value


def table_key(p: events_pb2.TableVersionWritten | events_pb2.TableVersionRead) -> tuple[str, str]:
    return check_table_name("namespace", p.namespace), check_table_name("table", p.table)


def latest_versions_query(keys: set[tuple[str, str]]) -> Query | None:
    """(namespace, table_name, newest version) of the tables a batch touches (None
    for none)."""
    if not keys:
        return None
    pairs = " OR ".join("(namespace = ? AND table_name = ?)" for _ in keys)
    return (
        f"SELECT namespace, table_name, MAX(version) FROM table_versions WHERE {pairs} "
        "GROUP BY namespace, table_name",
        [value for key in sorted(keys) for value in key],
    )


def _from_open_attempt(
    fold: ReadModelFold,
    p: events_pb2.TableVersionWritten | events_pb2.TableVersionRead,
    item: PendingEvent,
) -> tuple[tuple[str, str], str]:
    """(the table's key, the task's pathspec), once the names are checked and the
    attempt is known to be open (a task uses tables while it runs)."""
    key = table_key(p)
    task_path = item.address.task_pathspec or ""
    fold.run(item.address.run_pathspec, open_only=True)
    fold.open_attempt(task_path, p.attempt)
    return key, task_path


def table_version_written(
    fold: ReadModelFold, p: events_pb2.TableVersionWritten, item: PendingEvent
) -> None:
    key, task_path = _from_open_attempt(fold, p, item)
    if not p.location:
        raise InvalidArgument(f"table {'/'.join(key)}: the version has no location")
    if len(p.files) > MAX_FILES:
        raise InvalidArgument(f"table {'/'.join(key)}: {len(p.files)} files, over {MAX_FILES}")
    for name in p.files:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise InvalidArgument(
                f"table {'/'.join(key)}: file {name[:200]!r} must be a path inside the location"
            )
        check_text("file", name)
    check_text("location", p.location)
    check_text("schema", p.schema)
    check_int64("num_rows", p.num_rows)
    check_int64("num_bytes", p.num_bytes)
    version = fold.table_latest.get(key, 0) + 1
    fold.table_latest[key] = version
    fold.new_table_versions.append((
        *key, version, p.location, json.dumps(list(p.files)), p.num_rows, p.num_bytes,
        p.schema, task_path, p.attempt, item.address.run_pathspec, item.recorded_at_us,
    ))  # fmt: skip


def table_version_read(
    fold: ReadModelFold, p: events_pb2.TableVersionRead, item: PendingEvent
) -> None:
    key, task_path = _from_open_attempt(fold, p, item)
    latest = fold.table_latest.get(key, 0)
    if not 1 <= p.version <= latest:
        has = f"versions 1 to {latest}" if latest else "no versions"
        raise FailedPrecondition(
            f"table {'/'.join(key)} has no version {p.version} ({has}): read one that exists"
        )
    fold.new_table_reads.append((
        *key, p.version, task_path, p.attempt, item.address.run_pathspec, item.recorded_at_us,
    ))  # fmt: skip


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {
    "table_version_written": table_version_written,
    "table_version_read": table_version_read,
}
