"""The Python side of R flows: ``Rscript myflow.R run`` (the R package's ``run()``)
starts ``python -m ledgerflow.r SPEC -- ARGS``, which writes the flow as a Python flow
file (codegen.py) and runs its command line; that file embeds R once per runtime
(embedded.py) and runs each step's R function there."""

from typing import Any

__all__ = ["RFlow"]


def __getattr__(name: str) -> Any:
    if name == "RFlow":  # rpy2 starts R: only when a flow file asks
        from ledgerflow.r.embedded import RFlow

        return RFlow
    raise AttributeError(name)
