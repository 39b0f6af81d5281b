"""What a task did with tables (ledgerflow.Table): the versions it wrote and read, kept
in the task's process until the attempt ends. A task never writes to the ledger itself:
the runtime (or executor) records them with the attempt's outcome, as
TableVersionWritten and TableVersionRead events, so a version is published only by an
attempt that succeeded, and a crashed step publishes nothing."""

from __future__ import annotations

from ledgerflow.v1 import events_pb2

# Payload-only events (no task yet), in the order the step made them.
_noted: list[events_pb2.Event] = []


def note_written(written: events_pb2.TableVersionWritten) -> None:
    _noted.append(events_pb2.Event(table_version_written=written))


def note_read(namespace: str, table: str, version: int) -> None:
    """Notes a read of a version (once per attempt)."""
    read = events_pb2.TableVersionRead(namespace=namespace, table=table, version=version)
    if not any(e.table_version_read == read for e in _noted if e.HasField("table_version_read")):
        _noted.append(events_pb2.Event(table_version_read=read))


def take(*, succeeded: bool) -> list[events_pb2.Event]:
    """What the attempt noted, forgotten here: all of it when the attempt succeeded,
    else its reads only (a failed attempt publishes no version)."""
    taken = [e for e in _noted if succeeded or e.HasField("table_version_read")]
    _noted.clear()
    return taken
