"""What started a run of a deployment, as ``current.trigger`` and ``Run.trigger`` give
it: built from a task's facts (``ledgerflow.engine.facts.trigger_facts``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TriggerEvent:
    """A published event that started a run (``current.trigger.event``)."""

    name: str
    id: str
    payload: dict[str, Any]
    published_at: datetime
    published_by: str
    # Metaflow's MetaflowEvent says where the event came from.
    type: str = "event"

    @property
    def timestamp(self) -> datetime:
        return self.published_at


@dataclass(frozen=True)
class Trigger:
    """What started this run of a deployment (``current.trigger``): its schedule
    (``kind == 'schedule'``), a backfill, someone's trigger, an upstream run's success
    (``kind == 'run'``: ``.run``) or a published event (``kind == 'event'``:
    ``.event``), and when (a flow reads its partition date from ``scheduled_at``)."""

    deployment: str
    deployment_version: int
    kind: str
    scheduled_at: datetime
    # "Flow/run_id" of the upstream run whose success started this one.
    upstream_run: str | None = None
    event: TriggerEvent | None = None

    @property
    def run(self) -> Any:
        """The upstream Run whose success started this one (None otherwise), whatever
        the current namespace (the upstream's runs are in its own production one)."""
        if self.upstream_run is None:
            return None
        from ledgerflow import Run

        return Run(self.upstream_run, _namespace_check=False)

    @property
    def runs(self) -> list[Any]:
        return [self.run] if self.upstream_run else []

    @property
    def events(self) -> list[TriggerEvent]:
        return [self.event] if self.event else []


def trigger_of(facts: dict[str, Any] | None) -> Trigger | None:
    """The Trigger of a task's facts (``engine.facts.trigger_facts``)."""
    if not facts:
        return None
    found = dict(facts)
    found["scheduled_at"] = datetime.fromisoformat(found["scheduled_at"])
    if found.get("event"):
        event = dict(found["event"])
        event["published_at"] = datetime.fromisoformat(event["published_at"])
        found["event"] = TriggerEvent(**event)
    return Trigger(**found)
