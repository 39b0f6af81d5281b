"""What a command line does once its imports are done: hand what they made to the
garbage collector's permanent generation.

By the time a command starts, its imports have made some hundred thousand objects
(modules, classes, functions, protobuf descriptors) that live until the process ends.
Each full collection walks all of them, and Python's finalization runs full
collections as the process exits: for ``python flow.py run`` of a five-task flow,
~30 of the ~50 ms between its last line and its exit (README, "Benchmarks").
`gc.freeze()` moves every object tracked so far out of the collector's sight, so those
collections, and the full ones while a long run goes, walk only what was made after.

What it gives up: a reference cycle that is already garbage when the command starts
is never collected, and its finalizers do not run at exit. Python does not promise
them at exit either, and the frozen objects are the imports' and the flow file's
module-level ones, which live until the exit anyway. Not in an interactive session
(``python -i``, IPython, a notebook running a flow's command line), which goes on
after the command and would keep that garbage.
"""

from __future__ import annotations

import gc
import sys


def freeze_imported_objects() -> None:
    interactive = hasattr(sys, "ps1") or sys.flags.interactive or "IPython" in sys.modules
    if not interactive:
        gc.freeze()
