"""``FlowSpec``, the class a flow subclasses: the flow as a step sees it
(:class:`~ledgerflow._flowspec.FlowSpecBase`) plus its command line, which calling the
class at the bottom of the flow file starts (``MyFlow()``).

The command line sits above the runtime and the task runner, which use only the base
class: importing the command line here, not in the base, keeps the imports one way."""

from __future__ import annotations

from contextvars import ContextVar

from ledgerflow._flowspec import FlowSpecBase
from ledgerflow.cli.flow import run_flow_cli

# Set while ``ledgerflow.Runner`` loads a flow file in its own process to learn the
# flow's parameters: the call at the bottom of the file (``MyFlow()``) then notes its
# class here instead of starting the command line, which would read the caller's argv.
called_flows: ContextVar[list[type[FlowSpecBase]] | None] = ContextVar("called_flows", default=None)


class FlowSpec(FlowSpecBase):
    """Subclass it, write @step methods from ``start`` to ``end``, and call the class at
    the bottom of the file (``MyFlow()``) to get its command line."""

    def __init__(self, use_cli: bool = True) -> None:
        if not use_cli:
            return
        collecting = called_flows.get()
        if collecting is not None:
            collecting.append(type(self))
        else:
            run_flow_cli(type(self))
