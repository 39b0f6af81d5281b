"""A run's graph (the ``FlowGraph`` message of its RunStarted): checked once when the
run starts; for a submitted run, then read by the fold and the process manager through
the run rules of ``ledgerflow.engine`` (what follows a task, which tasks a join waits
for)."""

from __future__ import annotations

import functools
import math

from ledgerflow.engine import RunGraph, UnknownStep
from ledgerflow.engine.graph import MAX_FOREACH_SPLITS, structure_problem
from ledgerflow.v1 import records_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import MAX_QUEUE_NAME_LENGTH, check_identifier
from ledgerflow_service.validation import check_int64, check_text

K = records_pb2.StepKind
MAX_STEPS = 1000
MAX_CLONES = 1_000_000


@functools.lru_cache(maxsize=256)
def parse(blob: bytes) -> records_pb2.FlowGraph:
    """The graph stored with an orchestrated run (cached: every event of the run reads
    it; callers must not change the message)."""
    return records_pb2.FlowGraph.FromString(blob)


@functools.lru_cache(maxsize=256)
def rules(blob: bytes) -> RunGraph:
    """The run rules over an orchestrated run's stored graph (cached, like parse)."""
    return RunGraph(parse(blob))


def step(graph: RunGraph, name: str) -> records_pb2.StepSpec:
    try:
        return graph.step(name)
    except UnknownStep as error:
        raise InvalidArgument(str(error)) from None


def check(graph: records_pb2.FlowGraph, field: str = "graph", *, orchestrated: bool = True) -> None:
    """Refuses a graph the process manager could not run to its end (`field` names
    it in the messages: graph or declared_graph). A graph the service `orchestrated`
    must also be one a run follows to its end once (no cycle, every split closed: the
    engine's structure_problem); a local run's declared graph is only drawn."""
    name = field if "." in field else f"run_started.{field}"
    if not graph.steps or len(graph.steps) > MAX_STEPS:
        raise InvalidArgument(f"{name} needs 1 to {MAX_STEPS} steps")
    names = [check_identifier("graph step name", s.name) for s in graph.steps]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{name} names a step twice")
    if "start" not in names or "end" not in names:
        raise InvalidArgument(f"{name} needs a 'start' and an 'end' step")
    for spec in graph.steps:
        where = f"{name} step {spec.name!r}"
        if spec.kind == K.STEP_KIND_UNSPECIFIED:
            raise InvalidArgument(f"{where} has no kind")
        for target in [*spec.next_steps, *spec.in_steps, *([spec.closes] if spec.closes else [])]:
            if target not in names:
                raise InvalidArgument(f"{where} names {target!r}, which is not a step")
        if (spec.kind == K.STEP_KIND_END) != (not spec.next_steps):
            raise InvalidArgument(f"{where}: only the end step has no next steps")
        if spec.kind == K.STEP_KIND_FOREACH and len(spec.next_steps) != 1:
            raise InvalidArgument(f"{where}: a foreach goes to exactly one step")
        if spec.kind == K.STEP_KIND_SWITCH:
            _check_switch(where, spec)
        elif spec.condition or spec.switch_cases:
            raise InvalidArgument(f"{where}: only a switch step has a condition and cases")
        if spec.kind == K.STEP_KIND_JOIN and (not spec.in_steps or not spec.closes):
            raise InvalidArgument(f"{where}: a join names its in_steps and the step it closes")
        resources = spec.resources
        for setting, value, most in (
            ("resources.cpu", resources.cpu, 1e6),
            ("timeout_seconds", spec.timeout_seconds, 1e9),
            ("minutes_between_retries", spec.minutes_between_retries, 1e6),
        ):
            if not (math.isfinite(value) and 0 <= value <= most):
                raise InvalidArgument(f"{where}: {setting} must be a number from 0 to {most:g}")
        check_int64(f"{where}: resources.memory_mb", resources.memory_mb)
        if spec.retries > 1000:
            raise InvalidArgument(f"{where}: at most 1000 retries")
        if spec.max_num_splits > MAX_FOREACH_SPLITS:
            raise InvalidArgument(f"{where}: max_num_splits is at most {MAX_FOREACH_SPLITS:,}")
        for text in (spec.catch_var, spec.queue, spec.image):
            check_text(f"{where} settings", text)
        if len(spec.queue) > MAX_QUEUE_NAME_LENGTH:
            raise InvalidArgument(f"{where}: a queue name is at most {MAX_QUEUE_NAME_LENGTH} "
                                  "characters")  # fmt: skip
    _check_gangs(name, graph)
    problem = structure_problem(graph) if orchestrated else None
    if problem is not None:
        raise InvalidArgument(f"{name}: {problem}")


def _check_gangs(name: str, graph: records_pb2.FlowGraph) -> None:
    """A @parallel step is entered only from foreach steps (num_parallel) and goes to
    a join: its tasks are the nodes of one foreach frame."""
    steps = {spec.name: spec for spec in graph.steps}
    for spec in graph.steps:
        if not spec.parallel:
            continue
        feeders = [s for s in graph.steps if spec.name in s.next_steps]
        if not feeders or any(s.kind != K.STEP_KIND_FOREACH for s in feeders):
            raise InvalidArgument(f"{name} step {spec.name!r}: a parallel step is entered "
                                  "only from foreach steps (num_parallel)")  # fmt: skip
        if len(spec.next_steps) != 1 or steps[spec.next_steps[0]].kind != K.STEP_KIND_JOIN:
            raise InvalidArgument(f"{name} step {spec.name!r}: a parallel step goes to a join")


def _check_switch(where: str, spec: records_pb2.StepSpec) -> None:
    """A switch names the artifact that picks its case, and each case one of its
    next steps (each of which some case names)."""
    check_identifier(f"{where}: condition", spec.condition)
    if not spec.switch_cases:
        raise InvalidArgument(f"{where}: a switch needs at least one case")
    values = [case.value for case in spec.switch_cases]
    if len(set(values)) != len(values):
        raise InvalidArgument(f"{where}: a switch names a case value twice")
    for value in values:
        check_text(f"{where}: switch case value", value)
    if {case.step for case in spec.switch_cases} != set(spec.next_steps):
        raise InvalidArgument(f"{where}: a switch's cases go to exactly its next_steps")


@functools.lru_cache(maxsize=256)
def parse_resume(blob: bytes) -> dict[tuple[str, tuple[int, ...]], records_pb2.ClonedTask]:
    """A remote resume's clones by (step, foreach indices) (cached; do not change)."""
    plan = records_pb2.ResumePlan.FromString(blob)
    return {(c.step_name, tuple(c.foreach_indices)): c for c in plan.clones}


def check_resume(graph: records_pb2.FlowGraph, plan: records_pb2.ResumePlan) -> None:
    steps = {s.name: s for s in graph.steps}
    if len(plan.clones) > MAX_CLONES:
        raise InvalidArgument(f"run_started.resume clones at most {MAX_CLONES} tasks")
    check_int64("run_started.resume.first_task_id", plan.first_task_id)
    for clone in plan.clones:
        if clone.step_name not in steps:
            raise InvalidArgument(f"run_started.resume clones a task of {clone.step_name!r}, "
                                  "which is not a step")  # fmt: skip
        if not clone.origin_task_id:
            raise InvalidArgument("run_started.resume: a clone names no origin_task_id")
        spec = steps[clone.step_name]
        if (spec.kind == K.STEP_KIND_SWITCH) != bool(clone.switch_step) or (
            clone.switch_step and clone.switch_step not in spec.next_steps
        ):
            raise InvalidArgument(
                f"run_started.resume: the clone of {clone.step_name!r} must name one case "
                "of the switch, and only a switch's clone names one"
            )
