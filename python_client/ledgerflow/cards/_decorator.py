"""``@card``: the step's cards, and ``current.card``, where the step adds components.

Each step with @card gets one :class:`CardsHook` (a TaskHook, see _decorators.py)
holding its cards in the order they were declared. Before the step it puts a
:class:`CardComponentCollector` at ``current.card``; after the step, whether it
failed or not, it renders each card, stores the page in the datastore and returns a
CardsRecorded event that the runtime records with the attempt's outcome. Nothing a card
does fails the task: an error while rendering is shown in the card and recorded with it.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ledgerflow._current import current
from ledgerflow._decorators import task_hooks
from ledgerflow._flow_config import deferrable
from ledgerflow.cards._default import default_components
from ledgerflow.cards._page import render_page
from ledgerflow.cards.components import CardComponent
from ledgerflow.v1 import events_pb2, records_pb2

CARD_TYPES = ("default", "blank")
MAX_CARDS_PER_STEP = 20

# The longest card error the ledger keeps (ledgerflow_service.read_models.cards).
MAX_ERROR_CHARS = 4000


@dataclass
class CardSpec:
    type: str
    id: str
    timeout: float
    options: dict[str, Any]

    @property
    def label(self) -> str:
        return f"id {self.id!r}" if self.id else f"type {self.type!r} (no id)"


@deferrable
def card(
    func: Callable[..., Any] | None = None,
    *,
    type: str = "default",
    id: str | None = None,
    options: dict[str, Any] | None = None,
    timeout: float = 45,
) -> Any:
    """Renders a card (an HTML report) for each task of the step: ``type='default'``
    shows the task's parameters, artifacts, timing and the graph; ``type='blank'``
    only what the step adds with ``current.card.append(...)``. Several cards on a step
    need distinct ``id``s; ``current.card['id']`` adds to one of them. `timeout`
    (seconds) bounds the rendering: the components past it are left out."""
    if type not in CARD_TYPES:
        raise ValueError(f"@card: type {type!r} is not one of {', '.join(CARD_TYPES)}")
    if id is not None and (
        not isinstance(id, str) or not id.isidentifier() or keyword.iskeyword(id) or len(id) > 128
    ):
        raise ValueError(
            f"@card: id {id!r} is not a valid card id: use letters, digits and _ (a Python "
            "identifier, at most 128 characters)"
        )
    if timeout <= 0:
        raise ValueError("@card: timeout must be a positive number of seconds")
    spec = CardSpec(type=type, id=id or "", timeout=float(timeout), options=dict(options or {}))

    def attach(f: Callable[..., Any]) -> Callable[..., Any]:
        hooks = task_hooks(f)
        hook = next((h for h in hooks if isinstance(h, CardsHook)), None)
        if hook is None:
            hook = CardsHook()
            hooks.append(hook)
        hook.specs.insert(0, spec)  # decorators apply bottom up: keep the source order
        return f

    return attach(func) if func is not None else attach


@dataclass
class CardsHook:
    """The cards of one step (see the module's docstring)."""

    specs: list[CardSpec] = field(default_factory=list)

    def check_step(self, step_name: str) -> None:
        seen: set[tuple[str, str]] = set()
        ids: set[str] = set()
        if len(self.specs) > MAX_CARDS_PER_STEP:
            raise ValueError(f"step {step_name!r} has {len(self.specs)} @card; at most 20")
        for spec in self.specs:
            if spec.id in ids or (spec.type, spec.id) in seen:
                raise ValueError(
                    f"step {step_name!r} has two @card with {spec.label}: give each card "
                    "of a step its own id, @card(id='...')"
                )
            seen.add((spec.type, spec.id))
            if spec.id:
                ids.add(spec.id)

    def task_pre_step(self, task: Any) -> None:
        current._put("card", CardComponentCollector(self.specs, task.spec.step_name))

    def task_finished(self, task: Any, outcome: Any) -> list[events_pb2.Event]:
        collector = current.card
        if not isinstance(collector, CardComponentCollector):  # the step never started
            collector = CardComponentCollector(self.specs, task.spec.step_name)
        cards = [
            self._render(task, outcome, spec, collector.components(spec)) for spec in self.specs
        ]
        return [events_pb2.Event(cards_recorded=events_pb2.CardsRecorded(cards=cards))]

    def _render(
        self, task: Any, outcome: Any, spec: CardSpec, added: list[CardComponent]
    ) -> records_pb2.Card:
        facts = task.facts
        pathspec = "/".join(
            str(facts.get(k, "")) for k in ("flow_name", "run_id", "step_name", "task_id")
        )
        title = spec.id or ("Task " + pathspec if spec.type == "default" else spec.type)
        components = list(added)
        failure: BaseException | None = None
        if spec.type == "default":
            try:
                components = [*added, *default_components(task, outcome)]
            except Exception as error:  # the user's components still show
                failure = error
        page = render_page(
            title, f"{spec.type} card of {pathspec}, attempt {task.spec.attempt}", components,
            timeout=spec.timeout, failure=failure,
        )  # fmt: skip
        if page.error:
            print(f"[ledgerflow] card {spec.label} of {pathspec}: {page.error}", file=sys.stderr)
        stored = task.store.save(page.html.encode("utf-8"))
        return records_pb2.Card(
            id=spec.id, type=spec.type, content_key=stored.key, size=stored.size,
            error=page.error[:MAX_ERROR_CHARS].replace("\x00", "\\x00"),
        )  # fmt: skip


class CardComponents:
    """The components added to one card (``current.card['id']``): a list that takes
    components only."""

    def __init__(self, spec: CardSpec) -> None:
        self.spec = spec
        self._items: list[CardComponent] = []

    def append(self, component: CardComponent) -> None:
        self._items.append(_checked(component, self.spec))

    def extend(self, components: Iterable[CardComponent]) -> None:
        self._items.extend(_checked(c, self.spec) for c in components)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CardComponent]:
        return iter(self._items)


def _checked(component: Any, spec: CardSpec) -> CardComponent:
    if not isinstance(component, CardComponent):
        raise TypeError(
            f"card {spec.label}: {type(component).__name__} is not a card component; append "
            "Markdown, Table, Image, Artifact or VegaChart (from ledgerflow.cards)"
        )
    return component


class CardComponentCollector:
    """``current.card`` in a step with @card: ``append``/``extend``/``clear`` work on
    the step's card without an id (or its only card); ``current.card['id']`` on the
    card with that id."""

    def __init__(self, specs: list[CardSpec], step_name: str) -> None:
        self._step = step_name
        self._cards = [CardComponents(spec) for spec in specs]

    def components(self, spec: CardSpec) -> list[CardComponent]:
        return next(list(c) for c in self._cards if c.spec is spec)

    def _default(self) -> CardComponents:
        unnamed = [c for c in self._cards if not c.spec.id]
        if len(unnamed) == 1:
            return unnamed[0]
        if len(self._cards) == 1:
            return self._cards[0]
        ids = ", ".join(repr(c.spec.id) for c in self._cards if c.spec.id)
        raise ValueError(
            f"step {self._step!r} has several cards: add to one by its id, "
            f"current.card[id].append(...) (ids: {ids})"
        )

    def __getitem__(self, card_id: str) -> CardComponents:
        for found in self._cards:
            if found.spec.id and found.spec.id == card_id:
                return found
        ids = ", ".join(repr(c.spec.id) for c in self._cards if c.spec.id) or "none"
        raise KeyError(f"step {self._step!r} has no @card with id {card_id!r} (ids: {ids})")

    def __setitem__(self, card_id: str, components: Iterable[CardComponent]) -> None:
        target = self[card_id]
        target.clear()
        target.extend(components)

    def append(self, component: CardComponent, id: str | None = None) -> None:
        (self[id] if id else self._default()).append(component)

    def extend(self, components: Iterable[CardComponent], id: str | None = None) -> None:
        (self[id] if id else self._default()).extend(components)

    def clear(self, id: str | None = None) -> None:
        (self[id] if id else self._default()).clear()
