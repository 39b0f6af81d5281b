"""The application layer: every command and query of the metadata service, taking and
returning ``ledgerflow.v1`` messages.

The gRPC transport (``api/``) and the SDK's embedded mode both call this class, so
both modes obey the same rules and raise the same :class:`LedgerError` subclasses.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ledgerflow.v1 import (
    audit_service_pb2 as audit,
)
from ledgerflow.v1 import (
    deployment_service_pb2 as deployment_api,
)
from ledgerflow.v1 import (
    events_pb2,
)
from ledgerflow.v1 import (
    executor_service_pb2 as executor_api,
)
from ledgerflow.v1 import (
    ledger_service_pb2 as ledger_api,
)
from ledgerflow.v1 import (
    query_service_pb2 as query_api,
)
from ledgerflow.v1 import (
    tag_service_pb2 as tag_api,
)

from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import InvalidArgument, NotFound
from ledgerflow_service.names import (
    DEPLOYMENT_STREAM_PREFIX,
    check_event_id,
    check_id,
    check_identifier,
    check_tag,
    parse_pathspec,
)
from ledgerflow_service.orchestration import process_manager
from ledgerflow_service.principal import Principal
from ledgerflow_service.queries import artifacts as artifact_queries
from ledgerflow_service.queries import audit as audit_queries
from ledgerflow_service.queries import deployments as deployment_queries
from ledgerflow_service.queries import queue as queue_queries
from ledgerflow_service.queries import runs as run_queries
from ledgerflow_service.queries import tables as table_queries
from ledgerflow_service.queries import tasks as task_queries
from ledgerflow_service.queries.fields import check_run_key
from ledgerflow_service.queries.status import Clock
from ledgerflow_service.read_models import ReadModels
from ledgerflow_service.read_models.notifications import HANDLERS as NOTIFICATION_EVENTS
from ledgerflow_service.read_models.queue import SERVICE_EVENTS
from ledgerflow_service.store import events as stored_events
from ledgerflow_service.store.addressing import DEPLOYMENT_EVENTS
from ledgerflow_service.store.append import append_chosen
from ledgerflow_service.store.backend import Database, Tx
from ledgerflow_service.store.group_commit import GroupCommit
from ledgerflow_service.store.replay import rebuild_projections
from ledgerflow_service.validation import check_filter, check_int64

if TYPE_CHECKING:
    from ledgerflow_service.orchestration.leases import LeaseDesk
    from ledgerflow_service.orchestration.notifications import NotificationDesk, Notifier
    from ledgerflow_service.orchestration.schedules import DeploymentDesk, Scheduler

# How often a watch hub's follower looks for new events that nobody told it of. On
# Postgres every append notifies every process and a listener that reconnects wakes
# its hubs (notifications sent meanwhile are lost), so the poll is only a backstop:
# each one is a read in every process with watchers. SQLite cannot notify another
# process writing the same file, so its watchers poll often.
WATCH_POLL_SECONDS_NOTIFIED = 10.0
WATCH_POLL_SECONDS_UNNOTIFIED = 0.2
# How often a watcher of a database that does not notify looks at its change stamp.
_CHANGE_CHECK_SECONDS = 0.02
# The most events a watch stream's response may carry (WatchEventsRequest.batch_events).
MAX_WATCH_BATCH = 64
# Kinds only the service appends, through its own commands (DeploymentService).
SERVICE_WRITES = frozenset({*DEPLOYMENT_EVENTS, "event_published", *NOTIFICATION_EVENTS})

# Every event type a watch may filter by ("RunStarted", ...).
EVENT_TYPES = frozenset(
    stored_events.type_name(f.name)
    for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
)


# The events an append committed, each with its run's pathspec, made on demand.
CommittedEvents = Callable[[], list[tuple[events_pb2.Event, str]]]
# Called with the runs an append touched (None: any run) and, for this process's own
# appends, its committed events (None for another process's).
AppendCallback = Callable[[CommittedEvents | None, frozenset[str] | None], None]


class AppendSignal:
    """Tells subscribers (the watch hubs) that events were appended: by this process,
    with a way to get the committed events without reading them back, or by another
    process, through the database's notifications, with the runs they belong to.
    Callbacks run on the appending (or listening) thread and must return at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[AppendCallback, ...] = ()

    def subscribe(self, callback: AppendCallback) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

    def unsubscribe(self, callback: AppendCallback) -> None:
        with self._lock:
            self._subscribers = tuple(c for c in self._subscribers if c != callback)

    def fire(self, committed: CommittedEvents, envelopes: Iterable[events_pb2.Event]) -> None:
        """This process appended the events recorded as `envelopes` (their runs are
        worked out only when someone listens)."""
        if not self._subscribers:
            return
        runs = frozenset(run_of_stream(envelope.stream) for envelope in envelopes)
        for callback in self._subscribers:
            callback(committed, runs)

    def fire_elsewhere(self, runs: frozenset[str] | None) -> None:
        """Another process appended to `runs` (None: any run)."""
        for callback in self._subscribers:
            callback(None, runs)


def committed_events(
    sent: Sequence[events_pb2.Event], recorded: Sequence[events_pb2.Event]
) -> list[tuple[events_pb2.Event, str]]:
    """The events as stored (the payload sent, the envelope recorded), with their run
    pathspecs, from an append's request and response."""
    found = []
    for event, envelope in zip(sent, recorded, strict=True):
        kind = event.WhichOneof("payload")
        if kind is None:
            continue
        stored = events_pb2.Event()
        stored.CopyFrom(envelope)
        getattr(stored, kind).CopyFrom(getattr(event, kind))
        found.append((stored, run_of_stream(envelope.stream)))
    return found


def run_of_stream(stream: str) -> str:
    """The run pathspec ("Flow/run") of an event's stream (the run's, a step's or a
    task's)."""
    return "/".join(stream.split("/", 2)[:2])


@dataclass(frozen=True)
class WatchFilter:
    """What one watch stream wants: a run's events or all ("") and some types or all."""

    run_pathspec: str = ""
    event_types: frozenset[str] = frozenset()

    def matches(self, run_pathspec: str, event_type: str) -> bool:
        return (not self.run_pathspec or run_pathspec == self.run_pathspec) and (
            not self.event_types or event_type in self.event_types
        )


Paged = TypeVar("Paged")


@dataclass(frozen=True)
class _Desks:
    """The application's orchestration: leases, deployments and their schedule, and
    the notifications of finished runs."""

    leases: LeaseDesk
    deployments: DeploymentDesk
    scheduler: Scheduler
    notifications: NotificationDesk
    notifier: Notifier

    @classmethod
    def build(
        cls,
        app: LedgerApplication,
        schedule_clock_us: Callable[[], int],
        allow_notify_commands: bool,
        notify_timeout_seconds: float | None,
    ) -> _Desks:
        from ledgerflow_service.orchestration.leases import LeaseDesk
        from ledgerflow_service.orchestration.notifications import (
            DEFAULT_TIMEOUT_SECONDS,
            NotificationDesk,
            Notifier,
        )
        from ledgerflow_service.orchestration.schedules import DeploymentDesk, Scheduler

        database, append_as, append_chosen = app.database, app._append_as, app._append_chosen
        if notify_timeout_seconds is None:
            notify_timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        deployments = DeploymentDesk(
            database, append_as, append_chosen, schedule_clock_us,
            allow_notify_commands=allow_notify_commands,
        )  # fmt: skip
        notifications = NotificationDesk(
            database, append_as, append_chosen, schedule_clock_us,
            allow_commands=allow_notify_commands,
            timeout_seconds=notify_timeout_seconds,
        )  # fmt: skip
        return cls(
            LeaseDesk(database, append_as, append_chosen, app.clock),
            deployments,
            Scheduler(deployments, schedule_clock_us),
            notifications,
            Notifier(notifications),
        )


def _with_token(response: Paged, token: str) -> Paged:
    """`response` with its page's next_page_token set (empty: the last page)."""
    response.page.next_page_token = token  # type: ignore[attr-defined]
    return response


class LedgerApplication:
    def __init__(
        self,
        database: Database,
        *,
        lost_after_seconds: float = 60.0,
        watch_poll_seconds: float | None = None,
        read_clock_us: Callable[[], int] = stored_events.now_us,
        schedule_clock_us: Callable[[], int] = stored_events.now_us,
        allow_notify_commands: bool = False,
        notify_timeout_seconds: float | None = None,
    ) -> None:
        """`read_clock_us` is the "now" against which queries judge heartbeats, and
        `schedule_clock_us` the one the scheduler fires due deployments and sends due
        notifications by (a test moves them on instead of waiting). With
        `allow_notify_commands`, @notify(command=...) may be deployed and is run here;
        `notify_timeout_seconds` bounds each notification attempt (None: the default of
        orchestration/notifications.py)."""
        self.database = database
        self.lost_after_us = int(lost_after_seconds * 1e6)
        self.read_clock_us = read_clock_us
        self.signal = AppendSignal()
        self.read_models = ReadModels(decide=process_manager.follow_ups)
        self.appender = GroupCommit(database, self.read_models)
        self.watch_poll_seconds = watch_poll_seconds or (
            WATCH_POLL_SECONDS_NOTIFIED
            if database.notifies_other_processes
            else WATCH_POLL_SECONDS_UNNOTIFIED
        )
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._sweeper: threading.Thread | None = None
        self._desk_settings = (schedule_clock_us, allow_notify_commands, notify_timeout_seconds)
        self._desks: _Desks | None = None
        self._desks_lock = threading.Lock()

    def _orchestration(self) -> _Desks:
        """The desks that lease tasks, deploy flows and fire and notify, built together
        on first use (a server builds them as it starts): a flow run on a laptop (the
        SDK's embedded mode) uses none of them, and their modules are ~10 ms of its
        start."""
        desks = self._desks
        if desks is not None:
            return desks
        with self._desks_lock:
            if self._desks is None:
                self._desks = _Desks.build(self, *self._desk_settings)
            return self._desks

    @property
    def leases(self) -> LeaseDesk:
        return self._orchestration().leases

    @property
    def deployments(self) -> DeploymentDesk:
        return self._orchestration().deployments

    @property
    def scheduler(self) -> Scheduler:
        return self._orchestration().scheduler

    @property
    def notifications(self) -> NotificationDesk:
        return self._orchestration().notifications

    @property
    def notifier(self) -> Notifier:
        return self._orchestration().notifier

    def start_listening(self) -> None:
        """Starts relaying other processes' appends to watchers (Postgres NOTIFY)."""
        if self._listener is None:
            self._listener = threading.Thread(
                target=self.database.listen,
                args=(self.signal.fire_elsewhere, self._stop),
                name="ledgerflow-listen",
                daemon=True,
            )
            self._listener.start()

    def start_sweeping_leases(self, every_seconds: float = 1.0) -> None:
        """Starts expiring the leases that ran out (their tasks are queued again), and
        failing the queued tasks that waited past their run's --queue-timeout."""

        def sweep() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.leases.expire()
                    self.leases.time_out_queued()
                except Exception:  # a database hiccup: the next sweep tries again
                    import logging  # here: a flow's start does without it (~3 ms)

                    logging.getLogger(__name__).exception("expiring leases failed")

        self._orchestration()  # the lease desk's clock starts with the server
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=sweep, name="ledgerflow-leases", daemon=True)
            self._sweeper.start()

    def start_scheduling(self) -> None:
        """Starts firing the deployments' due times (see orchestration/schedules.py),
        looking again whenever any process changes a deployment, and sending the
        notifications of finished runs (orchestration/notifications.py)."""

        def on_append(_: CommittedEvents | None, runs: frozenset[str] | None) -> None:
            if runs is None or any(run.startswith(DEPLOYMENT_STREAM_PREFIX) for run in runs):
                self.scheduler.wake()

        self.signal.subscribe(on_append)
        self.scheduler.start()
        self.notifier.start()

    def close(self) -> None:
        with self._desks_lock:
            desks = self._desks
        if desks is not None:
            desks.scheduler.stop()
            desks.notifier.stop()
        self._stop.set()
        for thread in (self._listener, self._sweeper):
            if thread is not None:
                thread.join(timeout=5)
        self.database.close()

    def clock(self) -> Clock:
        return Clock(self.read_clock_us(), self.lost_after_us)

    # ---- commands ---------------------------------------------------------------

    def append(
        self,
        request: ledger_api.AppendRequest,
        principal: Principal,
        still_wanted: Callable[[], bool] | None = None,
    ) -> ledger_api.AppendResponse:
        """`still_wanted()` is asked just before commit; when it says no (the caller's
        deadline passed), the append rolls back with DEADLINE_EXCEEDED."""
        for index, event in enumerate(request.events):
            kind = event.WhichOneof("payload")
            if kind in SERVICE_EVENTS:
                raise InvalidArgument(
                    f"event {index}: {kind} events are written by the service itself "
                    "(executors lease tasks with LeaseTask)"
                )
            if kind in SERVICE_WRITES or (
                kind == "run_started" and event.run_started.HasField("trigger")
            ):
                raise InvalidArgument(
                    f"event {index}: deployments, the runs they fire, published events and "
                    "notifications are written by the service itself: use DeploymentService "
                    "(`ledgerflow deployments --help`, `ledgerflow events publish`)"
                )
        return ledger_api.AppendResponse(
            events=self._append_as(request.events, principal, still_wanted)
        )

    def _append_as(
        self,
        events: Sequence[events_pb2.Event],
        principal: Principal,
        still_wanted: Callable[[], bool] | None = None,
    ) -> list[events_pb2.Event]:
        """Appends, and tells watchers of the events and of what the service added."""
        derived: list[events_pb2.Event] = []
        recorded = self.appender.append(events, principal, still_wanted, derived)
        self.signal.fire(
            lambda: [
                *committed_events(events, recorded),
                *((event, run_of_stream(event.stream)) for event in derived),
            ],
            itertools.chain(recorded, derived),
        )
        return recorded

    def _tag_event(self, request: Any, added: bool) -> events_pb2.Event:
        check_identifier("flow_name", request.flow_name)
        check_id("run_id", request.run_id)
        tags = check_filter("tags", request.tags)
        if not tags:
            raise InvalidArgument("name at least one tag")
        for tag in tags:
            check_tag(tag)
        # The caller's id makes a retried call idempotent; without one, a fresh one.
        event_id = check_event_id(request.event_id) if request.event_id else str(uuid.uuid4())
        event = events_pb2.Event(event_id=event_id)
        change = event.tags_added if added else event.tags_removed
        change.flow_name, change.run_id = request.flow_name, request.run_id
        change.tags.extend(tags)
        return event

    def _run_tags(self, flow_name: str, run_id: str) -> list[str]:
        with self.database.read() as tx:
            return list(run_queries.get_run(tx, flow_name, run_id, self.clock()).tags)

    def add_tags(
        self, request: tag_api.AddTagsRequest, principal: Principal
    ) -> tag_api.AddTagsResponse:
        self._append_as([self._tag_event(request, True)], principal)
        return tag_api.AddTagsResponse(tags=self._run_tags(request.flow_name, request.run_id))

    def remove_tags(
        self, request: tag_api.RemoveTagsRequest, principal: Principal
    ) -> tag_api.RemoveTagsResponse:
        self._append_as([self._tag_event(request, False)], principal)
        return tag_api.RemoveTagsResponse(tags=self._run_tags(request.flow_name, request.run_id))

    def _append_chosen(
        self,
        choose: Callable[[Tx], Sequence[events_pb2.Event]],
        principal: Principal,
        then: Callable[[Tx], None] | None = None,
    ) -> list[events_pb2.Event]:
        """Appends what `choose` picks under the append lock (see store/append.py)."""
        sent, recorded = append_chosen(self.database, self.read_models, choose, principal, then)
        if sent:
            self.signal.fire(lambda: committed_events(sent, recorded), recorded)
        return recorded

    # ---- executors ------------------------------------------------------------------

    def lease_task(
        self, request: executor_api.LeaseTaskRequest, principal: Principal
    ) -> executor_api.LeaseTaskResponse:
        return self.leases.lease(request, principal)

    def lease_tasks(
        self, request: executor_api.LeaseTasksRequest, principal: Principal
    ) -> executor_api.LeaseTasksResponse:
        leases = self.leases.lease_many(request.request, request.max_tasks, principal)
        return executor_api.LeaseTasksResponse(leases=leases)

    def renew_lease(
        self, request: executor_api.RenewLeaseRequest, principal: Principal
    ) -> executor_api.RenewLeaseResponse:
        return self.leases.renew(request, principal)

    def list_queued_tasks(
        self, request: executor_api.ListQueuedTasksRequest, scope: CallScope | None = None
    ) -> executor_api.ListQueuedTasksResponse:
        with self.database.read(scope) as tx:
            tasks, token = queue_queries.list_open(tx, request)
            nodes = queue_queries.gang_sizes(tx, tasks)
            caps = queue_queries.run_caps(tx, [f"{t.flow_name}/{t.run_id}" for t in tasks])
        for task, gang in zip(tasks, nodes, strict=True):
            cap = caps.get(f"{task.flow_name}/{task.run_id}")
            task.waiting_reason = self.leases.waiting_reason(task, gang, cap)
        return _with_token(executor_api.ListQueuedTasksResponse(tasks=tasks), token)

    def list_executors(
        self, request: executor_api.ListExecutorsRequest, scope: CallScope | None = None
    ) -> executor_api.ListExecutorsResponse:
        """The executors that asked this process for work recently (orchestration/executors.py)."""
        from ledgerflow_service.orchestration.executors import list_executors

        return list_executors(self.leases, request, scope)

    def rebuild_projections(self, on_progress: Callable[[int, int], None] | None = None) -> int:
        return rebuild_projections(self.database, self.read_models, on_progress=on_progress)

    # ---- deployments (orchestration/schedules.py) --------------------------------------

    def deploy(
        self, request: deployment_api.DeployRequest, principal: Principal
    ) -> deployment_api.DeployResponse:
        return self.deployments.deploy(request, principal)

    def pause_deployment(
        self, request: deployment_api.PauseDeploymentRequest, principal: Principal
    ) -> deployment_api.PauseDeploymentResponse:
        return self.deployments.pause(request, principal)

    def resume_deployment(
        self, request: deployment_api.ResumeDeploymentRequest, principal: Principal
    ) -> deployment_api.ResumeDeploymentResponse:
        return self.deployments.resume(request, principal)

    def delete_deployment(
        self, request: deployment_api.DeleteDeploymentRequest, principal: Principal
    ) -> deployment_api.DeleteDeploymentResponse:
        return self.deployments.delete(request, principal)

    def trigger_deployment(
        self, request: deployment_api.TriggerDeploymentRequest, principal: Principal
    ) -> deployment_api.TriggerDeploymentResponse:
        return self.deployments.trigger(request, principal)

    def publish_event(
        self, request: deployment_api.PublishEventRequest, principal: Principal
    ) -> deployment_api.PublishEventResponse:
        return self.deployments.publish_event(request, principal)

    def backfill_deployment(
        self, request: deployment_api.BackfillDeploymentRequest, principal: Principal
    ) -> deployment_api.BackfillDeploymentResponse:
        return self.deployments.backfill(request, principal)

    def get_deployment(
        self, request: deployment_api.GetDeploymentRequest, scope: CallScope | None = None
    ) -> deployment_api.GetDeploymentResponse:
        with self.database.read(scope) as tx:
            found = deployment_queries.get(tx, request.name)
        return deployment_api.GetDeploymentResponse(deployment=found)

    def list_deployments(
        self, request: deployment_api.ListDeploymentsRequest, scope: CallScope | None = None
    ) -> deployment_api.ListDeploymentsResponse:
        with self.database.read(scope) as tx:
            found, token = deployment_queries.list_deployments(tx, request)
        return _with_token(deployment_api.ListDeploymentsResponse(deployments=found), token)

    # ---- queries ----------------------------------------------------------------
    # Each takes the request and, from the transport, the call's scope (deadline and
    # cancellation); in-process callers leave it out.

    def get_flow(
        self, request: query_api.GetFlowRequest, scope: CallScope | None = None
    ) -> query_api.GetFlowResponse:
        with self.database.read(scope) as tx:
            return query_api.GetFlowResponse(flow=run_queries.get_flow(tx, request.flow_name))

    def list_flows(
        self, request: query_api.ListFlowsRequest, scope: CallScope | None = None
    ) -> query_api.ListFlowsResponse:
        with self.database.read(scope) as tx:
            flows, token = run_queries.list_flows(tx, request.page)
        return _with_token(query_api.ListFlowsResponse(flows=flows), token)

    def get_run(
        self, request: query_api.GetRunRequest, scope: CallScope | None = None
    ) -> query_api.GetRunResponse:
        with self.database.read(scope) as tx:
            answer = query_api.GetRunResponse(
                run=run_queries.get_run(tx, request.flow_name, request.run_id, self.clock())
            )
            if request.include_graph:
                answer.graph.CopyFrom(run_queries.run_graph(tx, request.flow_name, request.run_id))
            return answer

    def list_runs(
        self, request: query_api.ListRunsRequest, scope: CallScope | None = None
    ) -> query_api.ListRunsResponse:
        with self.database.read(scope) as tx:
            runs, token = run_queries.list_runs(tx, request, self.clock())
        return _with_token(query_api.ListRunsResponse(runs=runs), token)

    def list_steps(
        self, request: query_api.ListStepsRequest, scope: CallScope | None = None
    ) -> query_api.ListStepsResponse:
        with self.database.read(scope) as tx:
            steps, token = task_queries.list_steps(
                tx, request.flow_name, request.run_id, request.page, self.clock()
            )
        return _with_token(query_api.ListStepsResponse(steps=steps), token)

    def list_tasks(
        self, request: query_api.ListTasksRequest, scope: CallScope | None = None
    ) -> query_api.ListTasksResponse:
        with self.database.read(scope) as tx:
            tasks, token = task_queries.list_tasks(
                tx, request.flow_name, request.run_id, request.step_name, self.clock(),
                page=request.page,
            )  # fmt: skip
        return _with_token(query_api.ListTasksResponse(tasks=tasks), token)

    def list_task_spans(
        self, request: query_api.ListTaskSpansRequest, scope: CallScope | None = None
    ) -> query_api.ListTaskSpansResponse:
        with self.database.read(scope) as tx:
            return task_queries.list_task_spans(
                tx, request.flow_name, request.run_id, request.page, self.clock()
            )

    def get_task(
        self, request: query_api.GetTaskRequest, scope: CallScope | None = None
    ) -> query_api.GetTaskResponse:
        if not request.step_name or not request.task_id:
            raise InvalidArgument("get_task needs flow_name, run_id, step_name and task_id")
        with self.database.read(scope) as tx:
            found, _ = task_queries.list_tasks(
                tx,
                request.flow_name,
                request.run_id,
                request.step_name,
                self.clock(),
                request.task_id,
            )
        if not found:
            raise NotFound(
                f"task {request.flow_name}/{request.run_id}/{request.step_name}/"
                f"{request.task_id} does not exist"
            )
        return query_api.GetTaskResponse(task=found[0])

    def list_artifacts(
        self, request: query_api.ListArtifactsRequest, scope: CallScope | None = None
    ) -> query_api.ListArtifactsResponse:
        with self.database.read(scope) as tx:
            artifacts, token = artifact_queries.list_artifacts(tx, request)
        return _with_token(query_api.ListArtifactsResponse(artifacts=artifacts), token)

    def list_tables(
        self, request: query_api.ListTablesRequest, scope: CallScope | None = None
    ) -> query_api.ListTablesResponse:
        with self.database.read(scope) as tx:
            tables, token = table_queries.list_tables(tx, request)
        return _with_token(query_api.ListTablesResponse(tables=tables), token)

    def list_table_versions(
        self, request: query_api.ListTableVersionsRequest, scope: CallScope | None = None
    ) -> query_api.ListTableVersionsResponse:
        with self.database.read(scope) as tx:
            versions, token = table_queries.list_table_versions(tx, request)
        return _with_token(query_api.ListTableVersionsResponse(versions=versions), token)

    # ---- watch and audit --------------------------------------------------------

    def watch_filter(self, request: ledger_api.WatchEventsRequest) -> WatchFilter:
        """Checks a watch request; returns what its stream wants."""
        check_int64("after_position", request.after_position)
        if request.batch_events > MAX_WATCH_BATCH:
            raise InvalidArgument(
                f"batch_events is at most {MAX_WATCH_BATCH}, got {request.batch_events}"
            )
        if request.from_head and request.after_position:
            raise InvalidArgument("give after_position or from_head, not both")
        if request.run_pathspec:
            flow, run = parse_pathspec(request.run_pathspec, 2)
            check_run_key(flow, run)
        types = check_filter("event_types", request.event_types)
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            known = ", ".join(sorted(EVENT_TYPES))
            raise InvalidArgument(f"unknown event type {unknown[0][:64]!r}: use one of {known}")
        return WatchFilter(request.run_pathspec, frozenset(types))

    def watch_start(self, request: ledger_api.WatchEventsRequest) -> int:
        """The position a watch stream starts after."""
        return self.ledger_head() if request.from_head else request.after_position

    def ledger_head(self) -> int:
        """The position of the newest event (0 for an empty ledger)."""
        with self.database.read() as tx:
            return stored_events.head_position(tx)

    def read_watch_chunk(
        self,
        after: int,
        wants: WatchFilter | None,
        limit: int,
        scope: CallScope | None = None,
    ) -> tuple[list[tuple[events_pb2.Event, str]], int, bool]:
        """Up to `limit` events after position `after` that `wants` (None: all), of at
        most a few MiB together, each with its run's pathspec; a head: no event at or
        below it that `wants` is missing from the answer; and whether more may follow
        at once (see store.events.read_after)."""
        with self.database.read(scope) as tx:
            if wants is None:
                return stored_events.read_after(tx, after, limit)
            runs = [wants.run_pathspec] if wants.run_pathspec else []
            return stored_events.read_after(tx, after, limit, runs, wants.event_types)

    def change_stamp(self) -> object:
        """What wait_for_appends compares (Database.change_stamp): take it before a
        read, so that an append between the read and the wait is not missed."""
        return self.database.change_stamp()

    def wait_for_appends(self, seconds: float, since: object) -> None:
        """Returns once the ledger may hold events appended after `since` (a
        change_stamp taken before the last read: a look every 20 ms where the database
        does not notify), or after `seconds`: what a watcher of an embedded ledger
        sleeps on between reads."""
        if since is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while self.database.change_stamp() == since:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_CHANGE_CHECK_SECONDS, left))

    def read_runs_chunk(
        self, after: int, runs: Collection[str] | None, limit: int
    ) -> tuple[list[tuple[events_pb2.Event, str]], int, bool]:
        """Up to `limit` events after position `after` of `runs` (None: of every run),
        with a head and whether more follow, as read_watch_chunk's (what a watch hub
        follows)."""
        with self.database.read() as tx:
            return stored_events.read_after(tx, after, limit, runs or ())

    def list_events(
        self, request: audit.ListEventsRequest, scope: CallScope | None = None
    ) -> audit.ListEventsResponse:
        with self.database.read(scope) as tx:
            events, token = audit_queries.list_events(tx, request)
        return _with_token(audit.ListEventsResponse(events=events), token)

    def get_run_as_of(
        self, request: audit.GetRunAsOfRequest, scope: CallScope | None = None
    ) -> audit.GetRunAsOfResponse:
        with self.database.read(scope) as tx:
            run, tasks, token = audit_queries.run_as_of(
                tx, self.read_models, request, self.lost_after_us, self.clock()
            )
        return _with_token(audit.GetRunAsOfResponse(run=run, tasks=tasks), token)
