"""Group commit: batches that arrive while another is being written share one
transaction.

Appends are serialized (one global order of positions), so under concurrent writers
each one waits for the lock, and a transaction's fixed costs -- taking the lock, the
round trips, the commit -- are paid once per batch. Here the appends of one process go
through a single writer: whatever queued up while it was busy is written next, in one
transaction. Each batch stays atomic and independent: when any batch of a group is
refused, the group is written again one batch at a time, so only the faulty batch
fails, with its own error. A lone batch is written exactly as without grouping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.v1 import events_pb2

from ledgerflow_service.principal import Principal
from ledgerflow_service.store import append as ledger
from ledgerflow_service.store.backend import Database
from ledgerflow_service.store.projector import Projector

# A group holds at most this many events (a batch holds at most MAX_BATCH_EVENTS).
MAX_GROUP_EVENTS = 5 * ledger.MAX_BATCH_EVENTS


@dataclass
class _Ticket:
    submission: ledger.Submission
    done: bool = False
    recorded: list[events_pb2.Event] | None = None
    error: BaseException | None = None

    def succeed(self, recorded: list[events_pb2.Event]) -> None:
        self.recorded, self.done = recorded, True

    def settle(self, write: Callable[[ledger.Submission], list[events_pb2.Event]]) -> None:
        """Writes the ticket's batch alone, keeping the outcome for its caller."""
        try:
            self.recorded = write(self.submission)
        except Exception as error:
            self.error = error
        self.done = True


class GroupCommit:
    """The append path of one process (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        projector: Projector[Any],
        *,
        max_group_events: int = MAX_GROUP_EVENTS,
    ) -> None:
        self.database = database
        self.projector = projector
        self.max_group_events = max_group_events
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def append(
        self,
        events: Sequence[events_pb2.Event],
        principal: Principal,
        still_wanted: Callable[[], bool] | None = None,
        derived: list[events_pb2.Event] | None = None,
    ) -> list[events_pb2.Event]:
        """Appends one batch atomically; returns its recorded envelopes in order. The
        events the service added in the same transaction (see store/append.py) go to
        `derived`, when given."""
        batch = ledger.prepare(events, self.projector, self.database.dialect)
        ticket = _Ticket(ledger.Submission(batch, principal, still_wanted))
        with self._queue_lock:
            self._queue.append(ticket)
        while not ticket.done:
            with self._writer:
                # Whoever holds the writer writes everything queued so far, this
                # ticket included unless a group before it filled up.
                if not ticket.done:
                    self._write(self._take_group())
        if ticket.error is not None:
            raise ticket.error
        assert ticket.recorded is not None
        if derived is not None:
            derived.extend(ticket.submission.derived)
        return ticket.recorded

    def _take_group(self) -> list[_Ticket]:
        """The oldest queued batches, up to the size limit, whose event ids do not
        overlap (a batch retried while its first attempt is still queued waits for the
        next group, where it finds its events recorded)."""
        group: list[_Ticket] = []
        ids: set[str] = set()
        size = 0
        with self._queue_lock:
            for ticket in self._queue:
                batch_ids = ticket.submission.batch.addresses.keys()
                if group and size + len(batch_ids) > self.max_group_events:
                    break
                if ids.isdisjoint(batch_ids):
                    group.append(ticket)
                    ids.update(batch_ids)
                    size += len(batch_ids)
            taken = {id(t) for t in group}
            self._queue = [t for t in self._queue if id(t) not in taken]
        return group

    def _write(self, group: list[_Ticket]) -> None:
        if len(group) > 1:
            try:
                recorded = ledger.append_together(
                    self.database, self.projector, [t.submission for t in group]
                )
            except Exception:  # each batch is retried alone below
                pass
            else:
                for ticket, envelopes in zip(group, recorded, strict=True):
                    ticket.succeed(envelopes)
                return
        for ticket in group:
            ticket.settle(
                lambda submission: ledger.append_prepared(self.database, self.projector, submission)
            )
