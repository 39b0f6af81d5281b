"""Switches (``self.next({...}, condition='x')``): the graph checks, a run that takes
one case per switch (also inside a foreach), a condition naming no case, @catch on a
switch, and a resume that clones a switch and goes on down the case it chose."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from ledgerflow import Flow, FlowSpec, step
from ledgerflow._graph import FlowGraph, InvalidGraph
from ledgerflow._graph_message import graph_message
from ledgerflow.ui import dag
from ledgerflow.ui.model import declared_steps
from ledgerflow.v1 import records_pb2

FLOWS = Path(__file__).parent / "flows"


class NoCondition(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.a, "b": self.end})

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class CasesOfNoStep(FlowSpec):
    @step
    def start(self):
        self.next({"a": "a"}, condition="mode")

    @step
    def end(self):
        pass


class ConditionAlone(FlowSpec):
    @step
    def start(self):
        self.next(self.end, condition="mode")

    @step
    def end(self):
        pass


class Recursive(FlowSpec):
    @step
    def start(self):
        self.next(self.again)

    @step
    def again(self):
        self.next({"loop": self.again, "stop": self.end}, condition="state")

    @step
    def end(self):
        pass


class CasesIntoJoin(FlowSpec):
    @step
    def start(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next({"x": self.fast, "y": self.both}, condition="mode")

    @step
    def fast(self):
        self.next(self.both)

    @step
    def right(self):
        self.next(self.both)

    @step
    def both(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class BranchesMeetWithoutJoin(FlowSpec):
    """A split's branches (both run) may not meet at a plain step, even after a switch."""

    @step
    def start(self):
        self.next({"x": self.split, "y": self.end}, condition="mode")

    @step
    def split(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    "flow, message",
    [
        (NoCondition, "a switch needs condition="),
        (CasesOfNoStep, "a switch maps strings to steps"),
        (ConditionAlone, "condition= goes with a dict of cases"),
        (Recursive, "a switch may not go back to an earlier step or to itself"),
        (CasesIntoJoin, "cases of one switch of which only one runs"),
        (BranchesMeetWithoutJoin, "make it a join, def end(self, inputs)"),
    ],
)
def test_switch_mistakes_name_the_step_and_the_fix(flow: type, message: str) -> None:
    with pytest.raises(InvalidGraph) as caught:
        FlowGraph(flow)
    assert message in str(caught.value)


def test_the_graph_records_the_switch_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    spec_of = importlib.util.spec_from_file_location("switch_flow", FLOWS / "switch_flow.py")
    assert spec_of is not None and spec_of.loader is not None
    module = importlib.util.module_from_spec(spec_of)
    monkeypatch.setitem(sys.modules, "switch_flow", module)  # inspect finds its source
    spec_of.loader.exec_module(module)
    SwitchFlow = module.SwitchFlow
    graph = FlowGraph(SwitchFlow)
    assert graph["start"].kind == "switch"
    # prepare and start's "quick" case meet at fanout: a plain step, not a join.
    assert not graph["fanout"].is_join
    assert sorted(graph["fanout"].in_funcs) == ["prepare", "start"]
    spec = {s.name: s for s in graph_message(SwitchFlow, graph).steps}["grade"]
    assert spec.kind == records_pb2.STEP_KIND_SWITCH and spec.condition == "size"
    assert [(c.value, c.step) for c in spec.switch_cases] == [("big", "big"), ("small", "small")]
    # The web UI draws a switch's edges dotted (one case runs), labelled as a switch.
    drawn = dag.svg(declared_steps(graph_message(SwitchFlow, graph)), "/{step}")
    assert "grade (switch)" in drawn
    assert drawn.count('class="edge case"') == 4  # start's two cases, grade's two


def _steps_run(run_id: str) -> dict[str, int]:
    run = Flow("SwitchFlow")[run_id]
    return {step.id: len(list(step)) for step in run}


@pytest.mark.slow
def test_each_switch_runs_the_case_its_condition_names(flow_env) -> None:
    quick = flow_env.run("switch_flow", "run", "--mode", "quick")
    assert "3 is small; 12 is big; 5 is small | skipped" in quick.stdout
    run = Flow("SwitchFlow").latest_run
    assert run.successful
    ran = _steps_run(run.id)
    assert "prepare" not in ran  # the quick case skipped it
    assert (ran["big"], ran["small"], ran["graded"]) == (1, 2, 3)
    assert "_switch_step" not in run["start"].task  # a hidden artifact, as Metaflow's
    deep = flow_env.run("switch_flow", "run")
    assert "| prepared" in deep.stdout
    assert "prepare" in _steps_run(Flow("SwitchFlow").latest_run.id)
    shown = flow_env.run("switch_flow", "show").stdout
    assert "start [switch] -> one of {'deep': prepare, 'quick': fanout} (switch on mode)" in shown


@pytest.mark.slow
def test_a_condition_that_names_no_case_fails_the_step_clearly(flow_env) -> None:
    result = flow_env.run("switch_flow", "run", "--mode", "slow", check=False)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert "self.mode is 'slow', which is none of the cases 'deep', 'quick'" in said
    # The traceback ends at the step's own line, not inside self.next().
    assert "switch_flow.py" in said and "_flowspec.py" not in said
    assert not Flow("SwitchFlow").latest_run.successful


@pytest.mark.slow
def test_a_resume_goes_on_down_the_cases_the_origin_chose(flow_env) -> None:
    flow_env.run("switch_flow", "run", "--mode", "quick")
    origin = Flow("SwitchFlow").latest_run.id
    resumed = flow_env.run("switch_flow", "resume", "graded", "--origin-run-id", origin)
    assert "cloning big, fanout, grade, small, start" in resumed.stdout  # no prepare: not taken
    assert "3 is small; 12 is big; 5 is small | skipped" in resumed.stdout
    run = Flow("SwitchFlow").latest_run
    assert run.id != origin and run.successful
    ran = _steps_run(run.id)
    assert "prepare" not in ran and (ran["big"], ran["small"]) == (1, 2)
    assert run["big"].task.origin_pathspec  # cloned, not run again
    assert not run["graded"].task.origin_pathspec
    # The quick case skipped prepare: resuming from it would never run it.
    refused = flow_env.run("switch_flow", "resume", "prepare", "--origin-run-id", origin,
                           check=False)  # fmt: skip
    assert refused.returncode == 1
    assert "'prepare' did not run in run" in refused.stderr
    assert "switch 'start' chose another case" in refused.stderr
