"""``self.artifacts.flow``: the end-step artifacts of the run a service is bound to."""

from __future__ import annotations

import threading
from typing import Any

from ledgerflow import client


class FlowArtifacts:
    """``self.artifacts.flow.NAME``: the bound run's end-step artifacts, each read on
    first use (the end task's DataArtifact keeps the value for the life of the binding;
    the lock makes concurrent first requests read it once)."""

    def __init__(self, run: client.Run) -> None:
        self._run = run
        self._task = run.end_task
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._task is None or name not in self._task:
                raise AttributeError(f"run {self._run.pathspec} has no artifact {name!r}")
            return self._task[name].data


class ArtifactsView:
    """What ``self.artifacts`` is: ``.flow``, the bound run's artifacts."""

    def __init__(self, run: client.Run) -> None:
        self.flow = FlowArtifacts(run)
