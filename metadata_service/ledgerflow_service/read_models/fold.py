"""The fold: how a batch of events changes the read models, as one unit of work.

One code path serves both live appends and rebuilds. For a batch of events it
*plans* the rows the batch touches (a few queries, whatever the batch size), *applies*
each event in memory -- the handler of its kind (in ``runs``, ``tasks``, ``artifacts``
and ``tags``) checks the rules that keep the ledger consistent and raises a
:class:`LedgerError` on a violation -- and finally *saves* the changed rows with one
multi-row insert per table (one statement in all on Postgres). Because the rules run
against the read models inside the append transaction, a refused event leaves nothing
behind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import FailedPrecondition, LedgerError, PermissionDenied
from ledgerflow_service.names import check_id, parse_pathspec, run_pathspec
from ledgerflow_service.principal import Principal
from ledgerflow_service.read_models import (
    artifacts,
    cards,
    deployments,
    lineage,
    notifications,
    queue,
    runs,
    tags,
    tasks,
)
from ledgerflow_service.read_models.artifacts import ARTIFACT_COLUMNS
from ledgerflow_service.read_models.deployments import DeploymentRow
from ledgerflow_service.read_models.notifications import NotificationRow
from ledgerflow_service.read_models.queue import OrchestratedRunRow, QueueRow
from ledgerflow_service.read_models.runs import FLOW_COLUMNS, GRAPH_COLUMNS, RunRow
from ledgerflow_service.read_models.table import columns, upsert_clause
from ledgerflow_service.read_models.tags import TAG_COLUMNS
from ledgerflow_service.read_models.tasks import AttemptRow, StepRow, TaskRow
from ledgerflow_service.store.addressing import (
    DEPLOYMENT_EVENTS,
    EventAddress,
    address_of,
    checked_task_pathspecs,
)
from ledgerflow_service.store.backend import Database, Dialect, Query, Row, RowInsert, Tx
from ledgerflow_service.store.projector import PendingEvent

# Every read-model table (a rebuild empties them all).
READ_MODEL_TABLES = (
    "flows", "runs", "run_tags", "steps", "tasks", "attempts", "artifacts",
    "orchestrated_runs", "queue", "table_versions", "table_reads", "run_graphs", "deployments",
    "cards", "notifications",
)  # fmt: skip

# Table, columns and ON CONFLICT clause of each read model row type.
_UPSERT = {
    row_type: (table, columns(row_type), upsert_clause(row_type, key))
    for row_type, table, key in [
        (RunRow, "runs", ("pathspec",)),
        (StepRow, "steps", ("pathspec",)),
        (TaskRow, "tasks", ("pathspec",)),
        (AttemptRow, "attempts", ("task_pathspec", "attempt")),
        (OrchestratedRunRow, "orchestrated_runs", ("run_pathspec",)),
        (QueueRow, "queue", ("task_pathspec",)),
        (DeploymentRow, "deployments", ("name",)),
        (NotificationRow, "notifications", ("run_pathspec", "notification")),
    ]
}
_TASK_WIDTH = len(columns(TaskRow))
_RUN_WIDTH = len(columns(RunRow))
_QUEUE_SELECT = f"SELECT {', '.join(columns(QueueRow))} FROM queue WHERE "


# What the process manager is to a fold: the events that follow what it applied.
Decider = Callable[["ReadModelFold", Tx], Sequence[events_pb2.Event]]


@dataclass
class ReadModelPlan:
    """The keys a batch of events can touch, the queries that load their rows, and the
    artifact rows of its ArtifactsRecorded events (by event id)."""

    run_keys: set[str] = field(default_factory=set)
    task_keys: set[str] = field(default_factory=set)
    step_keys: set[str] = field(default_factory=set)
    flow_names: set[str] = field(default_factory=set)
    tag_runs: set[str] = field(default_factory=set)
    tables: set[tuple[str, str]] = field(default_factory=set)
    deployments: set[str] = field(default_factory=set)
    notification_runs: set[str] = field(default_factory=set)
    artifacts: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    queries: list[Query | None] = field(default_factory=list)

    def key_sets(self) -> list[set[Any]]:
        """Every set of keys the plan reads rows by (each field that is a set)."""
        return [getattr(self, f.name) for f in fields(self) if f.default_factory is set]

    def unite(self, other: ReadModelPlan) -> None:
        """Adds what `other` reads to what this plan reads."""
        for mine, theirs in zip(self.key_sets(), other.key_sets(), strict=True):
            mine |= theirs
        self.artifacts.update(other.artifacts)

    def build_queries(self, dialect: Dialect) -> None:
        select = functools.partial(_select, dialect)
        self.queries = [
            # Each run with its orchestration, when the service orchestrates it.
            select("runs LEFT JOIN orchestrated_runs o ON o.run_pathspec = runs.pathspec",
                   [*(f"runs.{c}" for c in columns(RunRow)),
                    *(f"o.{c}" for c in columns(OrchestratedRunRow))],
                   "runs.pathspec", self.run_keys),
            # Each task with its current attempt: the only one an event can touch.
            select("tasks LEFT JOIN attempts ON attempts.task_pathspec = tasks.pathspec "
                   "AND attempts.attempt = tasks.current_attempt",
                   [*(f"tasks.{c}" for c in columns(TaskRow)),
                    *(f"attempts.{c}" for c in columns(AttemptRow))],
                   "tasks.pathspec", self.task_keys),
            select("steps", columns(StepRow), "pathspec", self.step_keys),
            select("flows", ["flow_name"], "flow_name", self.flow_names),
            select("run_tags", list(TAG_COLUMNS), "run_pathspec", self.tag_runs),
            lineage.latest_versions_query(self.tables),
            select("deployments", columns(DeploymentRow), "name", self.deployments),
            select("notifications", columns(NotificationRow), "run_pathspec",
                   self.notification_runs),
            # The tasks' queue rows, should their runs be orchestrated: read in this
            # round trip rather than in one more after the runs' rows tell.
            select("queue", columns(QueueRow), "task_pathspec", self.task_keys),
        ]  # fmt: skip


def plan_batch(
    items: Iterable[tuple[str, events_pb2.Event, EventAddress]], dialect: Dialect
) -> ReadModelPlan:
    """The plan of a batch of (event id, event, address): every row its events can
    touch, and its artifact rows."""
    plan = ReadModelPlan()
    for event_id, event, address in items:
        plan.run_keys.add(address.run_pathspec)
        payload = getattr(event, address.kind)
        if address.task_pathspec:
            plan.task_keys.add(address.task_pathspec)
            plan.step_keys.add(address.task_pathspec.rsplit("/", 1)[0])
        if address.kind == "task_cloned":
            checked_task_pathspecs(*parse_pathspec(payload.origin_pathspec, 4))
            plan.task_keys.add(payload.origin_pathspec)
        elif address.kind == "artifacts_recorded":
            plan.artifacts[event_id] = artifacts.artifact_rows(payload, address)
        if address.kind == "run_started":  # the first run of a flow makes the flow's row
            plan.flow_names.add(payload.flow_name)
            if payload.HasField("trigger"):
                plan.deployments.add(payload.trigger.deployment)
        elif address.kind in DEPLOYMENT_EVENTS:
            plan.deployments.add(payload.name)
        elif address.kind in notifications.HANDLERS:
            plan.notification_runs.add(address.run_pathspec)
        if address.kind == "run_started" and payload.origin_run_id:
            check_id("origin_run_id", payload.origin_run_id)
            plan.run_keys.add(run_pathspec(payload.flow_name, payload.origin_run_id))
        if address.kind in ("run_started", "tags_added", "tags_removed"):
            plan.tag_runs.add(address.run_pathspec)
        elif address.kind in ("table_version_written", "table_version_read"):
            plan.tables.add(lineage.table_key(payload))
    artifacts.check_distinct(plan.artifacts.values())
    plan.build_queries(dialect)
    return plan


# The handler of each kind of event, by payload field name: handler(fold, payload, item).
_HANDLERS: dict[str, Callable[..., None]] = {
    **runs.HANDLERS,
    **tasks.HANDLERS,
    **artifacts.HANDLERS,
    **cards.HANDLERS,
    **tags.HANDLERS,
    **queue.HANDLERS,
    **lineage.HANDLERS,
    **deployments.HANDLERS,
    **notifications.HANDLERS,
}
_unhandled = {
    f.name for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
} - _HANDLERS.keys()
assert not _unhandled, f"no read model handles {sorted(_unhandled)}"


@dataclass
class ReadModelFold:
    """The rows one batch touches, loaded once, changed in memory, saved once."""

    runs: dict[str, RunRow | None] = field(default_factory=dict)
    steps: dict[str, StepRow | None] = field(default_factory=dict)
    tasks: dict[str, TaskRow | None] = field(default_factory=dict)
    attempts: dict[tuple[str, int], AttemptRow] = field(default_factory=dict)
    known_flows: set[str] = field(default_factory=set)
    run_tags: dict[str, dict[str, int]] = field(default_factory=dict)

    new_flows: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    new_run_graphs: list[tuple[str, bytes]] = field(default_factory=list)
    dirty: dict[tuple[type, Any], Any] = field(default_factory=dict)
    # The rows of recorded artifacts depend on their events alone: when the store
    # writes them itself (live appends), the fold does not collect them.
    collect_artifacts: bool = True
    new_artifacts: list[tuple[Any, ...]] = field(default_factory=list)
    clones: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    # Final state of each tag the batch changed: is_system (0/1), or None when removed.
    tag_changes: dict[tuple[str, str], int | None] = field(default_factory=dict)
    # Tables (read_models/lineage.py): the newest version of each, and the new rows.
    table_latest: dict[tuple[str, str], int] = field(default_factory=dict)
    new_table_versions: list[tuple[Any, ...]] = field(default_factory=list)
    new_table_reads: list[tuple[Any, ...]] = field(default_factory=list)
    # Cards (read_models/cards.py): the new rows.
    new_cards: list[tuple[Any, ...]] = field(default_factory=list)
    # Deployments (read_models/deployments.py) by name.
    deployments: dict[str, DeploymentRow | None] = field(default_factory=dict)
    # Notifications of finished runs (read_models/notifications.py) by (run, number).
    notifications: dict[tuple[str, int], NotificationRow] = field(default_factory=dict)

    # Orchestrated runs and their queued tasks (read_models/queue.py).
    orchestrated: dict[str, OrchestratedRunRow | None] = field(default_factory=dict)
    queue: dict[str, QueueRow | None] = field(default_factory=dict)
    # Live appends decide what follows (orchestration/process_manager.py, handed in by
    # the application); a replay folds the decisions already recorded instead.
    decides: bool = False
    decide: Decider | None = None
    to_decide: list[PendingEvent] = field(default_factory=list)
    to_stop: set[str] = field(default_factory=set)
    to_finish: set[str] = field(default_factory=set)
    # Finished runs and published events: what they start or whom they tell.
    to_react: list[PendingEvent] = field(default_factory=list)
    joined: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def from_rows(
        cls,
        plan: ReadModelPlan,
        rows: list[list[Row]],
        *,
        collect_artifacts: bool = True,
        decides: bool = False,
        orchestrated: Mapping[str, OrchestratedRunRow | None] | None = None,
    ) -> ReadModelFold:
        """Builds the fold from the rows of the plan's queries (`orchestrated`: runs
        known to be orchestrated besides the plan's, whose tasks' queue rows it keeps
        too)."""
        (run_rows, tasks_and_attempts, step_rows, flows, tag_rows, table_rows, deployed,
         notified, queued) = rows  # fmt: skip
        fold = cls(collect_artifacts=collect_artifacts, decides=decides)
        fold.runs = dict.fromkeys(plan.run_keys)
        fold.orchestrated = dict.fromkeys(plan.run_keys)
        for row in run_rows:
            run, orchestration = row[:_RUN_WIDTH], row[_RUN_WIDTH:]
            fold.runs[run[0]] = RunRow(*run)
            if orchestration[0] is not None:
                fold.orchestrated[run[0]] = OrchestratedRunRow(*orchestration)
        fold.tasks = dict.fromkeys(plan.task_keys)
        for row in tasks_and_attempts:
            task, attempt = row[:_TASK_WIDTH], row[_TASK_WIDTH:]
            fold.tasks[task[0]] = TaskRow(*task)
            if attempt[0] is not None:  # a cloned task has no attempts
                fold.attempts[(attempt[0], attempt[1])] = AttemptRow(*attempt)
        fold.steps = dict.fromkeys(plan.step_keys)
        fold.steps.update((row[0], StepRow(*row)) for row in step_rows)
        fold.known_flows = {row[0] for row in flows}
        fold.run_tags = {path: {} for path in plan.tag_runs}
        for path, tag, is_system in tag_rows:
            fold.run_tags[path][tag] = is_system
        fold.table_latest = {(namespace, table): int(latest)
                             for namespace, table, latest in table_rows}  # fmt: skip
        fold.deployments = dict.fromkeys(plan.deployments)
        fold.deployments.update((row[0], DeploymentRow(*row)) for row in deployed)
        for found in (NotificationRow(*row) for row in notified):
            fold.notifications[(found.run_pathspec, found.notification)] = found
        # As load_queue leaves them: a key for each task of an orchestrated run.
        fold.queue = dict.fromkeys(
            _of_orchestrated_runs(plan.task_keys, fold.orchestrated, orchestrated or {})
        )
        fold.queue.update((row[0], QueueRow(*row)) for row in queued if row[0] in fold.queue)
        return fold

    def load_queue(self, tx: Tx, task_keys: Iterable[str]) -> None:
        """Loads the queue rows of the tasks of orchestrated runs among `task_keys`
        (one query, and none for a batch of runs the service does not orchestrate)."""
        wanted = sorted(
            key for key in _of_orchestrated_runs(task_keys, self.orchestrated)
            if key not in self.queue
        )  # fmt: skip
        if not wanted:
            return
        self.queue.update(dict.fromkeys(wanted))
        condition, params = tx.dialect.one_of("task_pathspec", wanted)
        for row in tx.query(_QUEUE_SELECT + condition, params):
            self.queue[row[0]] = QueueRow(*row)

    # ---- apply ------------------------------------------------------------------

    def apply(self, item: PendingEvent) -> None:
        """Checks one event against the current state and folds it in."""
        kind = item.address.kind
        payload = getattr(item.event, kind)
        if item.principal is not None and item.principal.authenticated:
            self._check_permission(item.principal, kind, payload, item)
        fenced = kind in queue.FENCED_EVENTS and self.orchestrated.get(item.address.run_pathspec)
        if fenced:
            queue.check_lease(self, kind, payload, item)
        elif kind == "run_finished":
            queue.check_run_finished(self, item)
        cloned = kind == "task_cloned" and self.orchestrated.get(item.address.run_pathspec)
        if cloned:
            queue.check_task_cloned(self, item)
        if not (fenced and queue.renews_lease_only(self, kind, item)):
            _HANDLERS[kind](self, payload, item)
        if fenced:
            queue.after_task_event(self, kind, payload, item)
        elif cloned:
            queue.task_cloned(self, payload, item)
        elif kind == "run_started":
            queue.run_started(self, payload, item)
        if self.decides and kind in ("run_finished", "event_published"):
            self.to_react.append(item)
        run = self.runs.get(item.address.run_pathspec)
        if run is not None and kind not in ("tags_added", "tags_removed"):
            # Any activity of a run's writer counts as a heartbeat; tagging does not.
            run.last_heartbeat_at_us = max(run.last_heartbeat_at_us, item.recorded_at_us)
            self.mark(run)

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

    # ---- what the handlers share --------------------------------------------------

    def mark(self, row: Any) -> None:
        """Records that `row` changed and must be saved."""
        if isinstance(row, AttemptRow):
            key: Any = (row.task_pathspec, row.attempt)
        elif isinstance(row, QueueRow):
            key = row.task_pathspec
        elif isinstance(row, OrchestratedRunRow):
            key = row.run_pathspec
        elif isinstance(row, DeploymentRow):
            key = row.name
        elif isinstance(row, NotificationRow):
            key = (row.run_pathspec, row.notification)
        else:
            key = row.pathspec
        self.dirty[(type(row), key)] = row

    def orchestrate(self, item: PendingEvent) -> None:
        """Asks the process manager to decide what follows `item` (live appends only)."""
        if self.decides:
            self.to_decide.append(item)
        self.orchestrate_run(item.address.run_pathspec)

    def orchestrate_run(self, run_path: str) -> None:
        """Asks the process manager to cancel what a stopping run has queued, and to
        finish a run with no open tasks (live appends only)."""
        if not self.decides:
            return
        run = self.orchestrated.get(run_path)
        if run is not None and run.state != "running":
            self.to_stop.add(run_path)
        self.to_finish.add(run_path)

    def follow_ups(self, tx: Tx) -> Sequence[events_pb2.Event]:
        """The events the process manager decided from what was applied since the
        last call, for the store to append and apply in the same transaction."""
        if not (self.to_decide or self.to_stop or self.to_finish or self.to_react):
            return ()
        assert self.decide is not None, "a fold that decides is given its decider"
        events = self.decide(self, tx)
        if events:
            self._load_missing(tx, events)
        return events

    def _load_missing(self, tx: Tx, events: Sequence[events_pb2.Event]) -> None:
        """Loads the rows that decided events touch and this fold has not loaded yet
        (say, the origin task a clone points at)."""
        wanted = plan_batch(((e.event_id, e, address_of(e)) for e in events), tx.dialect)
        missing = ReadModelPlan(
            run_keys=wanted.run_keys - self.runs.keys(),
            task_keys=wanted.task_keys - self.tasks.keys(),
            step_keys=wanted.step_keys - self.steps.keys(),
            tag_runs=wanted.tag_runs - self.run_tags.keys(),
            deployments=wanted.deployments - self.deployments.keys(),
            notification_runs=wanted.notification_runs - self._notification_runs(),
            # A run the service starts (a deployment's) may be its flow's first.
            flow_names=wanted.flow_names - self.known_flows,
        )
        if not any(missing.key_sets()):
            self.load_queue(tx, wanted.task_keys)
            return
        missing.build_queries(tx.dialect)
        loaded = ReadModelFold.from_rows(
            missing, tx.query_all(missing.queries), orchestrated=self.orchestrated
        )
        self.known_flows |= loaded.known_flows
        pairs: list[tuple[dict[Any, Any], dict[Any, Any]]] = [
            (self.runs, loaded.runs), (self.tasks, loaded.tasks), (self.steps, loaded.steps),
            (self.attempts, loaded.attempts), (self.orchestrated, loaded.orchestrated),
            (self.queue, loaded.queue), (self.run_tags, loaded.run_tags),
            (self.deployments, loaded.deployments), (self.notifications, loaded.notifications),
        ]  # fmt: skip
        for mine, theirs in pairs:
            for key, value in theirs.items():
                mine.setdefault(key, value)
        self.load_queue(tx, wanted.task_keys)

    def _notification_runs(self) -> set[str]:
        return {path for path, _ in self.notifications}

    def run(self, path: str, *, open_only: bool, missing: type = FailedPrecondition) -> RunRow:
        """The run at `path`; `missing` raises when it was never started, and with
        `open_only` a finished run refuses more events."""
        run = self.runs.get(path)
        if run is None:
            raise missing(f"run {path} has not been started")
        if open_only and run.finished_at_us is not None:
            raise FailedPrecondition(f"run {path} has already finished; no more task events")
        return run

    def open_attempt(self, ref_path: str, attempt: int, *, finished_ok: bool = False) -> TaskRow:
        """The task at `ref_path`, when `attempt` is its current attempt and (unless
        `finished_ok`) still running."""
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

    # ---- save -------------------------------------------------------------------

    def save(self, tx: Tx, also: Sequence[RowInsert] = ()) -> None:
        """Writes the changed rows, together with the rows in `also` (one statement on
        Postgres for all the inserts)."""
        by_type: dict[type, list[tuple[Any, ...]]] = {}
        for (row_type, _), row in self.dirty.items():
            by_type.setdefault(row_type, []).append(tuple(vars(row).values()))
        tx.insert_all([
            *also,
            RowInsert("flows", FLOW_COLUMNS, list(self.new_flows.values())),
            RowInsert("run_graphs", GRAPH_COLUMNS, self.new_run_graphs),
            *(RowInsert(table, columns, by_type.get(row_type, []), on_conflict)
              for row_type, (table, columns, on_conflict) in _UPSERT.items()),
            RowInsert("artifacts", ARTIFACT_COLUMNS, self.new_artifacts),
            RowInsert("run_tags", TAG_COLUMNS,
                      [(*key, state) for key, state in self.tag_changes.items()
                       if state is not None],
                      "ON CONFLICT (run_pathspec, tag) DO NOTHING"),
            RowInsert("table_versions", lineage.VERSION_COLUMNS, self.new_table_versions),
            RowInsert("table_reads", lineage.READ_COLUMNS, self.new_table_reads,
                      "ON CONFLICT (namespace, table_name, version, task_pathspec, attempt) "
                      "DO NOTHING"),
            RowInsert("cards", cards.CARD_COLUMNS, self.new_cards, cards.ON_CONFLICT),
        ])  # fmt: skip
        # After the inserts: a clone may copy artifacts recorded by this same batch
        # (a rebuild replays an origin run and its resume in one chunk).
        artifacts.copy_cloned(tx, self.clones)
        # A tag's final state is either present (inserted above) or removed, never both.
        removed = [key for key, state in self.tag_changes.items() if state is None]
        if removed:
            tx.executemany("DELETE FROM run_tags WHERE run_pathspec = ? AND tag = ?", removed)


class ReadModels:
    """The read models as the event store's projector (see store/projector.py).
    `decide` is the process manager (orchestration/process_manager.py): in live appends
    it says what follows the folded events. The read models do not import it: the
    orchestration reads them, not the other way round."""

    tables = READ_MODEL_TABLES

    def __init__(self, decide: Decider) -> None:
        self.decide = decide

    def plan(
        self, items: Iterable[tuple[str, events_pb2.Event, EventAddress]], dialect: Dialect
    ) -> ReadModelPlan:
        return plan_batch(items, dialect)

    def merge(self, plans: Iterable[ReadModelPlan], dialect: Dialect) -> ReadModelPlan:
        union = ReadModelPlan()
        for part in plans:
            union.unite(part)
        union.build_queries(dialect)
        return union

    def independent_rows(
        self, planned: Sequence[tuple[ReadModelPlan, Collection[str]]]
    ) -> list[RowInsert]:
        rows = [
            row
            for plan, event_ids in planned
            for event_id, event_rows in plan.artifacts.items()
            if event_id in event_ids
            for row in event_rows
        ]
        return [RowInsert("artifacts", ARTIFACT_COLUMNS, rows)] if rows else []

    def fold(self, tx: Tx, plan: ReadModelPlan, rows: list[list[Row]]) -> ReadModelFold:
        # Live appends: the store wrote the artifact rows with the events, and the
        # process manager decides what follows them.
        fold = ReadModelFold.from_rows(plan, rows, collect_artifacts=False, decides=True)
        fold.decide = self.decide
        return fold

    def load(self, tx: Tx, pending: Sequence[PendingEvent]) -> ReadModelFold:
        plan = plan_batch(
            ((item.event.event_id, item.event, item.address) for item in pending), tx.dialect
        )
        return ReadModelFold.from_rows(plan, tx.query_all(plan.queries))

    def explain_conflict(
        self, database: Database, plans: Sequence[ReadModelPlan], error: Exception
    ) -> LedgerError | None:
        if "artifacts" not in str(error):
            return None
        rows = [row for plan in plans for found in plan.artifacts.values() for row in found]
        return artifacts.already_recorded(database, rows)


def _select(
    dialect: Dialect, source: str, columns: Sequence[str], key: str, values: set[str]
) -> Query | None:
    """SELECT columns FROM source (a table or a join) WHERE key is one of values
    (None for no values)."""
    if not values:
        return None
    condition, params = dialect.one_of(key, sorted(values))
    return f"SELECT {', '.join(columns)} FROM {source} WHERE {condition}", params


def _of_orchestrated_runs(
    task_keys: Iterable[str], *orchestrated: Mapping[str, OrchestratedRunRow | None]
) -> list[str]:
    """The task pathspecs among `task_keys` whose runs (Flow/run) one of the mappings
    says the service orchestrates: only their tasks have queue rows."""
    return [
        key for key in task_keys
        if any(runs.get(key.rsplit("/", 2)[0]) for runs in orchestrated)
    ]  # fmt: skip
