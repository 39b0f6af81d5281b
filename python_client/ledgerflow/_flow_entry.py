"""``FlowSpec``, the class a flow subclasses: the flow as a step sees it
(:class:`~ledgerflow._flowspec.FlowSpecBase`) plus its command line, which calling the
class at the bottom of the flow file starts (``MyFlow()``).

The command line sits above the runtime and the task runner, which use only the base
class: importing the command line here, not in the base, keeps the imports one way."""

from __future__ import annotations

from ledgerflow._flowspec import FlowSpecBase
from ledgerflow.cli.flow import run_flow_cli


class FlowSpec(FlowSpecBase):
    """Subclass it, write @step methods from ``start`` to ``end``, and call the class at
    the bottom of the file (``MyFlow()``) to get its command line."""

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            run_flow_cli(type(self))
