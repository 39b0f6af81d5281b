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


def head_position(tx: Tx) -> int:
    """The position of the newest event (0 for an empty ledger)."""
    row = tx.query_one("SELECT COALESCE(MAX(global_position), 0) FROM events")
    return int(row[0]) if row else 0


def read_after(
    tx: Tx,
    after: int,
    limit: int,
    run_pathspecs: Collection[str] = (),
    event_types: Iterable[str] = (),
) -> tuple[list[tuple[events_pb2.Event, str]], int]:
    """Up to `limit` events after position `after` (of some runs, of some types, or
    all), each with its run's pathspec, and a head: no matching event at or below it is
    missing from the answer unless `limit` came back (what a watcher may move to)."""
    where: list[str] = ["global_position > ?"]
    params: list[Any] = [after]
    types = sorted(event_types)
    if not run_pathspecs and not types:  # every event: the last one read is the head
        found = read_events_with_runs(tx, where[0], params, limit)
        return found, found[-1][0].global_position if found else after
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
    return read_events_with_runs(tx, " AND ".join(where), params, limit), head
