"""Projections: the read models (flows, runs, steps, tasks, attempts, artifacts, tags)
folded from events.

One code path serves both live appends and rebuilds. For a batch of events it
*loads* the rows the batch touches (a few queries, whatever the batch size), *applies*
each event in memory -- checking the rules that keep the ledger consistent and raising
a :class:`LedgerError` on a violation -- and finally *saves* the changed rows with one
multi-row insert per table (one statement in all on Postgres). Because the rules run
against the projections inside the append transaction, a refused event leaves nothing
behind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.addressing import EventAddress, checked_task_pathspecs
from ledgerflow_service.auth import Principal
from ledgerflow_service.database import Dialect, RowInsert, Tx
from ledgerflow_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from ledgerflow_service.names import (
    check_id,
    check_identifier,
    check_tag,
    parse_pathspec,
    run_pathspec,
)
from ledgerflow_service.validation import MAX_INT64, check_text

# Attempt numbers are stored as 32-bit signed integers.
MAX_ATTEMPT = (1 << 31) - 1

PROJECTION_TABLES = ("flows", "runs", "run_tags", "steps", "tasks", "attempts", "artifacts")


@dataclass
class RunRow:
    pathspec: str
    flow_name: str
    run_id: str
    started_position: int
    user_name: str
    parameters_json: str
    origin_run_id: str
    created_at_us: int
    finished_at_us: int | None
    end_succeeded: int
    last_heartbeat_at_us: int


@dataclass
class StepRow:
    pathspec: str
    run_pathspec: str
    step_name: str
    created_at_us: int
    first_position: int
    task_count: int


@dataclass
class TaskRow:
    pathspec: str
    run_pathspec: str
    step_name: str
    task_id: str
    first_position: int
    created_at_us: int
    finished_at_us: int | None
    succeeded: int | None
    current_attempt: int
    last_heartbeat_at_us: int
    input_pathspecs_json: str
    foreach_stack_json: str
    resources_json: str
    origin_pathspec: str


@dataclass
class AttemptRow:
    task_pathspec: str
    attempt: int
    started_at_us: int
    finished_at_us: int | None
    succeeded: int | None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    stdout_key: str = ""
    stderr_key: str = ""


def columns(row_type: type) -> list[str]:
    """The column names of a read-model row type, in table order."""
    return [f.name for f in dataclasses.fields(row_type)]


def _upsert_clause(row_type: type, key: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns(row_type) if c not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


# Table, columns and ON CONFLICT clause of each read model row type.
_UPSERT = {
    row_type: (table, columns(row_type), _upsert_clause(row_type, key))
    for row_type, table, key in [
        (RunRow, "runs", ("pathspec",)),
        (StepRow, "steps", ("pathspec",)),
        (TaskRow, "tasks", ("pathspec",)),
        (AttemptRow, "attempts", ("task_pathspec", "attempt")),
    ]
}
_TASK_WIDTH = len(columns(TaskRow))
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


@dataclass(slots=True)
class PendingEvent:
    """An event in a batch with its address, position and time assigned. `principal`
    is who appends it now; None when replaying events recorded earlier (their
    permission was checked then)."""

    event: events_pb2.Event
    address: EventAddress
    position: int
    recorded_at_us: int
    actor: str
    principal: Principal | None = None


@dataclass
class ProjectionReads:
    """The keys a batch of events can touch, and the queries that load their rows."""

    run_keys: set[str] = field(default_factory=set)
    task_keys: set[str] = field(default_factory=set)
    step_keys: set[str] = field(default_factory=set)
    flow_names: set[str] = field(default_factory=set)
    tag_runs: set[str] = field(default_factory=set)
    queries: list[tuple[str, list[Any]]] = field(default_factory=list)

    @classmethod
    def union(cls, parts: Iterable[ProjectionReads], dialect: Dialect) -> ProjectionReads:
        """The reads of several batches written together, from their key sets alone."""
        union = cls()
        for part in parts:
            union.run_keys |= part.run_keys
            union.task_keys |= part.task_keys
            union.step_keys |= part.step_keys
            union.flow_names |= part.flow_names
            union.tag_runs |= part.tag_runs
        union.build_queries(dialect)
        return union

    def build_queries(self, dialect: Dialect) -> None:
        select = functools.partial(_select, dialect)
        self.queries = [
            select("runs", columns(RunRow), "pathspec", self.run_keys),
            # Each task with its current attempt: the only one an event can touch.
            select("tasks LEFT JOIN attempts ON attempts.task_pathspec = tasks.pathspec "
                   "AND attempts.attempt = tasks.current_attempt",
                   [*(f"tasks.{c}" for c in columns(TaskRow)),
                    *(f"attempts.{c}" for c in columns(AttemptRow))],
                   "tasks.pathspec", self.task_keys),
            select("steps", columns(StepRow), "pathspec", self.step_keys),
            select("flows", ["flow_name"], "flow_name", self.flow_names),
            select("run_tags", ["run_pathspec", "tag", "is_system"], "run_pathspec",
                   self.tag_runs),
        ]  # fmt: skip


@dataclass
class ProjectionBatch:
    """The rows one batch touches, loaded once, changed in memory, saved once."""

    runs: dict[str, RunRow | None] = field(default_factory=dict)
    steps: dict[str, StepRow | None] = field(default_factory=dict)
    tasks: dict[str, TaskRow | None] = field(default_factory=dict)
    attempts: dict[tuple[str, int], AttemptRow] = field(default_factory=dict)
    known_flows: set[str] = field(default_factory=set)
    run_tags: dict[str, dict[str, int]] = field(default_factory=dict)

    new_flows: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    dirty: dict[tuple[type, Any], Any] = field(default_factory=dict)
    # The rows of recorded artifacts depend on their events alone: a caller that
    # writes them itself (see ledger.prepare) turns their collection off.
    collect_artifacts: bool = True
    new_artifacts: list[tuple[Any, ...]] = field(default_factory=list)
    clones: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    # Final state of each tag the batch changed: is_system (0/1), or None when removed.
    tag_changes: dict[tuple[str, str], int | None] = field(default_factory=dict)

    # ---- load -------------------------------------------------------------------

    @staticmethod
    def reads_for(
        items: Iterable[tuple[events_pb2.Event, EventAddress]], dialect: Dialect
    ) -> ProjectionReads:
        """The queries that load every row a batch of events can touch (independent of
        each other, so a backend may send them together)."""
        reads = ProjectionReads()
        for event, address in items:
            reads.run_keys.add(address.run_pathspec)
            reads.flow_names.add(address.run_pathspec.split("/", 1)[0])
            payload = getattr(event, address.kind)
            if address.task_pathspec:
                reads.task_keys.add(address.task_pathspec)
                reads.step_keys.add(address.task_pathspec.rsplit("/", 1)[0])
            if address.kind == "task_cloned":
                checked_task_pathspecs(*parse_pathspec(payload.origin_pathspec, 4))
                reads.task_keys.add(payload.origin_pathspec)
            if address.kind == "run_started" and payload.origin_run_id:
                check_id("origin_run_id", payload.origin_run_id)
                reads.run_keys.add(run_pathspec(payload.flow_name, payload.origin_run_id))
            if address.kind in ("run_started", "tags_added", "tags_removed"):
                reads.tag_runs.add(address.run_pathspec)
        reads.build_queries(dialect)
        return reads

    @classmethod
    def from_rows(
        cls, reads: ProjectionReads, rows: list[list[Any]], *, collect_artifacts: bool = True
    ) -> ProjectionBatch:
        """Builds the batch from the rows of :meth:`reads_for`'s queries."""
        runs, tasks_and_attempts, steps, flows, tags = rows
        batch = cls(collect_artifacts=collect_artifacts)
        batch.runs = dict.fromkeys(reads.run_keys)
        batch.runs.update((row[0], RunRow(*row)) for row in runs)
        batch.tasks = dict.fromkeys(reads.task_keys)
        for row in tasks_and_attempts:
            task, attempt = row[:_TASK_WIDTH], row[_TASK_WIDTH:]
            batch.tasks[task[0]] = TaskRow(*task)
            if attempt[0] is not None:  # a cloned task has no attempts
                batch.attempts[(attempt[0], attempt[1])] = AttemptRow(*attempt)
        batch.steps = dict.fromkeys(reads.step_keys)
        batch.steps.update((row[0], StepRow(*row)) for row in steps)
        batch.known_flows = {row[0] for row in flows}
        batch.run_tags = {path: {} for path in reads.tag_runs}
        for path, tag, is_system in tags:
            batch.run_tags[path][tag] = is_system
        return batch

    @classmethod
    def load(cls, tx: Tx, pending: Iterable[PendingEvent]) -> ProjectionBatch:
        reads = cls.reads_for(((item.event, item.address) for item in pending), tx.dialect)
        return cls.from_rows(reads, tx.query_all(reads.queries))

    # ---- apply ------------------------------------------------------------------

    def apply(self, item: PendingEvent) -> None:
        """Checks one event against the current state and folds it in."""
        kind = item.address.kind
        if item.principal is not None and item.principal.authenticated:
            self._check_permission(item.principal, kind, getattr(item.event, kind), item)
        _HANDLERS[kind](self, getattr(item.event, kind), item)
        run = self.runs.get(item.address.run_pathspec)
        if run is not None and kind not in ("tags_added", "tags_removed"):
            # Any activity of a run's writer counts as a heartbeat; tagging does not.
            run.last_heartbeat_at_us = max(run.last_heartbeat_at_us, item.recorded_at_us)
            self._mark(run)

    def _check_permission(
        self, principal: Principal, kind: str, payload: Any, item: PendingEvent
    ) -> None:
        """Under authentication a principal acts for itself: it starts runs as its own
        user and writes only to its own runs, unless its role lets it act for others
        (see docs/security.md)."""
        if principal.may_act_for_others(kind):
            return
        if kind == "run_started":
            claimed = {payload.user} | {
                t.removeprefix("user:") for t in payload.system_tags if t.startswith("user:")
            }
            if claimed != {principal.name}:
                other = sorted(claimed - {principal.name})[:1] or [""]
                raise PermissionDenied(
                    f"{principal.name!r} may not start a run as user {other[0]!r}: a run's user "
                    f"is the caller (set LEDGERFLOW_USER={principal.name}), or the caller needs "
                    "the admin role"
                )
            return
        run = self.runs.get(item.address.run_pathspec)
        if run is not None and run.user_name != principal.name:
            raise PermissionDenied(
                f"{principal.name!r} may not write to run {run.pathspec} of user "
                f"{run.user_name!r}: that needs the executor or admin role"
                + (" (tags: admin)" if kind in ("tags_added", "tags_removed") else "")
            )

    def _mark(self, row: Any) -> None:
        key = row.pathspec if not isinstance(row, AttemptRow) else (row.task_pathspec, row.attempt)
        self.dirty[(type(row), key)] = row

    def _run(self, path: str, *, open_only: bool, missing: type = FailedPrecondition) -> RunRow:
        run = self.runs.get(path)
        if run is None:
            raise missing(f"run {path} has not been started")
        if open_only and run.finished_at_us is not None:
            raise FailedPrecondition(f"run {path} has already finished; no more task events")
        return run

    def _open_attempt(self, ref_path: str, attempt: int, *, finished_ok: bool = False) -> TaskRow:
        task = self.tasks.get(ref_path)
        if task is None:
            raise FailedPrecondition(f"task {ref_path} has not been started")
        if attempt != task.current_attempt:
            raise FailedPrecondition(
                f"task {ref_path} is on attempt {task.current_attempt}, not attempt {attempt}"
            )
        row = self.attempts.get((ref_path, attempt))
        if row is None:
            raise FailedPrecondition(f"task {ref_path} was cloned; it has no attempts")
        if row.finished_at_us is not None and not finished_ok:
            raise FailedPrecondition(f"attempt {attempt} of task {ref_path} has already finished")
        return task

    def _on_run_started(self, p: events_pb2.RunStarted, item: PendingEvent) -> None:
        path = item.address.run_pathspec
        if self.runs.get(path) is not None:
            raise AlreadyExists(f"run {path} already exists")
        if not p.user:
            raise InvalidArgument("run_started.user is missing")
        check_text("run_started.user", p.user)
        for tag in [*p.tags, *p.system_tags]:
            check_tag(tag)
        for name, value in p.parameters.items():
            check_identifier("parameter name", name)
            try:
                json.loads(value)
            except ValueError:
                raise InvalidArgument(
                    f"parameter {name!r} is not JSON text: {value[:60]!r}"
                ) from None
        if p.origin_run_id:
            origin = run_pathspec(p.flow_name, check_id("origin_run_id", p.origin_run_id))
            if self.runs.get(origin) is None:
                raise NotFound(f"origin run {origin} does not exist")
        if p.flow_name not in self.known_flows:
            self.known_flows.add(p.flow_name)
            self.new_flows[p.flow_name] = (p.flow_name, item.recorded_at_us, item.actor)
        run = RunRow(
            pathspec=path,
            flow_name=p.flow_name,
            run_id=p.run_id,
            started_position=item.position,
            user_name=p.user,
            parameters_json=json.dumps(dict(sorted(p.parameters.items()))),
            origin_run_id=p.origin_run_id,
            created_at_us=item.recorded_at_us,
            finished_at_us=None,
            end_succeeded=0,
            last_heartbeat_at_us=item.recorded_at_us,
        )
        self.runs[path] = run
        tags = self.run_tags.setdefault(path, {})
        for tag, is_system in [*((t, 1) for t in p.system_tags), *((t, 0) for t in p.tags)]:
            if tag not in tags:
                tags[tag] = is_system
                self.tag_changes[(path, tag)] = is_system

    def _on_run_heartbeat(self, p: events_pb2.RunHeartbeat, item: PendingEvent) -> None:
        self._run(item.address.run_pathspec, open_only=True)

    def _on_run_finished(self, p: events_pb2.RunFinished, item: PendingEvent) -> None:
        run = self._run(item.address.run_pathspec, open_only=True)
        if p.succeeded and not run.end_succeeded:
            raise FailedPrecondition(
                f"run {run.pathspec} cannot finish as succeeded: its end step has not succeeded"
            )
        run.finished_at_us = item.recorded_at_us

    def _on_task_started(self, p: events_pb2.TaskStarted, item: PendingEvent) -> None:
        path = item.address.task_pathspec
        assert path is not None
        self._run(item.address.run_pathspec, open_only=True)
        task = self.tasks.get(path)
        if task is None:
            if p.attempt != 0:
                raise FailedPrecondition(f"task {path} must start with attempt 0, not {p.attempt}")
            task = TaskRow(
                pathspec=path,
                run_pathspec=item.address.run_pathspec,
                step_name=p.task.step_name,
                task_id=p.task.task_id,
                first_position=item.position,
                created_at_us=item.recorded_at_us,
                finished_at_us=None,
                succeeded=None,
                current_attempt=0,
                last_heartbeat_at_us=item.recorded_at_us,
                input_pathspecs_json=_texts_json(p.input_pathspecs),
                foreach_stack_json=_foreach_json(p.foreach_stack),
                resources_json=_resources_json(
                    p.resources.cpu, p.resources.gpu, p.resources.memory_mb
                ),
                origin_pathspec="",
            )
            self.tasks[path] = task
            self._count_task(path.rsplit("/", 1)[0], item)
        else:
            current = self.attempts.get((path, task.current_attempt))
            if current is None:
                raise FailedPrecondition(f"task {path} was cloned; it cannot be started again")
            if current.finished_at_us is None:
                raise FailedPrecondition(
                    f"attempt {task.current_attempt} of task {path} is still running"
                )
            if current.succeeded:
                raise FailedPrecondition(f"task {path} has already succeeded")
            if p.attempt != task.current_attempt + 1:
                raise FailedPrecondition(
                    f"task {path}: the next attempt is {task.current_attempt + 1}, not {p.attempt}"
                )
            task.current_attempt = p.attempt
            task.finished_at_us = None
            task.succeeded = None
        task.last_heartbeat_at_us = item.recorded_at_us
        attempt = AttemptRow(path, p.attempt, item.recorded_at_us, None, None)
        self.attempts[(path, p.attempt)] = attempt
        self._mark(task)
        self._mark(attempt)

    def _count_task(self, step_path: str, item: PendingEvent) -> None:
        step = self.steps.get(step_path)
        if step is None:
            step = StepRow(
                step_path,
                item.address.run_pathspec,
                step_path.rsplit("/", 1)[1],
                item.recorded_at_us,
                item.position,
                0,
            )
            self.steps[step_path] = step
        step.task_count += 1
        self._mark(step)

    def _on_task_heartbeat(self, p: events_pb2.TaskHeartbeat, item: PendingEvent) -> None:
        self._run(item.address.run_pathspec, open_only=True)
        task = self._open_attempt(item.address.task_pathspec or "", p.attempt)
        task.last_heartbeat_at_us = item.recorded_at_us
        self._mark(task)

    def _on_artifacts_recorded(self, p: events_pb2.ArtifactsRecorded, item: PendingEvent) -> None:
        self._run(item.address.run_pathspec, open_only=True)
        self._open_attempt(item.address.task_pathspec or "", p.attempt)
        if self.collect_artifacts:
            self.new_artifacts.extend(artifact_rows(p, item.address))

    def _finish_attempt(self, path: str, attempt: int, item: PendingEvent, ok: bool) -> AttemptRow:
        self._run(item.address.run_pathspec, open_only=True)
        task = self._open_attempt(path, attempt)
        row = self.attempts[(path, attempt)]
        row.finished_at_us = task.finished_at_us = item.recorded_at_us
        row.succeeded = task.succeeded = int(ok)
        task.last_heartbeat_at_us = item.recorded_at_us
        if ok and task.step_name == "end":
            self._run(item.address.run_pathspec, open_only=True).end_succeeded = 1
        self._mark(task)
        self._mark(row)
        return row

    def _on_task_succeeded(self, p: events_pb2.TaskSucceeded, item: PendingEvent) -> None:
        self._finish_attempt(item.address.task_pathspec or "", p.attempt, item, ok=True)

    def _on_task_failed(self, p: events_pb2.TaskFailed, item: PendingEvent) -> None:
        for field_name in ("error_type", "error_message", "traceback"):
            check_text(f"task_failed.{field_name}", getattr(p, field_name))
        row = self._finish_attempt(item.address.task_pathspec or "", p.attempt, item, ok=False)
        row.error_type, row.error_message, row.traceback = (
            p.error_type,
            p.error_message,
            p.traceback,
        )

    def _on_logs_recorded(self, p: events_pb2.LogsRecorded, item: PendingEvent) -> None:
        path = item.address.task_pathspec or ""
        check_text("logs_recorded.stdout_key", p.stdout_key)
        check_text("logs_recorded.stderr_key", p.stderr_key)
        self._open_attempt(path, p.attempt, finished_ok=True)
        row = self.attempts[(path, p.attempt)]
        row.stdout_key, row.stderr_key = p.stdout_key, p.stderr_key
        self._mark(row)

    def _on_task_cloned(self, p: events_pb2.TaskCloned, item: PendingEvent) -> None:
        path = item.address.task_pathspec or ""
        run = self._run(item.address.run_pathspec, open_only=True)
        if self.tasks.get(path) is not None:
            raise AlreadyExists(f"task {path} already exists")
        origin_flow, origin_run, _, _ = parse_pathspec(p.origin_pathspec, 4)
        origin = self.tasks.get(p.origin_pathspec)
        if origin is None or not origin.succeeded:
            raise FailedPrecondition(
                f"origin task {p.origin_pathspec} does not exist or has not succeeded"
            )
        if origin_flow != run.flow_name or origin_run == run.run_id:
            raise InvalidArgument("a task can only be cloned from another run of the same flow")
        task = TaskRow(
            pathspec=path,
            run_pathspec=run.pathspec,
            step_name=p.task.step_name,
            task_id=p.task.task_id,
            first_position=item.position,
            created_at_us=item.recorded_at_us,
            finished_at_us=item.recorded_at_us,
            succeeded=1,
            current_attempt=0,
            last_heartbeat_at_us=item.recorded_at_us,
            input_pathspecs_json=_texts_json(p.input_pathspecs),
            foreach_stack_json=_foreach_json(p.foreach_stack),
            resources_json=origin.resources_json,
            origin_pathspec=p.origin_pathspec,
        )
        self.tasks[path] = task
        self._mark(task)
        self._count_task(path.rsplit("/", 1)[0], item)
        self.clones.append(
            (path, run.pathspec, task.step_name, origin.pathspec, origin.current_attempt)
        )
        if task.step_name == "end":
            run.end_succeeded = 1

    def _on_tags_added(self, p: events_pb2.TagsAdded, item: PendingEvent) -> None:
        path = item.address.run_pathspec
        self._run(path, open_only=False, missing=NotFound)
        tags = self.run_tags[path]
        for tag in p.tags:
            check_tag(tag)
            if tag not in tags:
                tags[tag] = 0
                self.tag_changes[(path, tag)] = 0

    def _on_tags_removed(self, p: events_pb2.TagsRemoved, item: PendingEvent) -> None:
        path = item.address.run_pathspec
        self._run(path, open_only=False, missing=NotFound)
        tags = self.run_tags[path]
        for tag in p.tags:
            if tags.get(tag) == 1:
                raise FailedPrecondition(
                    f"{tag!r} is a system tag of run {path}; it cannot be removed"
                )
        for tag in p.tags:
            if tag in tags:
                del tags[tag]
                self.tag_changes[(path, tag)] = None

    # ---- save -------------------------------------------------------------------

    def save(self, tx: Tx, also: Sequence[RowInsert] = ()) -> None:
        """Writes the changed rows, together with the rows in `also` (one statement on
        Postgres for all the inserts)."""
        by_type: dict[type, list[tuple[Any, ...]]] = {}
        for (row_type, _), row in self.dirty.items():
            by_type.setdefault(row_type, []).append(tuple(vars(row).values()))
        tx.insert_all([
            *also,
            RowInsert("flows", ("flow_name", "created_at_us", "created_by"),
                      list(self.new_flows.values())),
            *(RowInsert(table, columns, by_type.get(row_type, []), on_conflict)
              for row_type, (table, columns, on_conflict) in _UPSERT.items()),
            RowInsert("artifacts", ARTIFACT_COLUMNS, self.new_artifacts),
            RowInsert("run_tags", ("run_pathspec", "tag", "is_system"),
                      [(*key, state) for key, state in self.tag_changes.items()
                       if state is not None],
                      "ON CONFLICT (run_pathspec, tag) DO NOTHING"),
        ])  # fmt: skip
        # After the inserts: a clone may copy artifacts recorded by this same batch
        # (a rebuild replays an origin run and its resume in one chunk).
        for path, run, step, origin, origin_attempt in self.clones:
            tx.execute(
                f"INSERT INTO artifacts ({', '.join(ARTIFACT_COLUMNS)}) "
                "SELECT ?, 0, name, ?, ?, content_key, size, type_name, serializer, language "
                "FROM artifacts WHERE task_pathspec = ? AND attempt = ?",
                (path, run, step, origin, origin_attempt),
            )
        # A tag's final state is either present (inserted above) or removed, never both.
        removed = [key for key, state in self.tag_changes.items() if state is None]
        if removed:
            tx.executemany("DELETE FROM run_tags WHERE run_pathspec = ? AND tag = ?", removed)


# Most tasks have no inputs listed and no foreach frames, and a flow's tasks ask for
# the same few resources: the JSON of the common cases is not encoded again and again.
# The handler of each kind of event (ProjectionBatch._on_<payload field name>).
_HANDLERS = {
    field.name: getattr(ProjectionBatch, f"_on_{field.name}")
    for field in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
}


def _texts_json(texts: Sequence[str]) -> str:
    return json.dumps(list(texts)) if texts else "[]"


def _foreach_json(frames: Sequence[records_pb2.ForeachFrame]) -> str:
    if not frames:
        return "[]"
    return json.dumps([[f.step_name, f.index, f.num_splits] for f in frames])


@functools.lru_cache(maxsize=1024)
def _resources_json(cpu: float, gpu: int, memory_mb: int) -> str:
    return json.dumps({"cpu": cpu, "gpu": gpu, "memory_mb": memory_mb})


def _select(
    dialect: Dialect, source: str, columns: list[str], key: str, values: set[str]
) -> tuple[str, list[Any]]:
    """SELECT columns FROM source (a table or a join) WHERE key is one of values."""
    condition, params = dialect.one_of(key, sorted(values))
    return f"SELECT {', '.join(columns)} FROM {source} WHERE {condition}", params
