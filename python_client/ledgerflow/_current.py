"""``current``: facts about the task that is running, for use inside a step."""

from __future__ import annotations

from typing import Any, NamedTuple

from ledgerflow._trigger import trigger_of


class Parallel(NamedTuple):
    """A @parallel task's place in its gang (``current.parallel``), as Metaflow's."""

    main_ip: str
    num_nodes: int
    node_index: int


OUTSIDE_A_GANG = {"main_ip": "127.0.0.1", "num_nodes": 1, "node_index": 0}


class Current:
    """Set by the runtime in each task process before the step runs."""

    def __init__(self) -> None:
        self._facts: dict[str, Any] = {}

    def _set(self, **facts: Any) -> None:
        self._facts = dict(facts)

    def _put(self, name: str, value: Any) -> None:
        """Adds one fact for the running task (``current.card``, set by @card)."""
        self._facts[name] = value

    def __getattr__(self, name: str) -> Any:
        facts = self.__dict__.get("_facts", {})
        if name == "trigger":
            return trigger_of(facts.get("trigger"))
        if name == "parallel":  # outside a gang, as Metaflow: a gang of one, here
            return Parallel(**facts.get("parallel", OUTSIDE_A_GANG))
        if name in facts:
            return facts[name]
        if name in _KNOWN:
            return None
        raise AttributeError(f"current has no attribute {name!r}")

    @property
    def is_running_flow(self) -> bool:
        return bool(self._facts)

    @property
    def is_parallel(self) -> bool:
        """Whether the running task is a node of a @parallel gang."""
        return bool(self._facts.get("parallel"))

    @property
    def pathspec(self) -> str | None:
        if not self._facts:
            return None
        return "/".join(
            str(self._facts[k]) for k in ("flow_name", "run_id", "step_name", "task_id")
        )


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
    # With @card on the step: its cards' components (ledgerflow.cards); None without.
    "card",
}

current = Current()
