"""The graph a remote run submits: what the service orchestrates from and what the
executor runs with, read from the flow class and its decorators."""

from __future__ import annotations

import pytest
from ledgerflow import FlowSpec, catch, resources, retry, step, timeout
from ledgerflow._graph import FlowGraph
from ledgerflow._graph_message import graph_message
from ledgerflow.v1 import records_pb2

K = records_pb2.StepKind


class Shapes(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @resources(cpu=2, memory=512, gpu=1, image="registry.example/team/flows:1.2")
    @step
    def a(self):
        self.next(self.join)

    @retry(times=2, minutes_between_retries=0.5)
    @catch(var="problem")
    @timeout(seconds=90)
    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.split)

    @step
    def split(self):
        self.items = [1, 2]
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_the_graph_carries_kinds_joins_and_decorators() -> None:
    message = graph_message(Shapes, FlowGraph(Shapes))
    steps = {s.name: s for s in message.steps}
    assert [s.name for s in message.steps] == [
        "start", "a", "b", "join", "split", "fan", "gather", "end",
    ]  # fmt: skip
    assert steps["start"].kind == K.STEP_KIND_SPLIT and list(steps["start"].next_steps) == [
        "a", "b",
    ]  # fmt: skip
    assert steps["join"].kind == K.STEP_KIND_JOIN
    assert (list(steps["join"].in_steps), steps["join"].closes) == (["a", "b"], "start")
    assert steps["split"].kind == K.STEP_KIND_FOREACH
    assert (list(steps["gather"].in_steps), steps["gather"].closes) == (["fan"], "split")
    assert steps["end"].kind == K.STEP_KIND_END and not steps["end"].next_steps
    a = steps["a"]
    assert (a.resources.cpu, a.resources.memory_mb, a.resources.gpu) == (2, 512, 1)
    assert a.image == "registry.example/team/flows:1.2"
    b = steps["b"]
    assert (b.retries, b.minutes_between_retries, b.timeout_seconds) == (2, 0.5, 90)
    assert (b.catch, b.catch_var) == (True, "problem")
    assert steps["start"].resources.memory_mb == 4096  # Metaflow's default


def test_an_image_name_is_checked() -> None:
    with pytest.raises(ValueError, match="not an image name"):
        resources(image="two words")
