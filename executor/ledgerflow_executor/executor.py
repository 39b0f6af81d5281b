"""The executor's loop: lease what fits the free capacity, start it on the backend,
renew the leases, upload logs as they grow, record each outcome under its lease, and
drain on SIGTERM.

A watch stream on TaskQueued wakes the loop the moment work is queued; without it the
loop asks every ``poll_seconds``. The executor is the only writer of its attempts'
events; an attempt whose lease is refused (expired, or its run cancelled) is killed,
and anything it would still record is refused by the service (fencing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.exceptions import RpcError
from ledgerflow.metadata_client import GrpcMetadata
from ledgerflow.runtime.code_package import load_package
from ledgerflow.runtime.launcher import output_size, read_output
from ledgerflow.runtime.run_events import append_with_retries
from ledgerflow.v1 import executor_service_pb2 as executor_api
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.attempt import (
    Lease,
    artifacts_of,
    gang_of,
    last_failure,
    logs_event,
    not_started,
    read_outcome,
    recorded_outcome,
    started,
    task_request,
)
from ledgerflow_executor.backends import Backend, BackendError, Launch
from ledgerflow_executor.backends.base import WORKROOT
from ledgerflow_executor.metrics import Metrics

log = logging.getLogger("ledgerflow.executor")
# Leases asked for at once (the free capacity bounds how many come).
_LEASES_PER_CALL = 64
# The artifacts of this many finished tasks are remembered (a foreach's items share
# their one input).
_ARTIFACT_CACHE_TASKS = 4096


@dataclass(frozen=True)
class Capacity:
    cpu: float
    memory_mb: int
    gpu: int

    def message(self) -> executor_api.Capacity:
        return executor_api.Capacity(cpu=self.cpu, memory_mb=self.memory_mb, gpu=self.gpu)


@dataclass
class _Running:
    lease: Lease
    handle: int
    folder: Path
    started: float
    deadline: float | None
    gpu_ids: tuple[int, ...]
    log_sizes: tuple[int, int] = (0, 0)
    # Set when the executor ended the attempt (its timeout, its run cancelled).
    ended: TaskOutcome | None = None
    # Held back: since when its engine says it cannot begin (Backend.start_trouble),
    # and, once that lasted --start-timeout, why it never began.
    trouble_since: float | None = None
    never: TaskOutcome | None = None

    @property
    def result(self) -> Path:
        return self.folder / "result"

    @property
    def stdout(self) -> Path:
        return self.folder / "stdout"

    @property
    def stderr(self) -> Path:
        return self.folder / "stderr"


@dataclass
class ExecutorSettings:
    capacity: Capacity
    queues: tuple[str, ...] = ("",)
    lease_seconds: int = 30
    poll_seconds: float = 1.0
    log_every_seconds: float = 5.0
    image: str = ""
    executor_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    # Where attempts keep their spec, outcome and output, and code packages unpack.
    workroot: Path = WORKROOT
    # How long an attempt may be unable to begin (Backend.start_trouble) before it is
    # given back (TaskNotStarted).
    start_timeout_seconds: float = 300.0


class Executor:
    def __init__(
        self,
        metadata: GrpcMetadata,
        store: Any,
        backend: Backend,
        settings: ExecutorSettings,
        *,
        datastore_env: dict[str, str],
        datastore_mounts: tuple[str, ...] = (),
        say: Any = print,
        metrics: Metrics | None = None,
    ) -> None:
        self.metadata, self.store, self.backend = metadata, store, backend
        self.settings = settings
        self.datastore_env, self.datastore_mounts = datastore_env, datastore_mounts
        self.say = say
        self.metrics = metrics or Metrics()  # metrics.py: counts nothing unless served
        self.running: dict[int, _Running] = {}
        self.draining = False
        self.stopped = False
        self._wake = threading.Event()
        backend.on_exit = self._wake
        self._last_renew = 0.0
        self._unreachable_since: float | None = None
        self._last_sweep = 0.0  # the first turn of the loop looks for leftovers
        # TaskStarted of attempts the backend holds back, by lease, until they begin.
        self._unrecorded_starts: dict[str, Any] = {}
        self._last_logs = 0.0
        self._free_gpus = list(range(settings.capacity.gpu))
        self._code: dict[str, Path] = {}
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._folder = settings.workroot / settings.executor_id
        self._folder.mkdir(parents=True, exist_ok=True)

    # ---- capacity ----------------------------------------------------------------------

    def free(self) -> Capacity:
        total = self.settings.capacity
        used = [r.lease.task.resources for r in self.running.values()]
        return Capacity(
            cpu=total.cpu - sum(r.cpu for r in used),
            memory_mb=total.memory_mb - sum(r.memory_mb for r in used),
            gpu=total.gpu - sum(r.gpu for r in used),
        )

    # ---- the loop ------------------------------------------------------------------------

    def check_service(self) -> None:
        """Fails at once, with the service's address, when it cannot be reached."""
        self.metadata.list_queued_tasks(executor_api.ListQueuedTasksRequest())

    def serve(self) -> None:
        """Runs until drained (SIGTERM or SIGINT: no new leases, running tasks finish;
        a second signal kills them, and the service queues them again once their
        leases lapse)."""
        watcher = threading.Thread(target=self._watch_queue, name="lf-watch", daemon=True)
        watcher.start()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not (self.draining and not self.running) and not self.stopped:
                leased = self._lease_what_fits() if not self.draining else 0
                reaped = self._reap()
                self._renew_if_due()
                self._record_begun()
                self._sweep_if_due()
                self._upload_logs_if_due()
                self._enforce_timeouts()
                if not leased and not reaped:
                    wait = 0.05 if self.running else self.settings.poll_seconds
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.stopped:
                for running in list(self.running.values()):
                    self.backend.kill(running.handle)
            self.backend.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.draining:
            self.say("executor: stopping now; running tasks are killed and queued again")
            self.stopped = True
        else:
            self.say(
                f"executor: draining ({len(self.running)} task(s) running); signal again to "
                "stop at once"
            )
            self.draining = True
        self._wake.set()

    def _watch_queue(self) -> None:
        """Wakes the loop whenever the service queues a task."""
        while not self.stopped:
            try:
                request = ledger_api.WatchEventsRequest(event_types=["TaskQueued"], from_head=True)
                for _ in self.metadata.watch_events(request):
                    self._wake.set()
            except RpcError:
                time.sleep(self.settings.poll_seconds)  # polling covers the gap

    # ---- leasing and launching -----------------------------------------------------------

    def _lease_what_fits(self) -> int:
        """Leases and starts tasks until none fits the free capacity; returns how many."""
        count = 0
        while not self.draining:
            free = self.free()
            if free.cpu <= 0 or free.memory_mb <= 0:
                return count
            request = executor_api.LeaseTasksRequest(
                request=executor_api.LeaseTaskRequest(
                    executor_id=self.settings.executor_id,
                    free=free.message(),
                    total=self.settings.capacity.message(),
                    queues=list(self.settings.queues),
                    lease_seconds=self.settings.lease_seconds,
                ),
                max_tasks=_LEASES_PER_CALL,
            )
            try:
                with self.metrics.timed("LeaseTasks"):
                    response = self.metadata.lease_tasks(request)
            except RpcError as error:
                if not error.retryable:
                    raise
                self._out_of_reach("lease", error)
                return count
            self._in_reach()
            if not response.leases:
                return count
            self._launch([Lease(leased) for leased in response.leases])
            self.metrics.leased(len(response.leases))
            count += len(response.leases)
        return count

    def _launch(self, leases: list[Lease]) -> None:
        """Starts leased attempts: their TaskStarted events in one append, then each
        on the backend."""
        prepared = []
        short: set[tuple[str, ...]] = set()  # gangs a node of which cannot start
        for lease in leases:
            ready = self._prepare(lease)
            if ready is not None:
                prepared.append(ready)
            elif lease.step.parallel:
                short.add(gang_of(lease))
        if any(lease.task.attempt > 0 for lease, _ in prepared):
            self._sweep_leftovers()  # an earlier attempt may still run, its executor lost
        starts = [started(lease, self.backend.name, self.backend.handle_of(launch))
                  for lease, launch in prepared]  # fmt: skip
        recorded: list[bool | None]
        if self.backend.holds_attempts_back:  # recorded once each has begun
            self._unrecorded_starts.update(
                (lease.lease_id, event) for (lease, _), event in zip(prepared, starts, strict=True)
            )
            recorded = [True] * len(prepared)
        else:
            recorded = self._record([[event] for event in starts])
        gangs: dict[tuple[str, ...], list[tuple[Lease, Launch]]] = {}
        for (lease, launch), ok in zip(prepared, recorded, strict=True):
            if not ok:  # the lease is gone, or the service: it lapses, or is refused
                self._discard(launch)
                if lease.step.parallel:
                    short.add(gang_of(lease))
            elif lease.step.parallel:  # the service leases a gang's nodes together
                gangs.setdefault(gang_of(lease), []).append((lease, launch))
            else:
                self._start([(lease, launch)])
        for key, gang in gangs.items():
            if key in short:  # never part of a gang: its other nodes fail with it
                refused = failed("ExecutorError", "a node of its @parallel gang could not start",
                                 records_pb2.FAILURE_KIND_INFRASTRUCTURE)  # fmt: skip
                self._record([[*self._start_of(lease), *recorded_outcome(lease, refused)]
                              for lease, _ in gang])  # fmt: skip
                self.metrics.finished(refused, len(gang))
                for _, launch in gang:
                    self._discard(launch)
                continue
            self._start(sorted(gang, key=lambda pair: pair[0].task.foreach_stack[-1].index))

    def _sweep_leftovers(self) -> None:
        """Kills what the backend's engine still runs under leases no longer current:
        what a dead executor left (a container, a Slurm job outlives its executor) once
        its lease lapsed, and whether its task then ended or went on under another
        lease. What other live executors run is current, and left alone."""
        self._last_sweep = time.monotonic()
        try:
            leftovers = self.backend.leftovers()
        except (OSError, subprocess.SubprocessError, BackendError) as error:
            log.warning("cannot list the %s backend's attempts: %s", self.backend.name, error)
            return
        mine = {running.lease.lease_id for running in self.running.values()}
        strangers = [leftover for leftover in leftovers
                     if leftover.lease_id not in mine
                     and leftover.service == self.metadata.address]  # fmt: skip
        if not strangers:
            return
        try:
            current = self._current_leases({s.task.rsplit("/", 2)[0] for s in strangers})
        except RpcError as error:
            log.warning("cannot tell lost attempts from live ones: %s", error.message)
            return
        for leftover in strangers:
            if leftover.lease_id not in current:
                try:
                    self.backend.kill_leftover(leftover)
                except (OSError, subprocess.SubprocessError, BackendError) as error:
                    log.warning("cannot kill %s: %s", leftover.handle, error)
                    continue
                self.say(
                    f"executor: killed {leftover.handle}, left running by {leftover.task} "
                    f"attempt {leftover.attempt}, whose executor was lost"
                )

    def _current_leases(self, runs: set[str]) -> set[str]:
        """The leases of these runs' leased and running tasks."""
        live = (records_pb2.QUEUE_STATE_LEASED, records_pb2.QUEUE_STATE_RUNNING)
        current: set[str] = set()
        for run in runs:
            flow_name, run_id = run.split("/")
            tasks = self.metadata.queued_tasks(flow_name, run_id)
            current.update(t.lease_id for t in tasks if t.state in live)
        return current

    def _discard(self, launch: Launch) -> None:
        """Gives back what an attempt that will not start held: its GPUs, its folder."""
        self._free_gpus.extend(launch.gpu_ids)
        shutil.rmtree(launch.workdir, ignore_errors=True)

    def _prepare(self, lease: Lease) -> tuple[Lease, Launch] | None:
        task = lease.task
        # One folder per user holds their attempts' folders: a backend that shares a
        # container between attempts mounts only the folder of its user's (Run.user).
        user = "user-" + hashlib.sha256(lease.run.user.encode()).hexdigest()[:16]
        folder = self._folder / user / f"{task.pathspec.replace('/', '.')}.{task.attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            flow_file = self._code_for(lease)
            inputs = self._artifacts_of(task.input_pathspecs)
            request = task_request(
                lease, inputs.__getitem__, lambda: last_failure(self.metadata, lease)
            )
        except RpcError as error:
            log.warning("%s: not started: %s", lease.label, error.message)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        spec_path = folder / "spec.json"
        spec_path.write_text(request.to_json())
        gpu_ids = tuple(self._free_gpus[: task.resources.gpu])
        del self._free_gpus[: task.resources.gpu]
        entry = [str(flow_file), "task", "--spec", str(spec_path), "--result"]
        return lease, Launch(
            name=f"ledgerflow-{lease.lease_id}",
            command=[sys.executable, *entry, str(folder / "result")],
            workdir=str(folder),
            stdout_path=str(folder / "stdout"),
            stderr_path=str(folder / "stderr"),
            cpu=task.resources.cpu or 1,
            memory_mb=task.resources.memory_mb or 4096,
            gpu=task.resources.gpu,
            env={**self.datastore_env, "LEDGERFLOW_PYLINT": "0", **self._gpus_seen(gpu_ids)},
            mounts=(str(flow_file.parent), *self.datastore_mounts),
            image=lease.step.image or self.settings.image,
            timeout_seconds=lease.step.timeout_seconds,
            task=f"{task.pathspec}.{task.attempt}",
            gpu_ids=gpu_ids,
            flow_file=str(flow_file),
            code_package=lease.run.code_package_key,
            spec_path=str(spec_path),
            result_path=str(folder / "result"),
            service=self.metadata.address,
            owner=lease.run.user,
        )

    def _gpus_seen(self, gpu_ids: tuple[int, ...]) -> dict[str, str]:
        """The attempt sees exactly its GPUs: none when it asked for none, else the ones
        given here or, where the backend's engine assigns GPUs, the engine's."""
        if gpu_ids and self.backend.assigns_gpus:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids))}

    def _start(self, attempts: list[tuple[Lease, Launch]]) -> None:
        """Starts one attempt, or a @parallel gang's attempts together."""
        launches = [launch for _, launch in attempts]
        try:
            if len(attempts) == 1 and not attempts[0][0].step.parallel:
                handles = [self.backend.start(launches[0])]
            else:
                handles = self.backend.start_gang(launches)
        except (BackendError, OSError) as error:  # recorded as the attempts' failures
            refused = failed("ExecutorError", str(error), records_pb2.FAILURE_KIND_INFRASTRUCTURE)
            self._record([[*self._start_of(lease), *recorded_outcome(lease, refused)]
                          for lease, _ in attempts])  # fmt: skip
            self.metrics.finished(refused, len(attempts))
            for launch in launches:
                self._free_gpus.extend(launch.gpu_ids)
            return
        for (lease, launch), handle in zip(attempts, handles, strict=True):
            timeout = lease.step.timeout_seconds
            now = time.monotonic()
            self.running[handle] = _Running(
                lease, handle, Path(launch.workdir), now, now + timeout if timeout else None,
                launch.gpu_ids,
            )  # fmt: skip
            self.say(f"executor: started {lease.label} on {self.backend.name}")

    def _artifacts_of(self, task_pathspecs: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Finished tasks' artifacts, by task (they never change: remembered, up to
        _ARTIFACT_CACHE_TASKS tasks); those not remembered in as few calls as can be."""
        found = {path: self._artifacts[path] for path in task_pathspecs if path in self._artifacts}
        missing = [path for path in task_pathspecs if path not in found]
        if missing:
            fetched = artifacts_of(self.metadata, missing)
            if len(self._artifacts) + len(fetched) > _ARTIFACT_CACHE_TASKS:
                self._artifacts.clear()
            if len(fetched) <= _ARTIFACT_CACHE_TASKS:
                self._artifacts.update(fetched)
            found.update(fetched)
        return found

    def _record(self, batches: list[list[Any]]) -> list[bool | None]:
        """Appends the events of several attempts in one batch (retried while the
        service is out of reach); when the service refuses it, each attempt's events
        alone, so that one lost lease refuses only its own. Returns which were
        recorded: True, False (refused), or None (the service could not be reached)."""
        if not batches:
            return []
        try:
            append_with_retries(self.metadata, [e for b in batches for e in b], log.warning)
            return [True] * len(batches)
        except RpcError as error:
            if len(batches) == 1 or error.retryable:
                log.warning("not recorded: %s", error.message)
                return [None if error.retryable else False] * len(batches)
        return [self._record([batch])[0] for batch in batches]

    def _code_for(self, lease: Lease) -> Path:
        """The run's flow file, from its code package (unpacked once per package)."""
        key = lease.run.code_package_key
        if not key:
            raise RpcError("FAILED_PRECONDITION", f"run {lease.run.pathspec} has no code package")
        if key not in self._code:
            package = load_package(self.store, key)
            self._code[key] = package.extract(self._folder / "code" / key)
        return self._code[key]

    # ---- while they run ------------------------------------------------------------------

    def _start_of(self, lease: Lease) -> list[Any]:
        """The attempt's TaskStarted while not yet recorded (see _record_begun)."""
        event = self._unrecorded_starts.pop(lease.lease_id, None)
        return [event] if event is not None else []

    def _record_begun(self) -> None:
        """Records TaskStarted for the attempts the backend held back that have begun
        (a Slurm job that left the queue). One whose lease was lost meanwhile is
        stopped: it is no longer this executor's to run. One that could not begin for
        --start-timeout is stopped, and given back when it ends (_reap)."""
        if not self._unrecorded_starts:  # the loop's every turn, most often with none
            return
        held = [running for running in self.running.values()
                if running.lease.lease_id in self._unrecorded_starts]  # fmt: skip
        begun = []
        for running in held:
            if running.never is not None:  # given up: given back once it ended (_reap)
                continue
            if self.backend.begun(running.handle):
                begun.append(running)
            elif running.ended is None:
                self._give_up_if_stuck(running)
        starts = [self._start_of(running.lease) for running in begun]
        recorded = self._record(starts)
        for running, start, ok in zip(begun, starts, recorded, strict=True):
            if ok is None:  # the service is out of reach: the next turn tries again
                self._unrecorded_starts[running.lease.lease_id] = start[0]
            elif not ok and running.ended is None:
                reason = "its lease was lost before it began"
                running.ended = died_outcome(-9, cancelled=reason)
                self.say(f"executor: stopping {running.lease.label}: {reason}")
                self.backend.kill(running.handle)

    def _give_up_if_stuck(self, running: _Running) -> None:
        """Stops an attempt its engine could not begin for --start-timeout (say, a pod
        no node can take): it is given back as never begun once it ended."""
        trouble = self.backend.start_trouble(running.handle)
        if trouble is None:
            running.trouble_since = None
            return
        now = time.monotonic()
        if running.trouble_since is None:
            running.trouble_since = now
        if now - running.trouble_since < self.settings.start_timeout_seconds:
            return
        limit = self.settings.start_timeout_seconds
        trouble.error_message += f" (for {limit:g} s, the executor's --start-timeout)"
        running.never = running.ended = trouble
        self.say(f"executor: giving back {running.lease.label}: it never began: "
                 f"{trouble.error_type}: {trouble.error_message}")  # fmt: skip
        self.backend.kill(running.handle)

    def _sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep >= self.settings.lease_seconds:
            self._sweep_leftovers()

    def _renew_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_renew < self.settings.lease_seconds / 3:
            return
        self._last_renew = now
        for running in list(self.running.values()):
            task = running.lease.task
            request = executor_api.RenewLeaseRequest(
                executor_id=self.settings.executor_id,
                flow_name=task.flow_name,
                run_id=task.run_id,
                step_name=task.step_name,
                task_id=task.task_id,
                attempt=task.attempt,
                lease_id=running.lease.lease_id,
                note=self.backend.waiting(running.handle),
            )
            try:
                with self.metrics.timed("RenewLease"):
                    answer = self.metadata.renew_lease(request)
            except RpcError as error:
                if error.retryable:
                    self._out_of_reach("renew leases", error)
                else:
                    log.warning("cannot renew %s: %s", running.lease.label, error.message)
                continue
            self._in_reach()
            if not answer.keep_running:
                self.metrics.renewal_refused()
            if not answer.keep_running and running.ended is None:
                running.ended = died_outcome(-9, cancelled=answer.reason)
                self.say(f"executor: stopping {running.lease.label}: {answer.reason}")
                self.backend.kill(running.handle)

    def _out_of_reach(self, what: str, error: RpcError) -> None:
        """Says once that the service (or its database) is out of reach, not on every
        call while it is: running attempts go on, and their leases are renewed once it
        answers (the time it could not hear them does not count against them)."""
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            self.say(f"executor: cannot {what}: {error.message}; running tasks go on, retrying")

    def _in_reach(self) -> None:
        if self._unreachable_since is not None:
            seconds = time.monotonic() - self._unreachable_since
            self._unreachable_since = None
            self.say(f"executor: the service answers again, after {seconds:.0f} s")

    def _upload_logs_if_due(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_logs < self.settings.log_every_seconds:
            return
        self._last_logs = now
        for running in list(self.running.values()):
            self._upload_logs(running)

    def _upload_logs(self, running: _Running, *, final: bool = False) -> list[Any]:
        """Stores the attempt's output when it grew; returns the LogsRecorded event to
        append (appended here while the attempt runs, with the outcome at its end)."""
        if not final and running.lease.lease_id in self._unrecorded_starts:
            return []  # its TaskStarted first
        sizes = (output_size(running.stdout), output_size(running.stderr))
        if sizes == running.log_sizes or sizes == (0, 0):
            return []
        running.log_sizes = sizes
        event = logs_event(
            running.lease,
            self.store.save_bytes(read_output(running.stdout)) if sizes[0] else "",
            self.store.save_bytes(read_output(running.stderr)) if sizes[1] else "",
        )
        if final:
            return [event]
        try:
            self.metadata.append_events([event])
        except RpcError as error:
            log.warning("logs of %s not recorded: %s", running.lease.label, error.message)
        return []

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for running in self.running.values():
            if running.deadline and self.backend.waiting(running.handle):  # not begun yet
                running.deadline = now + running.lease.step.timeout_seconds
            if running.deadline and now >= running.deadline and running.ended is None:
                limit = running.lease.step.timeout_seconds
                running.ended = died_outcome(-9, timeout_seconds=limit)
                self.backend.kill(running.handle)

    # ---- outcomes ----------------------------------------------------------------------

    def _reap(self) -> int:
        """Records the outcomes of the attempts that exited (in one append); returns
        how many exited."""
        exited = self.backend.poll()
        finished: list[tuple[_Running, TaskOutcome, list[Any], bool]] = []
        for handle, exit_code in exited:
            running = self.running.pop(handle, None)
            if running is None:  # a node killed as its gang failed to start
                continue
            self._free_gpus.extend(running.gpu_ids)
            never = self._never_began(running, exit_code)
            if never is not None:  # no TaskStarted, no logs: the lease goes back
                finished.append((running, never, [not_started(running.lease, never)], True))
                continue
            memory = running.lease.task.resources.memory_mb
            ended = running.ended or self.backend.why_ended(handle, exit_code, memory)
            outcome = read_outcome(running.result, running.stderr, exit_code, running.lease,
                                   ended=ended)  # fmt: skip
            if not outcome.ok and not outcome.traceback:
                outcome.traceback = read_output(running.stderr).decode(errors="replace")[-20000:]
            events = [
                *self._start_of(running.lease),  # it ended before it was seen to begin
                *self._upload_logs(running, final=True),
                *recorded_outcome(running.lease, outcome),
            ]
            finished.append((running, outcome, events, False))
        recorded = self._record([events for _, _, events, _ in finished])
        for (running, outcome, _, never_began), ok in zip(finished, recorded, strict=True):
            self.metrics.finished(outcome)
            seconds = time.monotonic() - running.started
            if not ok:
                self.say(f"executor: the outcome of {running.lease.label} was refused")
            elif never_began:
                self.say(f"executor: {running.lease.label} never began ({outcome.error_type}): "
                         f"{outcome.error_message}; its lease is given back")  # fmt: skip
            else:
                state = "succeeded" if outcome.ok else f"failed ({outcome.error_type})"
                self.say(f"executor: {running.lease.label} {state} in {seconds:.2f}s")
            shutil.rmtree(running.folder, ignore_errors=True)
        return len(exited)

    def _never_began(self, running: _Running, exit_code: int) -> TaskOutcome | None:
        """Why an attempt that ended before its TaskStarted was recorded never began at
        all (given up after --start-timeout, or its engine says so), or None."""
        if running.lease.lease_id not in self._unrecorded_starts:
            return None
        never = running.never or self.backend.never_began(running.handle, exit_code)
        if never is not None:
            self._unrecorded_starts.pop(running.lease.lease_id)
        return never
