"""The flow's graph, read from the class source with ``ast`` and checked before
anything runs, so a mistake is reported with the step's name and the fix, not as a
failure halfway through a run."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

from ledgerflow._decorators import step_options


class InvalidGraph(Exception):
    """The flow's steps do not form a runnable graph."""


@dataclass
class StepNode:
    name: str
    line: int
    doc: str
    is_join: bool
    out_funcs: list[str] = field(default_factory=list)
    foreach_param: str | None = None
    # self.next(self.x, num_parallel=N): a foreach over N gang nodes of @parallel step x.
    starts_gang: bool = False
    # Decorated @parallel: its tasks are one gang.
    parallel: bool = False
    # A switch: the artifact that picks the case, and the cases (value -> step).
    condition: str | None = None
    switch_cases: dict[str, str] = field(default_factory=dict)
    next_calls: int = 0
    in_funcs: list[str] = field(default_factory=list)
    # Names of the split steps (branch or foreach) this step sits inside, outermost first.
    split_parents: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.name == "end":
            return "end"
        if self.is_join:
            return "join"
        if self.foreach_param or self.starts_gang:
            return "foreach"
        if self.condition:
            return "switch"
        if len(self.out_funcs) > 1:
            return "split"
        return "start" if self.name == "start" else "linear"

    @property
    def is_split(self) -> bool:
        return self.kind in ("foreach", "split")


def _is_step_decorated(func: ast.FunctionDef) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "step":
            return True
    return False


def _self_attribute(node: ast.expr) -> str | None:
    """The name in ``self.name``, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else None
    return None


def _string_option(node: StepNode, keyword: ast.keyword, example: str) -> str:
    if not (isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)):
        raise InvalidGraph(
            f"step {node.name!r}: {keyword.arg}= takes the artifact's name as a string, "
            f"e.g. {example}"
        )
    return keyword.value.value


def _read_switch(node: StepNode, cases: ast.Dict, line: int) -> None:
    """``self.next({'a': self.x, 'b': self.y}, condition='c')``: the cases, in order."""
    if not cases.keys:
        raise InvalidGraph(f"step {node.name!r} (line {line}): a switch needs at least one case")
    for key, value in zip(cases.keys, cases.values, strict=True):
        target = _self_attribute(value)
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)) or target is None:
            raise InvalidGraph(
                f"step {node.name!r} (line {line}): a switch maps strings to steps, "
                "e.g. self.next({'high': self.a, 'low': self.b}, condition='mode')"
            )
        node.switch_cases[key.value] = target
        if target not in node.out_funcs:
            node.out_funcs.append(target)


def _read_next(node: StepNode, func: ast.FunctionDef) -> None:
    for call in ast.walk(func):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        if _self_attribute(call.func) != "next":
            continue
        node.next_calls += 1
        options = {keyword.arg: keyword for keyword in call.keywords}
        if len(call.args) == 1 and isinstance(call.args[0], ast.Dict):
            if "condition" not in options:
                raise InvalidGraph(
                    f"step {node.name!r} (line {call.lineno}): a switch needs condition=, the "
                    "artifact that picks the case: self.next({...}, condition='mode')"
                )
            _read_switch(node, call.args[0], call.lineno)
        else:
            for arg in call.args:
                target = _self_attribute(arg)
                if target is None:
                    raise InvalidGraph(
                        f"step {node.name!r} (line {call.lineno}): self.next() takes steps as "
                        "self.step_name, e.g. self.next(self.end), or a switch's cases as "
                        "a dict with condition="
                    )
                node.out_funcs.append(target)
        for name, keyword in options.items():
            if name == "foreach":
                node.foreach_param = _string_option(
                    node, keyword, "self.next(self.a, foreach='grid')"
                )
            elif name == "num_parallel":
                node.starts_gang = True  # num_parallel's value is read when the step runs
            elif name == "condition" and node.switch_cases:
                node.condition = _string_option(
                    node, keyword, "self.next({'high': self.a, 'low': self.b}, condition='mode')"
                )
            elif name == "condition":
                raise InvalidGraph(
                    f"step {node.name!r}: condition= goes with a dict of cases, e.g. "
                    "self.next({'high': self.a, 'low': self.b}, condition='mode')"
                )
            else:
                raise InvalidGraph(
                    f"step {node.name!r}: self.next() has no option "
                    f"{name!r}; did you mean foreach=, condition= or num_parallel=?"
                )
        if node.condition and (node.foreach_param or node.starts_gang):
            raise InvalidGraph(
                f"step {node.name!r}: a switch (condition=) goes to one step; it cannot also "
                "split with foreach= or num_parallel="
            )


class FlowGraph:
    """Steps by name, in source order, with their transitions."""

    def __init__(self, flow_class: type) -> None:
        self.name = flow_class.__name__
        source = textwrap.dedent(inspect.getsource(flow_class))
        tree = ast.parse(source)
        class_def = next(n for n in tree.body if isinstance(n, ast.ClassDef))
        self.nodes: dict[str, StepNode] = {}
        for item in class_def.body:
            if isinstance(item, ast.FunctionDef) and _is_step_decorated(item):
                params = [a.arg for a in item.args.args]
                node = StepNode(
                    name=item.name,
                    line=item.lineno,
                    doc=ast.get_docstring(item) or "",
                    is_join=len(params) == 2,
                )
                _read_next(node, item)
                self.nodes[item.name] = node
        for node in self.nodes.values():
            for out in node.out_funcs:
                if out in self.nodes:
                    self.nodes[out].in_funcs.append(node.name)
        # Gangs first: a gang's mistakes otherwise surface as a join's or a split's.
        options = {name: step_options(getattr(flow_class, name, None)) for name in self.nodes}
        for node in self.nodes.values():
            node.parallel = options[node.name].parallel
        for node in self.nodes.values():
            self._check_parallel(node)
            if node.parallel and (options[node.name].retry or options[node.name].catch):
                raise InvalidGraph(
                    f"@parallel step {node.name!r} has @retry or @catch: a node of a gang is "
                    "not tried again (alone, it could not rejoin its gang); remove them"
                )
        self._validate()
        self._check_step_decorators(flow_class)

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __iter__(self) -> Any:
        return iter(self.nodes.values())

    def _check_step_decorators(self, flow_class: type) -> None:
        """The options of decorators that work in the task (two @card with one id)
        are checked with the graph, before anything runs."""
        for name in self.nodes:
            for hook in step_options(getattr(flow_class, name, None)).hooks:
                try:
                    hook.check_step(name)
                except ValueError as error:
                    raise InvalidGraph(str(error)) from None

    def _check_parallel(self, node: StepNode) -> None:
        """A @parallel step is entered through num_parallel and joined right after."""
        known = [out for out in node.out_funcs if out in self.nodes]  # others: _validate
        if node.starts_gang and node.foreach_param:
            raise InvalidGraph(f"step {node.name!r}: foreach= and num_parallel= do not go together")
        if node.starts_gang and not all(self.nodes[out].parallel for out in known):
            raise InvalidGraph(
                f"step {node.name!r} starts {node.out_funcs[0]!r} with num_parallel=, so "
                f"{node.out_funcs[0]!r} must be a @parallel step"
            )
        if not node.parallel:
            return
        if not node.in_funcs or not all(self.nodes[i].starts_gang for i in node.in_funcs):
            raise InvalidGraph(
                f"@parallel step {node.name!r} runs as a gang: start it with "
                f"self.next(self.{node.name}, num_parallel=N)"
            )
        if len(known) != 1 or not self.nodes[known[0]].is_join:
            raise InvalidGraph(
                f"@parallel step {node.name!r} must go to a join of its gang, "
                "def join(self, inputs), as after a foreach"
            )

    def _validate(self) -> None:
        for required in ("start", "end"):
            if required not in self.nodes:
                raise InvalidGraph(
                    f"flow {self.name} has no {required!r} step: every flow starts at "
                    "@step def start(self) and ends at @step def end(self)"
                )
        for node in self.nodes.values():
            if node.name == "end":
                if node.next_calls:
                    raise InvalidGraph("step 'end' must not call self.next(): it ends the flow")
                continue
            if node.next_calls == 0:
                raise InvalidGraph(
                    f"step {node.name!r} (line {node.line}) never calls self.next(): end it "
                    "with self.next(self.<next_step>)"
                )
            if node.next_calls > 1:
                raise InvalidGraph(
                    f"step {node.name!r} (line {node.line}) calls self.next() "
                    f"{node.next_calls} times: call it exactly once, as the last line"
                )
            for out in node.out_funcs:
                if out not in self.nodes:
                    raise InvalidGraph(
                        f"step {node.name!r} goes to self.{out}, which is not a @step of "
                        f"{self.name}"
                    )
            if node.foreach_param and len(node.out_funcs) != 1:
                raise InvalidGraph(f"foreach step {node.name!r} must go to exactly one step")
        if self.nodes["start"].in_funcs:
            raise InvalidGraph("no step may go back to 'start'")
        if self.nodes["start"].is_join:
            raise InvalidGraph("'start' cannot be a join: def start(self) takes no inputs")
        reachable = self.downstream_of("start")
        unreachable = [name for name in self.nodes if name not in reachable]
        if unreachable:
            raise InvalidGraph(
                f"step(s) {', '.join(unreachable)} can never run: no step goes to them "
                "with self.next()"
            )
        self._check_meetings()
        self._seen: set[str] = set()
        self._traverse(self.nodes["start"], [], set())

    def _check_meetings(self) -> None:
        """A step reached from several steps runs once per arrival unless it is a join,
        or the steps it is reached from are cases of one switch that exclude each other
        (only one of them runs). A join's inputs may not exclude each other: it would
        wait for an input that never comes."""
        choices = self._switch_choices()
        for node in self.nodes.values():
            if len(node.in_funcs) < 2 or any(name not in choices for name in node.in_funcs):
                continue  # fewer than two arrivals, or a cycle (_traverse reports it)
            arrivals = [
                (name, self._arrival_choices(name, node.name, choices)) for name in node.in_funcs
            ]
            for index, (first, first_choices) in enumerate(arrivals):
                for second, second_choices in arrivals[index + 1 :]:
                    exclusive = _excludes(first_choices, second_choices)
                    if node.is_join and exclusive:
                        raise InvalidGraph(
                            f"join {node.name!r} is reached from {first!r} and {second!r}, "
                            "cases of one switch of which only one runs: let the cases meet "
                            "at a plain step (one without inputs) before the join"
                        )
                    if not node.is_join and not exclusive:
                        raise InvalidGraph(
                            f"step {node.name!r} is reached from {', '.join(node.in_funcs)}: "
                            f"make it a join, def {node.name}(self, inputs)"
                        )

    def _switch_choices(self) -> dict[str, frozenset[tuple[str, str]]]:
        """For each step, the switch cases (switch, case step) that every way of
        reaching it takes: a step in a switch's case runs only when the switch chose
        that case. Steps in topological order; steps on a cycle are left out."""
        choices: dict[str, frozenset[tuple[str, str]]] = {}
        waiting = {name: len(node.in_funcs) for name, node in self.nodes.items()}
        ready = [name for name, count in waiting.items() if count == 0]
        while ready:
            name = ready.pop()
            node = self.nodes[name]
            arrivals = [self._arrival_choices(source, name, choices) for source in node.in_funcs]
            choices[name] = frozenset.intersection(*arrivals) if arrivals else frozenset()
            for out in node.out_funcs:
                waiting[out] -= 1
                if waiting[out] == 0:
                    ready.append(out)
        return choices

    def _arrival_choices(
        self, source: str, target: str, choices: dict[str, frozenset[tuple[str, str]]]
    ) -> frozenset[tuple[str, str]]:
        """The switch cases taken on the way into `target` from `source`."""
        taken = choices[source]
        return taken | {(source, target)} if self.nodes[source].condition else taken

    def _traverse(self, node: StepNode, splits: list[str], path: set[str]) -> None:
        if node.name in path:
            raise InvalidGraph(
                f"step {node.name!r} is part of a cycle: flows must be acyclic (a switch "
                "may not go back to an earlier step or to itself)"
            )
        if node.is_join:
            if not splits:
                raise InvalidGraph(
                    f"step {node.name!r} is a join (it takes inputs) but no branch or foreach "
                    "before it needs joining: drop the inputs argument"
                )
            closing = self.nodes[splits[-1]]
            if closing.kind == "split" and len(node.in_funcs) != len(closing.out_funcs):
                raise InvalidGraph(
                    f"join {node.name!r} gets {len(node.in_funcs)} input(s) but "
                    f"{closing.name!r} splits into {len(closing.out_funcs)} branches: every "
                    "branch must lead to the same join"
                )
            splits = splits[:-1]
        if node.name in self._seen:
            if node.split_parents != splits:
                raise InvalidGraph(
                    f"step {node.name!r} is reached inside different branches or foreaches: "
                    "join every branch before leaving it"
                )
            return
        self._seen.add(node.name)
        node.split_parents = list(splits)
        if node.name == "end" and splits:
            raise InvalidGraph(
                f"{', '.join(repr(s) for s in splits)} splits but is never joined: add a join "
                "step, def join(self, inputs), before 'end'"
            )
        if node.is_split:
            splits = [*splits, node.name]
        for out in node.out_funcs:
            self._traverse(self.nodes[out], splits, path | {node.name})

    def downstream_of(self, step_name: str) -> set[str]:
        """The step and every step reachable from it."""
        found: set[str] = set()
        pending = [step_name]
        while pending:
            name = pending.pop()
            if name not in found:
                found.add(name)
                pending.extend(self.nodes[name].out_funcs)
        return found

    def describe(self) -> str:
        lines = []
        for node in self.nodes.values():
            arrow = ""
            if node.condition:
                cases = ", ".join(f"{value!r}: {step}" for value, step in node.switch_cases.items())
                arrow = f" -> one of {{{cases}}} (switch on {node.condition})"
            elif node.out_funcs:
                targets = ", ".join(node.out_funcs)
                arrow = (
                    f" -> {targets}"
                    + (f" (foreach {node.foreach_param})" if node.foreach_param else "")
                    + (" (num_parallel gang)" if node.starts_gang else "")
                )
            kind = f"{node.kind}, @parallel" if node.parallel else node.kind
            lines.append(f"  {node.name} [{kind}]{arrow}")
            # The whole docstring, its paragraphs kept (ast.get_docstring dedents it).
            lines.extend(f"      {line}".rstrip() for line in node.doc.splitlines())
        return "\n".join(lines)


def _excludes(first: frozenset[tuple[str, str]], second: frozenset[tuple[str, str]]) -> bool:
    """Whether two ways of reaching a step took different cases of one switch."""
    chosen = dict(first)
    return any(switch in chosen and chosen[switch] != case for switch, case in second)
