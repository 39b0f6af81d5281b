"""The default card (``@card`` with no type): what a person asks of a finished task
first. Its parameters, its artifacts with short previews, its timing and outcome, and
the flow's graph with this task's step marked (drawn by the web UI's own code)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from html import escape
from typing import Any

from ledgerflow.cards.components import CardComponent, Table, preview_text
from ledgerflow.datastore.content import ContentStore
from ledgerflow.v1 import records_pb2


class Html(CardComponent):
    """Markup this package wrote itself (never a user's text)."""

    def __init__(self, html: str) -> None:
        self.html = html

    def render(self) -> str:
        return self.html


def heading(text: str) -> Html:
    return Html(f"<h2>{escape(text)}</h2>")


def default_components(task: Any, outcome: Any) -> list[CardComponent]:
    """The default card's sections for a runtime TaskContext and its TaskOutcome."""
    flow = task.flow
    parameters = dict(task.parameters)
    values = {k: v for k, v in vars(flow).items() if not k.startswith("_")} if flow else {}
    found: list[CardComponent] = [heading("Task")]
    found.append(Table(_task_rows(task, outcome)))
    if parameters:
        found.append(heading("Parameters"))
        rows = [[name, preview_text(value, 200)] for name, value in sorted(parameters.items())]
        found.append(Table(rows, headers=["name", "value"]))
    found.append(heading("Artifacts"))
    found.append(Table(_artifact_rows(task.store, outcome, values, parameters),
                       headers=["name", "type", "value"]))  # fmt: skip
    found.append(heading("Graph"))
    found.append(Html(graph_svg(task.graph, task.spec.step_name)))
    return found


def _task_rows(task: Any, outcome: Any) -> list[list[str]]:
    facts = task.facts
    began = datetime.fromtimestamp(task.started_at, UTC)
    state = "succeeded" if outcome.ok and not outcome.caught else "failed"
    if outcome.caught:
        state = "failed; @catch caught it"
    rows = [
        ["pathspec", "/".join(str(facts.get(k, "")) for k in
                              ("flow_name", "run_id", "step_name", "task_id"))],
        ["attempt", str(task.spec.attempt)],
        ["status", state],
        ["started", began.isoformat(timespec="seconds")],
        ["duration", f"{time.time() - task.started_at:.2f} s"],
    ]  # fmt: skip
    if outcome.error_type:
        rows.append(["error", f"{outcome.error_type}: {outcome.error_message}"])
    return rows


def _artifact_rows(
    store: ContentStore, outcome: Any, values: dict[str, Any], parameters: dict[str, Any]
) -> list[list[str]]:
    """One row per artifact the attempt stored: a value still in memory is shown from
    there; one passed through from an earlier step is read with the loader that runs
    no code (the web UI's preview)."""
    rows = []
    for record in sorted(outcome.artifacts, key=lambda r: r.name):
        if record.name.startswith("_") or record.name in parameters:
            continue
        if record.name in values:
            text = preview_text(values[record.name], 300)
        else:
            text = _stored_preview(store, record)
        rows.append([record.name, record.type_name, text])
    return rows


def _stored_preview(store: ContentStore, record: records_pb2.Artifact) -> str:
    from ledgerflow.ui.model import preview

    return preview_text(preview(store, record) or f"<{record.size} bytes>", 300)


def graph_svg(graph: Any, step_name: str) -> str:
    """The flow's graph as the web UI draws it, with `step_name` marked."""
    from ledgerflow.ui.dag import svg
    from ledgerflow.ui.model import StepView

    steps = {node.name: StepView(node.name, kind=node.kind) for node in graph}
    for node in graph:
        for target in node.out_funcs:
            if target in steps:
                steps[target].inputs.add(node.name)
    # The UI's counts of tasks say nothing here (the card sees one task): left out.
    drawn = re.sub(r'<text [^>]*class="counts">[^<]*</text>', "", svg(steps, "#"))
    drawn = re.sub(r"<title>[^<]*</title>", "", drawn)
    # Step names are identifiers: safe inside the selector.
    mark = f'<style>.dag [data-step="{step_name}"] rect{{fill:#e6f0ff;stroke:#1d5fd1;' \
           "stroke-width:3}</style>"  # fmt: skip
    legend = f'<p class="note">this task\'s step, {escape(step_name)}, is marked</p>'
    return f'<div class="graph">{mark}{drawn}{legend}</div>'
