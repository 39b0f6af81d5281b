"""@parallel and num_parallel: the graph checks, a local gang whose nodes must run at
once (they meet on current.parallel.main_ip), and the unbounded foreach it is. The same
flow on an executor: tests/executor/test_same_ledger.py (the service leases a gang's
nodes together: tests/service/test_orchestration.py)."""

from __future__ import annotations

import pytest
from ledgerflow import Flow, FlowSpec, current, parallel, step
from ledgerflow._graph import FlowGraph, InvalidGraph


class NotParallel(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoNumParallel(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @parallel
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NotJoined(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @parallel
    @step
    def train(self):
        self.next(self.after)

    @step
    def after(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class Both(FlowSpec):
    @step
    def start(self):
        self.items = [1]
        self.next(self.train, foreach="items", num_parallel=2)

    @parallel
    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    "flow, message",
    [
        (NotParallel, "so 'train' must be a @parallel step"),
        (NoNumParallel, "start it with self.next(self.train, num_parallel=N)"),
        (NotJoined, "must go to a join of its gang"),
        (Both, "foreach= and num_parallel= do not go together"),
    ],
)
def test_gang_mistakes_name_the_step_and_the_fix(flow: type, message: str) -> None:
    with pytest.raises(InvalidGraph) as caught:
        FlowGraph(flow)
    assert message in str(caught.value)


def test_outside_a_gang_current_parallel_is_a_gang_of_one() -> None:
    # As in Metaflow, so that code shared with a @parallel step runs anywhere.
    assert current.parallel == ("127.0.0.1", 1, 0) and current.is_parallel is False


@pytest.mark.slow
def test_a_gangs_nodes_run_together_and_reach_the_main_node(flow_env) -> None:
    # One worker at a time, and a foreach limit of 2: a gang still starts its three
    # nodes together (they wait for each other), and num_parallel is an unbounded
    # foreach, as in Metaflow (--max-num-splits does not apply).
    result = flow_env.run("parallel_flow", "run", "--max-workers", "1", "--max-num-splits", "2")
    assert "nodes [0, 1, 2] node 0 heard [1, 2]" in result.stdout
    run = Flow("ParallelFlow").latest_run
    nodes = sorted(run["train"], key=lambda task: task["node"].data)
    assert [(t["node"].data, t["num_nodes"].data) for t in nodes] == [(0, 3), (1, 3), (2, 3)]
    assert {t["main_ip"].data for t in nodes} == {"127.0.0.1"}
    assert all(t["is_parallel"].data for t in nodes)


@pytest.mark.slow
def test_a_gang_inside_a_foreach_is_one_gang_per_item(flow_env) -> None:
    result = flow_env.run("gangs_in_foreach_flow", "run", "--max-workers", "1")
    nodes = "[('small', 0, 2), ('small', 1, 2), ('large', 0, 2), ('large', 1, 2)]"
    assert nodes in result.stdout


@pytest.mark.slow
def test_a_failed_node_stops_its_gang_and_fails_the_run(flow_env) -> None:
    """Node 0 would wait a minute for node 1's hello, then fail on its own: the runtime
    stops it as soon as node 1 fails, saying why."""
    result = flow_env.run("parallel_flow", "run", "--nodes", "2", "--fail-node", "1",
                          check=False)  # fmt: skip
    assert result.returncode == 1 and "node 1 fails, as asked" in result.stdout
    run = Flow("ParallelFlow").latest_run
    assert not run.successful
    errors = sorted((task.exception.type, task.exception.message) for task in run["train"])
    assert errors[0] == ("Cancelled", "node train/3 of its @parallel gang failed, so the "
                         "gang cannot go on")  # fmt: skip
    assert errors[1] == ("RuntimeError", "node 1 fails, as asked")
