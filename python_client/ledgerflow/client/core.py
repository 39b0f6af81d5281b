"""The client objects, from the top down: Ledgerflow -> Flow -> Run -> Step -> Task.
Each finds its parent and its children, so they live together.

Requests are few by design: a Step fetches all its tasks in one call and the artifacts
of all those tasks in one more, shared by every Task it hands out; values are read
from the datastore only when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from ledgerflow._current import current
from ledgerflow.client.artifacts import Artifacts, DataArtifact, _Data
from ledgerflow.client.settings import _clients, get_namespace
from ledgerflow.client.tagged import RunTagged
from ledgerflow.exceptions import (
    CaughtException,
    LedgerflowNamespaceMismatch,
    LedgerflowNotFound,
    LedgerflowTaggingError,
    RpcError,
)
from ledgerflow.runtime.code_package import CodePackage, load_package
from ledgerflow.v1 import (
    audit_service_pb2,
    common_pb2,
    events_pb2,
    query_service_pb2,
    records_pb2,
)


class Metadata(NamedTuple):
    """One metadata entry of a task (Metaflow's ``Metadata``)."""

    name: str
    value: str
    created_at: datetime | None
    type: str
    task: str


def _time(stamp: Any) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _not_found(error: LedgerflowNotFound) -> LedgerflowNotFound:
    """The same not-found error, raised here so the traceback ends in the client API."""
    return LedgerflowNotFound(str(error))


# How long a task waits for its runtime to record its own step or task (see below).
_OWN_RECORD_SECONDS = 10.0
T = TypeVar("T")


def _soon_recorded(pathspec: str, lookup: Callable[[], T]) -> T:
    """`lookup()`, waiting when it fails because the running task asks for its own step or
    task before its runtime has recorded it: the runtime appends a task's start with its
    next batch (a quick task's start goes with its end), so a step's first line can be
    ahead of the ledger by some milliseconds. Anything else that is not found fails at
    once."""
    try:
        return lookup()
    except LedgerflowNotFound:
        here = current.pathspec
        if not here or not (here == pathspec or here.startswith(pathspec + "/")):
            raise
    deadline = time.monotonic() + _OWN_RECORD_SECONDS
    while True:
        time.sleep(0.005)
        try:
            return lookup()
        except LedgerflowNotFound:
            if time.monotonic() > deadline:
                raise


def _split(pathspec: str, parts: int, what: str) -> list[str]:
    segments = pathspec.strip("/").split("/")
    if len(segments) != parts or not all(segments):
        shape = "/".join(["Flow", "run_id", "step", "task_id"][:parts])
        raise ValueError(f"{what} pathspec {pathspec!r} must look like {shape}")
    return segments


class _Outcome:
    """Status and times of a run or task, read from its record."""

    _record: Any

    @property
    def status(self) -> str:
        """'running', 'succeeded', 'failed' or 'lost' (derived by the service)."""
        return common_pb2.Status.Name(self._record.status).removeprefix("STATUS_").lower()

    @property
    def successful(self) -> bool:
        return self._record.status == common_pb2.STATUS_SUCCEEDED

    @property
    def finished(self) -> bool:
        return self._record.status in (common_pb2.STATUS_SUCCEEDED, common_pb2.STATUS_FAILED)

    @property
    def created_at(self) -> datetime | None:
        return _time(self._record.created_at)

    @property
    def finished_at(self) -> datetime | None:
        return _time(self._record.finished_at)


class Ledgerflow:
    """The root of the client API, as Metaflow's ``Metaflow()``: every flow.

    ``for flow in Ledgerflow(): ...`` and ``Ledgerflow().flows``."""

    def __repr__(self) -> str:
        return "Ledgerflow()"

    @property
    def flows(self) -> list[Flow]:
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        metadata, _ = _clients()
        request = query_service_pb2.ListFlowsRequest()
        while True:
            response = metadata.list_flows(request)
            for record in response.flows:
                yield Flow._from_record(record)
            if not response.page.next_page_token:
                return
            request.page.page_token = response.page.next_page_token


class Flow:
    """A flow, and its runs in the current namespace."""

    def __init__(self, name: str, *, _record: Any = None) -> None:
        if _record is None:
            metadata, _ = _clients()
            try:
                _record = metadata.get_flow(query_service_pb2.GetFlowRequest(flow_name=name)).flow
            except LedgerflowNotFound as error:
                raise _not_found(error) from None
        self._record = _record
        self.id = self.pathspec = name

    @classmethod
    def _from_record(cls, record: records_pb2.Flow) -> Flow:
        return cls(record.flow_name, _record=record)

    def __repr__(self) -> str:
        return f"Flow('{self.id}')"

    parent = None

    @property
    def path_components(self) -> list[str]:
        return [self.id]

    @property
    def created_at(self) -> datetime | None:
        return _time(self._record.created_at)

    @property
    def finished_at(self) -> datetime | None:
        """When the latest run (in the current namespace) finished; None while it runs."""
        latest = self.latest_run
        return latest.finished_at if latest is not None else None

    @property
    def tags(self) -> frozenset[str]:
        """A flow has no tags of its own (its runs do), as in Metaflow."""
        return frozenset()

    user_tags = system_tags = tags

    def _runs(
        self, tags: list[str], statuses: list[Any], page_size: int, limit: int | None = None
    ) -> Iterator[Run]:
        metadata, _ = _clients()
        ns = get_namespace()
        request = query_service_pb2.ListRunsRequest(
            flow_name=self.id, tags=[*([ns] if ns else []), *tags], statuses=statuses
        )
        request.page.page_size = page_size
        yielded = 0
        while True:
            response = metadata.list_runs(request)
            for record in response.runs:
                yield Run._from_record(record)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if not response.page.next_page_token:
                return
            request.page.page_token = response.page.next_page_token

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs in the current namespace carrying all `tags`, newest first."""
        return self._runs(list(tags), [], 100)

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}")

    @property
    def latest_run(self) -> Run | None:
        return next(self._runs([], [], 1, limit=1), None)

    @property
    def latest_successful_run(self) -> Run | None:
        return next(self._runs([], [common_pb2.STATUS_SUCCEEDED], 1, limit=1), None)


class Run(_Outcome):
    """One run of a flow."""

    def __init__(
        self, pathspec: str, *, _record: Any = None, _namespace_check: bool = True
    ) -> None:
        """`_namespace_check=False` (as in Metaflow) reads a run named outright, in
        whatever namespace it is: `current.trigger.run` is another deployment's run."""
        flow, run_id = _split(pathspec, 2, "run")
        if _record is None:
            metadata, _ = _clients()
            try:
                _record = metadata.run(flow, run_id)
            except LedgerflowNotFound as error:
                raise _not_found(error) from None
            ns = get_namespace() if _namespace_check else None
            if ns and ns not in _record.tags and ns not in _record.system_tags:
                raise LedgerflowNamespaceMismatch(
                    f"run {pathspec} is not in namespace {ns!r}: call namespace(None) to see "
                    "every namespace"
                )
        self._record = _record
        self.id = _record.run_id
        self.pathspec = _record.pathspec
        self.flow_name = _record.flow_name

    @classmethod
    def _from_record(cls, record: records_pb2.Run) -> Run:
        return cls(record.pathspec, _record=record)

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"

    @property
    def parent(self) -> Flow:
        return Flow(self.flow_name)

    @property
    def path_components(self) -> list[str]:
        return [self.flow_name, self.id]

    @property
    def code(self) -> CodePackage | None:
        """The run's code package (``.path``, ``.info``, ``.flowspec``, ``.tarball``),
        or None when the run recorded none (``run --code-package`` records one; runs
        that leave the machine always will)."""
        key = self._record.code_package_key
        if not key:
            return None
        _, store = _clients()
        return load_package(store, key)

    def _refresh(self) -> None:
        metadata, _ = _clients()
        self._record = metadata.run(self.flow_name, self.id)

    @property
    def queued_tasks(self) -> list[records_pb2.QueuedTask]:
        """A remote run's tasks that wait for an executor, are leased or run, oldest
        first; each says in ``waiting_reason`` why it waits when no executor seen
        recently can take it ("waiting: no executor offers gpu=4"). Empty for local
        runs."""
        metadata, _ = _clients()
        return list(metadata.queued_tasks(self.flow_name, self.id))

    @property
    def tags(self) -> frozenset[str]:
        return frozenset([*self._record.tags, *self._record.system_tags])

    @property
    def user_tags(self) -> frozenset[str]:
        return frozenset(self._record.tags)

    @property
    def system_tags(self) -> frozenset[str]:
        return frozenset(self._record.system_tags)

    @property
    def origin_run_id(self) -> str | None:
        return self._record.origin_run_id or None

    @property
    def origin_pathspec(self) -> str | None:
        """The run this one resumed ("Flow/run_id"), or None."""
        origin = self.origin_run_id
        return f"{self.flow_name}/{origin}" if origin else None

    @property
    def trigger(self) -> Any:
        """What fired this run of a deployment (``.deployment``, ``.kind``:
        schedule, manual or backfill, ``.scheduled_at`` in the schedule's time zone),
        as ``current.trigger`` gives it inside the run; None for a run started with
        ``run``."""
        from ledgerflow._trigger import trigger_of
        from ledgerflow.engine.facts import trigger_facts

        found = self._record.trigger if self._record.HasField("trigger") else None
        return trigger_of(trigger_facts(found))

    @property
    def user(self) -> str:
        return self._record.user

    def steps(self, *tags: str) -> Iterator[Step]:
        """The run's steps; with `tags`, none unless the run carries them all (a step's
        tags are its run's, as in Metaflow)."""
        if not set(tags) <= self.tags:
            return
        metadata, _ = _clients()
        for record in metadata.steps(self.flow_name, self.id):
            yield Step(f"{self.pathspec}/{record.step_name}", _run=self, _record=record)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step_name: str) -> Step:
        for step in self.steps():
            if step.id == step_name:
                return step
        raise LedgerflowNotFound(f"step {self.pathspec}/{step_name} does not exist")

    def __contains__(self, step_name: str) -> bool:
        return any(s.id == step_name for s in self.steps())

    @property
    def end_task(self) -> Task | None:
        try:
            return self["end"].task
        except LedgerflowNotFound:
            return None

    @property
    def data(self) -> Any:
        """The artifacts of the end step (None until the run has succeeded)."""
        task = self.end_task
        return task.data if task is not None else None

    def add_tag(self, tag: str) -> None:
        self.add_tags([tag])

    def add_tags(self, tags: Any) -> None:
        metadata, _ = _clients()
        metadata.add_run_tags(self.flow_name, self.id, list(tags))
        self._refresh()

    def remove_tag(self, tag: str) -> None:
        self.remove_tags([tag])

    def remove_tags(self, tags: Any) -> None:
        metadata, _ = _clients()
        metadata.remove_run_tags(self.flow_name, self.id, list(tags))
        self._refresh()

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        self.replace_tags([tag_to_remove], [tag_to_add])

    def replace_tags(self, tags_to_remove: Any, tags_to_add: Any) -> None:
        """Removes and adds user tags at once: one append of both events, so no reader
        sees the run with neither or both."""
        tags_to_remove, tags_to_add = list(tags_to_remove), list(tags_to_add)
        if not tags_to_remove and not tags_to_add:
            raise LedgerflowTaggingError(
                "replace_tags() needs at least one tag to remove or to add; both lists are empty"
            )
        metadata, _ = _clients()
        metadata.replace_run_tags(self.flow_name, self.id, tags_to_remove, tags_to_add)
        self._refresh()

    def history(self) -> list[events_pb2.Event]:
        """Every event of the run, oldest first, with who appended it (``actor``, and
        ``actor_authenticated`` when the service proved it) and when."""
        return list(_events_of(f"{self.flow_name}/{self.id}"))

    def as_of(self, when: datetime) -> tuple[records_pb2.Run, list[records_pb2.Task]]:
        """The run and its tasks as the ledger described them at `when` (a datetime;
        naive ones are taken as UTC)."""
        metadata, _ = _clients()
        request = audit_service_pb2.GetRunAsOfRequest(flow_name=self.flow_name, run_id=self.id)
        request.as_of.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
        tasks: list[records_pb2.Task] = []
        while True:
            response = metadata.get_run_as_of(request)
            tasks.extend(response.tasks)
            if not response.page.next_page_token:
                return response.run, tasks
            request.page.page_token = response.page.next_page_token


class Step(RunTagged):
    """One step of a run and its tasks."""

    def __init__(
        self, pathspec: str, *, _run: Run | None = None, _record: Any = None, _lazy: bool = False
    ) -> None:
        """`_lazy`: the step is known to exist (a task of it was found); its record is
        read when first needed."""
        self.flow_name, self.run_id, self.id = _split(pathspec, 3, "step")
        self.pathspec = pathspec.strip("/")
        self._run = _run
        self._step_record: Any = _record
        self._tasks: list[Task] | None = None
        self._artifacts: dict[str, dict[str, records_pb2.Artifact]] | None = None
        # Reached from one task opened by its pathspec: read that task's artifacts
        # alone, not the whole step's (which listing the step's tasks reads at once).
        self._alone = False
        if _record is None and not _lazy:
            self._record  # noqa: B018 - a step opened by its pathspec must exist now
        self._datastore: Any = None

    @property
    def _record(self) -> Any:
        if self._step_record is None:
            run = self.parent
            self._step_record = _soon_recorded(self.pathspec, lambda: run[self.id]._record)
        return self._step_record

    def _store(self) -> Any:
        """The datastore, looked up once for all the step's artifacts."""
        if self._datastore is None:
            _, self._datastore = _clients()
        return self._datastore

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"

    @property
    def parent(self) -> Run:
        if self._run is None:
            self._run = Run(f"{self.flow_name}/{self.run_id}")
        return self._run

    @property
    def path_components(self) -> list[str]:
        return [self.flow_name, self.run_id, self.id]

    def _tagged_run(self) -> Run:
        return self.parent

    @property
    def origin_pathspec(self) -> str | None:
        """This step in the run its run resumed, or None."""
        origin = self.parent.origin_pathspec
        return f"{origin}/{self.id}" if origin else None

    @property
    def created_at(self) -> datetime | None:
        return _time(self._record.created_at)

    @property
    def finished(self) -> bool:
        """Whether every task of the step has finished."""
        return all(task.finished for task in self.tasks())

    @property
    def successful(self) -> bool:
        return all(task.successful for task in self.tasks())

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task finished; None while any runs."""
        if not self.finished:
            return None
        return max((t.finished_at for t in self.tasks() if t.finished_at), default=None)

    def _artifacts_of(self, task_pathspec: str) -> dict[str, records_pb2.Artifact]:
        """A task's artifacts: read for the whole step at once (one request, however
        many tasks are read), or for each task on its own on a step reached from one
        task opened by its pathspec."""
        known = self._artifacts
        if known is not None and (task_pathspec in known or not self._alone):
            return known.get(task_pathspec, {})
        metadata, _ = _clients()
        task_id = task_pathspec.rsplit("/", 1)[1] if self._alone else ""
        found: dict[str, dict[str, records_pb2.Artifact]] = {task_pathspec: {}} if task_id else {}
        for artifact in metadata.artifacts(self.flow_name, self.run_id, self.id, task_id):
            found.setdefault(artifact.task_pathspec, {})[artifact.name] = artifact
        self._artifacts = {**(known or {}), **found}  # whole, never half-filled
        return self._artifacts.get(task_pathspec, {})

    def tasks(self, *tags: str) -> list[Task]:
        """The step's tasks; with `tags`, none unless the run carries them all."""
        if tags and not set(tags) <= self.tags:
            return []
        if self._tasks is None:
            # Its tasks listed: their artifacts are read for the whole step at once.
            self._alone, self._artifacts = False, None
            metadata, _ = _clients()
            try:
                records = metadata.tasks(self.flow_name, self.run_id, self.id)
            except LedgerflowNotFound as error:
                raise _not_found(error) from None
            if not records:
                raise LedgerflowNotFound(f"step {self.pathspec} has no tasks (yet)")
            self._tasks = [Task(r.pathspec, _record=r, _step=self) for r in records]
        return self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    def __getitem__(self, task_id: str) -> Task:
        for task in self.tasks():
            if task.id == task_id:
                return task
        raise LedgerflowNotFound(f"task {self.pathspec}/{task_id} does not exist")

    @property
    def task(self) -> Task:
        """The step's task (the first one, for a foreach)."""
        return self.tasks()[0]


class Task(_Outcome, RunTagged):
    """One task of a step: its artifacts, output and outcome."""

    def __init__(self, pathspec: str, *, _record: Any = None, _step: Step | None = None) -> None:
        flow, run_id, step, task_id = _split(pathspec, 4, "task")
        if _step is None and _record is None:  # looked up afresh until found
            _step, _record = _soon_recorded(
                pathspec.strip("/"), lambda: _step_and_task(f"{flow}/{run_id}/{step}", task_id)
            )
        if _step is None:
            _step = Step(f"{flow}/{run_id}/{step}")
        if _record is None:
            _record = _step[task_id]._record
        self._record: Any = _record
        self._step = _step
        self.id = task_id
        self.pathspec = _record.pathspec
        self._values: dict[str, DataArtifact] = {}

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"

    @property
    def parent(self) -> Step:
        return self._step

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def code(self) -> CodePackage | None:
        """The code package the task ran (its run's, see Run.code)."""
        return Run(f"{self._step.flow_name}/{self._step.run_id}").code

    def _records(self) -> dict[str, records_pb2.Artifact]:
        return {
            k: v
            for k, v in self._step._artifacts_of(self.pathspec).items()
            if not k.startswith("_")
        }

    def __getitem__(self, name: str) -> DataArtifact:
        if name not in self._values:
            records = self._records()
            if name not in records:
                raise KeyError(f"task {self.pathspec} has no artifact {name!r}")
            self._values[name] = DataArtifact(records[name], _store=self._step._store(),
                                              _task=self)  # fmt: skip
        return self._values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._records()

    def __iter__(self) -> Iterator[DataArtifact]:
        return (self[name] for name in self._records())

    @property
    def data(self) -> _Data:
        return _Data(self)

    @property
    def artifacts(self) -> Artifacts:
        """The task's artifacts: ``task.artifacts.x`` (a DataArtifact), iteration,
        ``'x' in task.artifacts``."""
        return Artifacts(self)

    @property
    def index(self) -> int | None:
        stack = self._record.foreach_stack
        return stack[-1].index if stack else None

    @property
    def retry_count(self) -> int:
        return max(0, len(self._record.attempts) - 1)

    @property
    def origin_pathspec(self) -> str | None:
        return self._record.origin_pathspec or None

    def _tagged_run(self) -> Run:
        return self._step.parent

    @property
    def parent_tasks(self) -> list[Task]:
        """The tasks whose artifacts this one started from (a join's: one per branch or
        item; start's: none), one listing a step whatever their number."""
        return _tasks_at(self._step.parent, list(self._record.input_pathspecs))

    @property
    def child_tasks(self) -> list[Task]:
        """The tasks that started from this one (the next step's, or each item's)."""
        metadata, _ = _clients()
        request = query_service_pb2.GetRunRequest(
            flow_name=self._step.flow_name, run_id=self._step.run_id, include_graph=True
        )
        graph = metadata.get_run(request).graph
        following = {n for s in graph.steps if s.name == self._step.id for n in s.next_steps}
        children = []
        for step in self._step.parent.steps():
            if step.id in following:
                children += [t for t in step if self.pathspec in t._record.input_pathspecs]
        return children

    @property
    def metadata(self) -> list[Metadata]:
        """What the ledger knows of the task besides its artifacts, as Metaflow's
        metadata entries (name, value, created_at, type, task): each attempt
        (``attempt``) and how it ended (``attempt_ok``), where it was cloned from
        (``origin-pathspec``), its foreach position (``foreach-indices``)."""
        entries = []
        for attempt in self._record.attempts:
            started = _time(attempt.started_at)
            entries.append(Metadata("attempt", str(attempt.attempt), started, "attempt",
                                    self.pathspec))  # fmt: skip
            if attempt.status in (common_pb2.STATUS_SUCCEEDED, common_pb2.STATUS_FAILED):
                done = attempt.status == common_pb2.STATUS_SUCCEEDED
                entries.append(Metadata("attempt_ok", str(done), _time(attempt.finished_at),
                                        "internal_attempt_status", self.pathspec))  # fmt: skip
        created = _time(self._record.created_at)
        if self._record.origin_pathspec:
            entries.append(Metadata("origin-pathspec", self._record.origin_pathspec, created,
                                    "origin-pathspec", self.pathspec))  # fmt: skip
        if self._record.foreach_stack:
            indices = ",".join(str(frame.index) for frame in self._record.foreach_stack)
            entries.append(Metadata("foreach-indices", indices, created, "foreach-indices",
                                    self.pathspec))  # fmt: skip
        return entries

    @property
    def metadata_dict(self) -> dict[str, str]:
        """The metadata as name -> value (the latest entry of each name)."""
        return {entry.name: entry.value for entry in self.metadata}

    def loglines(
        self, stream: str = "stdout", as_unicode: bool = True
    ) -> Iterator[tuple[datetime | None, str | bytes]]:
        """The latest attempt's `stream` (stdout or stderr) line by line, as Metaflow's
        (timestamp, line) pairs; the timestamp is None (a log is kept whole, not by line)."""
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
        for line in self._log(stream).splitlines():
            yield None, line if as_unicode else line.encode()

    def _log(self, which: str) -> str:
        attempts = self._record.attempts
        key = getattr(attempts[-1], f"{which}_key") if attempts else ""
        if not key:
            return ""
        _, store = _clients()
        return store.load(key, "raw").decode(errors="replace")

    @property
    def stdout(self) -> str:
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        return self._log("stderr")

    @property
    def exception(self) -> CaughtException | None:
        """The error of the latest failed attempt, or None."""
        for attempt in reversed(self._record.attempts):
            if attempt.status == common_pb2.STATUS_FAILED:
                return CaughtException(attempt.error_type, attempt.error_message, attempt.traceback)
        return None


def _tasks_at(run: Run, pathspecs: list[str]) -> list[Task]:
    """The tasks of `run` at `pathspecs`, in that order: each step's listed once."""
    by_step: dict[str, dict[str, Task]] = {}
    for path in pathspecs:
        step = path.rsplit("/", 1)[0]
        if step not in by_step:
            found = Step(step, _run=run, _lazy=True)
            by_step[step] = {t.pathspec: t for t in found.tasks()}
    return [by_step[p.rsplit("/", 1)[0]][p] for p in pathspecs]


def _step_and_task(step_pathspec: str, task_id: str) -> tuple[Step, Any]:
    """One try at a task opened by its pathspec (the caller waits; the Step here must
    not): its run (for the namespace) and its own record, not its whole step's."""
    flow, run_id, step_name = step_pathspec.split("/")
    run = Run(f"{flow}/{run_id}")
    metadata, _ = _clients()
    request = query_service_pb2.GetTaskRequest(
        flow_name=flow, run_id=run_id, step_name=step_name, task_id=task_id
    )
    try:
        record = metadata.get_task(request).task
    except LedgerflowNotFound as error:
        raise _not_found(error) from None
    except RpcError as error:  # a step or task name no task can have: none is there
        if error.code != "INVALID_ARGUMENT":
            raise
        raise LedgerflowNotFound(f"task {step_pathspec}/{task_id} does not exist") from None
    step = Step(step_pathspec, _run=run, _lazy=True)
    step._alone = True
    return step, record


def _events_of(run_pathspec: str, **filters: Any) -> Iterator[events_pb2.Event]:
    """The events of a run (or of the whole ledger, for an empty pathspec) matching
    the ListEvents `filters`, oldest first, page after page."""
    metadata, _ = _clients()
    request = audit_service_pb2.ListEventsRequest(run_pathspec=run_pathspec, **filters)
    while True:
        response = metadata.list_events(request)
        yield from response.events
        if not response.page.next_page_token:
            return
        request.page.page_token = response.page.next_page_token
