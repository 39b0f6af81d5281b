"""What a run prints as it goes (runtime/progress.py): a task's output, every line after
the task's name, plain when piped and the name dimmed on a terminal."""

from __future__ import annotations

import io

from ledgerflow.runtime.progress import RunReporter
from rich.console import Console


def _shown(terminal: bool, text: str) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, highlight=False, soft_wrap=True)
    RunReporter(console).task_output("train", "7", text)
    return out.getvalue()


def test_every_line_of_a_tasks_output_follows_its_name() -> None:
    text = "loss [0.5] 100%\n[bold]not markup[/bold]\n\nlast line\n"
    assert _shown(False, text) == (
        "    train/7> loss [0.5] 100%\n    train/7> [bold]not markup[/bold]\n"
        "    train/7> \n    train/7> last line\n"
    )
    assert _shown(False, "") == ""


def test_on_a_terminal_the_tasks_name_is_dimmed() -> None:
    assert _shown(True, "hello\n") == "    \x1b[2mtrain/7>\x1b[22m hello\n"


def test_names_that_look_like_emoji_codes_are_printed_as_they_are(capsys) -> None:  # type: ignore[no-untyped-def]
    """The reporter a run gets (its own console on stdout) does not turn ":fire:" in a
    user's name or a warning into an emoji."""
    reporter = RunReporter()
    reporter.run_started("Flow", "1", ":fire:", "local")
    reporter.warn("a :smile: in a message")
    out = capsys.readouterr().out
    assert "by :fire: (local metadata)" in out
    assert "a :smile: in a message" in out
