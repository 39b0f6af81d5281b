"""``current``: facts about the task that is running, for use inside a step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Trigger:
    """What started this run of a deployment (``current.trigger``): its schedule
    (``kind == 'schedule'``), a backfill or someone's trigger, and the due time it
    stands for (a flow reads its partition date from ``scheduled_at``)."""

    deployment: str
    deployment_version: int
    kind: str
    scheduled_at: datetime


class Current:
    """Set by the runtime in each task process before the step runs."""

    def __init__(self) -> None:
        self._facts: dict[str, Any] = {}

    def _set(self, **facts: Any) -> None:
        self._facts = dict(facts)

    def __getattr__(self, name: str) -> Any:
        facts = self.__dict__.get("_facts", {})
        if name == "trigger":
            return trigger_of(facts.get("trigger"))
        if name in facts:
            return facts[name]
        if name in _KNOWN:
            return None
        raise AttributeError(f"current has no attribute {name!r}")

    @property
    def is_running_flow(self) -> bool:
        return bool(self._facts)

    @property
    def pathspec(self) -> str | None:
        if not self._facts:
            return None
        return "/".join(
            str(self._facts[k]) for k in ("flow_name", "run_id", "step_name", "task_id")
        )


def trigger_of(facts: dict[str, Any] | None) -> Trigger | None:
    """The Trigger of a task's facts (``engine.facts.trigger_facts``)."""
    if not facts:
        return None
    found = dict(facts)
    found["scheduled_at"] = datetime.fromisoformat(found["scheduled_at"])
    return Trigger(**found)


_KNOWN = {
    "flow_name",
    "run_id",
    "step_name",
    "task_id",
    "retry_count",
    "namespace",
    "username",
    "tags",
    "origin_run_id",
    "parameter_names",
    "trigger",
    "project_name",
    "branch_name",
    "is_production",
    "project_flow_name",
}

current = Current()
