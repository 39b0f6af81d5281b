"""The tags of an object below a run (a step, a task, an artifact): its run's, as in
Metaflow, where only a run is tagged."""

from __future__ import annotations

from typing import Any


class RunTagged:
    """``tags``, ``user_tags`` and ``system_tags`` read from :meth:`_tagged_run`'s."""

    def _tagged_run(self) -> Any:
        raise NotImplementedError

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self._tagged_run().tags)

    @property
    def user_tags(self) -> frozenset[str]:
        return frozenset(self._tagged_run().user_tags)

    @property
    def system_tags(self) -> frozenset[str]:
        return frozenset(self._tagged_run().system_tags)
