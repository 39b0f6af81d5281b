"""The artifacts read model: the values a task attempt recorded (name, content key,
size, type), each once per attempt and never replaced; a cloned task carries its
origin attempt's artifacts.

An artifact's row depends on its event alone, so it is computed before the append
lock (:func:`artifact_rows`) and the store sends it with the events; the fold only
checks that the attempt may still record."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import AlreadyExists, InvalidArgument
from ledgerflow_service.names import check_content_key, check_identifier
from ledgerflow_service.read_models.tasks import MAX_ATTEMPT
from ledgerflow_service.store.addressing import EventAddress
from ledgerflow_service.store.backend import Database, Tx
from ledgerflow_service.validation import MAX_INT64, check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

ARTIFACT_COLUMNS = (
    "task_pathspec",
    "attempt",
    "name",
    "run_pathspec",
    "step_name",
    "content_key",
    "size",
    "type_name",
    "serializer",
    "language",
)


def artifact_rows(p: events_pb2.ArtifactsRecorded, address: EventAddress) -> list[tuple[Any, ...]]:
    """The artifacts table's rows for an ArtifactsRecorded event, after the checks
    that need nothing but the event (names valid and distinct, content keys set)."""
    path = address.task_pathspec or ""
    step_name = p.task.step_name
    rows = []
    seen: set[str] = set()
    if p.attempt > MAX_ATTEMPT:
        raise InvalidArgument(f"attempt {p.attempt} of task {path} is out of range")
    for artifact in p.artifacts:
        name = _check_artifact_name(artifact.name)
        if name in seen:
            raise AlreadyExists(f"artifact {name!r} appears twice for task {path}")
        seen.add(name)
        if not artifact.content_key:
            raise InvalidArgument(f"artifact {name!r} has no content_key")
        check_content_key(f"artifact {name!r} content_key", artifact.content_key)
        if artifact.size > MAX_INT64:
            raise InvalidArgument(f"artifact {name!r} has size {artifact.size}, over 2^63 - 1")
        for field_name in ("content_key", "type_name", "serializer", "language"):
            check_text(f"artifact {name!r} {field_name}", getattr(artifact, field_name))
        rows.append((
            path, p.attempt, name, address.run_pathspec, step_name, artifact.content_key,
            artifact.size, artifact.type_name, artifact.serializer,
            artifact.language or "python",
        ))  # fmt: skip
    return rows


@functools.lru_cache(maxsize=4096)
def _check_artifact_name(name: str) -> str:
    return check_identifier("artifact name", name)


def check_distinct(rows_per_event: Iterable[list[tuple[Any, ...]]]) -> None:
    """An artifact is recorded once per task attempt: not twice in one batch."""
    seen: set[tuple[Any, ...]] = set()
    for rows in rows_per_event:
        for path, attempt, name, *_ in rows:
            if (path, attempt, name) in seen:
                raise AlreadyExists(
                    f"artifact {name!r} is recorded twice for attempt {attempt} of task {path} "
                    "in this batch"
                )
            seen.add((path, attempt, name))


def artifacts_recorded(
    fold: ReadModelFold, p: events_pb2.ArtifactsRecorded, item: PendingEvent
) -> None:
    fold.run(item.address.run_pathspec, open_only=True)
    fold.open_attempt(item.address.task_pathspec or "", p.attempt)
    if fold.collect_artifacts:
        fold.new_artifacts.extend(artifact_rows(p, item.address))


def copy_cloned(tx: Tx, clones: Sequence[tuple[str, str, str, str, int]]) -> None:
    """Gives each clone (path, run, step, origin path, origin attempt) its origin
    attempt's artifacts."""
    for path, run, step, origin, origin_attempt in clones:
        tx.execute(
            f"INSERT INTO artifacts ({', '.join(ARTIFACT_COLUMNS)}) "
            "SELECT ?, 0, name, ?, ?, content_key, size, type_name, serializer, language "
            "FROM artifacts WHERE task_pathspec = ? AND attempt = ?",
            (path, run, step, origin, origin_attempt),
        )


def already_recorded(database: Database, rows: Iterable[tuple[Any, ...]]) -> AlreadyExists:
    """The error for a batch whose artifact `rows` include one its task attempt already
    has (the database's primary key noticed it): names the artifact."""
    wanted = {row[:3] for row in rows}
    with database.read() as tx:
        condition, params = tx.dialect.one_of("task_pathspec", sorted({w[0] for w in wanted}))
        for path, attempt, name in tx.query(
            f"SELECT task_pathspec, attempt, name FROM artifacts WHERE {condition}", params
        ):
            if (path, attempt, name) in wanted:
                return AlreadyExists(
                    f"artifact {name!r} was already recorded for attempt {attempt} of task "
                    f"{path}; artifacts cannot be replaced: record it under another name"
                )
    return AlreadyExists("an artifact of this batch was already recorded for its task attempt")


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {"artifacts_recorded": artifacts_recorded}
