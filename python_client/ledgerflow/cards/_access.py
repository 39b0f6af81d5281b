"""Reading cards back: ``get_cards(task)`` (Metaflow's ``metaflow.cards.get_cards``)
gives the cards of a task's latest attempt that rendered any, each fetched from the
datastore when its HTML is first asked for."""

from __future__ import annotations

from typing import Any

from ledgerflow.v1 import records_pb2


class Card:
    """One stored card: ``.id``, ``.type``, ``.error`` (empty when it rendered) and its
    page, ``.html`` (or ``.get()``)."""

    def __init__(self, record: records_pb2.Card, store: Any, pathspec: str) -> None:
        self.record = record
        self.id = record.id or None
        self.type = record.type
        self.error = record.error
        self.attempt = record.attempt
        self.pathspec = pathspec
        self._store = store
        self._html: str | None = None

    def __repr__(self) -> str:
        return f"Card(type={self.type!r}, id={self.id!r}, task={self.pathspec!r})"

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = self._store.load(self.record.content_key, "raw").decode("utf-8")
        return self._html

    def get(self) -> str:
        return self.html

    def _repr_html_(self) -> str:  # shown inline in a notebook
        return self.html


def select(
    cards: list[records_pb2.Card], card_id: str | None, card_type: str | None
) -> list[records_pb2.Card]:
    return [
        c for c in cards
        if (card_id is None or c.id == card_id) and (card_type is None or c.type == card_type)
    ]  # fmt: skip


def get_cards(task: Any, id: str | None = None, type: str | None = None) -> list[Card]:
    """The cards of `task` (a client ``Task`` or its pathspec, Flow/run/step/task),
    optionally only those with this `id` or `type`."""
    from ledgerflow.client import Task
    from ledgerflow.ui.model import cards_of

    found = Task(task) if isinstance(task, str) else task
    store = found._step._store()
    record = found._record
    return [Card(c, store, found.pathspec) for c in select(cards_of(record), id, type)]
