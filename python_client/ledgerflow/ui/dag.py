"""A run's graph as SVG, drawn on the server: steps in layers (a step one layer below
the deepest step that feeds it), each a box colored by its tasks' states with its task
counts (dashed while none has started), edges from the steps that feed it (dashed out of
a foreach: its fan-out; dotted out of a switch: one of its cases runs). The step a
foreach fans out to shows as one box with its count of tasks ("98/100 tasks"), so a run
of 10,000 tasks draws as fast as one of ten."""

from __future__ import annotations

from html import escape

from ledgerflow.ui.model import StepView
from ledgerflow.ui.text import cut

BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y = 170, 46, 30, 44
# Dashed out of a foreach (its fan-out); dotted out of a switch (one case runs).
_EDGE_CLASSES = {"foreach": "edge fanout", "switch": "edge case"}


def layers(steps: dict[str, StepView]) -> list[list[str]]:
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            feeders = [f for f in steps[name].inputs if f in steps and f not in seen]
            depth[name] = 1 + max((depth_of(f, seen | {name}) for f in feeders), default=-1)
        return depth[name]

    for name in steps:
        depth_of(name)
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in steps:  # steps come in the order their first task started
        rows[depth[name]].append(name)
    return rows


def svg(steps: dict[str, StepView], link: str) -> str:
    """The graph; `link` is a format string for a step's page, with {step}."""
    rows = layers(steps)
    width = max((len(row) for row in rows), default=1) * (BOX_WIDTH + GAP_X) + GAP_X
    height = len(rows) * (BOX_HEIGHT + GAP_Y) + GAP_Y
    place: dict[str, tuple[int, int]] = {}
    for y, row in enumerate(rows):
        offset = (width - len(row) * (BOX_WIDTH + GAP_X) + GAP_X) // 2
        for x, name in enumerate(row):
            place[name] = (offset + x * (BOX_WIDTH + GAP_X), GAP_Y // 2 + y * (BOX_HEIGHT + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" '
        f'aria-label="the run\'s steps and how they connect" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for name, view in steps.items():
        x2, y2 = place[name]
        for feeder in sorted(view.inputs):
            if feeder in place:
                x1, y1 = place[feeder]
                kind = _EDGE_CLASSES.get(steps[feeder].kind, "edge")
                parts.append(
                    f'<line class="{kind}" x1="{x1 + BOX_WIDTH // 2}" y1="{y1 + BOX_HEIGHT}" '
                    f'x2="{x2 + BOX_WIDTH // 2}" y2="{y2}"/>'
                )
    for name, view in steps.items():
        x, y = place[name]
        done = view.counts.get("succeeded", 0)
        # Against the tasks a foreach planned, not only those begun so far.
        of = max(view.planned or 0, view.total)
        label = f"{done}/{of} task" + ("s" if of > 1 else "")
        if not view.total:
            label = "not started"
        kind = f" ({view.kind})" if view.kind in ("split", "foreach", "join", "switch") else ""
        # A step with no task yet has no page to link to.
        opening = (f'<a href="{escape(link.format(step=name))}" ' if view.total
                   else "<g ")  # fmt: skip
        parts.append(
            f'{opening}class="step {view.state}" data-step="{escape(name)}" '
            f'data-state="{view.state}">'
            f"<title>{escape(name)}{kind}: {view.state}, {escape(_counts(view))}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 19}" class="name">{escape(_fitted(name + kind))}</text>'
            f'<text x="{x + 10}" y="{y + 37}" class="counts">{escape(label)} · {view.state}</text>'
            + ("</a>" if view.total else "</g>")
        )
    parts.append("</svg>")
    return "".join(parts)


# What a box's first line holds (13 px bold, 170 px less its margins).
NAME_CHARACTERS = 20


def _fitted(label: str) -> str:
    """The label cut to its box, with an ellipsis (the box's title has it whole)."""
    return cut(label, NAME_CHARACTERS)


def _counts(view: StepView) -> str:
    counted = ", ".join(f"{count} {state}" for state, count in sorted(view.counts.items()))
    return counted or "no tasks yet"
