"""Cards: HTML reports of a task, as Metaflow's ``@card`` and ``metaflow.cards``.

    from ledgerflow import FlowSpec, card, current, step
    from ledgerflow.cards import Markdown, Table

    class ReportFlow(FlowSpec):
        @card                          # the default card: parameters, artifacts, graph
        @card(type="blank", id="report")
        @step
        def start(self):
            current.card["report"].append(Markdown("# Scores"))
            current.card["report"].append(Table([[1, 0.9]], headers=["fold", "auc"]))
            self.next(self.end)

``python flow.py card view RUN/start/TASK`` shows them; ``get_cards(task)`` reads them.
The modules: components.py (what a card is made of), _page.py (the self-contained page),
_default.py (the default card), _decorator.py (@card and current.card), _access.py
(reading them back). See docs/cards.md.
"""

from ledgerflow.cards._access import Card, get_cards
from ledgerflow.cards._decorator import CardComponentCollector, card
from ledgerflow.cards.components import (
    Artifact,
    CardComponent,
    Image,
    Markdown,
    Table,
    VegaChart,
)

__all__ = [
    "Artifact",
    "Card",
    "CardComponent",
    "CardComponentCollector",
    "Image",
    "Markdown",
    "Table",
    "VegaChart",
    "card",
    "get_cards",
]
