"""A task's logs on its page: every attempt's stdout and stderr, each shown from its last
TAIL_LINES lines (the page loads the rest on request, static/logs.js), with line numbers,
and each downloadable as plain text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledgerflow.exceptions import LedgerflowNotFound
from ledgerflow.v1 import records_pb2

# The lines a log shows at first: the end of a long log, where a failure says why.
TAIL_LINES = 500
STREAMS = ("stdout", "stderr")


@dataclass
class LogView:
    attempt: int
    stream: str
    # The whole log's line count, and the lines shown (its last TAIL_LINES), the first
    # of them numbered `first` (from 1).
    total: int
    first: int
    lines: list[str]
    size: int

    @property
    def tailed(self) -> bool:
        return len(self.lines) < self.total


@dataclass
class AttemptLogs:
    attempt: records_pb2.Attempt
    streams: list[LogView]


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line starts no line of its own
    return lines


def load_text(store: Any, key: str) -> str:
    return str(store.load(key, "raw").decode(errors="replace")) if key else ""


def attempt_logs(store: Any, task: records_pb2.Task, tail: int = TAIL_LINES) -> list[AttemptLogs]:
    """Each attempt's logs, the latest attempt first."""
    found = []
    for attempt in reversed(task.attempts):
        views = []
        for stream in STREAMS:
            text = load_text(store, getattr(attempt, f"{stream}_key"))
            lines = _lines(text)
            shown = lines[-tail:] if tail else lines
            views.append(LogView(attempt.attempt, stream, len(lines),
                                 len(lines) - len(shown) + 1, shown, len(text)))  # fmt: skip
        found.append(AttemptLogs(attempt, views))
    return found


def log_of(store: Any, task: records_pb2.Task, attempt: int, stream: str) -> tuple[str, str]:
    """One attempt's stream as text, and the file name to save it as."""
    if stream not in STREAMS:
        raise LedgerflowNotFound(f"a task's logs are {' and '.join(STREAMS)}, not {stream!r}")
    for each in task.attempts:
        if each.attempt == attempt:
            name = re.sub(r"[^\w.-]+", "_", f"{task.pathspec}.attempt{attempt}.{stream}.log")
            return load_text(store, getattr(each, f"{stream}_key")), name
    raise LedgerflowNotFound(f"task {task.pathspec} has no attempt {attempt}")
