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
        if self.foreach_param:
            return "foreach"
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


def _read_next(node: StepNode, func: ast.FunctionDef) -> None:
    for call in ast.walk(func):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        target = call.func
        if not (
            target.attr == "next"
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
        ):
            continue
        node.next_calls += 1
        for arg in call.args:
            if not (
                isinstance(arg, ast.Attribute)
                and isinstance(arg.value, ast.Name)
                and arg.value.id == "self"
            ):
                raise InvalidGraph(
                    f"step {node.name!r} (line {call.lineno}): self.next() takes steps as "
                    "self.step_name, e.g. self.next(self.end)"
                )
            node.out_funcs.append(arg.attr)
        for keyword in call.keywords:
            if keyword.arg == "foreach":
                if not (
                    isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)
                ):
                    raise InvalidGraph(
                        f"step {node.name!r}: foreach= takes the artifact's name as a string, "
                        "e.g. self.next(self.a, foreach='grid')"
                    )
                node.foreach_param = keyword.value.value
            else:
                raise InvalidGraph(
                    f"step {node.name!r}: self.next() has no option "
                    f"{keyword.arg!r}; did you mean foreach=?"
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
        for node in self.nodes.values():
            if len(node.in_funcs) > 1 and not node.is_join:
                raise InvalidGraph(
                    f"step {node.name!r} is reached from {', '.join(node.in_funcs)}: make it a "
                    f"join, def {node.name}(self, inputs)"
                )
        self._seen: set[str] = set()
        self._traverse(self.nodes["start"], [], set())

    def _traverse(self, node: StepNode, splits: list[str], path: set[str]) -> None:
        if node.name in path:
            raise InvalidGraph(f"step {node.name!r} is part of a cycle: flows must be acyclic")
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
            if node.out_funcs:
                targets = ", ".join(node.out_funcs)
                arrow = f" -> {targets}" + (
                    f" (foreach {node.foreach_param})" if node.foreach_param else ""
                )
            lines.append(f"  {node.name} [{node.kind}]{arrow}")
            # The whole docstring, its paragraphs kept (ast.get_docstring dedents it).
            lines.extend(f"      {line}".rstrip() for line in node.doc.splitlines())
        return "\n".join(lines)
