"""Deployments: the commands that change them, and the scheduler that fires them.

Every run of a deployment starts the way ``run --remote`` starts one: a RunStarted that
carries the flow's graph and code package, which the process manager then orchestrates
on the executors. What is new is who appends it: the service itself, when a due time
comes (:meth:`DeploymentDesk.fire_due`), or when someone triggers or backfills.

A due time's run has an event id and a run id derived from the deployment and the
instant (``ledgerflow.engine.schedules.firing_ids``), and the read model keeps each
deployment's next due time, moved past each due time a run stands for in the same
transaction that starts it. Firing reads the due rows under the append lock, so two
replicas on one Postgres fire a due time once, and a service that was down fires what
it missed when it returns: the latest due time only, or each of them with
``catchup``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledgerflow.engine.schedules import (
    due_times,
    firing_ids,
    latest_due,
    triggered_run_id,
)
from ledgerflow.engine.triggers import TriggerError, parse_payload
from ledgerflow.v1 import deployment_service_pb2 as deployment_api
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import (
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
    PermissionDenied,
)
from ledgerflow_service.names import check_event_id, checked_event_name, run_pathspec
from ledgerflow_service.orchestration.service_thread import ServiceThread
from ledgerflow_service.orchestration.triggers import (
    branch_owner_problem,
    check_triggers,
    fired_run,
    runs_started_by,
)
from ledgerflow_service.principal import SERVICE, Principal
from ledgerflow_service.queries import deployments as deployment_queries
from ledgerflow_service.read_models.deployments import DeploymentRow, check_schedule_message
from ledgerflow_service.store import events as stored_events
from ledgerflow_service.store.append import Append, AppendChosen
from ledgerflow_service.store.backend import Database, Tx
from ledgerflow_service.validation import check_text

log = logging.getLogger(__name__)

# A backfill of more due times than this must be confirmed (`--yes`).
MAX_BACKFILL_UNCONFIRMED = 10_000
# At most this many due times of one deployment are fired in one go (catchup after a
# long outage goes on at the next wake-up).
MAX_CATCHUP_PER_WAKE = 100
# Deployments fired per transaction.
_DUE_PER_WAKE = 500
# Runs a backfill starts per transaction.
_BACKFILL_CHUNK = 500
# The scheduler looks at the ledger at least this often, whatever it was told.
_LONGEST_SLEEP_SECONDS = 30.0

# Even confirmed (--yes), a backfill holds at most this many due times.
MAX_BACKFILL = 1_000_000
# A deployment whose firing failed (say, its time zone is unknown to this replica) is
# left out of firing for this long, so that it neither stalls the others nor spins.
_FAILED_FIRING_PAUSE_SECONDS = 60.0


def _due_event(row: DeploymentRow, kind: Any, due_us: int) -> events_pb2.Event:
    event_id, run_id = firing_ids(row.name, due_us)
    return fired_run(row, kind, due_us, event_id, run_id)


def _check_branch_owner(branch: str, principal: Principal) -> None:
    """A deployment on someone's own branch (``user.NAME``) is changed, triggered and
    backfilled by that someone (or an admin) only; production's and the test
    branches' by any authenticated caller, who is recorded as the actor."""
    problem = branch_owner_problem(branch, principal)
    if problem is not None:
        raise PermissionDenied(problem)


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class DeploymentDesk:
    """The deployment commands of the application layer, and firing what is due."""

    def __init__(
        self,
        database: Database,
        append: Append,
        append_chosen: AppendChosen,
        now_us: Callable[[], int],
        *,
        allow_notify_commands: bool = False,
    ) -> None:
        self.database = database
        # Whether @notify(command=...) may be deployed (the command runs here).
        self.allow_notify_commands = allow_notify_commands
        self._append = append
        self._append_chosen = append_chosen
        self._now_us = now_us
        # Set when a deployment changed here: the scheduler looks again at once.
        self.changed = threading.Event()
        # Deployments whose firing failed, by name: when to try them again (µs).
        self._failing: dict[str, int] = {}

    def _row(self, name: str, principal: Principal | None = None) -> DeploymentRow:
        """The deployment `name`; with `principal`, one it may change."""
        with self.database.read() as tx:
            row = deployment_queries.find(tx, name)
        if principal is not None:
            _check_branch_owner(row.branch, principal)
        return row

    def _answer(self, name: str) -> records_pb2.Deployment:
        with self.database.read() as tx:
            return deployment_queries.get(tx, name)

    def _record(self, principal: Principal, event_id: str = "", **payload: Any) -> None:
        event_id = check_event_id(event_id) if event_id else str(uuid.uuid4())
        self._append([events_pb2.Event(event_id=event_id, **payload)], principal)
        self.changed.set()

    # ---- commands -----------------------------------------------------------------

    def deploy(
        self, request: deployment_api.DeployRequest, principal: Principal
    ) -> deployment_api.DeployResponse:
        spec = request.deployment
        acts_for_other = principal.authenticated and spec.user != principal.name
        if acts_for_other and not principal.may_act_for_others("run_started"):
            raise PermissionDenied(
                f"{principal.name!r} may not deploy as user {spec.user!r}: a deployment's "
                "user is the caller, or the caller needs the admin role"
            )
        _check_branch_owner(spec.branch, principal)
        event_id = check_event_id(request.event_id) if request.event_id else str(uuid.uuid4())
        with self.database.read() as tx:
            if stored_events.exists(tx, event_id):  # a retry: the deploy is recorded
                return deployment_api.DeployResponse(deployment=self._answer(spec.name))
        if spec.HasField("schedule"):  # here, not in the fold: it reads the clock
            check_schedule_message(spec.schedule)
        if any(notify.command for notify in spec.notify) and not self.allow_notify_commands:
            raise FailedPrecondition(
                "this service does not run notification commands (a deployer's command "
                "would run on the service's machine): use @notify(webhook=...), or start "
                "the service with --allow-notify-commands"
            )

        def choose(tx: Tx) -> list[events_pb2.Event]:
            # Under the append lock: two deploys cannot close a cycle between them.
            check_triggers(tx, spec)
            return [events_pb2.Event(event_id=event_id, deployment_created=spec)]

        self._append_chosen(choose, principal)
        self.changed.set()
        return deployment_api.DeployResponse(deployment=self._answer(spec.name))

    def publish_event(
        self, request: deployment_api.PublishEventRequest, principal: Principal
    ) -> deployment_api.PublishEventResponse:
        """Records the event; the deployments waiting for it start in the same
        transaction (orchestration/triggers.py). A retried call (the same event id)
        starts nothing more and answers with the runs the first one started."""
        checked_event_name(request.name)
        try:
            parse_payload(request.payload)
        except TriggerError as error:
            raise InvalidArgument(f"event {request.name!r}: {error}") from None
        event_id = check_event_id(request.event_id) if request.event_id else str(uuid.uuid4())
        published = events_pb2.EventPublished(name=request.name, payload=request.payload)
        self._append([events_pb2.Event(event_id=event_id, event_published=published)],
                     principal)  # fmt: skip
        with self.database.read() as tx:
            runs = runs_started_by(tx, event_id)
        return deployment_api.PublishEventResponse(event_id=event_id, runs=runs)

    def pause(
        self, request: deployment_api.PauseDeploymentRequest, principal: Principal
    ) -> deployment_api.PauseDeploymentResponse:
        check_text("reason", request.reason)
        self._row(request.name, principal)
        paused = events_pb2.DeploymentPaused(name=request.name, reason=request.reason)
        self._record(principal, deployment_paused=paused)
        return deployment_api.PauseDeploymentResponse(deployment=self._answer(request.name))

    def resume(
        self, request: deployment_api.ResumeDeploymentRequest, principal: Principal
    ) -> deployment_api.ResumeDeploymentResponse:
        self._row(request.name, principal)
        resumed = events_pb2.DeploymentResumed(name=request.name)
        self._record(principal, deployment_resumed=resumed)
        return deployment_api.ResumeDeploymentResponse(deployment=self._answer(request.name))

    def delete(
        self, request: deployment_api.DeleteDeploymentRequest, principal: Principal
    ) -> deployment_api.DeleteDeploymentResponse:
        self._row(request.name, principal)
        deleted = events_pb2.DeploymentDeleted(name=request.name)
        self._record(principal, deployment_deleted=deleted)
        return deployment_api.DeleteDeploymentResponse(deployment=self._answer(request.name))

    def trigger(
        self, request: deployment_api.TriggerDeploymentRequest, principal: Principal
    ) -> deployment_api.TriggerDeploymentResponse:
        """Starts one run now, appended by the service as its scheduled runs are (its
        user is the deployer; the caller is in its `triggered_by:` tag). A retried call
        (the same event id) answers with the run the first one started."""
        row = self._row(request.name, principal)
        declared = row.created().parameters
        unknown = sorted(set(request.parameters) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidArgument(
                f"{row.flow_name} has no parameter {unknown[0]!r} (its parameters: {known})"
            )
        event_id = check_event_id(request.event_id) if request.event_id else str(uuid.uuid4())
        run_id = triggered_run_id(row.name, event_id)
        answer = deployment_api.TriggerDeploymentResponse(flow_name=row.flow_name, run_id=run_id)
        with self.database.read() as tx:
            if deployment_queries.existing_runs(tx, [run_pathspec(row.flow_name, run_id)]):
                return answer
        event = fired_run(row, records_pb2.TRIGGER_KIND_MANUAL, self._now_us(), event_id, run_id,
                          dict(request.parameters))  # fmt: skip
        event.run_started.system_tags.append(f"triggered_by:{principal.name}")
        self._append([event], SERVICE)
        return answer

    def backfill(
        self, request: deployment_api.BackfillDeploymentRequest, principal: Principal
    ) -> deployment_api.BackfillDeploymentResponse:
        """One run per due time in [since, until] not run yet (by the schedule or an
        earlier backfill: their run ids are the same), earliest first, appended by the
        service as its scheduled runs are."""
        row = self._row(request.name, principal)
        spec = row.created()
        if not spec.HasField("schedule"):
            raise FailedPrecondition(
                f"deployment {row.name!r} has no schedule: there are no due times to backfill "
                "(use `ledgerflow deployments trigger`)"
            )
        if row.paused:
            raise FailedPrecondition(
                f"deployment {row.name!r} is paused: resume it before backfilling"
            )
        if not request.HasField("since") or not request.HasField("until"):
            raise InvalidArgument("a backfill needs both ends of its range (since and until)")
        since, until = request.since.ToMicroseconds(), request.until.ToMicroseconds()
        now = self._now_us()
        if since > until:
            raise InvalidArgument(f"the range is empty: {_when(since)} is after {_when(until)}")
        if until > now:
            raise InvalidArgument(
                f"the range ends in the future ({_when(until)}; now is {_when(now)}): the "
                "schedule itself runs what comes due from now on (to backfill up to now, end "
                "the range at a time, e.g. --to 2026-12-06T16:00Z)"
            )
        dues = list(itertools.islice(due_times(spec.schedule, since, until),
                                     MAX_BACKFILL_UNCONFIRMED + 1))  # fmt: skip
        if len(dues) > MAX_BACKFILL_UNCONFIRMED and not request.allow_large:
            raise InvalidArgument(
                f"the range holds more than {MAX_BACKFILL_UNCONFIRMED:,} due times of "
                f"{spec.schedule.cron!r}: confirm with --yes (allow_large), or narrow it"
            )
        if request.allow_large:
            dues = list(itertools.islice(due_times(spec.schedule, since, until),
                                         MAX_BACKFILL + 1))  # fmt: skip
            if len(dues) > MAX_BACKFILL:
                raise InvalidArgument(
                    f"the range holds more than {MAX_BACKFILL:,} due times of "
                    f"{spec.schedule.cron!r}: backfill it in parts"
                )
        answer = deployment_api.BackfillDeploymentResponse(
            flow_name=row.flow_name, due_times=len(dues)
        )
        limit = request.limit or len(dues)
        for start in range(0, len(dues), _BACKFILL_CHUNK):
            chunk = dues[start : start + _BACKFILL_CHUNK]
            picked: list[events_pb2.Event] = []

            def choose(tx: Tx, chunk: list[int] = chunk, picked: list[Any] = picked) -> list[Any]:
                runs = {due: firing_ids(row.name, due)[1] for due in chunk}
                done = deployment_queries.existing_runs(
                    tx, [run_pathspec(row.flow_name, run_id) for run_id in runs.values()]
                )
                for due, run_id in runs.items():
                    if run_pathspec(row.flow_name, run_id) in done:
                        answer.already_run += 1
                    elif len(answer.run_ids) + len(picked) >= limit:
                        answer.remaining += 1
                    else:
                        picked.append(_due_event(row, records_pb2.TRIGGER_KIND_BACKFILL, due))
                return [] if request.dry_run else picked

            self._append_chosen(choose, SERVICE)
            if request.dry_run:  # what would start
                answer.remaining += len(picked)
            else:
                answer.run_ids.extend(e.run_started.run_id for e in picked)
        return answer

    # ---- the schedule ---------------------------------------------------------------

    def fire_due(self, now_us: int) -> list[str]:
        """Starts a run for each due time that has come (for a deployment without
        catchup, only the latest one missed; with catchup, at most
        MAX_CATCHUP_PER_WAKE of them: what is left is due at once, so the scheduler's
        next wake-up goes on); returns their run pathspecs. The due deployments fire
        together; when that fails, each on its own, and one that fails alone is left
        out for a while (logged), so it stalls none of the others."""
        self._failing = {name: until for name, until in self._failing.items() if until > now_us}
        try:
            return self._fire(now_us, None)
        except LedgerError:
            log.warning("firing due deployments together failed: firing each on its own")
        with self.database.read() as tx:
            names = [row.name for row in deployment_queries.due(tx, now_us, _DUE_PER_WAKE)]
        fired = []
        for name in names:
            if name in self._failing:
                continue
            try:
                fired.extend(self._fire(now_us, name))
            except LedgerError:
                log.exception("firing deployment %s failed; trying again in a minute", name)
                self._failing[name] = now_us + int(_FAILED_FIRING_PAUSE_SECONDS * 1e6)
        return fired

    def _fire(self, now_us: int, only: str | None) -> list[str]:
        """Fires the due deployments (`only` that one), in one transaction."""

        def choose(tx: Tx) -> list[events_pb2.Event]:
            events: list[events_pb2.Event] = []
            for row in deployment_queries.due(tx, now_us, _DUE_PER_WAKE):
                if row.name in self._failing or (only is not None and row.name != only):
                    continue
                assert row.next_due_us is not None
                schedule = row.created().schedule
                if schedule.catchup:
                    dues = list(
                        itertools.islice(
                            due_times(schedule, row.next_due_us, now_us), MAX_CATCHUP_PER_WAKE
                        )
                    )
                else:
                    latest = latest_due(schedule, row.next_due_us, now_us)
                    dues = [latest] if latest is not None else []
                # The row's next due time is itself due: where croniter finds none
                # around a clock change, that one fires, so a due row never stays due.
                kind = records_pb2.TRIGGER_KIND_SCHEDULE
                for due in dues or [row.next_due_us]:
                    events.append(_due_event(row, kind, due))
            return events

        appended = self._append_chosen(choose, SERVICE)
        return [e.stream for e in appended if e.event_type == "RunStarted"]

    def next_due_us(self) -> int | None:
        with self.database.read() as tx:
            return deployment_queries.earliest_due(tx)


class Scheduler(ServiceThread):
    """Fires due deployments from a thread of the service: it sleeps until the earliest
    next due time (or until a deployment changes), fires, and sleeps again, so a
    thousand idle deployments cost nothing between firings. `now_us` is the clock (a
    test moves it on instead of waiting)."""

    def __init__(self, desk: DeploymentDesk, now_us: Callable[[], int]) -> None:
        super().__init__("ledgerflow-schedules", desk.changed)
        self.desk = desk
        self.now_us = now_us

    def wake(self) -> None:
        """Look at the deployments again now (another replica changed one)."""
        self.desk.changed.set()

    def loop(self) -> None:
        while not self.stopping.is_set():
            self.desk.changed.clear()
            sleep = _LONGEST_SLEEP_SECONDS
            try:
                self.desk.fire_due(self.now_us())
                upcoming = self.desk.next_due_us()
                if upcoming is not None:
                    sleep = min(sleep, max(0.0, (upcoming - self.now_us()) / 1e6))
            except Exception:  # a database hiccup: try again soon
                log.exception("firing due deployments failed")
                sleep = 1.0
            self.desk.changed.wait(sleep)
