"""The seam between the event store and the read models.

The store assigns each appended event its stream version and global position, then
hands the batch to a :class:`Projector`, which checks it against the read models and
folds it into them inside the same transaction: a refused event leaves nothing behind.
The store knows only this interface; the read models implement it
(``ledgerflow_service.read_models``).

A projector works in three steps so that the store can keep its append lock short:
*plan* (before the lock: the checks that need nothing but the events, the queries that
load the rows they touch, and the rows that depend on the events alone), *fold* (under
the lock, on the loaded rows: apply each event in memory) and *save* (the changed rows,
sent with the commit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ledgerflow.v1 import events_pb2

from ledgerflow_service.store.addressing import EventAddress
from ledgerflow_service.store.backend import Database, Dialect, Row, RowInsert, Tx

if TYPE_CHECKING:
    from ledgerflow_service.errors import LedgerError
    from ledgerflow_service.principal import Principal


@dataclass(slots=True)
class PendingEvent:
    """An event in a batch with its address, position and time assigned. `principal`
    is who appends it now; None when replaying events recorded earlier (their
    permission was checked then)."""

    event: events_pb2.Event
    address: EventAddress
    position: int
    recorded_at_us: int
    actor: str
    principal: Principal | None = None


class Plan(Protocol):
    """What a projector worked out for a batch before the append lock."""

    @property
    def queries(self) -> Sequence[tuple[str, Sequence[Any]]]:
        """Independent queries loading every read-model row the batch can touch."""
        ...


class Fold(Protocol):
    """The read-model rows of one batch, changed in memory."""

    def apply(self, item: PendingEvent) -> None:
        """Checks one event against the current state (raising a LedgerError when it
        breaks a rule) and folds it in."""

    def save(self, tx: Tx, also: Sequence[RowInsert] = ()) -> None:
        """Writes the changed rows, with the store's own rows in `also`."""

    def follow_ups(self, tx: Tx) -> Sequence[events_pb2.Event]:
        """The events that follow from those applied since the last call (a process
        manager's decisions), which the store appends and applies in the same
        transaction; empty when nothing follows. Only live appends decide: a replay's
        fold answers empty, the decisions being in the ledger already."""


PlanT = TypeVar("PlanT", bound=Plan)


class Projector(Protocol[PlanT]):
    """The read models, as the store sees them."""

    @property
    def tables(self) -> Sequence[str]:
        """The tables a rebuild empties before folding every event again."""
        ...

    def plan(
        self, items: Iterable[tuple[str, events_pb2.Event, EventAddress]], dialect: Dialect
    ) -> PlanT:
        """Checks what a batch's events (id, event, address) allow checking alone, and
        plans its reads."""
        ...

    def merge(self, plans: Iterable[PlanT], dialect: Dialect) -> PlanT:
        """The plan of several batches appended in one transaction."""
        ...

    def independent_rows(self, planned: Sequence[tuple[PlanT, Collection[str]]]) -> list[RowInsert]:
        """The rows that depend on the events alone (not on the read models' state), of
        the given event ids of each plan: the store sends them early, with the events."""
        ...

    def fold(self, tx: Tx, plan: PlanT, rows: list[list[Row]]) -> Fold:
        """The fold of a planned batch over the rows its queries returned (it may read
        more through `tx`, under the append lock)."""
        ...

    def load(self, tx: Tx, pending: Sequence[PendingEvent]) -> Fold:
        """Plans and loads the fold of events read back from the ledger (replays)."""
        ...

    def explain_conflict(
        self, database: Database, plans: Sequence[PlanT], error: Exception
    ) -> LedgerError | None:
        """The error to answer for a unique-key violation on a read-model table while
        saving these plans' batches, or None when it is not the projector's."""
        ...


def position_row(position: int) -> RowInsert:
    """Records `position` as the last event the read models have applied."""
    return RowInsert(
        "projection_position",
        ("name", "position"),
        [("main", position)],
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )
