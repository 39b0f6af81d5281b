"""The steps, tasks and attempts read models: a task starts with attempt 0; each
later attempt starts only after the previous one failed; heartbeats, logs and the
outcome belong to the task's current attempt; a clone is a task that succeeded in an
origin run, recorded without attempts. A step counts its tasks."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerflow.engine.graph import MAX_FOREACH_SPLITS
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from ledgerflow_service.names import check_content_key, parse_pathspec
from ledgerflow_service.validation import check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

# Attempt numbers are stored as 32-bit signed integers.
MAX_ATTEMPT = (1 << 31) - 1


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


def task_started(fold: ReadModelFold, p: events_pb2.TaskStarted, item: PendingEvent) -> None:
    path = item.address.task_pathspec
    assert path is not None
    fold.run(item.address.run_pathspec, open_only=True)
    task = fold.tasks.get(path)
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
            input_pathspecs_json=texts_json(p.input_pathspecs),
            foreach_stack_json=foreach_json(p.foreach_stack),
            resources_json=_resources_json(p.resources.cpu, p.resources.gpu, p.resources.memory_mb),
            origin_pathspec="",
        )
        fold.tasks[path] = task
        _count_task(fold, path.rsplit("/", 1)[0], item)
    else:
        current = fold.attempts.get((path, task.current_attempt))
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
    fold.attempts[(path, p.attempt)] = attempt
    fold.mark(task)
    fold.mark(attempt)


def _count_task(fold: ReadModelFold, step_path: str, item: PendingEvent) -> None:
    step = fold.steps.get(step_path)
    if step is None:
        step = StepRow(
            step_path,
            item.address.run_pathspec,
            step_path.rsplit("/", 1)[1],
            item.recorded_at_us,
            item.position,
            0,
        )
        fold.steps[step_path] = step
    step.task_count += 1
    fold.mark(step)


def task_heartbeat(fold: ReadModelFold, p: events_pb2.TaskHeartbeat, item: PendingEvent) -> None:
    fold.run(item.address.run_pathspec, open_only=True)
    task = fold.open_attempt(item.address.task_pathspec or "", p.attempt)
    task.last_heartbeat_at_us = item.recorded_at_us
    fold.mark(task)


def _finish_attempt(
    fold: ReadModelFold, path: str, attempt: int, item: PendingEvent, ok: bool
) -> AttemptRow:
    fold.run(item.address.run_pathspec, open_only=True)
    task = fold.open_attempt(path, attempt)
    row = fold.attempts[(path, attempt)]
    row.finished_at_us = task.finished_at_us = item.recorded_at_us
    row.succeeded = task.succeeded = int(ok)
    task.last_heartbeat_at_us = item.recorded_at_us
    if ok and task.step_name == "end":
        fold.run(item.address.run_pathspec, open_only=True).end_succeeded = 1
    fold.mark(task)
    fold.mark(row)
    return row


def close_lost_attempt(
    fold: ReadModelFold, path: str, p: events_pb2.LeaseExpired, item: PendingEvent
) -> None:
    """A running attempt whose executor stopped renewing its lease failed."""
    task = fold.tasks.get(path)
    row = fold.attempts.get((path, p.attempt))
    if task is None or row is None or row.finished_at_us is not None:
        return
    _finish_attempt(fold, path, p.attempt, item, ok=False)
    row.error_type = "LeaseExpired"
    row.error_message = (
        f"executor {p.executor_id or '(unknown)'} stopped renewing its lease: it died or "
        "lost the service; the task is queued again"
    )


def task_succeeded(fold: ReadModelFold, p: events_pb2.TaskSucceeded, item: PendingEvent) -> None:
    # Checked on live appends, before the process manager queues the items; a replay
    # folds what was recorded before the cap existed.
    if fold.decides and p.num_splits > MAX_FOREACH_SPLITS:
        raise InvalidArgument(
            f"task_succeeded.num_splits is {p.num_splits:,}; a foreach splits into at most "
            f"{MAX_FOREACH_SPLITS:,} items (split the work in chunks)"
        )
    _finish_attempt(fold, item.address.task_pathspec or "", p.attempt, item, ok=True)


def task_failed(fold: ReadModelFold, p: events_pb2.TaskFailed, item: PendingEvent) -> None:
    for field_name in ("error_type", "error_message", "traceback"):
        check_text(f"task_failed.{field_name}", getattr(p, field_name))
    row = _finish_attempt(fold, item.address.task_pathspec or "", p.attempt, item, ok=False)
    row.error_type, row.error_message, row.traceback = p.error_type, p.error_message, p.traceback


def logs_recorded(fold: ReadModelFold, p: events_pb2.LogsRecorded, item: PendingEvent) -> None:
    path = item.address.task_pathspec or ""
    check_content_key("logs_recorded.stdout_key", p.stdout_key, optional=True)
    check_content_key("logs_recorded.stderr_key", p.stderr_key, optional=True)
    fold.open_attempt(path, p.attempt, finished_ok=True)
    row = fold.attempts[(path, p.attempt)]
    row.stdout_key, row.stderr_key = p.stdout_key, p.stderr_key
    fold.mark(row)


def task_cloned(fold: ReadModelFold, p: events_pb2.TaskCloned, item: PendingEvent) -> None:
    path = item.address.task_pathspec or ""
    run = fold.run(item.address.run_pathspec, open_only=True)
    if fold.tasks.get(path) is not None:
        raise AlreadyExists(f"task {path} already exists")
    origin_flow, origin_run, _, _ = parse_pathspec(p.origin_pathspec, 4)
    origin = fold.tasks.get(p.origin_pathspec)
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
        input_pathspecs_json=texts_json(p.input_pathspecs),
        foreach_stack_json=foreach_json(p.foreach_stack),
        resources_json=origin.resources_json,
        origin_pathspec=p.origin_pathspec,
    )
    fold.tasks[path] = task
    fold.mark(task)
    _count_task(fold, path.rsplit("/", 1)[0], item)
    # The clone's artifacts are the origin attempt's (copied when the fold is saved).
    fold.clones.append(
        (path, run.pathspec, task.step_name, origin.pathspec, origin.current_attempt)
    )
    if task.step_name == "end":
        run.end_succeeded = 1


# Most tasks have no inputs listed and no foreach frames, and a flow's tasks ask for
# the same few resources: the JSON of the common cases is not encoded again and again.
def texts_json(texts: Sequence[str]) -> str:
    return json.dumps(list(texts)) if texts else "[]"


def foreach_json(frames: Sequence[records_pb2.ForeachFrame]) -> str:
    if not frames:
        return "[]"
    return json.dumps([[f.step_name, f.index, f.num_splits] for f in frames])


@functools.lru_cache(maxsize=1024)
def _resources_json(cpu: float, gpu: int, memory_mb: int) -> str:
    return json.dumps({"cpu": cpu, "gpu": gpu, "memory_mb": memory_mb})


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {
    "task_started": task_started,
    "task_heartbeat": task_heartbeat,
    "task_succeeded": task_succeeded,
    "task_failed": task_failed,
    "logs_recorded": logs_recorded,
    "task_cloned": task_cloned,
}
