"""Leases: how executors take queued tasks, keep them and lose them.

A lease is handed out by appending TaskLeased, whose fold refuses a task that is no
longer queued: appends are serialized (one lock for all service replicas on a
Postgres), so two executors can never hold one attempt, and the loser of a race
simply takes the next candidate. Heartbeats (TaskHeartbeat with the lease) extend
it; :meth:`LeaseDesk.expire` appends LeaseExpired for those that ran out, and the
process manager queues the task again.

Which queued tasks a call hands out follows each run's queue policy
(RunStarted.queue_policy, docs/executor.md "Queues"): the higher priority first; among
equal priorities the user with the fewest tasks leased or running; never more of a
run's tasks leased or running than its --max-workers. :meth:`LeaseDesk.time_out_queued`
fails the queued tasks that waited past their run's --queue-timeout (TaskQueueTimedOut),
saying why they waited.

The executors that asked for work recently are remembered in memory (per service
process), so a task that none of them could ever take says why it waits; so are the
notes their renewals carry about leased attempts that have not begun (a job pending in
Slurm's queue), shown the same way; ListExecutors lists them (:meth:`LeaseDesk.executors`).

The time this service could not hear renewals does not count against a lease: not while
it was down, nor while its database was out of reach. A lease is expired only when it
ran out and its executor has had a whole lease term to renew it since the service last
could not hear (its start, or the last call whose database did not answer); a queue
deadline likewise. Without that, a 20 s database outage expired every 30 s lease as soon as
the database was back, before the executors' renewals got through, and healthy work was
killed and run again.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ledgerflow.engine import RunGraph, gang_failed_reason
from ledgerflow.v1 import events_pb2, executor_service_pb2, records_pb2

from ledgerflow_service.errors import (
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from ledgerflow_service.names import MAX_QUEUE_NAME_LENGTH
from ledgerflow_service.principal import SERVICE, Principal
from ledgerflow_service.queries import queue as queue_queries
from ledgerflow_service.queries import runs as run_queries
from ledgerflow_service.queries.status import Clock
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.queue import QueueRow, task_ref
from ledgerflow_service.store.addressing import checked_task_pathspecs
from ledgerflow_service.store.append import Append, AppendChosen
from ledgerflow_service.store.backend import Database, Tx
from ledgerflow_service.store.events import now_us
from ledgerflow_service.validation import check_filter, check_int64, check_text

DEFAULT_LEASE_SECONDS = 30
MAX_LEASE_SECONDS = 3600
# An executor that has not asked for work for this long no longer counts as present.
EXECUTOR_SEEN_SECONDS = 60.0
# A queued task that could run on an executor present, and has waited this long, waits
# for room: said so (before, it is about to be leased).
WAITING_FOR_ROOM_SECONDS = 5.0
_MAX_EXECUTORS_KEPT = 10_000
_MAX_NOTES_KEPT = 100_000
MAX_NOTE_LENGTH = 1000
MAX_TASKS_PER_CALL = 1000
# How many queued tasks a lease call looks at beyond four for each it may take (those
# that do not fit what is left, gang mates): a call stays fast whatever the queue holds.
_SCAN_SLACK = 64
# Up to this many runs with queued tasks, a lease call reads each one's it gets to; past
# it, it first asks which of them have a task that fits (see _Candidates).
_RUNS_READ_ONE_BY_ONE = 16


@dataclass
class _Executor:
    total: executor_service_pb2.Capacity
    queues: frozenset[str]
    seen: float
    # As its last LeaseTaskRequest said, less what that call leased to it.
    free: executor_service_pb2.Capacity = field(default_factory=executor_service_pb2.Capacity)


@dataclass(frozen=True)
class SeenExecutor:
    """An executor the service heard from recently, as :meth:`LeaseDesk.executors`
    tells it: its capacity and queues are None when it only renewed leases since this
    service process started."""

    executor_id: str
    total: executor_service_pb2.Capacity | None
    free: executor_service_pb2.Capacity | None
    queues: tuple[str, ...]
    seen_at_us: int


class LeaseDesk:
    def __init__(
        self,
        database: Database,
        append: Append,
        append_chosen: AppendChosen,
        clock: Callable[[], Clock],
    ) -> None:
        self.database = database
        self._append = append
        self._append_chosen = append_chosen
        self._clock = clock
        self._executors: dict[str, _Executor] = {}
        self._only_renewing: dict[str, float] = {}  # executor id -> when it last renewed
        # (task pathspec, attempt): why that leased attempt has not begun
        self._notes: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._graphs = queue_queries.KeptGraphs()
        # When (µs) this service last could not hear renewals: its start, or the last
        # time its database did not answer (see the module doc).
        self._last_unheard_us = now_us()

    # ---- executors' calls ---------------------------------------------------------

    def lease(
        self, request: executor_service_pb2.LeaseTaskRequest, principal: Principal
    ) -> executor_service_pb2.LeaseTaskResponse:
        """One queued task (never a node of a @parallel gang of more: LeaseTasks
        hands a gang out whole)."""
        leases = self.lease_many(request, 1, principal, whole_gangs=False)
        return leases[0] if leases else executor_service_pb2.LeaseTaskResponse()

    def lease_many(
        self,
        request: executor_service_pb2.LeaseTaskRequest,
        max_tasks: int,
        principal: Principal,
        *,
        whole_gangs: bool = True,
    ) -> list[executor_service_pb2.LeaseTaskResponse]:
        """Up to `max_tasks` queued tasks that fit the free capacity together, oldest
        first, each under a lease of its own, leased in one transaction. A @parallel
        gang's queued nodes come together or not at all: as the first pick even past
        `max_tasks`; and a gang that waits for room the executor has in all stops the
        call, so that later tasks do not take that room for ever."""
        executor_id = _check_executor_id(request.executor_id)
        for name in ("free", "total"):
            _check_capacity(name, getattr(request, name))
        if not 1 <= max_tasks <= MAX_TASKS_PER_CALL:
            raise InvalidArgument(f"max_tasks must be 1 to {MAX_TASKS_PER_CALL}, got {max_tasks}")
        queues = check_filter("queues", request.queues) or [""]
        for queue in queues:
            check_text("queues", queue)
            if len(queue) > MAX_QUEUE_NAME_LENGTH:
                raise InvalidArgument(
                    f"queue name {queue[:40]!r}... is {len(queue)} characters; at most "
                    f"{MAX_QUEUE_NAME_LENGTH}"
                )
        seconds = request.lease_seconds or DEFAULT_LEASE_SECONDS
        if seconds > MAX_LEASE_SECONDS:
            raise InvalidArgument(f"lease_seconds is at most {MAX_LEASE_SECONDS}, got {seconds}")
        self._seen(executor_id, request.total, queues, request.free)
        picked: list[tuple[QueueRow, str]] = []

        def choose(tx: Tx) -> list[events_pb2.Event]:
            # Under the append lock: the tasks picked are still queued when their
            # leases commit, so concurrent executors never pick the same one.
            free = [request.free.cpu, request.free.memory_mb, request.free.gpu]
            total = [request.total.cpu, request.total.memory_mb, request.total.gpu]
            now = now_us()
            candidates = _Candidates(tx, request.free, queues, now, max_tasks)
            seen: set[str] = set()
            gangs = _GangFinder(tx, now, self._graphs)
            looked = 0
            while len(picked) < max_tasks and looked < max_tasks * 4 + _SCAN_SLACK:
                found = candidates.next()
                if found is None:
                    break
                run, row = found
                looked += 1
                if row.task_pathspec in seen:
                    candidates.skip(run)
                    continue
                # A node of a @parallel gang comes with every queued node of its gang:
                # all of them fit together, or none is leased.
                group = gangs.of(row)
                seen.update(r.task_pathspec for r in group)
                if len(group) > 1 and not whole_gangs:
                    candidates.skip(run)
                    continue
                cap = run.room()
                if cap is not None and len(group) > cap and run.active:
                    # A gang bigger than what its run's --max-workers leaves waits for the
                    # run's other tasks to end (alone, it may pass the cap, as locally).
                    candidates.drop(run)
                    continue
                wants = [sum(r.cpu for r in group), sum(r.memory_mb for r in group),
                         sum(r.gpu for r in group)]  # fmt: skip
                room = len(picked) + len(group) <= max_tasks or (not picked and len(group) > 1)
                if room and all(w <= f for w, f in zip(wants, free, strict=True)):
                    free = [f - w for f, w in zip(free, wants, strict=True)]
                    picked.extend((r, str(uuid.uuid4())) for r in group)
                    candidates.take(run, len(group))
                elif len(group) > 1 and all(w <= t for w, t in zip(wants, total, strict=True)):
                    break  # the gang fits once running tasks end: keep that room for it
                else:
                    candidates.skip(run)
            return [
                events_pb2.Event(
                    event_id=str(uuid.uuid4()),
                    task_leased=events_pb2.TaskLeased(
                        task=task_ref(row.task_pathspec),
                        attempt=row.attempt,
                        lease_id=lease_id,
                        executor_id=executor_id,
                        lease_seconds=seconds,
                    ),
                )
                for row, lease_id in picked
            ]

        runs_later: list[Callable[[], dict[str, records_pb2.Run]]] = []
        graphs: dict[str, RunGraph] = {}

        def then(tx: Tx) -> None:
            # The leased tasks' runs as the leases leave them, read in the append's
            # transaction (their rows come back with its commit), and their graphs
            # (kept since choose read them).
            paths = sorted({row.run_pathspec for row, _ in picked})
            runs_later.append(run_queries.runs_later(tx, paths, self._clock()))
            kept = queue_queries.RunGraphs(tx, self._graphs)
            graphs.update((path, kept.graph(path)) for path in paths)

        recorded = self._append_chosen(choose, principal, then)
        self._took(executor_id, [row for row, _ in picked])
        if not picked:
            return []
        leased_at = recorded[0].recorded_at.ToMicroseconds()
        for row, lease_id in picked:  # as the fold of their TaskLeased left them
            row.state, row.lease_id, row.executor_id = "leased", lease_id, executor_id
            row.lease_seconds, row.lease_expires_at_us = seconds, leased_at + seconds * 1_000_000
        return self._leased(picked, runs_later[0](), graphs)

    def _leased(
        self,
        picked: list[tuple[QueueRow, str]],
        runs: dict[str, records_pb2.Run],
        graphs: dict[str, RunGraph],
    ) -> list[executor_service_pb2.LeaseTaskResponse]:
        """What each leased task needs to run: its queue row, its run and its step."""
        responses = []
        for row, lease_id in picked:
            run, graph = runs[row.run_pathspec], graphs[row.run_pathspec]
            response = executor_service_pb2.LeaseTaskResponse(
                task=queue_queries.queued_record(row),
                lease_id=lease_id,
                run=run,
                step=flow_graph.step(graph, row.step_name),
            )
            response.lease_expires_at.FromMicroseconds(row.lease_expires_at_us)
            responses.append(response)
        return responses

    def renew(
        self, request: executor_service_pb2.RenewLeaseRequest, principal: Principal
    ) -> executor_service_pb2.RenewLeaseResponse:
        try:
            return self._renew(request, principal)
        except Exception as error:
            if self._unheard(error):
                self.database_unreachable()  # this renewal, and maybe others, not heard
            raise

    def _renew(
        self, request: executor_service_pb2.RenewLeaseRequest, principal: Principal
    ) -> executor_service_pb2.RenewLeaseResponse:
        _check_executor_id(request.executor_id)
        if len(check_text("note", request.note)) > MAX_NOTE_LENGTH:
            raise InvalidArgument(f"note is longer than {MAX_NOTE_LENGTH} characters")
        ref = events_pb2.TaskRef(
            flow_name=request.flow_name,
            run_id=request.run_id,
            step_name=request.step_name,
            task_id=request.task_id,
        )
        heartbeat = events_pb2.TaskHeartbeat(
            task=ref, attempt=request.attempt, lease_id=request.lease_id
        )
        _, task_path = checked_task_pathspecs(
            request.flow_name, request.run_id, request.step_name, request.task_id
        )
        with self.database.read() as tx:
            held = queue_queries.task_row(tx, task_path)
        if (
            held is not None
            and held.lease_id == request.lease_id
            and (held.executor_id != request.executor_id)
        ):
            # A lease is its executor's: another one that learned its id (the audit
            # shows it) cannot keep it alive, nor be told to go on.
            return executor_service_pb2.RenewLeaseResponse(
                keep_running=False,
                reason=f"lease {request.lease_id} was granted to executor {held.executor_id}, "
                f"not {request.executor_id}",
            )
        try:
            self._append(
                [events_pb2.Event(event_id=str(uuid.uuid4()), task_heartbeat=heartbeat)], principal
            )
            self._renewing(request.executor_id)
        except FailedPrecondition as refused:
            return executor_service_pb2.RenewLeaseResponse(
                keep_running=False, reason=refused.message
            )
        run_path = f"{request.flow_name}/{request.run_id}"
        self._note(f"{run_path}/{request.step_name}/{request.task_id}", request.attempt,
                   request.note)  # fmt: skip
        with self.database.read() as tx:
            state = queue_queries.run_state(tx, run_path)
            row = queue_queries.task_row(tx, f"{run_path}/{request.step_name}/{request.task_id}")
            failed_mate = queue_queries.failed_gang_mate(tx, row) if row is not None else ""
        response = executor_service_pb2.RenewLeaseResponse(keep_running=True)
        if row is not None:
            response.lease_expires_at.FromMicroseconds(row.lease_expires_at_us)
        if state is not None and state[0] == "cancelling":
            response.keep_running, response.reason = False, state[1] or "the run was cancelled"
        elif failed_mate:  # it would wait for that node for ever
            node = failed_mate.split("/", 2)[2]  # step/task, as the local runtime says it
            response.keep_running, response.reason = False, gang_failed_reason(node)
        return response

    # ---- the service's own ----------------------------------------------------------

    def database_unreachable(self) -> None:
        """Says that the database did not answer just now: renewals were not heard, so
        each lease gets a whole term from now before it can expire."""
        with self._lock:
            self._last_unheard_us = max(self._last_unheard_us, now_us())

    def _unheard(self, error: Exception) -> bool:
        """Whether an error says the database did not answer (not a refusal, not a
        bug: those must not keep leases alive)."""
        return isinstance(error, Unavailable) or self.database.is_unreachable(error)

    def _heard_for(self, seconds: float, now: int) -> bool:
        """Whether renewals have been heard for `seconds` without a gap, up to `now`."""
        with self._lock:
            return self._last_unheard_us + seconds * 1_000_000 <= now

    def expire(self, limit: int = 1000) -> int:
        """Appends LeaseExpired for every lease that ran out, and whose executor could
        have renewed it for a whole term since the service began hearing renewals (see
        the module doc); returns how many."""
        now = now_us()
        try:
            with self.database.read() as tx:
                rows = queue_queries.expired_leases(tx, now, limit)
        except Exception as error:
            if self._unheard(error):
                self.database_unreachable()
            raise
        expired = 0
        for row in rows:
            if not self._heard_for(row.lease_seconds, now):
                continue  # its executor has not had a whole term to be heard yet
            event = events_pb2.Event(
                event_id=str(uuid.uuid4()),
                lease_expired=events_pb2.LeaseExpired(
                    task=task_ref(row.task_pathspec),
                    attempt=row.attempt,
                    lease_id=row.lease_id,
                    executor_id=row.executor_id,
                ),
            )
            try:
                self._append([event], SERVICE)
            except FailedPrecondition:  # renewed or finished meanwhile
                continue
            expired += 1
        return expired

    def time_out_queued(self, limit: int = 100) -> int:
        """Appends TaskQueueTimedOut for the queued tasks that waited past their run's
        queue deadline (``--queue-timeout``) with no executor taking them, each with
        why it waits; returns how many. Their runs fail (docs/executor.md, "Queues")."""
        now = now_us()
        late: list[tuple[QueueRow, int]] = []
        with self.database.read() as tx:
            for run in queue_queries.runs_with_deadlines(tx):
                # The oldest queued are the first past a deadline (a @retry pause aside).
                for row in queue_queries.oldest_queued(tx, run.run_pathspec, 20):
                    deadline = run.queue_deadline_us(row)
                    # Nor does a deadline count the time no executor could be heard.
                    heard = self._heard_for(run.queue_timeout_seconds, now)
                    if deadline is not None and deadline <= now and heard:
                        late.append((row, run.queue_timeout_seconds))
                if len(late) >= limit:
                    break
            late = late[:limit]
            tasks = [queue_queries.queued_record(row) for row, _ in late]
            gangs = queue_queries.gang_sizes(tx, tasks)
        timed_out = 0
        for (row, seconds), task, gang in zip(late, tasks, gangs, strict=True):
            why = self.waiting_reason(task, gang) or "waiting: no executor took it"
            event = events_pb2.Event(
                event_id=str(uuid.uuid4()),
                task_queue_timed_out=events_pb2.TaskQueueTimedOut(
                    task=task_ref(row.task_pathspec),
                    attempt=row.attempt,
                    queue_timeout_seconds=seconds,
                    reason=f"no executor took it within {seconds} s: {why}",
                ),
            )
            try:
                self._append([event], SERVICE)
            except FailedPrecondition:  # leased, or its run stopped, meanwhile
                continue
            timed_out += 1
        return timed_out

    def waiting_reason(
        self, task: records_pb2.QueuedTask, gang: int = 1, run_cap: tuple[int, int] | None = None
    ) -> str:
        """Why a queued task waits, when no executor seen recently could ever take it
        (for a node of a @parallel gang of `gang` nodes: all of them together), or its
        run is at its --max-workers (`run_cap`: the cap and its tasks leased or running);
        for a leased one, what its executor last said of it (pending in Slurm, say)."""
        if task.state in (records_pb2.QUEUE_STATE_LEASED, records_pb2.QUEUE_STATE_RUNNING):
            with self._lock:
                return self._notes.get((task.pathspec, task.attempt), "")
        if task.state != records_pb2.QUEUE_STATE_QUEUED:
            return ""
        cutoff = time.monotonic() - EXECUTOR_SEEN_SECONDS
        with self._lock:
            present = [e for e in self._executors.values() if e.seen >= cutoff]
            # Executors that only renewed leases since this service started: busy, and
            # what they offer is not known until they ask for work again.
            unknown = [i for i, seen in self._only_renewing.items() if seen >= cutoff]
        if unknown:
            return "waiting: the executors are busy"
        if not present:
            return f"waiting: no executor asked for work in the last {EXECUTOR_SEEN_SECONDS:.0f} s"
        serving = [e for e in present if task.queue in e.queues]
        if not serving:
            return f"waiting: no executor serves queue {task.queue!r}"
        wants = task.resources
        for name, needed, offered in (
            ("cpu", wants.cpu, lambda e: e.total.cpu),
            ("memory", wants.memory_mb, lambda e: e.total.memory_mb),
            ("gpu", wants.gpu, lambda e: e.total.gpu),
        ):
            if not any(offered(e) >= needed for e in serving):
                unit = " MB" if name == "memory" else ""
                return f"waiting: no executor offers {name}={needed:g}{unit}"
        if not any(
            e.total.cpu >= wants.cpu
            and e.total.memory_mb >= wants.memory_mb
            and e.total.gpu >= wants.gpu
            for e in serving
        ):
            return (
                f"waiting: no executor offers cpu={wants.cpu:g}, memory={wants.memory_mb} MB "
                f"and gpu={wants.gpu} together"
            )
        if gang > 1 and not any(
            e.total.cpu >= gang * wants.cpu
            and e.total.memory_mb >= gang * wants.memory_mb
            and e.total.gpu >= gang * wants.gpu
            for e in serving
        ):
            return (
                f"waiting: its @parallel gang of {gang} nodes starts together on one executor, "
                f"and none offers cpu={gang * wants.cpu:g}, memory={gang * wants.memory_mb} MB "
                f"and gpu={gang * wants.gpu} at once"
            )
        if run_cap is not None and 0 < run_cap[0] <= run_cap[1]:
            return (
                f"waiting: its run has {run_cap[1]} tasks leased or running, its "
                f"--max-workers {run_cap[0]}"
            )
        waited_us = now_us() - task.queued_at.ToMicroseconds()
        if task.HasField("queued_at") and waited_us >= WAITING_FOR_ROOM_SECONDS * 1e6:
            return "waiting: the executors that can run it are busy"
        return ""

    def _note(self, pathspec: str, attempt: int, note: str) -> None:
        with self._lock:
            if not note:
                self._notes.pop((pathspec, attempt), None)
                return
            self._notes[(pathspec, attempt)] = note
            while len(self._notes) > _MAX_NOTES_KEPT:  # the oldest go
                del self._notes[next(iter(self._notes))]

    def _renewing(self, executor_id: str) -> None:
        """An executor renewed a lease: present, though it asks for no work while full."""
        now = time.monotonic()
        with self._lock:
            known = self._executors.get(executor_id)
            if known is not None:
                known.seen = now
                return
            self._only_renewing[executor_id] = now
            while len(self._only_renewing) > _MAX_EXECUTORS_KEPT:
                del self._only_renewing[next(iter(self._only_renewing))]

    def _seen(
        self,
        executor_id: str,
        total: executor_service_pb2.Capacity,
        queues: list[str],
        free: executor_service_pb2.Capacity,
    ) -> None:
        with self._lock:
            self._only_renewing.pop(executor_id, None)
            self._executors.pop(executor_id, None)
            self._executors[executor_id] = _Executor(
                _copied(total), frozenset(queues), time.monotonic(), _copied(free)
            )
            while len(self._executors) > _MAX_EXECUTORS_KEPT:  # the least recently seen go
                del self._executors[next(iter(self._executors))]

    def _took(self, executor_id: str, rows: list[QueueRow]) -> None:
        """What a lease call handed the executor is no longer free (until it asks again)."""
        with self._lock:
            known = self._executors.get(executor_id)
            if known is None:
                return
            for row in rows:
                known.free.cpu = max(0.0, known.free.cpu - row.cpu)
                known.free.memory_mb = max(0, known.free.memory_mb - row.memory_mb)
                known.free.gpu = max(0, known.free.gpu - row.gpu)

    def executors(self, within_seconds: float = EXECUTOR_SEEN_SECONDS) -> list[SeenExecutor]:
        """The executors that asked for work or renewed a lease in the last
        `within_seconds`, by id."""
        now, wall_us = time.monotonic(), now_us()
        cutoff = now - within_seconds

        def at(seen: float) -> int:  # a monotonic time as wall-clock microseconds
            return wall_us - int((now - seen) * 1_000_000)

        with self._lock:
            found = [
                SeenExecutor(i, _copied(e.total), _copied(e.free), tuple(sorted(e.queues)),
                             at(e.seen))
                for i, e in self._executors.items() if e.seen >= cutoff
            ]  # fmt: skip
            found += [
                SeenExecutor(i, None, None, (), at(seen))
                for i, seen in self._only_renewing.items()
                if seen >= cutoff and i not in self._executors
            ]
        return sorted(found, key=lambda e: e.executor_id)


class _Candidates:
    """The queued tasks a lease call may take, best first: the higher priority first;
    among equal priorities, the user with the fewest tasks leased or running (counting
    what this call took already), so that one user's large foreach does not starve
    another's run; within a user, the older run, and within a run the older task. Runs
    at their --max-workers are left out.

    The runs alive are read once (one indexed read); each run's queued tasks only when
    the call gets to that run, a page at a time, along an index: the cost of a call
    follows the runs alive and the tasks it takes, not the queue's length. With many
    runs waiting, those with nothing that fits are left out first (one walk of the
    waiting tasks), so that a call never reads run after run to find nothing."""

    def __init__(
        self,
        tx: Tx,
        free: executor_service_pb2.Capacity,
        queues: list[str],
        now: int,
        max_tasks: int,
    ) -> None:
        self._tx, self._free, self._queues, self._now = tx, free, queues, now
        self._page = min(max_tasks * 2 + 8, 500)
        runs = queue_queries.live_runs(tx)
        self._users: dict[str, int] = {}
        for run in runs:
            self._users[run.user_name] = self._users.get(run.user_name, 0) + run.active
        self._rows: dict[str, list[QueueRow]] = {}
        self._after: dict[str, int] = {}
        self._read_all: set[str] = set()
        self._heap: list[tuple[tuple[int, int, int], queue_queries.LiveRun]] = []
        waiting = [run for run in runs if run.queued > 0 and run.room() != 0]
        if len(waiting) > _RUNS_READ_ONE_BY_ONE:
            fitting = queue_queries.runs_with_fitting(tx, free, queues, now)
            waiting = [run for run in waiting if run.run_pathspec in fitting]
        for run in waiting:
            self._push(run)

    def _key(self, run: queue_queries.LiveRun) -> tuple[int, int, int]:
        # started_position is unique: keys never tie, and runs are never compared.
        return (-run.priority, self._users[run.user_name], run.started_position)

    def _push(self, run: queue_queries.LiveRun) -> None:
        if run.queued > 0 and run.room() != 0:
            heapq.heappush(self._heap, (self._key(run), run))

    def next(self) -> tuple[queue_queries.LiveRun, QueueRow] | None:
        """The best run and its oldest queued task not looked at yet (still its, until
        :meth:`take`, :meth:`skip` or :meth:`drop`); None when none is left."""
        while self._heap:
            key, run = heapq.heappop(self._heap)
            if key != self._key(run):  # its user took tasks since: a later place
                heapq.heappush(self._heap, (self._key(run), run))
                continue
            rows = self._rows.get(run.run_pathspec)
            if not rows:
                if run.run_pathspec in self._read_all:
                    continue
                rows = self._rows[run.run_pathspec] = queue_queries.run_candidates(
                    self._tx, run.run_pathspec, self._free, self._queues, self._now,
                    self._after.get(run.run_pathspec, -1), self._page,
                )  # fmt: skip
                if len(rows) < self._page:
                    self._read_all.add(run.run_pathspec)
                if not rows:
                    continue  # nothing of it fits, or may start now
                self._after[run.run_pathspec] = rows[-1].queued_position
                rows.reverse()  # popped from the end, oldest first
            # Back in the heap at once: the caller takes, skips or drops it.
            return run, rows[-1]
        return None

    def take(self, run: queue_queries.LiveRun, tasks: int) -> None:
        """The call leased `tasks` of the run's (its next one, and gang mates)."""
        self._rows[run.run_pathspec].pop()
        run.active += tasks
        run.queued -= tasks
        self._users[run.user_name] += tasks
        self._push(run)

    def skip(self, run: queue_queries.LiveRun) -> None:
        """The call passes over the run's next task (it does not fit what is left)."""
        self._rows[run.run_pathspec].pop()
        self._push(run)

    def drop(self, run: queue_queries.LiveRun) -> None:
        """The call takes nothing more of the run."""


class _GangFinder:
    """The gang a queued task leases with: its @parallel step's queued nodes that
    feed the same join, or the task alone (runs' graphs read once per call)."""

    def __init__(self, tx: Tx, now: int, kept: queue_queries.KeptGraphs) -> None:
        self._tx, self._now = tx, now
        self._graphs = queue_queries.RunGraphs(tx, kept)

    def of(self, row: QueueRow) -> list[QueueRow]:
        if not self._graphs.step(row.run_pathspec, row.step_name).parallel:
            return [row]
        return queue_queries.gang_rows(self._tx, row, self._now) or [row]


def _check_executor_id(executor_id: str) -> str:
    if not executor_id:
        raise InvalidArgument("executor_id is missing: name the executor (e.g. host-pid)")
    if len(executor_id) > 200:
        raise InvalidArgument("executor_id is at most 200 characters")
    return check_text("executor_id", executor_id)


def _copied(capacity: executor_service_pb2.Capacity) -> executor_service_pb2.Capacity:
    copy = executor_service_pb2.Capacity()
    copy.CopyFrom(capacity)
    return copy


def _check_capacity(name: str, capacity: executor_service_pb2.Capacity) -> None:
    if not math.isfinite(capacity.cpu) or capacity.cpu < 0 or capacity.cpu > 1e6:
        raise InvalidArgument(f"{name}.cpu must be a number from 0 to 1e6, got {capacity.cpu}")
    check_int64(f"{name}.memory_mb", capacity.memory_mb)
