"""The cards read model: the HTML reports (@card) a task attempt rendered, each a
content key in the datastore with its id, type, size and render error.

A card is recorded by the attempt that rendered it, while that attempt is open (under
its lease in an orchestrated run), once per (attempt, type, id): a later record of the
same card is ignored, so a rebuild keeps the same first record the live fold kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import AlreadyExists, InvalidArgument
from ledgerflow_service.names import check_content_key, check_identifier
from ledgerflow_service.read_models.tasks import MAX_ATTEMPT
from ledgerflow_service.validation import MAX_INT64, check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

CARD_COLUMNS = (
    "task_pathspec", "attempt", "card_type", "card_id", "position", "run_pathspec",
    "content_key", "size", "error", "recorded_at_us",
)  # fmt: skip
# What a record of the same card again does: nothing (the first record stands).
ON_CONFLICT = "ON CONFLICT (task_pathspec, attempt, card_type, card_id) DO NOTHING"
MAX_CARDS = 100
MAX_ERROR_CHARS = 4000


def card_rows(p: events_pb2.CardsRecorded, path: str, run_path: str, at_us: int) -> list[Any]:
    """The cards table's rows of a CardsRecorded event, once each card is checked: a
    type and an optional id that are identifiers, a content key, each (type, id) once
    and each id once."""
    if p.attempt > MAX_ATTEMPT:
        raise InvalidArgument(f"attempt {p.attempt} of task {path} is out of range")
    if len(p.cards) > MAX_CARDS:
        raise InvalidArgument(f"task {path} records {len(p.cards)} cards; at most {MAX_CARDS}")
    rows: list[Any] = []
    seen: set[tuple[str, str]] = set()
    ids: set[str] = set()
    for position, card in enumerate(p.cards):
        kind = check_identifier("card type", card.type)
        if card.id:
            check_identifier("card id", card.id)
            if card.id in ids:
                raise AlreadyExists(f"card id {card.id!r} appears twice for task {path}")
            ids.add(card.id)
        if (kind, card.id) in seen:
            raise AlreadyExists(f"a {kind} card without an id appears twice for task {path}")
        seen.add((kind, card.id))
        named = f"card {card.id or kind!r}"
        if not card.content_key:
            raise InvalidArgument(f"{named} has no content_key")
        check_content_key(f"{named} content_key", card.content_key)
        if card.size > MAX_INT64:
            raise InvalidArgument(f"{named} has size {card.size}, over 2^63 - 1")
        if len(card.error) > MAX_ERROR_CHARS:
            raise InvalidArgument(
                f"{named}: error is {len(card.error)} characters; at most {MAX_ERROR_CHARS}"
            )
        check_text(f"{named} error", card.error)
        rows.append((
            path, p.attempt, kind, card.id, position, run_path, card.content_key, card.size,
            card.error, at_us,
        ))  # fmt: skip
    return rows


def cards_recorded(fold: ReadModelFold, p: events_pb2.CardsRecorded, item: PendingEvent) -> None:
    """An open attempt of a running run records its cards."""
    path = item.address.task_pathspec or ""
    fold.run(item.address.run_pathspec, open_only=True)
    fold.open_attempt(path, p.attempt)
    fold.new_cards.extend(card_rows(p, path, item.address.run_pathspec, item.recorded_at_us))


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {"cards_recorded": cards_recorded}
