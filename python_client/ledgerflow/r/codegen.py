"""An R flow as a Python flow file: the graph, parameters and decorators the R script
declared (its flow spec, JSON from the R package's run()), each step calling its R
function. The runtime then runs, resumes, shows and sends remote an R flow exactly as it
does a Python one; the file sits beside the script (``.SCRIPT.ledgerflow.py``), so a
code package carries both."""

from __future__ import annotations

import keyword
from pathlib import Path
from typing import Any

DECORATORS = ("resources", "retry", "catch", "timeout", "environment")


class InvalidRFlow(Exception):
    """The flow spec cannot make a flow (the R side checks first; this is the backstop)."""


def flow_file_for(script: Path) -> Path:
    return script.with_name(f".{script.name}.ledgerflow.py")


def _identifier(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidRFlow(f"{kind} {name!r} is not a valid name")
    return name


def _python_type(r_type: str) -> str:
    return {"numeric": "float", "integer": "int", "logical": "bool"}.get(r_type, "str")


def generate(spec: dict[str, Any], script: Path) -> str:
    """The Python flow file for an R flow spec."""
    name = _identifier("flow name", spec["name"])
    lines = [
        f"# Made by ledgerflow's R client from {script.name}, on every run: do not edit.",
        "from pathlib import Path",
        "",
        "from ledgerflow import FlowSpec, Parameter, catch, environment, resources, retry, "
        "step, timeout",
        # The module that defines it (ledgerflow.r only names it lazily, which pylint's
        # check of this file, on by default, cannot see).
        "from ledgerflow.r.embedded import RFlow",
        "",
        f"R_FLOW = RFlow(Path(__file__).with_name({script.name!r}))",
        "",
        "",
        f"class {name}(FlowSpec):",
    ]
    for parameter in spec.get("parameters", []):
        pname = _identifier("parameter", parameter["name"])
        options = [f"default={parameter.get('default')!r}",
                   f"type={_python_type(parameter.get('type', 'character'))}",
                   f"help={parameter.get('help') or ''!r}"]  # fmt: skip
        if parameter.get("required"):
            options.append("required=True")
        lines.append(f"    {pname} = Parameter({pname!r}, {', '.join(options)})")
    for step_spec in spec["steps"]:
        lines += ["", *_step_lines(step_spec)]
    lines += ["", "", 'if __name__ == "__main__":', f"    {name}()", ""]
    return "\n".join(lines)


def _step_lines(spec: dict[str, Any]) -> list[str]:
    name = _identifier("step", spec["name"])
    lines = []
    for decorator in spec.get("decorators", []):
        if decorator["name"] not in DECORATORS:
            raise InvalidRFlow(f"step {name!r}: unknown decorator {decorator['name']!r}")
        options = {k: v for k, v in (decorator.get("options") or {}).items() if v is not None}
        arguments = ", ".join(f"{_identifier('option', k)}={v!r}" for k, v in options.items())
        lines.append(f"    @{decorator['name']}({arguments})")
    lines.append("    @step")
    if spec.get("join"):
        lines += [f"    def {name}(self, inputs):",
                  f"        R_FLOW.run_step(self, {name!r}, inputs)"]  # fmt: skip
    else:
        lines += [f"    def {name}(self):", f"        R_FLOW.run_step(self, {name!r})"]
    following = [_identifier("next_step", n) for n in spec.get("next_step") or []]
    if following:
        targets = ", ".join(f"self.{n}" for n in following)
        foreach = spec.get("foreach")
        extra = f", foreach={_identifier('foreach', foreach)!r}" if foreach else ""
        lines.append(f"        self.next({targets}{extra})")
    return lines
