"""``python flow.py card view|get|list PATHSPEC``: a task's cards (see docs/cards.md).

PATHSPEC is RUN_ID/STEP/TASK_ID, RUN_ID/STEP (a step with one task), or STEP alone
(the latest run of the flow by this user, as Metaflow's ``card view start``)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from ledgerflow.cli.errors import friendly_errors
from ledgerflow.v1 import records_pb2

ID_OPTION = click.option("--id", "card_id", default=None, help="The card with this id.")
TYPE_OPTION = click.option("--type", "card_type", default=None, help="The card of this type.")


def _latest_cards(task: records_pb2.Task) -> list[records_pb2.Card]:
    # Imported here: every task process starts through the flow's command line.
    from ledgerflow.ui.model import cards_of

    return cards_of(task)


def _task(session: Any, flow: str, pathspec: str) -> records_pb2.Task:
    parts = pathspec.strip("/").split("/")
    if len(parts) == 4 and parts[0] == flow:  # Flow/RUN/STEP/TASK
        parts = parts[1:]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise click.BadParameter(
            "use RUN_ID/STEP/TASK_ID, RUN_ID/STEP or STEP", param_hint="PATHSPEC"
        )
    if len(parts) == 1:
        user = session.config.username
        latest = next(iter(session.metadata.runs(flow, tags=[f"user:{user}"])), None)
        if latest is None:
            raise click.ClickException(f"{flow} has no runs by {user}: give RUN_ID/STEP/TASK_ID")
        parts = [latest.run_id, parts[0]]
    tasks = session.metadata.tasks(flow, parts[0], parts[1])
    if len(parts) == 3:
        tasks = [t for t in tasks if t.task_id == parts[2]]
    if not tasks:
        raise click.ClickException(f"no task at {flow}/{'/'.join(parts)}")
    if len(tasks) > 1:
        some = ", ".join(t.pathspec for t in tasks[:5])
        raise click.ClickException(
            f"step {parts[1]} of run {parts[0]} has {len(tasks)} tasks ({some}, ...): "
            "name one, RUN_ID/STEP/TASK_ID"
        )
    return tasks[0]


def _one_card(
    task: records_pb2.Task, card_id: str | None, card_type: str | None
) -> records_pb2.Card:
    from ledgerflow.cards._access import select

    cards = _latest_cards(task)
    if not cards:
        raise click.ClickException(f"task {task.pathspec} has no cards (add @card to its step)")
    found = select(cards, card_id, card_type)
    if not found:
        have = ", ".join(_name(c) for c in cards)
        wanted = f"id {card_id!r}" if card_id else f"type {card_type!r}"
        raise click.ClickException(
            f"task {task.pathspec} has no card with {wanted} (it has: {have})"
        )
    if len(found) > 1 and card_id is None:
        unnamed = [c for c in found if not c.id]
        if len(unnamed) != 1:
            have = ", ".join(_name(c) for c in found)
            raise click.ClickException(
                f"task {task.pathspec} has {len(found)} cards ({have}): choose one with --id"
            )
        return unnamed[0]
    return found[0]


def _name(card: records_pb2.Card) -> str:
    return f"id {card.id!r} ({card.type})" if card.id else f"{card.type} card"


def _html(session: Any, card: records_pb2.Card) -> bytes:
    return bytes(session.store.load(card.content_key, "raw"))


def _can_open_browser() -> bool:
    """A graphical browser to open: on a server (no display) the path is enough."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def add_card_commands(cli: click.Group, flow: str) -> None:
    """Adds the ``card`` group to a flow file's command line."""

    @cli.group()
    def card() -> None:
        """See the cards (@card) of a task."""

    @card.command("list")
    @click.argument("pathspec")
    @click.pass_obj
    @friendly_errors
    def card_list(session: Any, pathspec: str) -> None:
        """List the cards of RUN_ID/STEP/TASK_ID (its latest attempt's)."""
        task = _task(session, flow, pathspec)
        cards = _latest_cards(task)
        if not cards:
            raise click.ClickException(f"task {task.pathspec} has no cards (add @card to its step)")
        for found in cards:
            error = f"  error: {found.error}" if found.error else ""
            click.echo(
                f"{found.id or '-':<20} {found.type:<8} attempt {found.attempt}  "
                f"{found.size} bytes{error}"
            )

    @card.command("get")
    @click.argument("pathspec")
    @click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
    @ID_OPTION
    @TYPE_OPTION
    @click.pass_obj
    @friendly_errors
    def card_get(
        session: Any, pathspec: str, file: str | None, card_id: str | None, card_type: str | None
    ) -> None:
        """Write a card's HTML to FILE (or stdout)."""
        found = _one_card(_task(session, flow, pathspec), card_id, card_type)
        html = _html(session, found)
        if file in (None, "-"):
            click.get_binary_stream("stdout").write(html)
        else:
            Path(file).write_bytes(html)
            click.echo(file)

    @card.command("view")
    @click.argument("pathspec")
    @ID_OPTION
    @TYPE_OPTION
    @click.pass_obj
    @friendly_errors
    def card_view(session: Any, pathspec: str, card_id: str | None, card_type: str | None) -> None:
        """Open a card in the browser (on a machine without one, print its file)."""
        task = _task(session, flow, pathspec)
        found = _one_card(task, card_id, card_type)
        # A folder of this user's own (not a shared, guessable one under /tmp).
        folder = Path(tempfile.mkdtemp(prefix="ledgerflow-card-"))
        name = "-".join([*task.pathspec.split("/"), found.id or found.type]) + ".html"
        path = folder / name
        path.write_bytes(_html(session, found))
        if _can_open_browser():
            import webbrowser  # only here: every flow's command line imports this module

            webbrowser.open(path.as_uri())
        click.echo(str(path))
