"""The local runtime: schedules a run's tasks, has a launcher run each attempt in a
process of its own (by default a fork of this already warm process, made by a fork server;
see runtime/fork_server.py),
and is the one writer of the run's events.

The launcher reports exits through pidfds, so the loop wakes the moment any task exits
or a timeout falls due (a local retry starts at once). Events are buffered and appended
once per wake-up: a run costs few transactions, and a crash loses at most what is in
flight. What follows a task, and what follows a failure, is ``ledgerflow.engine``'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerflow._flowspec import FlowSpecBase
from ledgerflow._graph import FlowGraph
from ledgerflow._graph_message import StepDefaults, graph_message
from ledgerflow.datastore.content import ContentStore
from ledgerflow.engine import (
    JoinBook,
    Next,
    NextTask,
    RunGraph,
    Tally,
    TaskOutcome,
    catches_in_process,
    decide,
    died_outcome,
    failed,
    gang_failed_reason,
    gang_key,
    new_event,
    note_death,
    outcome_events,
    started_event,
    task_facts,
)
from ledgerflow.exceptions import RpcError
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.runtime.fork_server import ForkServerLauncher
from ledgerflow.runtime.identity import new_run_id, run_system_tags, task_pathspec, write_run_id
from ledgerflow.runtime.launcher import (
    INTERRUPTS,
    AttemptFiles,
    Launcher,
    read_output,
)
from ledgerflow.runtime.live import QUICK_TASK_SECONDS, LiveRecorder, RunningAttempt
from ledgerflow.runtime.orphans import remove_orphaned_workdirs
from ledgerflow.runtime.progress import RunReporter
from ledgerflow.runtime.resume import ResumeOrigin
from ledgerflow.runtime.run_events import append_with_retries, heartbeat_seconds, log_seconds
from ledgerflow.runtime.task import (
    TaskInput,
    TaskRequest,
    TaskSpec,
    child_main,
    transition_of,
)
from ledgerflow.v1 import events_pb2, records_pb2

# A run's scratch folder is named for its runtime's pid, so that the folder of a
# runtime that died without cleaning up (kill -9) is found and removed later.
_WORKDIR_PREFIX = "ledgerflow-run-"


def _reported_outcome(result_path: str) -> TaskOutcome | None:
    """The outcome an attempt wrote; None when it wrote none or was killed writing it."""
    data = read_output(result_path)
    if not data:
        return None
    try:
        return TaskOutcome.from_bytes(data)
    except Exception:
        return None


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


@dataclass
class FinishedTask:
    step_name: str
    task_id: str
    pathspec: str
    artifacts: dict[str, records_pb2.Artifact]
    num_splits: int
    foreach_stack: list[tuple[str, int, int]]
    switch_step: str = ""


@dataclass
class RunResult:
    run_id: str
    succeeded: bool
    failed_step: str = ""
    traceback: str = ""


class LocalRuntime:
    def __init__(
        self,
        flow_class: type[FlowSpecBase],
        graph: FlowGraph,
        metadata: MetadataClient,
        store: ContentStore,
        *,
        username: str,
        parameters: dict[str, Any],
        parameters_json: dict[str, str],
        max_workers: int = 4,
        tags: tuple[str, ...] = (),
        step_defaults: StepDefaults | None = None,
        origin: ResumeOrigin | None = None,
        reporter: RunReporter | None = None,
        metadata_kind: str = "local",
        launcher: Launcher | None = None,
        code_package_key: str = "",
        project_tags: Sequence[str] = (),
        run_id_file: str | None = None,
    ) -> None:
        """`launcher` starts each attempt's process (default: a fork of this one, made
        by a fork server);
        `code_package_key` names the run's code package, when one was stored;
        `run_id_file` (``run --run-id-file``) gets the run id once the ledger knows the
        run, so whoever started this process can open the run while it goes on;
        `project_tags` are the system tags of a @project flow's branch."""
        if max_workers < 1:
            raise ValueError("--max-workers must be at least 1")
        self.flow_class, self.graph = flow_class, graph
        # The graph as the ledger records it: the rules of ledgerflow.engine read it.
        self.declared_graph = graph_message(flow_class, graph, step_defaults)
        self.rules = RunGraph(self.declared_graph)
        self.metadata, self.store = metadata, store
        self.username, self.parameters = username, parameters
        self.parameters_json, self.tags = parameters_json, tags
        self.max_workers = max_workers
        self.origin, self.metadata_kind = origin, metadata_kind
        self.code_package_key, self.run_id_file = code_package_key, run_id_file
        self.project_tags = tuple(project_tags)
        self.reporter = reporter or RunReporter()
        self.run_id = new_run_id()
        self._next_task_id = (origin.max_task_id if origin else 0) + 1
        self._ready: deque[TaskSpec] = deque()
        self._running: dict[int, RunningAttempt] = {}
        # The files of each running attempt (by handle), and those free for the next.
        self._slots: dict[int, AttemptFiles] = {}
        self._free_files: list[AttemptFiles] = []
        self._joins: JoinBook[FinishedTask] = JoinBook()
        self._events: list[events_pb2.Event] = []
        self.launcher = launcher or ForkServerLauncher(
            lambda request, files: child_main(
                flow_class, graph, request.spec, store, parameters, request.facts,
                files.result, files.stdout, files.stderr,
            )
        )  # fmt: skip
        self._failure: RunResult | None = None
        self._end_ok = False
        remove_orphaned_workdirs(Path(tempfile.gettempdir()), _WORKDIR_PREFIX)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-"))
        self.live = LiveRecorder(
            store, self._ref, heartbeat_every=heartbeat_seconds(), log_every=log_seconds()
        )

    # ---- events -------------------------------------------------------------------

    @property
    def _run_key(self) -> tuple[str, str]:
        return self.graph.name, self.run_id

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

    def _system_tags(self) -> list[str]:
        return run_system_tags(self.username, "local", self.project_tags)

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
                        declared_graph=self.declared_graph,
                    )
                )
            ]
        )
        self.reporter.run_started(self.graph.name, self.run_id, self.username, self.metadata_kind)
        self.reporter.expect("start", 1)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        service_lost = False
        try:
            # Written after RunStarted, not when the id is made: a reader of the file
            # (ledgerflow.Runner) opens the run at once, so the ledger must know it. In
            # the try: should the write fail, the run is still recorded as finished.
            if self.run_id_file:
                write_run_id(self.run_id_file, self.run_id)
            self._schedule(TaskSpec("start", "", [], []))
            while self._ready or self._running:
                while self._ready and len(self._running) < self.max_workers:
                    for spec in self._take_ready():
                        self._launch(spec)
                self._wait()
                self._events += self.live.heartbeats(self._running.values(), *self._run_key)
                self._events += self.live.output(self._running.values())
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
                self.launcher.close()
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

    def _wait(self) -> None:
        if not self._running:
            return
        now = time.monotonic()
        wake = [self.live.next_due()]
        wake += [r.deadline for r in self._running.values() if r.deadline and not r.timed_out]
        exited = self.launcher.wait(min(min(wake) - now, QUICK_TASK_SECONDS))
        if not exited and self._events:
            # A longer wait: record what started (it shows as running meanwhile), while
            # short tasks' events still go in one append with their outcomes. (A step
            # that opens its own task meanwhile waits for it: client/core.py.)
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
        for running in self._running.values():
            self.launcher.stop(running.handle)
        stopped = [r.spec for r in self._running.values()]
        self._running.clear()
        if not record:
            return
        interrupted = failed(
            "Interrupted",
            "the run was interrupted; the attempt was killed",
            records_pb2.FAILURE_KIND_CANCELLED,
        )
        for spec in stopped:
            self._events.extend(outcome_events(self._ref(spec), spec.attempt, interrupted))

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

    def _take_ready(self) -> list[TaskSpec]:
        """The next ready task; for a node of a @parallel gang, every node of its gang
        that is ready, past --max-workers if need be: a gang's nodes run together."""
        spec = self._ready.popleft()
        if not self.rules.step(spec.step_name).parallel:
            return [spec]
        gang = gang_key(spec.step_name, _frames(spec.foreach_stack))
        mates = [s for s in self._ready if gang_key(s.step_name, _frames(s.foreach_stack)) == gang]
        for mate in mates:
            self._ready.remove(mate)
        return [spec, *mates]

    def _attempt_files(self) -> AttemptFiles:
        """Where an attempt reports: the files of an attempt that has ended, else new
        ones. (A foreach of thousands of tasks otherwise made three files a task, and
        on ext4 making a file where thousands were just deleted cost more than the
        task.) They are emptied here, so that nothing of the last attempt's is taken
        for this one's: its output (read while it runs), and its result file, which the
        attempt writes its outcome into in place (TaskOutcome.write; an empty or
        cut-off one means none)."""
        if self._free_files:
            files = self._free_files.pop()
        else:
            files = AttemptFiles.under(str(self._workdir / f"attempt-{len(self._slots)}"))
        for path in (files.result, files.stdout, files.stderr):
            with open(path, "wb"):
                pass
        return files

    @_interrupts_deferred()
    def _launch(self, spec: TaskSpec) -> None:
        """Records the attempt's start (appended with the next batch) and starts it."""
        step = self.rules.step(spec.step_name)
        spec.catch_on_failure = catches_in_process(step, spec.failures)
        spec.catch_var = step.catch_var or None
        spec.catch_print = step.catch_print
        spec.max_num_splits = step.max_num_splits
        self._events.append(
            started_event(self._ref(spec), spec.attempt, [i.pathspec for i in spec.inputs],
                          _frames(spec.foreach_stack), step.resources)
        )  # fmt: skip
        caught = spec.fallback_error["type"] if spec.fallback_error else ""
        self.reporter.task_started(spec.step_name, spec.task_id, spec.attempt, caught)
        files = self._attempt_files()
        facts = task_facts(
            flow_name=self.graph.name,
            run_id=self.run_id,
            step_name=spec.step_name,
            task_id=spec.task_id,
            attempt=spec.attempt,
            user=self.username,
            tags=[*self.tags, *self._system_tags()],
            origin_run_id=self.origin.run_id if self.origin else "",
            parameter_names=self.parameters,
            trigger=self.origin.trigger if self.origin else None,
        )
        handle = self.launcher.launch(TaskRequest(spec, facts, self.parameters_json), files)
        self._slots[handle] = files
        now = time.monotonic()
        deadline = now + step.timeout_seconds if step.timeout_seconds else None
        self._running[handle] = RunningAttempt(spec, handle, now, deadline, files)

    @_interrupts_deferred()
    def _reap(self, running: RunningAttempt, exit_code: int) -> None:
        del self._running[running.handle]
        self._free_files.append(self._slots.pop(running.handle))
        spec = running.spec
        step = self.rules.step(spec.step_name)
        seconds = time.monotonic() - running.started
        outcome = _reported_outcome(running.files.result)
        if outcome is None:
            timeout = step.timeout_seconds if running.timed_out else 0.0
            outcome = died_outcome(exit_code, timeout_seconds=timeout,
                                   cancelled=running.stopped_because)  # fmt: skip
            note_death(running.files.stderr, outcome)
        stdout = read_output(running.files.stdout)
        stderr = read_output(running.files.stderr)
        if not outcome.traceback and not outcome.ok and stderr:
            outcome.traceback = stderr.decode(errors="replace")
        ref = self._ref(spec)
        self._events += self.live.logs(running, stdout, stderr)
        self._events.extend(outcome_events(ref, spec.attempt, outcome))
        if stdout:
            self.reporter.task_output(spec.step_name, spec.task_id, stdout.decode(errors="replace"))
        if outcome.ok:
            note = f" (caught {outcome.error_type})" if outcome.caught else ""
            self.reporter.task_finished(spec.step_name, spec.task_id, True, seconds, note)
            artifacts = {a.name: a for a in outcome.artifacts}
            finished = FinishedTask(spec.step_name, spec.task_id, task_pathspec(ref), artifacts,
                                    outcome.num_splits, spec.foreach_stack,
                                    outcome.switch_step)  # fmt: skip
            self._on_success(finished)
            return
        self.reporter.task_finished(spec.step_name, spec.task_id, False, seconds,
                                    f"{outcome.error_type}: {outcome.error_message}")  # fmt: skip
        tally = Tally(spec.failures, spec.lost).after(outcome.kind)
        decision = decide(step, tally, outcome.kind, outcome.error_type, remote=False)
        if decision.next is not Next.FAIL and self._failure is None:
            again = TaskSpec(
                spec.step_name,
                spec.task_id,
                spec.inputs,
                spec.foreach_stack,
                attempt=spec.attempt + 1,
                failures=tally.failures,
                lost=tally.lost,
            )
            if decision.next is Next.CATCH:
                again.fallback_error = dict(type=outcome.error_type,
                                            message=outcome.error_message,
                                            traceback=outcome.traceback)  # fmt: skip
            self._ready.append(again)
            return
        if step.parallel:
            self._stop_gang(spec)
        if self._failure is None:
            self._failure = RunResult(
                self.run_id,
                False,
                f"{spec.step_name}/{spec.task_id}",
                outcome.traceback or outcome.error_message,
            )
            self._ready.clear()

    def _stop_gang(self, failed_node: TaskSpec) -> None:
        """Stops the running nodes of a failed node's gang: they would wait for it for
        ever (each is recorded as failed, saying why)."""
        gang = gang_key(failed_node.step_name, _frames(failed_node.foreach_stack))
        for running in self._running.values():
            mate = running.spec
            if gang_key(mate.step_name, _frames(mate.foreach_stack)) == gang:
                running.stopped_because = gang_failed_reason(
                    f"{failed_node.step_name}/{failed_node.task_id}"
                )
                self.launcher.kill(running.handle)  # its exit is reaped as any other

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
        num_splits, switch_step = transition_of(self.graph[spec.step_name], artifacts, self.store)
        self._on_success(FinishedTask(spec.step_name, spec.task_id, task_pathspec(ref), artifacts,
                                      num_splits, spec.foreach_stack, switch_step))  # fmt: skip

    def _on_success(self, task: FinishedTask) -> None:
        if task.step_name == "end":
            self._end_ok = True
            return
        as_input = TaskInput(task.step_name, task.pathspec, task.artifacts)
        label = f"{task.step_name}/{task.task_id}"
        following = self.rules.successors(
            task.step_name, _frames(task.foreach_stack), task.num_splits, label, task.switch_step
        )
        for successor in following:
            if isinstance(successor, NextTask):
                self.reporter.expect(successor.step, 1)
                self._schedule(TaskSpec(successor.step, "", [as_input],
                                        _tuples(successor.foreach_stack)))  # fmt: skip
                continue
            inputs = self._joins.arrive(successor, task)
            if inputs is not None:
                self.reporter.expect(successor.join, 1)
                joined = [TaskInput(t.step_name, t.pathspec, t.artifacts) for t in inputs]
                self._schedule(TaskSpec(successor.join, "", joined,
                                        _tuples(successor.foreach_stack)))  # fmt: skip


def _frames(stack: list[tuple[str, int, int]]) -> list[records_pb2.ForeachFrame]:
    return [records_pb2.ForeachFrame(step_name=s, index=i, num_splits=n) for s, i, n in stack]


def _tuples(stack: Sequence[records_pb2.ForeachFrame]) -> list[tuple[str, int, int]]:
    return [(f.step_name, f.index, f.num_splits) for f in stack]


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt
