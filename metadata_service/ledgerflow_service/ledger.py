"""The event store: append (atomic, idempotent, version-checked), read, rebuild."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from ledgerflow.v1 import events_pb2

from ledgerflow_service.addressing import EventAddress, address_of
from ledgerflow_service.auth import Principal
from ledgerflow_service.database import Database, Dialect, RowInsert, Tx
from ledgerflow_service.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
)
from ledgerflow_service.names import check_event_id
from ledgerflow_service.projection import (
    ARTIFACT_COLUMNS,
    PROJECTION_TABLES,
    PendingEvent,
    ProjectionBatch,
    ProjectionReads,
    artifact_rows,
)

MAX_BATCH_EVENTS = 1000
MAX_EVENT_BYTES = 1 << 20
_EVENT_COLUMN_NAMES = (
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
EVENT_COLUMNS = ", ".join(_EVENT_COLUMN_NAMES)


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
    run_pathspec: str = "",
    event_types: Iterable[str] = (),
) -> tuple[list[tuple[events_pb2.Event, str]], int]:
    """Up to `limit` events after position `after` (of one run, of some types, or
    all), each with its run's pathspec, and a head: no matching event at or below it is
    missing from the answer unless `limit` came back (what a watcher may move to)."""
    where: list[str] = ["global_position > ?"]
    params: list[Any] = [after]
    types = sorted(event_types)
    if not run_pathspec and not types:  # every event: the last one read is the head
        found = read_events_with_runs(tx, where[0], params, limit)
        return found, found[-1][0].global_position if found else after
    if run_pathspec:
        where.append("run_pathspec = ?")
        params.append(run_pathspec)
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


def _check_shape(events: Sequence[events_pb2.Event]) -> None:
    if not events:
        raise InvalidArgument("append needs at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise InvalidArgument(
            f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(events)}: split it"
        )
    for index, event in enumerate(events):
        if event.ByteSize() > MAX_EVENT_BYTES:
            raise InvalidArgument(
                f"event {index} is {event.ByteSize()} bytes; the limit is {MAX_EVENT_BYTES}. "
                "Store large values in the datastore and record their keys."
            )


@dataclass
class PreparedBatch:
    """A validated batch, with what could be computed before taking the lock."""

    ids: list[str]
    events: Sequence[events_pb2.Event]
    addresses: dict[str, EventAddress]
    bodies: dict[str, bytes]
    reads: ProjectionReads
    # The artifacts table's rows of each ArtifactsRecorded event, by event id.
    artifacts: dict[str, list[tuple[Any, ...]]]


@dataclass
class Submission:
    """A prepared batch and who appends it; `still_wanted()` is asked just before the
    writes are sent (None: always wanted)."""

    batch: PreparedBatch
    principal: Principal
    still_wanted: Callable[[], bool] | None = None


def prepare(events: Sequence[events_pb2.Event], dialect: Dialect) -> PreparedBatch:
    """Checks a batch's shape, ids and payload addresses, and computes everything that
    does not depend on the ledger's state. Done before taking the append lock, which
    serializes all writers: the shorter the critical section, the better."""
    _check_shape(events)
    ids = [check_event_id(e.event_id) for e in events]
    addresses: dict[str, EventAddress] = {}
    first: dict[str, events_pb2.Event] = {}
    for event_id, event in zip(ids, events, strict=True):
        address = address_of(event)
        if event.stream and event.stream != address.stream:
            raise InvalidArgument(
                f"event {event_id} names stream {event.stream!r} but its payload belongs to "
                f"{address.stream!r}; leave stream empty"
            )
        earlier = first.setdefault(event_id, event)
        # Repeated in the batch: recorded once, if it is the same event.
        if earlier is not event and (
            addresses[event_id] != address or not same_payload(earlier, event, address.kind)
        ):
            raise InvalidArgument(
                f"event id {event_id} is used twice in one batch for different events; "
                "give each event its own id"
            )
        addresses[event_id] = address
    unique = list(first.items())
    bodies = {i: _payload_body(e, addresses[i].kind) for i, e in unique}
    reads = ProjectionBatch.reads_for(((e, addresses[i]) for i, e in unique), dialect)
    artifacts = {
        i: artifact_rows(e.artifacts_recorded, addresses[i])
        for i, e in unique
        if addresses[i].kind == "artifacts_recorded"
    }
    _check_artifacts_distinct(artifacts.values())
    return PreparedBatch(ids, events, addresses, bodies, reads, artifacts)


def _check_artifacts_distinct(rows_per_event: Iterable[list[tuple[Any, ...]]]) -> None:
    """An artifact is recorded once per task attempt: not twice in one batch."""
    seen: set[tuple[Any, ...]] = set()
    for rows in rows_per_event:
        for path, attempt, name, *_ in rows:
            if (path, attempt, name) in seen:
                raise AlreadyExists(
                    f"artifact {name!r} is recorded twice for attempt {attempt} of task {path} "
                    "in this batch"
                )
            seen.add((path, attempt, name))


def _already_recorded(database: Database, submissions: Sequence[Submission]) -> LedgerError:
    """The error for a batch that records an artifact its task attempt already has
    (the database's primary key noticed it): names the artifact."""
    wanted = {row[:3] for s in submissions for rows in s.batch.artifacts.values() for row in rows}
    with database.read() as tx:
        condition, params = tx.dialect.one_of("task_pathspec", sorted({w[0] for w in wanted}))
        for path, attempt, name in tx.query(
            f"SELECT task_pathspec, attempt, name FROM artifacts WHERE {condition}", params
        ):
            if (path, attempt, name) in wanted:
                return AlreadyExists(
                    f"artifact {name!r} was already recorded for attempt {attempt} of task "
                    f"{path}; artifacts cannot be replaced: record it under another name"
                )
    return AlreadyExists("an artifact of this batch was already recorded for its task attempt")


def append(
    database: Database,
    events: Sequence[events_pb2.Event],
    principal: Principal,
    still_wanted: Callable[[], bool] | None = None,
) -> list[events_pb2.Event]:
    """Appends a batch atomically; returns the recorded envelopes, in request order."""
    batch = prepare(events, database.dialect)
    return append_prepared(database, Submission(batch, principal, still_wanted))


def append_prepared(database: Database, submission: Submission) -> list[events_pb2.Event]:
    """Appends one prepared batch in its own transaction.

    An event id that is already in the ledger (a retried batch) is not appended again:
    the originally recorded event is returned in its place. Retries are rare, so the
    first attempt does not look for them: the events table's UNIQUE(event_id) notices
    one, the transaction rolls back, and the append is redone looking them up first.
    A refused batch is redone that way too, since a retried batch can trip a rule
    (an expected version, a run that exists) before its duplicate ids are noticed."""
    try:
        return _append_once(database, [submission], look_up_ids=False)[0]
    except (_DuplicateEventId, LedgerError) as error:
        if isinstance(error, DeadlineExceeded):
            raise
        return _append_once(database, [submission], look_up_ids=True)[0]


def append_together(
    database: Database, submissions: Sequence[Submission]
) -> list[list[events_pb2.Event]]:
    """Appends several batches in one transaction, in order; returns each one's
    envelopes. All or nothing: when any batch is refused (or repeats an event id already
    in the ledger) nothing is written and the error raises, so that the caller can
    append them one by one, each succeeding or failing on its own. Their event ids must
    not overlap."""
    try:
        return _append_once(database, submissions, look_up_ids=False)
    except _DuplicateEventId as error:
        raise AlreadyExists("an event id of these batches is already in the ledger") from error


class _DuplicateEventId(Exception):
    """The optimistic append met an event id that is already in the ledger."""


def same_payload(a: events_pb2.Event, b: events_pb2.Event, kind: str) -> bool:
    """Whether two events of payload `kind` carry the same payload (by value: map
    fields may encode in any order)."""
    return a.WhichOneof("payload") == b.WhichOneof("payload") == kind and (
        getattr(a, kind) == getattr(b, kind)
    )


def _payload_body(event: events_pb2.Event, kind: str) -> bytes:
    """The stored form of an event: an Event holding only its payload."""
    body = events_pb2.Event()
    getattr(body, kind).CopyFrom(getattr(event, kind))
    return body.SerializeToString()


def _append_once(
    database: Database, submissions: Sequence[Submission], *, look_up_ids: bool
) -> list[list[events_pb2.Event]]:
    try:
        with database.write() as tx:
            found, rows, owners = _write_batches(database, tx, submissions, look_up_ids)
    except Exception as error:
        # UNIQUE(event_id): a retried event the optimistic attempt did not look for.
        # The artifacts' primary key: an artifact its attempt already has (or, again,
        # a retry, which the caller's second attempt with the ids looked up tells).
        unique_violation = database.is_unique_violation(error)
        if unique_violation and "event_id" in str(error) and not look_up_ids:
            raise _DuplicateEventId() from error
        if unique_violation and "artifacts" in str(error):
            raise _already_recorded(database, submissions) from None
        raise
    database.after_commit(len(rows))
    recorded_at = Timestamp()
    if rows:
        recorded_at.FromMicroseconds(rows[0][-1])
    for row, owner in zip(rows, owners, strict=True):
        found[owner][row[1]] = envelope_from_row(row, recorded_at)
    return [[stored[i] for i in s.batch.ids] for s, stored in zip(submissions, found, strict=True)]


def _look_up(tx: Tx, submissions: Sequence[Submission]) -> list[dict[str, events_pb2.Event]]:
    """The events of each submission that are already in the ledger, by event id. An
    id recorded for a different event (another stream or payload) is refused: only
    the very same event, retried, is answered as recorded."""
    wanted = {
        i: (s.batch.addresses[i], e)
        for s in submissions
        for i, e in zip(s.batch.ids, s.batch.events, strict=True)
    }
    condition, params = tx.dialect.one_of("event_id", list(wanted))
    by_id = {}
    for event in read_events(tx, condition, params, len(wanted)):
        address, submitted = wanted[event.event_id]
        if event.stream != address.stream or not same_payload(event, submitted, address.kind):
            raise AlreadyExists(
                f"event id {event.event_id} was already used for a different event "
                f"({event.event_type} of {event.stream}); give each event its own id"
            )
        event.ClearField("payload")
        by_id[event.event_id] = event
    return [{i: by_id[i] for i in s.batch.addresses if i in by_id} for s in submissions]


def _write_batches(
    database: Database, tx: Tx, submissions: Sequence[Submission], look_up_ids: bool
) -> tuple[list[dict[str, events_pb2.Event]], list[tuple[Any, ...]], list[int]]:
    """Checks and writes the batches inside the append transaction. Returns, per
    submission, the envelopes of its events already in the ledger (when `look_up_ids`),
    and the events-table rows written with the index of the submission each came from."""
    found = _look_up(tx, submissions) if look_up_ids else [{} for _ in submissions]
    fresh = [
        (owner, event_id, event, s.batch.addresses[event_id])
        for owner, s in enumerate(submissions)
        for event_id, event in zip(s.batch.ids, s.batch.events, strict=True)
        if event_id not in found[owner]
    ]
    if len(submissions) == 1 and not found[0]:
        projection_reads = submissions[0].batch.reads
    elif not any(found):  # a group: its batches' reads were prepared outside the lock
        projection_reads = ProjectionReads.union((s.batch.reads for s in submissions), tx.dialect)
    else:
        projection_reads = ProjectionBatch.reads_for(((e, a) for _, _, e, a in fresh), tx.dialect)
    # Every read the append needs, sent together (one round trip on Postgres):
    # stream versions, the ledger's head, and the read-model rows the batches touch.
    version_rows, head_rows, *projection_rows = tx.query_all([
        tx.dialect.stream_versions(sorted({a.stream for _, _, _, a in fresh})),
        ("SELECT COALESCE(MAX(global_position), 0) FROM events", []),
        *projection_reads.queries,
    ])  # fmt: skip
    versions = {stream: int(v) for stream, v in version_rows if v is not None}
    head = int(head_rows[0][0])
    recorded_at = now_us()
    pending: list[PendingEvent] = []
    rows: list[tuple[Any, ...]] = []
    owners: list[int] = []
    seen: set[str] = set()
    for owner, event_id, event, address in fresh:
        if event_id in seen:  # repeated within its batch: recorded once
            continue
        seen.add(event_id)
        principal = submissions[owner].principal
        current = versions.get(address.stream, 0)
        if event.HasField("expected_version") and event.expected_version != current:
            raise FailedPrecondition(
                f"stream {address.stream} is at version {current}, but the event expected "
                f"{event.expected_version}: another writer got there first; reload and retry"
            )
        versions[address.stream] = current + 1
        head += 1
        pending.append(PendingEvent(event, address, head, recorded_at, principal.name, principal))
        rows.append((
            head, event_id, address.stream, current + 1, address.run_pathspec,
            type_name(address.kind), submissions[owner].batch.bodies[event_id],
            principal.name, int(principal.authenticated), recorded_at,
        ))  # fmt: skip
        owners.append(owner)
    if not pending:
        return found, rows, owners
    # The rows of the events and of their artifacts depend on nothing the fold below
    # decides: send them now, so that on Postgres the database inserts them while the
    # read models are folded (the append lock is held throughout: overlapping the two
    # shortens it). A refused event rolls them back with the rest.
    artifacts = [
        row
        for owner, event_id in zip(owners, (r[1] for r in rows), strict=True)
        for row in submissions[owner].batch.artifacts.get(event_id, ())
    ]
    tx.insert_all([
        RowInsert("events", _EVENT_COLUMN_NAMES, rows),
        RowInsert("artifacts", ARTIFACT_COLUMNS, artifacts),
    ])  # fmt: skip
    batch = ProjectionBatch.from_rows(projection_reads, projection_rows, collect_artifacts=False)
    for item in pending:
        batch.apply(item)
    if any(s.still_wanted is not None and not s.still_wanted() for s in submissions):
        # The caller gave up (deadline passed or call cancelled) while this append
        # waited for the lock: roll back rather than commit unseen work.
        raise DeadlineExceeded(
            "the caller's deadline passed before the append could commit; nothing "
            "was written. Retry with the same event ids."
        )
    # On Postgres the writes need no answers: they travel with the COMMIT.
    batch.save(tx, also=[_position_row(head)])
    database.notify_appended(tx, head)
    return found, rows, owners


def _position_row(position: int) -> RowInsert:
    """Records `position` as the last event the projections have applied."""
    return RowInsert(
        "projection_position",
        ("name", "position"),
        [("main", position)],
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )


def rebuild_projections(
    database: Database,
    *,
    chunk_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Empties every read model and refolds it from the events alone, in one
    transaction (readers see the old or the new models, never half of either).
    `on_progress(done, total)` is called after each chunk. Returns the number of
    events replayed."""
    replayed = 0
    with database.write() as tx:
        for table in (*PROJECTION_TABLES, "projection_position"):
            tx.execute(f"DELETE FROM {table}")
        total_row = tx.query_one("SELECT COUNT(*) FROM events")
        total = int(total_row[0]) if total_row else 0
        replayed = replay(
            tx, "1 = 1", (), chunk_size=chunk_size,
            on_chunk=(lambda done: on_progress(done, total)) if on_progress else None,
        )  # fmt: skip
    return replayed


def replay(
    tx: Tx,
    where: str,
    params: Sequence[Any],
    *,
    chunk_size: int = 1000,
    source: Tx | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Folds the events matching `where` (read from `source`, default `tx`) into the
    projections of `tx`, oldest first. Used by rebuilds and by as-of audit queries."""
    source = source or tx
    after = 0
    replayed = 0
    while True:
        chunk = read_events(
            source, f"global_position > ? AND ({where})", [after, *params], chunk_size
        )
        if not chunk:
            return replayed
        pending = [
            PendingEvent(
                e, address_of(e), e.global_position, e.recorded_at.ToMicroseconds(), e.actor
            )
            for e in chunk
        ]
        batch = ProjectionBatch.load(tx, pending)
        for item in pending:
            batch.apply(item)
        after = chunk[-1].global_position
        batch.save(tx, also=[_position_row(after)])
        replayed += len(chunk)
        if on_chunk is not None:
            on_chunk(replayed)
