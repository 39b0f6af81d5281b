"""The local runtime: schedules a run's tasks, has a launcher run each attempt in a
process of its own (by default a fork of this already warm process; see _launcher.py),
and is the one writer of the run's events.

The launcher reports exits through pidfds, so the loop wakes the moment any task exits,
a timeout falls due, or a retry's delay is over. Events are buffered and appended once
per wake-up: a run costs few transactions, and a crash loses at most what is in flight.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow._datastore import ContentStore
from ledgerflow._decorators import Retry, step_options
from ledgerflow._flowspec import FlowSpec
from ledgerflow._graph import FlowGraph
from ledgerflow._graph_message import graph_message
from ledgerflow._launcher import (
    INTERRUPTS,
    AttemptFiles,
    ForkLauncher,
    Launcher,
    output_size,
    read_output,
)
from ledgerflow._lineage import lineage_events
from ledgerflow._metadata import MetadataClient
from ledgerflow._orphans import remove_orphaned_workdirs
from ledgerflow._progress import RunReporter
from ledgerflow._resume import ResumeOrigin
from ledgerflow._run_events import (
    append_with_retries,
    heartbeat_seconds,
    log_seconds,
    new_event,
)
from ledgerflow._task import (
    NUM_SPLITS_ARTIFACT,
    TaskInput,
    TaskOutcome,
    TaskRequest,
    TaskSpec,
    child_main,
)
from ledgerflow.exceptions import RpcError
from ledgerflow.v1 import events_pb2, records_pb2

# A run's scratch folder is named for its runtime's pid, so that the folder of a
# runtime that died without cleaning up (kill -9) is found and removed later.
_WORKDIR_PREFIX = "ledgerflow-run-"


# Tasks that end within this long are recorded with their start in one append.
QUICK_TASK_SECONDS = 0.05


class _interrupts_deferred(contextlib.ContextDecorator):
    """Holds SIGINT and SIGTERM back while the runtime updates its books (a task's
    start event and its process, or its end and its outcome events), and delivers them
    after: an interrupted run never leaves a task recorded as started but unknown to
    the runtime, so every killed attempt is recorded as failed."""

    def __init__(self) -> None:
        self._previous: list[set[int | signal.Signals]] = []  # a stack: safe if nested

    def __enter__(self) -> None:
        self._previous.append(signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS))

    def __exit__(self, *_: object) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous.pop())


VERSION = "0.1.0"


def new_run_id() -> str:
    """Sortable and unique enough for one writer: microseconds since the epoch."""
    return str(time.time_ns() // 1000)


@dataclass
class FinishedTask:
    step_name: str
    task_id: str
    pathspec: str
    artifacts: dict[str, records_pb2.Artifact]
    next_steps: list[str]
    num_splits: int
    foreach_stack: list[tuple[str, int, int]]


@dataclass
class _Running:
    spec: TaskSpec
    handle: int  # the launcher's
    started: float
    deadline: float | None
    files: AttemptFiles
    timed_out: bool = False
    # The sizes of stdout and stderr when they were last recorded.
    log_sizes: tuple[int, int] = (0, 0)


@dataclass
class RunResult:
    run_id: str
    succeeded: bool
    failed_step: str = ""
    traceback: str = ""


@dataclass
class _JoinGroup:
    expected: int
    stack: list[tuple[str, int, int]]
    arrived: list[tuple[int, FinishedTask]] = field(default_factory=list)


class LocalRuntime:
    def __init__(
        self,
        flow_class: type[FlowSpec],
        graph: FlowGraph,
        metadata: MetadataClient,
        store: ContentStore,
        *,
        username: str,
        parameters: dict[str, Any],
        parameters_json: dict[str, str],
        max_workers: int = 4,
        tags: tuple[str, ...] = (),
        default_retry: Retry | None = None,
        origin: ResumeOrigin | None = None,
        reporter: RunReporter | None = None,
        metadata_kind: str = "local",
        launcher: Launcher | None = None,
        code_package_key: str = "",
    ) -> None:
        """`launcher` starts each attempt's process (default: a fork of this one);
        `code_package_key` names the run's code package, when one was stored."""
        if max_workers < 1:
            raise ValueError("--max-workers must be at least 1")
        self.flow_class, self.graph = flow_class, graph
        self.metadata, self.store = metadata, store
        self.username, self.parameters = username, parameters
        self.parameters_json, self.tags = parameters_json, tags
        self.max_workers, self.default_retry = max_workers, default_retry
        self.origin, self.metadata_kind = origin, metadata_kind
        self.code_package_key = code_package_key
        self.reporter = reporter or RunReporter()
        self.run_id = new_run_id()
        self._next_task_id = (origin.max_task_id if origin else 0) + 1
        self._ready: deque[TaskSpec] = deque()
        self._delayed: list[tuple[float, TaskSpec]] = []
        self._running: dict[int, _Running] = {}
        self._joins: dict[tuple[Any, ...], _JoinGroup] = {}
        self._events: list[events_pb2.Event] = []
        self.launcher = launcher or ForkLauncher(
            lambda request, files: child_main(
                flow_class, graph, request.spec, store, parameters, request.facts,
                files.result, files.stdout, files.stderr,
            )
        )  # fmt: skip
        self._failure: RunResult | None = None
        self._end_ok = False
        remove_orphaned_workdirs(Path(tempfile.gettempdir()), _WORKDIR_PREFIX)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-"))
        self._heartbeat_every = heartbeat_seconds()
        self._last_heartbeat = time.monotonic()
        self._log_every = log_seconds()
        self._logs_due = time.monotonic() + self._log_every

    # ---- events -------------------------------------------------------------------

    def _ref(self, spec: TaskSpec) -> events_pb2.TaskRef:
        return events_pb2.TaskRef(
            flow_name=self.graph.name,
            run_id=self.run_id,
            step_name=spec.step_name,
            task_id=spec.task_id,
        )

    def _flush(self) -> None:
        """Appends the buffered events. While the service is unreachable the same batch
        is retried (its event ids make a retry safe: nothing is recorded twice); the run
        gives up only after about a minute of outage."""
        if not self._events:
            return
        append_with_retries(self.metadata, self._events, self.reporter.warn)
        self._events = []

    def _task_failed(self, spec: TaskSpec, outcome: TaskOutcome) -> None:
        self._events.append(new_event(task_failed=events_pb2.TaskFailed(
            task=self._ref(spec), attempt=spec.attempt, error_type=outcome.error_type,
            error_message=outcome.error_message, traceback=outcome.traceback)))  # fmt: skip

    def _system_tags(self) -> list[str]:
        return [
            f"user:{self.username}",
            "runtime:local",
            f"python_version:{platform.python_version()}",
            f"ledgerflow_version:{VERSION}",
        ]

    # ---- the loop -------------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.monotonic()
        self.metadata.append_events(
            [
                new_event(
                    run_started=events_pb2.RunStarted(
                        flow_name=self.graph.name,
                        run_id=self.run_id,
                        user=self.username,
                        tags=list(self.tags),
                        system_tags=self._system_tags(),
                        parameters=self.parameters_json,
                        origin_run_id=self.origin.run_id if self.origin else "",
                        code_package_key=self.code_package_key,
                        declared_graph=graph_message(
                            self.flow_class, self.graph, self.default_retry
                        ),
                    )
                )
            ]
        )
        self.reporter.run_started(self.graph.name, self.run_id, self.username, self.metadata_kind)
        self.reporter.expect("start", 1)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        service_lost = False
        try:
            self._schedule(TaskSpec("start", "", [], []))
            while self._ready or self._running or self._delayed:
                self._release_delayed()
                while self._ready and len(self._running) < self.max_workers:
                    self._launch(self._ready.popleft())
                self._wait()
                self._heartbeat_if_due()
                self._record_logs_if_due()
                self._flush()
        except KeyboardInterrupt:
            self._kill_all()
            self._failure = self._failure or RunResult(
                self.run_id, False, "", "the run was interrupted"
            )
        except RpcError as error:
            if error.retryable:
                # The service stayed out of reach: nothing the attempts do can be
                # recorded, so they are stopped rather than left running unseen.
                service_lost = True
                self._kill_all(record=False)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            try:
                if not service_lost:
                    self._events.append(new_event(run_finished=events_pb2.RunFinished(
                        flow_name=self.graph.name, run_id=self.run_id,
                        succeeded=self._end_ok and self._failure is None)))  # fmt: skip
                    self._flush()
            finally:
                shutil.rmtree(self._workdir, ignore_errors=True)
        result = self._failure or RunResult(self.run_id, self._end_ok)
        self.reporter.run_finished(
            self.graph.name,
            self.run_id,
            result.succeeded,
            time.monotonic() - started,
            result.traceback,
            result.failed_step,
        )
        return result

    def _heartbeat_if_due(self) -> None:
        """Every heartbeat interval: one TaskHeartbeat per running attempt (a long task
        must not look lost) and a RunHeartbeat (the run's other events may be rare)."""
        now = time.monotonic()
        if now - self._last_heartbeat < self._heartbeat_every:
            return
        self._last_heartbeat = now
        for running in self._running.values():
            self._events.append(
                new_event(
                    task_heartbeat=events_pb2.TaskHeartbeat(
                        task=self._ref(running.spec), attempt=running.spec.attempt
                    )
                )
            )
        self._events.append(
            new_event(
                run_heartbeat=events_pb2.RunHeartbeat(flow_name=self.graph.name, run_id=self.run_id)
            )
        )

    def _record_logs_if_due(self) -> None:
        """Records the output of running attempts that printed since the last time, so
        that it can be followed while they run. Each time stores the whole output so
        far; the next time is put off so that this costs at most a tenth of the time."""
        now = time.monotonic()
        if now < self._logs_due:
            return
        for running in self._running.values():
            files = running.files
            grew = (output_size(files.stdout), output_size(files.stderr)) != running.log_sizes
            if grew and now - running.started >= QUICK_TASK_SECONDS:
                self._record_logs(running, read_output(files.stdout), read_output(files.stderr))
        spent = time.monotonic() - now
        self._logs_due = time.monotonic() + max(self._log_every, 10 * spent)

    def _record_logs(self, running: _Running, stdout: bytes, stderr: bytes) -> None:
        """Appends a LogsRecorded event for the attempt's output, unless none came since
        the last one (while it ran, or at its end)."""
        if (len(stdout), len(stderr)) == running.log_sizes:
            return
        running.log_sizes = (len(stdout), len(stderr))
        self._events.append(
            new_event(
                logs_recorded=events_pb2.LogsRecorded(
                    task=self._ref(running.spec),
                    attempt=running.spec.attempt,
                    stdout_key=self.store.save_bytes(stdout) if stdout else "",
                    stderr_key=self.store.save_bytes(stderr) if stderr else "",
                )
            )
        )

    def _release_delayed(self) -> None:
        now = time.monotonic()
        due = [item for item in self._delayed if item[0] <= now]
        for item in due:
            self._delayed.remove(item)
            self._ready.append(item[1])

    def _wait(self) -> None:
        if not self._running:
            if self._delayed:  # a retry waits its delay; heartbeats go on meanwhile
                wake_at = min(
                    min(t for t, _ in self._delayed), self._last_heartbeat + self._heartbeat_every
                )
                time.sleep(max(0.0, wake_at - time.monotonic()))
            return
        now = time.monotonic()
        wake = [self._last_heartbeat + self._heartbeat_every, self._logs_due]
        wake += [r.deadline for r in self._running.values() if r.deadline and not r.timed_out]
        wake += [t for t, _ in self._delayed]
        exited = self.launcher.wait(min(min(wake) - now, QUICK_TASK_SECONDS))
        if not exited and self._events:
            # A longer wait: record what started (it shows as running meanwhile), while
            # short tasks' events still go in one append with their outcomes.
            self._flush()
            exited = self.launcher.wait(min(wake) - time.monotonic())
        for handle, exit_code in exited:
            self._reap(self._running[handle], exit_code)
        now = time.monotonic()
        for running in list(self._running.values()):
            if running.deadline and now >= running.deadline and not running.timed_out:
                running.timed_out = True
                self.launcher.kill(running.handle)

    def _kill_all(self, *, record: bool = True) -> None:
        """Stops every running attempt and (unless `record` is off) records it as failed
        (interrupted)."""
        for running in list(self._running.values()):
            self.launcher.stop(running.handle)
            if not record:
                continue
            self._task_failed(running.spec, TaskOutcome(
                ok=False, error_type="Interrupted",
                error_message="the run was interrupted; the attempt was killed"))  # fmt: skip
        self._running.clear()

    # ---- scheduling -------------------------------------------------------------------

    def _schedule(self, spec: TaskSpec) -> None:
        if self._failure is not None:
            return
        if self.origin and spec.step_name in self.origin.clone_steps:
            key = (spec.step_name, tuple(i for _, i, _ in spec.foreach_stack))
            if key in self.origin.tasks:
                self._clone(spec, *self.origin.tasks[key])
                return
        spec.task_id = str(self._next_task_id)
        self._next_task_id += 1
        self._ready.append(spec)

    def _options(self, step_name: str) -> Any:
        return step_options(getattr(self.flow_class, step_name))

    @_interrupts_deferred()
    def _launch(self, spec: TaskSpec) -> None:
        options = self._options(spec.step_name)
        retry = options.retry or self.default_retry
        max_attempts = 1 + (retry.times if retry else 0)
        spec.catch_on_failure = options.catch is not None and spec.attempt >= max_attempts - 1
        spec.catch_var = options.catch.var if options.catch else None
        spec.catch_print = options.catch.print_exception if options.catch else True
        res = options.resources
        self._events.append(
            new_event(
                task_started=events_pb2.TaskStarted(
                    task=self._ref(spec),
                    attempt=spec.attempt,
                    input_pathspecs=[i.pathspec for i in spec.inputs],
                    foreach_stack=_frames(spec.foreach_stack),
                    resources=records_pb2.Resources(cpu=res.cpu, gpu=res.gpu, memory_mb=res.memory),
                )
            )
        )
        self.reporter.task_started(spec.step_name, spec.task_id, spec.attempt)
        files = AttemptFiles.under(
            str(self._workdir / f"{spec.step_name}.{spec.task_id}.{spec.attempt}")
        )
        facts = dict(
            flow_name=self.graph.name,
            run_id=self.run_id,
            step_name=spec.step_name,
            task_id=spec.task_id,
            retry_count=spec.attempt,
            namespace=f"user:{self.username}",
            username=self.username,
            tags=[*self.tags, *self._system_tags()],
            origin_run_id=self.origin.run_id if self.origin else None,
            parameter_names=list(self.parameters),
        )
        handle = self.launcher.launch(TaskRequest(spec, facts, self.parameters_json), files)
        deadline = time.monotonic() + options.timeout.seconds if options.timeout else None
        self._running[handle] = _Running(spec, handle, time.monotonic(), deadline, files)

    @_interrupts_deferred()
    def _reap(self, running: _Running, exit_code: int) -> None:
        del self._running[running.handle]
        spec = running.spec
        result_path, out_path, err_path = (
            running.files.result,
            running.files.stdout,
            running.files.stderr,
        )
        seconds = time.monotonic() - running.started
        if os.path.exists(result_path):
            outcome = TaskOutcome.from_bytes(Path(result_path).read_bytes())
        elif running.timed_out:
            limit = self._options(spec.step_name).timeout.seconds
            outcome = TaskOutcome(
                ok=False,
                error_type="TimeoutException",
                error_message=f"the attempt ran longer than {limit:g}s (@timeout) and was killed",
            )
        else:
            outcome = TaskOutcome(
                ok=False,
                error_type="TaskProcessDied",
                error_message=f"the task process exited with code {exit_code} "
                "before reporting (killed, or os._exit)",
            )
        stdout = read_output(out_path)
        stderr = read_output(err_path)
        if not outcome.traceback and not outcome.ok and stderr:
            outcome.traceback = stderr.decode(errors="replace")
        ref = self._ref(spec)
        if outcome.artifacts:
            self._events.append(
                new_event(
                    artifacts_recorded=events_pb2.ArtifactsRecorded(
                        task=ref, attempt=spec.attempt, artifacts=outcome.artifacts
                    )
                )
            )
        self._events.extend(lineage_events(outcome.lineage, ref, spec.attempt))
        self._record_logs(running, stdout, stderr)
        if stdout:
            self.reporter.task_output(spec.step_name, spec.task_id, stdout.decode(errors="replace"))
        if outcome.ok:
            self._events.append(
                new_event(task_succeeded=events_pb2.TaskSucceeded(task=ref, attempt=spec.attempt))
            )
            note = f" (caught {outcome.error_type})" if outcome.caught else ""
            self.reporter.task_finished(spec.step_name, spec.task_id, True, seconds, note)
            self._on_success(
                FinishedTask(
                    spec.step_name,
                    spec.task_id,
                    _pathspec(ref),
                    {a.name: a for a in outcome.artifacts},
                    outcome.next_steps,
                    outcome.num_splits,
                    spec.foreach_stack,
                )
            )
            return
        self._task_failed(spec, outcome)
        self.reporter.task_finished(
            spec.step_name,
            spec.task_id,
            False,
            seconds,
            f"{outcome.error_type}: {outcome.error_message}",
        )
        retry = self._options(spec.step_name).retry or self.default_retry
        if retry and spec.attempt < retry.times and self._failure is None:
            again = TaskSpec(
                spec.step_name,
                spec.task_id,
                spec.inputs,
                spec.foreach_stack,
                attempt=spec.attempt + 1,
            )
            self._delayed.append((time.monotonic() + 60 * retry.minutes_between_retries, again))
            return
        if self._failure is None:
            self._failure = RunResult(
                self.run_id,
                False,
                f"{spec.step_name}/{spec.task_id}",
                outcome.traceback or outcome.error_message,
            )
            self._ready.clear()
            self._delayed.clear()

    def _clone(
        self, spec: TaskSpec, origin_task_id: str, artifacts: dict[str, records_pb2.Artifact]
    ) -> None:
        assert self.origin is not None
        spec.task_id = origin_task_id
        origin_path = f"{self.graph.name}/{self.origin.run_id}/{spec.step_name}/{origin_task_id}"
        ref = self._ref(spec)
        self._events.append(
            new_event(
                task_cloned=events_pb2.TaskCloned(
                    task=ref,
                    origin_pathspec=origin_path,
                    input_pathspecs=[i.pathspec for i in spec.inputs],
                    foreach_stack=_frames(spec.foreach_stack),
                )
            )
        )
        self.reporter.task_cloned(spec.step_name, spec.task_id, origin_path)
        node = self.graph[spec.step_name]
        num_splits = 0
        if node.foreach_param:
            record = artifacts[NUM_SPLITS_ARTIFACT]
            num_splits = int(self.store.load(record.content_key, record.serializer))
        self._on_success(
            FinishedTask(
                spec.step_name,
                spec.task_id,
                _pathspec(ref),
                artifacts,
                list(node.out_funcs),
                num_splits,
                spec.foreach_stack,
            )
        )

    def _on_success(self, task: FinishedTask) -> None:
        if task.step_name == "end":
            self._end_ok = True
            return
        node = self.graph[task.step_name]
        as_input = TaskInput(task.step_name, task.pathspec, task.artifacts)
        if node.foreach_param:
            target = task.next_steps[0]
            self.reporter.expect(target, task.num_splits)
            for index in range(task.num_splits):
                frame = (task.step_name, index, task.num_splits)
                self._schedule(TaskSpec(target, "", [as_input], [*task.foreach_stack, frame]))
            return
        for target in task.next_steps:
            target_node = self.graph[target]
            if not target_node.is_join:
                self.reporter.expect(target, 1)
                self._schedule(TaskSpec(target, "", [as_input], list(task.foreach_stack)))
                continue
            closing = self.graph[node.split_parents[-1]]
            if closing.kind == "foreach":
                stack = task.foreach_stack[:-1]
                position, expected = task.foreach_stack[-1][1], task.foreach_stack[-1][2]
            else:
                stack = list(task.foreach_stack)
                position = target_node.in_funcs.index(task.step_name)
                expected = len(target_node.in_funcs)
            key = (target, tuple(stack))
            group = self._joins.setdefault(key, _JoinGroup(expected, stack))
            group.arrived.append((position, task))
            if len(group.arrived) == group.expected:
                del self._joins[key]
                inputs = [
                    TaskInput(t.step_name, t.pathspec, t.artifacts)
                    for _, t in sorted(group.arrived, key=lambda item: item[0])
                ]
                self.reporter.expect(target, 1)
                self._schedule(TaskSpec(target, "", inputs, group.stack))


def _frames(stack: list[tuple[str, int, int]]) -> list[records_pb2.ForeachFrame]:
    return [records_pb2.ForeachFrame(step_name=s, index=i, num_splits=n) for s, i, n in stack]


def _pathspec(ref: events_pb2.TaskRef) -> str:
    return f"{ref.flow_name}/{ref.run_id}/{ref.step_name}/{ref.task_id}"


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt
