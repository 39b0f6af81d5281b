"""Graph checks: each mistake is reported with the step and the fix."""

from __future__ import annotations

import pytest
from ledgerflow import FlowSpec, resources, retry, step, timeout
from ledgerflow._graph import FlowGraph, InvalidGraph


class NoEnd(FlowSpec):
    @step
    def start(self):
        self.next(self.start2)

    @step
    def start2(self):
        pass


class Unreachable(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachWithoutJoin(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinWithoutSplit(FlowSpec):
    @step
    def start(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class MergeWithoutJoin(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.c)

    @step
    def b(self):
        self.next(self.c)

    @step
    def c(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NextTwice(FlowSpec):
    @step
    def start(self):
        if self:
            self.next(self.end)
        self.next(self.end)

    @step
    def end(self):
        pass


class NextNever(FlowSpec):
    @step
    def start(self):
        pass

    @step
    def end(self):
        pass


class UnknownTarget(FlowSpec):
    @step
    def start(self):
        self.next(self.missing)

    @step
    def end(self):
        pass


class Nested(FlowSpec):
    @step
    def start(self):
        self.rows = [[1]]
        self.next(self.outer, foreach="rows")

    @step
    def outer(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.both)

    @step
    def right(self):
        self.next(self.both)

    @step
    def both(self, inputs):
        self.next(self.rejoin)

    @step
    def rejoin(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    "flow, message",
    [
        (NoEnd, "has no 'end' step"),
        (Unreachable, "orphan can never run"),
        (ForeachWithoutJoin, "'start' splits but is never joined"),
        (JoinWithoutSplit, "no branch or foreach before it needs joining"),
        (MergeWithoutJoin, "make it a join, def c(self, inputs)"),
        (NextTwice, "calls self.next() 2 times"),
        (NextNever, "never calls self.next()"),
        (UnknownTarget, "self.missing, which is not a @step"),
    ],
)
def test_invalid_graphs_name_the_step_and_the_fix(flow: type, message: str) -> None:
    with pytest.raises(InvalidGraph) as caught:
        FlowGraph(flow)
    assert message in str(caught.value)


def test_a_valid_nested_graph() -> None:
    graph = FlowGraph(Nested)
    assert graph["outer"].kind == "split"
    assert graph["start"].kind == "foreach"
    assert graph["both"].split_parents == ["start"]
    assert graph["rejoin"].split_parents == []
    assert graph.downstream_of("left") == {"left", "both", "rejoin", "end"}


@pytest.mark.parametrize(
    "decorate, message",
    [
        (lambda: retry(times="two"), "@retry: times must be a whole number, got 'two'"),
        (lambda: retry(times=1.5), "@retry: times must be a whole number, got 1.5"),
        (lambda: retry(minutes_between_retries="1"), "minutes_between_retries must be a number"),
        (lambda: resources(cpu="4"), "@resources: cpu must be a number, got '4'"),
        (lambda: resources(memory=1.5), "@resources: memory must be a whole number"),
        (lambda: resources(gpu=True), "@resources: gpu must be a whole number, got True"),
        (lambda: timeout(minutes="5"), "@timeout: minutes must be a number, got '5'"),
        (lambda: resources(cpu=0), "@resources: cpu and memory must be positive"),
    ],
)
def test_decorator_arguments_of_the_wrong_kind_are_named(decorate, message: str) -> None:
    """A decorator's argument (often from a config) of the wrong kind is refused with
    the decorator and the argument named, not a comparison's TypeError."""
    with pytest.raises(ValueError) as refused:
        decorate()
    assert message in str(refused.value)
