"""Events as stored: the events table's columns, rows to messages, and reads by
position (what watchers, audits and replays read)."""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from ledgerflow.v1 import events_pb2

from ledgerflow_service.store.backend import Tx

EVENT_COLUMN_NAMES = (
    "global_position",
    "event_id",
    "stream",
    "stream_version",
    "run_pathspec",
    "event_type",
    "payload",
    "actor",
    "actor_authenticated",
    "recorded_at_us",
)
EVENT_COLUMNS = ", ".join(EVENT_COLUMN_NAMES)
# The payload bytes one watch read takes at most (a slow watcher of big events holds
# this, not a chunk of 500 events of up to 1 MiB each).
WATCH_READ_BYTES = 1024 * 1024


def now_us() -> int:
    return time.time_ns() // 1000


@functools.cache
def type_name(kind: str) -> str:
    """The event type of a payload field: "task_started" -> "TaskStarted"."""
    return "".join(part.title() for part in kind.split("_"))


def event_from_row(row: Sequence[Any]) -> events_pb2.Event:
    """Rebuilds the full event from an events-table row (see EVENT_COLUMNS)."""
    (
        position,
        event_id,
        stream,
        version,
        _run,
        event_type,
        payload,
        actor,
        authed,
        recorded_at_us,
    ) = row
    event = events_pb2.Event.FromString(bytes(payload))
    event.event_id = event_id
    event.stream = stream
    event.stream_version = version
    event.global_position = position
    event.event_type = event_type
    event.actor = actor
    event.actor_authenticated = bool(authed)
    event.recorded_at.FromMicroseconds(recorded_at_us)
    return event


def envelope_from_row(row: Sequence[Any], recorded_at: Timestamp) -> events_pb2.Event:
    """The event's envelope (everything but the payload) from an events-table row, with
    its time given as a Timestamp (the events of one append share it)."""
    position, event_id, stream, version, _run, event_type, _, actor, authed, _ = row
    return events_pb2.Event(
        event_id=event_id, stream=stream, stream_version=version, global_position=position,
        event_type=event_type, actor=actor, actor_authenticated=bool(authed),
        recorded_at=recorded_at,
    )  # fmt: skip


def read_events(tx: Tx, where: str, params: Sequence[Any], limit: int) -> list[events_pb2.Event]:
    return [event for event, _ in read_events_with_runs(tx, where, params, limit)]


def read_events_with_runs(
    tx: Tx, where: str, params: Sequence[Any], limit: int
) -> list[tuple[events_pb2.Event, str]]:
    """The events matching `where`, oldest first, each with its run's pathspec."""
    rows = tx.query(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY global_position LIMIT ?",
        [*params, limit],
    )
    return [(event_from_row(r), r[4]) for r in rows]


def exists(tx: Tx, event_id: str) -> bool:
    """Whether an event with this id is in the ledger (a retried command's was)."""
    return tx.query_one("SELECT 1 FROM events WHERE event_id = ?", (event_id,)) is not None


def head_position(tx: Tx) -> int:
    """The position of the newest event (0 for an empty ledger)."""
    row = tx.query_one("SELECT COALESCE(MAX(global_position), 0) FROM events")
    return int(row[0]) if row else 0


def read_events_within(
    tx: Tx, where: str, params: Sequence[Any], limit: int, max_bytes: int
) -> tuple[list[tuple[events_pb2.Event, str]], bool]:
    """Up to `limit` events matching `where`, oldest first, with their runs, of at most
    `max_bytes` of payload together (but at least one): and whether more remain. The
    database sizes the rows, so a reader of huge events never holds more than that."""
    rows = tx.query(
        f"SELECT {EVENT_COLUMNS}, matched FROM ("
        f" SELECT {EVENT_COLUMNS}, SUM(size) OVER (ORDER BY global_position) - size AS before,"
        "  COUNT(*) OVER () AS matched"
        f" FROM (SELECT {EVENT_COLUMNS}, LENGTH(payload) AS size FROM events WHERE {where}"
        "  ORDER BY global_position LIMIT ?) AS chunk"
        ") AS sized WHERE before < ? ORDER BY global_position",
        [*params, limit, max_bytes],
    )
    found = [(event_from_row(r[:-1]), r[4]) for r in rows]
    matched = int(rows[0][-1]) if rows else 0
    return found, len(found) < matched or matched == limit


def read_after(
    tx: Tx,
    after: int,
    limit: int,
    run_pathspecs: Collection[str] = (),
    event_types: Iterable[str] = (),
    max_bytes: int = WATCH_READ_BYTES,
) -> tuple[list[tuple[events_pb2.Event, str]], int, bool]:
    """Up to `limit` events after position `after` (of some runs, of some types, or
    all), of at most `max_bytes` of payload together, each with its run's pathspec; a
    head: no matching event at or below it is missing from the answer; and whether more
    may follow right away (the read stopped at `limit` events or `max_bytes`: the
    reader goes on from the last event, not the head)."""
    where: list[str] = ["global_position > ?"]
    params: list[Any] = [after]
    types = sorted(event_types)
    if not run_pathspecs and not types:  # every event: the last one read is the head
        found, more = read_events_within(tx, where[0], params, limit, max_bytes)
        return found, found[-1][0].global_position if found else after, more
    if run_pathspecs:
        condition, run_params = tx.dialect.one_of("run_pathspec", sorted(run_pathspecs))
        where.append(condition)
        params.extend(run_params)
    if types:
        where.append(f"event_type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    # The head first, then the events up to it: each statement of a read sees its own
    # snapshot, and an event committed between the two must not fall below a head the
    # watcher then skips past.
    head = head_position(tx)
    where.append("global_position <= ?")
    params.append(head)
    found, more = read_events_within(tx, " AND ".join(where), params, limit, max_bytes)
    if more:  # vouch for nothing past the last event read
        head = found[-1][0].global_position
    return found, head, more
