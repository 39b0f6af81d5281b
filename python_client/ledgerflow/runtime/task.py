"""One task attempt: run the step, store its artifacts, report a :class:`TaskOutcome`.

An attempt runs in a process of its own, started by a launcher (see runtime/launcher.py): a
fork of the runtime (:func:`child_main`; it inherits the imported flow, so there is no
interpreter start and no re-import), or the entry point ``python FLOW_FILE task --spec
SPEC --result RESULT`` given a :class:`TaskRequest` as JSON. Either way the attempt
reports through a result file and never writes to the ledger: the runtime, the only
writer, records the events once the process has exited, so a crashing step cannot
leave half an event behind.
"""

from __future__ import annotations

import base64
import faulthandler
import io
import json
import keyword
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ledgerflow import _lineage
from ledgerflow._current import current
from ledgerflow._decorators import step_options
from ledgerflow._flowspec import FlowSpecBase, Inputs, InputView, Transition, _ArtifactReader
from ledgerflow._graph import FlowGraph, StepNode
from ledgerflow.datastore.content import (
    R_SERIALIZER,
    ArtifactSerializationError,
    ContentStore,
    StoredValue,
)
from ledgerflow.engine import TaskOutcome
from ledgerflow.engine.facts import parallel_facts
from ledgerflow.engine.graph import splits_problem
from ledgerflow.exceptions import CaughtException, TooManySplits
from ledgerflow.v1 import records_pb2

NUM_SPLITS_ARTIFACT = "_foreach_num_splits"
# A switch task's chosen case, kept with its artifacts so that a resume that clones the
# task knows where the run went on (as _foreach_num_splits tells a foreach's count).
SWITCH_STEP_ARTIFACT = "_switch_step"


@dataclass
class TaskInput:
    step_name: str
    pathspec: str
    artifacts: dict[str, records_pb2.Artifact]


@dataclass
class TaskSpec:
    """What the runtime asks one attempt to do."""

    step_name: str
    task_id: str
    inputs: list[TaskInput]
    foreach_stack: list[tuple[str, int, int]]
    attempt: int = 0
    # The task's failed attempts before this one: its own, and the infrastructure's
    # (see ledgerflow.engine.attempts).
    failures: int = 0
    lost: int = 0
    catch_var: str | None = None
    catch_on_failure: bool = False
    # @catch(print_exception=...): whether a caught error's traceback goes to stderr.
    catch_print: bool = True
    # Set for @catch's fallback attempt (see ledgerflow.engine.attempts): the failure
    # of the attempt before it (type, message, traceback), which it records instead of
    # running the step.
    fallback_error: dict[str, str] | None = None
    # A foreach step's most items (the graph's StepSpec.max_num_splits; 0: the cap).
    max_num_splits: int = 0


@dataclass
class TaskRequest:
    """Everything one attempt needs, in a form that crosses a process boundary: what
    the runtime hands a launcher, and what ``python FLOW_FILE task --spec`` reads."""

    spec: TaskSpec
    # current's facts: flow_name, run_id, step_name, task_id, username, tags, ...
    facts: dict[str, Any]
    # The run's parameters as its RunStarted event recorded them (JSON texts).
    parameters_json: dict[str, str]

    def to_json(self) -> str:
        spec = dict(vars(self.spec))
        spec["inputs"] = [
            {
                "step_name": i.step_name,
                "pathspec": i.pathspec,
                "artifacts": {
                    name: base64.b64encode(a.SerializeToString()).decode()
                    for name, a in i.artifacts.items()
                },
            }
            for i in self.spec.inputs
        ]
        return json.dumps({"spec": spec, "facts": self.facts, "parameters": self.parameters_json})

    @classmethod
    def from_json(cls, text: str) -> TaskRequest:
        data = json.loads(text)
        spec = dict(data["spec"])
        spec["inputs"] = [
            TaskInput(
                i["step_name"],
                i["pathspec"],
                {
                    name: records_pb2.Artifact.FromString(base64.b64decode(blob))
                    for name, blob in i["artifacts"].items()
                },
            )
            for i in spec["inputs"]
        ]
        spec["foreach_stack"] = [tuple(frame) for frame in spec["foreach_stack"]]
        return cls(TaskSpec(**spec), data["facts"], data["parameters"])


def _user_traceback(error: BaseException) -> str:
    """The traceback from the step function down, without the runner's frames, nor
    those of the flow API the step called last (self.next, merge_artifacts: its error
    says what is wrong, the step's line where); for an error in an R step, R's call
    stack."""
    r_traceback = getattr(error, "r_traceback", None)
    if r_traceback is not None:
        return r_traceback() + f"Error: {error}\n"
    frames = traceback.extract_tb(error.__traceback__)
    user = [f for f in frames if not f.filename.endswith(("ledgerflow/runtime/task.py",))]
    while len(user) > 1 and user[-1].filename.endswith("ledgerflow/_flowspec.py"):
        user.pop()
    lines = traceback.format_list(user or frames)
    lines += traceback.format_exception_only(type(error), error)
    return "Traceback (most recent call last):\n" + "".join(lines)


# The longest artifact name the ledger keeps (ledgerflow_service.names.check_identifier).
_MAX_ARTIFACT_NAME = 128


def _transition_artifacts(transition: Transition) -> dict[str, Any]:
    """The hidden artifacts that let a resume follow a cloned task as the run did."""
    if transition.num_splits:
        return {NUM_SPLITS_ARTIFACT: transition.num_splits}
    if transition.switch_step:
        return {SWITCH_STEP_ARTIFACT: transition.switch_step}
    return {}


def transition_of(
    node: StepNode, artifacts: dict[str, records_pb2.Artifact], store: Any
) -> tuple[int, str]:
    """Where a finished task of `node` let its run go on, read back from its hidden
    artifacts (a resume clones it): a foreach's item count, a switch's chosen case.
    (Later steps inherit these artifacts too: only the step's own kind is read.)"""

    def load(name: str) -> Any:
        return store.load(artifacts[name].content_key, artifacts[name].serializer)

    if node.kind == "foreach":
        return int(load(NUM_SPLITS_ARTIFACT)), ""
    if node.condition:
        return 0, str(load(SWITCH_STEP_ARTIFACT))
    return 0, ""


def _store_artifacts(
    flow: FlowSpecBase, store: ContentStore, step_name: str, extra: dict[str, Any]
) -> list[records_pb2.Artifact]:
    values, passthrough = flow._artifacts_to_store()
    values.update(extra)
    records = [record for name, record in passthrough.items() if name not in values]
    for name, value in values.items():
        if not name.isidentifier() or keyword.iskeyword(name) or len(name) > _MAX_ARTIFACT_NAME:
            # The ledger takes only these names: refused there, the task would have
            # succeeded here and its run be left without an end.
            raise ArtifactSerializationError(
                f"artifact {name[:128]!r} of step {step_name!r} has a name the ledger cannot "
                "keep: use a Python identifier (letters, digits and _, not starting with a "
                "digit, not a keyword, at most 128 characters)"
            )
        try:
            stored = store.save(value)
        except ArtifactSerializationError as error:
            raise ArtifactSerializationError(
                f"artifact {name!r} of step {step_name!r} cannot be stored: {error}. Keep "
                f"only picklable values in self.{name}, or use a local variable"
            ) from None
        records.append(_record(name, stored))
    return records


def _record(name: str, stored: StoredValue) -> records_pb2.Artifact:
    return records_pb2.Artifact(
        name=name,
        content_key=stored.key,
        size=stored.size,
        type_name=stored.type_name,
        serializer=stored.serializer,
        language="r" if stored.serializer == R_SERIALIZER else "python",
    )


@dataclass
class TaskContext:
    """What a step decorator that works in the task (a TaskHook, e.g. @card) is told
    about the attempt: the flow object once it is ready, and when the attempt began."""

    flow_class: type[FlowSpecBase]
    graph: FlowGraph
    spec: TaskSpec
    store: ContentStore
    parameters: dict[str, Any]
    facts: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    flow: FlowSpecBase | None = None


def run_attempt(
    flow_class: type[FlowSpecBase],
    graph: FlowGraph,
    spec: TaskSpec,
    store: ContentStore,
    parameters: dict[str, Any],
    facts: dict[str, Any],
) -> TaskOutcome:
    """Runs the step and stores its artifacts; never raises. The outcome carries the
    tables the step used (the versions it wrote only if it succeeded) and what the
    step's hooks (@card) record."""
    _lineage.take(succeeded=False)  # nothing noted by an earlier attempt in this process
    context = TaskContext(flow_class, graph, spec, store, parameters, facts)
    outcome = _run_step(context)
    outcome.lineage = _lineage.take(succeeded=outcome.ok and not outcome.caught)
    outcome.lineage.extend(_finish_hooks(context, outcome))
    return outcome


def _hooks(context: TaskContext) -> list[Any]:
    return step_options(getattr(context.flow_class, context.spec.step_name, None)).hooks


def _finish_hooks(context: TaskContext, outcome: TaskOutcome) -> list[Any]:
    """The events of the step's hooks; a hook that raises is reported on stderr and
    changes nothing else (a report must not fail the task)."""
    events: list[Any] = []
    for hook in _hooks(context):
        try:
            events.extend(hook.task_finished(context, outcome))
        except Exception as error:
            print(f"[ledgerflow] {type(hook).__name__}: {error!r}", file=sys.stderr)
    return events


def _run_step(context: TaskContext) -> TaskOutcome:
    flow_class, graph, spec, store = context.flow_class, context.graph, context.spec, context.store
    parameters, facts = context.parameters, context.facts
    node = graph[spec.step_name]
    # The task has a process of its own (a fork or a new interpreter): set here, the
    # step's @environment reaches only its tasks.
    os.environ.update(step_options(getattr(flow_class, spec.step_name)).environment)
    current._set(**facts)
    if node.parallel:
        current._put("parallel", parallel_facts(spec.foreach_stack, os.environ))
    flow = flow_class.__new__(flow_class)
    inherited = spec.inputs[0].artifacts if not node.is_join and spec.inputs else {}
    flow._prepare(
        store=store,
        step_name=spec.step_name,
        step_names=set(graph.nodes),
        out_funcs=node.out_funcs,
        switch_cases=node.switch_cases,
        starts_gang=node.starts_gang,
        inherited=inherited,
        foreach_stack=spec.foreach_stack,
        foreach_params={n.name: n.foreach_param for n in graph if n.foreach_param},
        parameters=parameters,
        is_join=node.is_join,
    )
    context.flow = flow
    try:
        for hook in _hooks(context):
            hook.task_pre_step(context)
        if spec.fallback_error is not None:
            raise _FailedBefore(spec.fallback_error)
        step_function = getattr(flow, spec.step_name)
        if node.is_join:
            views = [
                InputView(i.step_name, i.pathspec, _ArtifactReader(store, i.artifacts))
                for i in spec.inputs
            ]
            step_function(Inputs(views))
        else:
            step_function()
        if flow._transition is None and spec.step_name != "end":
            raise RuntimeError(
                f"step {spec.step_name!r} returned without calling "
                "self.next(): end every path with self.next(...)"
            )
        transition = flow._transition or Transition([])
        # A gang (num_parallel) is an unbounded foreach, as in Metaflow: the service's
        # cap alone applies.
        limit = spec.max_num_splits if transition.foreach else 0
        too_many = transition.num_splits and splits_problem(
            spec.step_name, transition.num_splits, limit
        )
        if too_many:
            raise TooManySplits(too_many)
        extra = _transition_artifacts(transition)
        if spec.catch_var:  # as in Metaflow: no exception, so the variable holds None
            extra[spec.catch_var] = None
        artifacts = _store_artifacts(flow, store, spec.step_name, extra)
        return TaskOutcome(
            ok=True,
            artifacts=artifacts,
            next_steps=transition.next_steps,
            num_splits=transition.num_splits,
            switch_step=transition.switch_step,
        )
    except (Exception, SystemExit) as error:  # sys.exit() in a step fails the step
        return _failed(flow, store, spec, node, error)


class _FailedBefore(Exception):
    """@catch's fallback attempt: the attempt before it failed without reporting."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error["message"])
        self.error = error


def _failed(
    flow: FlowSpecBase,
    store: ContentStore,
    spec: TaskSpec,
    node: StepNode,
    error: BaseException,
) -> TaskOutcome:
    """The outcome of a step that raised: a failure, or under @catch (its last attempt,
    or the fallback) a success that stores the error in catch_var."""
    if isinstance(error, _FailedBefore):
        caught = True
        kind, message, text = error.error["type"], error.error["message"], error.error["traceback"]
    else:
        caught = spec.catch_on_failure
        kind, message, text = type(error).__name__, str(error), _user_traceback(error)
        if not caught or spec.catch_print:
            print(text, file=sys.stderr, end="")
    failure_kind = (
        records_pb2.FAILURE_KIND_OUT_OF_MEMORY
        if isinstance(error, MemoryError)
        else records_pb2.FAILURE_KIND_EXCEPTION
    )
    failed = TaskOutcome(
        ok=False, error_type=kind, error_message=message, traceback=text, kind=failure_kind
    )
    if not caught:
        return failed
    # @catch: the step failed for good; record the error and go on (never a foreach
    # or a switch: engine/attempts.py).
    qualified = kind if isinstance(error, _FailedBefore) else _qualified_name(type(error))
    extra: dict[str, Any] = {}
    if spec.catch_var:
        extra[spec.catch_var] = CaughtException(qualified, message, text)
    flow._transition = None
    try:
        artifacts = _store_artifacts(flow, store, spec.step_name, extra)
    except ArtifactSerializationError:  # the step's own values cannot be kept
        artifacts = [_record(name, store.save(value)) for name, value in extra.items()]
    return TaskOutcome(
        ok=True,
        artifacts=artifacts,
        next_steps=list(node.out_funcs),
        caught=True,
        error_type=failed.error_type,
        error_message=failed.error_message,
        traceback=text,
    )


def _qualified_name(kind: type) -> str:
    """An exception class as Metaflow names a caught one: ``module.Name``."""
    return f"{kind.__module__}.{kind.__qualname__}"


def child_main(
    flow_class: type[FlowSpecBase],
    graph: FlowGraph,
    spec: TaskSpec,
    store: ContentStore,
    parameters: dict[str, Any],
    facts: dict[str, Any],
    result_path: str,
    stdout_path: str,
    stderr_path: str,
) -> None:
    """Entry point of the forked child: capture output, run, report, exit."""

    def attempt() -> None:
        capture_output(stdout_path, stderr_path)
        store.after_fork()
        run_attempt(flow_class, graph, spec, store, parameters, facts).write(result_path)

    run_then_exit(attempt)


def capture_output(stdout_path: str, stderr_path: str) -> None:
    """In a task process: stdin from /dev/null, stdout and stderr into these files,
    written line by line."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    # A crash in native code (a segfault) leaves Python's traceback in the task's stderr.
    faulthandler.enable(file=sys.stderr)


def run_then_exit(work: Callable[[], None]) -> NoReturn:
    """Ends a forked task process after `work`: exit 0 when it returned, 1 with the
    traceback on stderr when it raised, never running the parent's cleanups."""
    code = 1
    try:
        work()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
