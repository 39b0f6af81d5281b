"""The run tags read model: user tags come and go (the events keep their history);
system tags, set when the run starts, are never removed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import FailedPrecondition, NotFound
from ledgerflow_service.names import check_tag

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

TAG_COLUMNS = ("run_pathspec", "tag", "is_system")


def set_initial_tags(
    fold: ReadModelFold, path: str, system_tags: Iterable[str], user_tags: Iterable[str]
) -> None:
    """The tags a run starts with (checked by the caller)."""
    tags = fold.run_tags.setdefault(path, {})
    for tag, is_system in [*((t, 1) for t in system_tags), *((t, 0) for t in user_tags)]:
        if tag not in tags:
            tags[tag] = is_system
            fold.tag_changes[(path, tag)] = is_system


def tags_added(fold: ReadModelFold, p: events_pb2.TagsAdded, item: PendingEvent) -> None:
    path = item.address.run_pathspec
    fold.run(path, open_only=False, missing=NotFound)
    tags = fold.run_tags[path]
    for tag in p.tags:
        check_tag(tag)
        if tag not in tags:
            tags[tag] = 0
            fold.tag_changes[(path, tag)] = 0


def tags_removed(fold: ReadModelFold, p: events_pb2.TagsRemoved, item: PendingEvent) -> None:
    path = item.address.run_pathspec
    fold.run(path, open_only=False, missing=NotFound)
    tags = fold.run_tags[path]
    for tag in p.tags:
        if tags.get(tag) == 1:
            raise FailedPrecondition(f"{tag!r} is a system tag of run {path}; it cannot be removed")
    for tag in p.tags:
        if tag in tags:
            del tags[tag]
            fold.tag_changes[(path, tag)] = None


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {"tags_added": tags_added, "tags_removed": tags_removed}
