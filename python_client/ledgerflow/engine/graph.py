"""What follows a finished task, read from the run's ``FlowGraph`` message.

A linear or split step starts each of its next steps; a foreach step starts its next
step once per item, each under one more foreach frame; a step whose next step is a join
is one input of a *join instance* (the join of one split, or of one foreach inside the
frames that stay open). The join starts once all its inputs are done, with its inputs
in the order of the join's ``in_steps`` (a split) or of the foreach items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ledgerflow.v1 import records_pb2

K = records_pb2.StepKind
Frame = records_pb2.ForeachFrame
T = TypeVar("T")


# The most items one foreach may split into, whatever a flow asks: the service queues
# them all in the transaction of the foreach task's success, and refuses more.
MAX_FOREACH_SPLITS = 10_000
# `run --max-num-splits`'s default, as Metaflow's.
DEFAULT_MAX_NUM_SPLITS = 100


def splits_problem(step_name: str, num_splits: int, limit: int) -> str | None:
    """Why a foreach task may not split into `num_splits` items under its step's
    `limit` (0: the service's cap alone), in Metaflow's words; None when it may."""
    ceiling = min(limit, MAX_FOREACH_SPLITS) if limit else MAX_FOREACH_SPLITS
    if num_splits <= ceiling:
        return None
    how = (
        "You can raise the maximum with the --max-num-splits option"
        if ceiling < MAX_FOREACH_SPLITS
        else f"The service takes at most {MAX_FOREACH_SPLITS:,}: split the work in chunks"
    )
    return (
        f"Foreach in step *{step_name}* yielded {num_splits} child steps which is more than "
        f"the current maximum of {ceiling} children. {how}."
    )


def gang_key(step_name: str, stack: Sequence[Frame]) -> tuple[str, ...]:
    """Which @parallel gang a task of `step_name` under foreach frames `stack` is a node
    of: the nodes of one gang share the frames around it (the last frame, which
    num_parallel made, is the node's place in it). The service finds a gang by the join
    its nodes feed, which is the same thing (RunGraph.join_key)."""
    return (step_name, *(f"{f.step_name}:{f.index}" for f in stack[:-1]))


def gang_failed_reason(failed_node: str) -> str:
    """Why a gang's running nodes are stopped when one of them failed for good (they
    would wait for it for ever): the local runtime and the service say it alike."""
    return f"node {failed_node} of its @parallel gang failed, so the gang cannot go on"


class UnknownStep(KeyError):
    """The graph has no step of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class NextTask:
    """A task to start now, with the finished task as its one input."""

    step: str
    foreach_stack: tuple[Frame, ...]
    reason: str


@dataclass(frozen=True)
class JoinArrival:
    """The finished task is one input of the join instance `key`, which starts once
    `expected` inputs have arrived, under `foreach_stack`."""

    join: str
    key: str
    position: int  # where this input goes among the join's inputs
    expected: int
    foreach_stack: tuple[Frame, ...]


class RunGraph:
    """A run's graph with its steps by name, and the successor rules over it."""

    def __init__(self, message: records_pb2.FlowGraph) -> None:
        self.message = message
        self._steps = {spec.name: spec for spec in message.steps}
        self._keys: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}

    def step(self, name: str) -> records_pb2.StepSpec:
        try:
            return self._steps[name]
        except KeyError:
            raise UnknownStep(f"step {name!r} is not in the run's graph") from None

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def successors(
        self,
        step_name: str,
        stack: Sequence[Frame],
        num_splits: int,
        label: str,
        switch_step: str = "",
    ) -> list[NextTask | JoinArrival]:
        """What follows a task of `step_name` that succeeded (or was cloned) under
        foreach frames `stack`; a foreach step split into `num_splits` items, a switch
        chose `switch_step`. `label` names the finished task in the reasons (e.g.
        ``start/1``)."""
        spec = self.step(step_name)
        reason = f"after {label}"
        if spec.kind == K.STEP_KIND_SWITCH:
            if switch_step not in spec.next_steps:
                raise UnknownStep(
                    f"switch {step_name!r} chose {switch_step!r}, which is none of its cases"
                )
            targets: Sequence[str] = [switch_step]
            reason = f"case {switch_step} {reason}"
        else:
            targets = spec.next_steps
        if spec.kind == K.STEP_KIND_FOREACH:
            target = spec.next_steps[0]
            return [
                NextTask(
                    target,
                    (*stack, Frame(step_name=step_name, index=index, num_splits=num_splits)),
                    f"item {index} of {num_splits} {reason}",
                )
                for index in range(num_splits)
            ]
        found: list[NextTask | JoinArrival] = []
        for target in targets:
            if self.step(target).kind == K.STEP_KIND_JOIN:
                found.append(self.arrival(target, step_name, stack))
            else:
                found.append(NextTask(target, tuple(stack), reason))
        return found

    def arrival(self, join_name: str, step_name: str, stack: Sequence[Frame]) -> JoinArrival:
        """The join instance a task of `step_name` under `stack` feeds, and its place."""
        join = self.step(join_name)
        if self.step(join.closes).kind == K.STEP_KIND_FOREACH:
            last = stack[-1]
            after, position, expected = tuple(stack[:-1]), last.index, last.num_splits
        else:
            order = list(join.in_steps)
            after, expected = tuple(stack), len(order)
            position = order.index(step_name) if step_name in order else len(order)
        return JoinArrival(join_name, self._join_key(join_name, after), position, expected, after)

    def _join_key(self, join_name: str, after: tuple[Frame, ...]) -> str:
        """The key of a join instance (the same for all its inputs: made once)."""
        frames = tuple((f.step_name, f.index, f.num_splits) for f in after)
        key = self._keys.get((join_name, frames))
        if key is None:
            key = f"{join_name}|{json.dumps([list(f) for f in frames])}"
            self._keys[(join_name, frames)] = key
        return key

    def join_key(self, step_name: str, stack: Sequence[Frame]) -> str:
        """Which join instance a task of `step_name` feeds ("" when its next step is
        not a join): tasks with the same key are the inputs of one join task."""
        for target in self.step(step_name).next_steps:
            if self.step(target).kind == K.STEP_KIND_JOIN:
                return self.arrival(target, step_name, stack).key
        return ""


@dataclass
class JoinBook(Generic[T]):
    """The inputs that arrived at join instances not complete yet (a local run keeps
    them in memory; the service reads them from its queue rows by join key)."""

    _waiting: dict[str, list[tuple[int, T]]] = field(default_factory=dict)

    def arrive(self, arrival: JoinArrival, item: T) -> list[T] | None:
        """Notes `item` as one input; returns all of them in order once complete."""
        arrived = self._waiting.setdefault(arrival.key, [])
        arrived.append((arrival.position, item))
        if len(arrived) < arrival.expected:
            return None
        del self._waiting[arrival.key]
        return in_join_order(arrived)


def in_join_order(arrived: Sequence[tuple[int, T]]) -> list[T]:
    """A join's inputs by their positions (see :meth:`RunGraph.arrival`)."""
    return [item for _, item in sorted(arrived, key=lambda pair: pair[0])]


def structure_problem(message: records_pb2.FlowGraph) -> str | None:
    """Why no run could follow the graph to its end once (None when it can): a cycle
    (it would run for ever), or a split or foreach whose branches reach ``end``
    without the join that closes it (``end`` would run once per branch). The SDK
    builds no such graph from a flow's source; the service refuses one a client sends
    (``run --remote``, ``deploy``). Expects the step names to be checked already."""
    steps = {spec.name: spec for spec in message.steps}
    if "start" not in steps:
        return "the graph has no 'start' step"
    # A cycle: a step reached again while it is still on the walk's path.
    on_path: set[str] = set()
    done: set[str] = set()

    def cycle_through(name: str) -> str | None:
        if name in on_path:
            return name
        if name in done or name not in steps:
            return None
        on_path.add(name)
        for target in steps[name].next_steps:
            found = cycle_through(target)
            if found is not None:
                return found
        on_path.discard(name)
        done.add(name)
        return None

    looped = cycle_through("start")
    if looped is not None:
        return f"the graph has a cycle through step {looped!r}: a run would never end"
    for spec in message.steps:
        if spec.kind not in (K.STEP_KIND_SPLIT, K.STEP_KIND_FOREACH):
            continue
        # Walk the split's branches up to the join that closes it: none may reach end.
        seen: set[str] = set()
        waiting = list(spec.next_steps)
        while waiting:
            name = waiting.pop()
            target = steps.get(name)
            if name in seen or target is None:
                continue
            seen.add(name)
            if target.kind == K.STEP_KIND_JOIN and target.closes == spec.name:
                continue
            if target.kind == K.STEP_KIND_END:
                return (
                    f"the branches of step {spec.name!r} reach 'end' without the join that "
                    "closes them: end would run once per branch"
                )
            waiting.extend(target.next_steps)
    return None
