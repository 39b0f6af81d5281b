"""A task's artifacts: ``task.data.x`` (values), ``task.artifacts`` (the list, and by
name) and :class:`DataArtifact` (one artifact's record, its value on first read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledgerflow.client.settings import _clients
from ledgerflow.client.tagged import RunTagged
from ledgerflow.v1 import (
    records_pb2,
)

if TYPE_CHECKING:
    from ledgerflow.client.core import Task


class _Data:
    """``task.data.x``: artifact values as attributes, loaded on first access."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._task[name].data
        except KeyError:
            raise AttributeError(f"task {self._task.pathspec} has no artifact {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._task

    def __repr__(self) -> str:
        return f"<data of {self._task.pathspec}: {', '.join(self._task._records())}>"


class Artifacts(list["DataArtifact"]):
    """The artifacts of a task, as a list and by name: ``task.artifacts.x.data``."""

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self._by_name = {artifact.id: artifact for artifact in self}
        self._pathspec = task.pathspec

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"task {self._pathspec} has no artifact {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name if isinstance(name, str) else super().__contains__(name)


class DataArtifact(RunTagged):
    """One artifact: its metadata now, its value when `.data` is read."""

    _UNLOADED = object()

    def __init__(
        self, record: records_pb2.Artifact, *, _store: Any = None, _task: Any = None
    ) -> None:
        self._record = record
        self._store = _store
        self._task = _task
        self.id = record.name
        self.pathspec = f"{record.task_pathspec}/{record.name}"
        self._value: Any = self._UNLOADED

    def __repr__(self) -> str:
        return f"DataArtifact('{self.pathspec}')"

    @property
    def data(self) -> Any:
        if self._value is self._UNLOADED:
            store = self._store or _clients()[1]
            self._value = store.load(self._record.content_key, self._record.serializer)
        return self._value

    @property
    def task(self) -> Any:
        """The task that recorded it."""
        if self._task is None:
            from ledgerflow import Task  # the public name: core imports this module

            self._task = Task(self._record.task_pathspec)
        return self._task

    def _tagged_run(self) -> Any:
        return self.task.parent.parent

    @property
    def sha(self) -> str:
        return self._record.content_key

    @property
    def size(self) -> int:
        return self._record.size

    @property
    def type(self) -> str:
        return self._record.type_name
