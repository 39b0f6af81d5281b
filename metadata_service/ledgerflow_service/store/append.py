"""Appending to the event store: atomic, idempotent (a retried event id answers what
was recorded), version-checked per stream, folded into the read models by the
projector in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp
from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
)
from ledgerflow_service.names import check_event_id
from ledgerflow_service.principal import SERVICE, Principal
from ledgerflow_service.store.addressing import EventAddress, address_of
from ledgerflow_service.store.backend import Database, Dialect, RowInsert, Tx
from ledgerflow_service.store.events import (
    EVENT_COLUMN_NAMES,
    envelope_from_row,
    now_us,
    read_events,
    type_name,
)
from ledgerflow_service.store.projector import Fold, PendingEvent, Projector, position_row

# How the application lets its desks write (LedgerApplication._append_as and
# _append_chosen): the events recorded, as each returns them.
Append = Callable[[Sequence[events_pb2.Event], Principal], list[events_pb2.Event]]


class AppendChosen(Protocol):
    def __call__(
        self,
        choose: Callable[[Tx], Sequence[events_pb2.Event]],
        principal: Principal,
        then: Callable[[Tx], None] | None = None,
    ) -> list[events_pb2.Event]: ...


MAX_BATCH_EVENTS = 1000
MAX_EVENT_BYTES = 1 << 20


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
    # What the projector worked out for the batch (its checks passed).
    plan: Any


@dataclass
class Submission:
    """A prepared batch and who appends it; `still_wanted()` is asked just before the
    writes are sent (None: always wanted)."""

    batch: PreparedBatch
    principal: Principal
    still_wanted: Callable[[], bool] | None = None
    # Filled by the append: the events the projector's process manager added in the
    # same transaction (payload and envelope), for watchers. A group's go to its first.
    derived: list[events_pb2.Event] = field(default_factory=list)


def prepare(
    events: Sequence[events_pb2.Event], projector: Projector[Any], dialect: Dialect
) -> PreparedBatch:
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
    plan = projector.plan(((i, e, addresses[i]) for i, e in unique), dialect)
    return PreparedBatch(ids, events, addresses, bodies, plan)


def append(
    database: Database,
    projector: Projector[Any],
    events: Sequence[events_pb2.Event],
    principal: Principal,
    still_wanted: Callable[[], bool] | None = None,
) -> list[events_pb2.Event]:
    """Appends a batch atomically; returns the recorded envelopes, in request order."""
    batch = prepare(events, projector, database.dialect)
    return append_prepared(database, projector, Submission(batch, principal, still_wanted))


def append_prepared(
    database: Database, projector: Projector[Any], submission: Submission
) -> list[events_pb2.Event]:
    """Appends one prepared batch in its own transaction.

    An event id that is already in the ledger (a retried batch) is not appended again:
    the originally recorded event is returned in its place. Retries are rare, so the
    first attempt does not look for them: the events table's UNIQUE(event_id) notices
    one, the transaction rolls back, and the append is redone looking them up first.
    A refused batch is redone that way too, since a retried batch can trip a rule
    (an expected version, a run that exists) before its duplicate ids are noticed."""
    try:
        return _append_once(database, projector, [submission], look_up_ids=False)[0]
    except (_DuplicateEventId, LedgerError) as error:
        if isinstance(error, DeadlineExceeded):
            raise
        return _append_once(database, projector, [submission], look_up_ids=True)[0]


def append_together(
    database: Database, projector: Projector[Any], submissions: Sequence[Submission]
) -> list[list[events_pb2.Event]]:
    """Appends several batches in one transaction, in order; returns each one's
    envelopes. All or nothing: when any batch is refused (or repeats an event id already
    in the ledger) nothing is written and the error raises, so that the caller can
    append them one by one, each succeeding or failing on its own. Their event ids must
    not overlap."""
    try:
        return _append_once(database, projector, submissions, look_up_ids=False)
    except _DuplicateEventId as error:
        raise AlreadyExists("an event id of these batches is already in the ledger") from error


def append_chosen(
    database: Database,
    projector: Projector[Any],
    choose: Callable[[Tx], Sequence[events_pb2.Event]],
    principal: Principal,
    then: Callable[[Tx], None] | None = None,
) -> tuple[list[events_pb2.Event], list[events_pb2.Event]]:
    """Appends the events `choose(tx)` picks while the append lock is held, so that what
    it read cannot change before they commit (say, which queued task an executor gets:
    two callers can never pick the same one). Returns the chosen events as sent and
    their envelopes; nothing is appended when it picks none. Its events must have ids
    new to the ledger. `then(tx)`, when they are written and before the commit, can
    ask for what they left (Tx.query_later)."""
    with database.write() as tx:
        chosen = list(choose(tx))
        if not chosen:
            return [], []
        submission = Submission(prepare(chosen, projector, database.dialect), principal)
        written = _write_batches(database, projector, tx, [submission], False)
        if then is not None:
            then(tx)
    return chosen, _committed(database, [submission], *written)[0]


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
    database: Database,
    projector: Projector[Any],
    submissions: Sequence[Submission],
    *,
    look_up_ids: bool,
) -> list[list[events_pb2.Event]]:
    try:
        with database.write() as tx:
            written = _write_batches(database, projector, tx, submissions, look_up_ids)
    except Exception as error:
        if not database.is_unique_violation(error):
            raise
        # UNIQUE(event_id): a retried event the optimistic attempt did not look for.
        if "event_id" in str(error) and not look_up_ids:
            raise _DuplicateEventId() from error
        # A read model's key (say, an artifact its attempt already has; or, again, a
        # retry, which the caller's second attempt with the ids looked up tells).
        explained = projector.explain_conflict(database, [s.batch.plan for s in submissions], error)
        if explained is not None:
            raise explained from None
        raise
    return _committed(database, submissions, *written)


def _committed(
    database: Database,
    submissions: Sequence[Submission],
    found: list[dict[str, events_pb2.Event]],
    rows: list[tuple[Any, ...]],
    owners: list[int],
) -> list[list[events_pb2.Event]]:
    """After the commit: each submission's envelopes in request order, from the rows
    written (`owners`: the submission of each) and those `found` already recorded."""
    database.after_commit(len(rows) + sum(len(s.derived) for s in submissions))
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
    database: Database,
    projector: Projector[Any],
    tx: Tx,
    submissions: Sequence[Submission],
    look_up_ids: bool,
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
        plan = submissions[0].batch.plan
    elif not any(found):  # a group: its batches' reads were planned outside the lock
        plan = projector.merge((s.batch.plan for s in submissions), tx.dialect)
    else:
        plan = projector.plan(((i, e, a) for _, i, e, a in fresh), tx.dialect)
    # Every read the append needs, sent together (one round trip on Postgres):
    # stream versions with the ledger's head, and the read-model rows the batches touch.
    version_rows, *projection_rows = tx.query_all([
        tx.dialect.stream_versions(sorted({a.stream for _, _, _, a in fresh})),
        *plan.queries,
    ])  # fmt: skip
    versions = {stream: int(v) for stream, v, _ in version_rows if v is not None}
    # (No rows: every event is already recorded, and no position is given out.)
    head = int(version_rows[0][2]) if version_rows else 0
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
    # The rows of the events, and the read-model rows that depend on the events alone
    # (say, recorded artifacts), depend on nothing the fold below decides: send them
    # now, so that on Postgres the database inserts them while the read models are
    # folded (the append lock is held throughout: overlapping the two shortens it).
    # A refused event rolls them back with the rest.
    written: list[set[str]] = [set() for _ in submissions]
    for owner, row in zip(owners, rows, strict=True):
        written[owner].add(row[1])
    tx.insert_all([
        RowInsert("events", EVENT_COLUMN_NAMES, rows),
        *projector.independent_rows(
            [(s.batch.plan, ids) for s, ids in zip(submissions, written, strict=True) if ids]
        ),
    ])  # fmt: skip
    fold = projector.fold(tx, plan, projection_rows)
    for item in pending:
        fold.apply(item)
    submissions[0].derived = derived = _append_follow_ups(tx, fold, versions, head, recorded_at)
    head += len(derived)
    if any(s.still_wanted is not None and not s.still_wanted() for s in submissions):
        # The caller gave up (deadline passed or call cancelled) while this append
        # waited for the lock: roll back rather than commit unseen work.
        raise DeadlineExceeded(
            "the caller's deadline passed before the append could commit; nothing "
            "was written. Retry with the same event ids."
        )
    runs = {item.address.run_pathspec for item in pending}
    runs.update(address_of(event).run_pathspec for event in derived)
    database.notify_appended(tx, head, runs)
    # On Postgres the writes need no answers: they travel with the COMMIT (and the
    # notification queued just above with them).
    fold.save(tx, also=[position_row(head)])
    return found, rows, owners


def _append_follow_ups(
    tx: Tx, fold: Fold, versions: dict[str, int], head: int, recorded_at: int
) -> list[events_pb2.Event]:
    """Appends, in the append's transaction, the events that follow from the ones just
    folded (the process manager's decisions), and folds them too, round after round
    until nothing more follows. Returns them as stored."""
    derived: list[events_pb2.Event] = []
    stamp = Timestamp()
    stamp.FromMicroseconds(recorded_at)
    while events := fold.follow_ups(tx):
        addresses = [address_of(event) for event in events]
        unknown = sorted({a.stream for a in addresses} - versions.keys())
        if unknown:
            (version_rows,) = tx.query_all([tx.dialect.stream_versions(unknown)])
            versions.update((stream, int(v or 0)) for stream, v, _ in version_rows)
        rows = []
        for event, address in zip(events, addresses, strict=True):
            head += 1
            versions[address.stream] = version = versions.get(address.stream, 0) + 1
            row = (
                head, event.event_id, address.stream, version, address.run_pathspec,
                type_name(address.kind), _payload_body(event, address.kind), SERVICE.name, 1,
                recorded_at,
            )  # fmt: skip
            rows.append(row)
            fold.apply(PendingEvent(event, address, head, recorded_at, SERVICE.name, SERVICE))
            stored = envelope_from_row(row, stamp)
            getattr(stored, address.kind).CopyFrom(getattr(event, address.kind))
            derived.append(stored)
        tx.insert_all([RowInsert("events", EVENT_COLUMN_NAMES, rows)])
    return derived
