"""R inside the runtime: the flow's script loaded once (forked tasks inherit the
embedded R), and each R step run on a ``self`` whose artifacts load when first used.

An R step's artifacts are stored as :class:`~ledgerflow._datastore.RValue`: R's own
serialization, which R readers restore exactly, and the Python equivalent where one
exists (ledgerflow.r.convert), which Python readers get. A Python artifact read in R is
converted the other way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ledgerflow._datastore import R_SERIALIZER, RValue
from ledgerflow._flowspec import FlowSpec, Inputs
from ledgerflow.v1 import records_pb2


class RStepError(Exception):
    """An R step failed: the R error's message, with R's call stack in the traceback."""

    def __init__(self, message: str, call: str, stack: list[str]) -> None:
        super().__init__(f"{message} (in {call})" if call else message)
        self.r_stack = stack

    def r_traceback(self) -> str:
        lines = "\n".join(f"  {line}" for line in self.r_stack)
        return f"R call stack (most recent call first):\n{lines}\n" if lines else ""


class RFlow:
    """A flow written in R, loaded from its script (which `run()` then leaves alone)."""

    def __init__(self, script: Path) -> None:
        # R sets LD_LIBRARY_PATH for what it starts; this process must not pass it on.
        os.environ.pop("LD_LIBRARY_PATH", None)
        import rpy2.rinterface as ri
        from rpy2.rinterface_lib import callbacks

        # R's print() and message() write to the task's stdout and stderr as they are.
        callbacks.consolewrite_print = lambda text: sys.stdout.write(text)
        callbacks.consolewrite_warnerror = lambda text: sys.stderr.write(text)
        ri.initr_simple()
        self._ri = ri
        # The Python functions R holds during a step (R's bindings call them back).
        self._held: list[Any] = []
        self._package = _namespace("ledgerflow")
        flow = self._call("load_flow", ri.StrSexpVector([str(script)]))
        steps = flow[list(flow.names).index("steps")]
        self.functions: dict[str, Any] = {}
        for name, spec in zip(steps.names, steps, strict=True):
            fields = dict(zip(spec.names, spec, strict=True))
            function = fields.get("r_function")
            self.functions[name] = None if function is None or function is ri.NULL else function

    def _call(self, name: str, *args: Any) -> Any:
        return self._package[name](*args)

    # ---- one step ----------------------------------------------------------------------

    def run_step(self, flow: FlowSpec, step_name: str, inputs: Inputs | None = None) -> None:
        """Runs the R step on `flow` (the task's FlowSpec) and sets what it stored."""
        ri = self._ri
        self._held.clear()
        merge = _merge_callback(flow, inputs) if inputs is not None else None
        self._held.append(merge)
        self_env = self._make_self(flow, _visible_names(flow), merge, _foreach_item(flow))
        r_inputs = self._make_inputs(inputs) if inputs is not None else ri.NULL
        function = self.functions.get(step_name)
        failed = self._call(
            "call_step", ri.StrSexpVector([step_name]), function or ri.NULL, self_env, r_inputs
        )
        if failed is not ri.NULL:
            fields = dict(zip(failed.names, failed, strict=True))
            raise RStepError(
                fields["message"][0], fields["call"][0], [str(x) for x in fields["stack"]]
            )
        for name in self._call("changed_names", self_env):
            setattr(flow, name, self.to_rvalue(self._call("value_of", self_env, name)))

    def _make_self(
        self, flow: FlowSpec, names: list[str], merge: Any, item: tuple[str, int] | None
    ) -> Any:
        ri = self._ri

        @ri.rternalize
        def loader(name: Any) -> Any:
            return self.load(flow, str(name[0]))

        self._held.append(loader)
        input_of = (
            ri.ListSexpVector([ri.StrSexpVector([item[0]]), ri.IntSexpVector([item[1]])])
            if item
            else ri.NULL
        )
        return self._call("make_self", ri.StrSexpVector(names), loader, input_of, merge or ri.NULL)

    def _make_inputs(self, inputs: Inputs) -> Any:
        ri = self._ri
        envs = []
        for view in inputs:
            reader = view._reader

            def load(name: Any, reader: Any = reader) -> Any:
                record = reader._records[str(name[0])]
                return self.load_record(reader._store, record)

            loader = ri.rternalize(load)
            self._held.append(loader)
            envs.append(
                self._call("make_self", ri.StrSexpVector(list(reader._records)), loader,
                           ri.NULL, ri.NULL)
            )  # fmt: skip
        listed = ri.ListSexpVector(envs)
        step_names = [view._step_name for view in inputs]
        if len(set(step_names)) == len(step_names):  # a branch join: inputs$a
            listed.do_slot_assign("names", ri.StrSexpVector(step_names))
        return listed

    # ---- values ------------------------------------------------------------------------

    def load(self, flow: FlowSpec, name: str) -> Any:
        """An artifact or parameter of `flow`, as an R value."""
        from ledgerflow.r.convert import to_r

        state = flow.__dict__
        if name in state and not name.startswith("_"):  # a parameter, or set this step
            value = state[name]
            return self.from_rvalue(value) if isinstance(value, RValue) else to_r(value)
        return self.load_record(state["_store"], state["_inherited"][name])

    def load_record(self, store: Any, record: records_pb2.Artifact) -> Any:
        from ledgerflow.r.convert import to_r

        if record.serializer == R_SERIALIZER:
            return self._unserialize(store.load_rds(record.content_key))
        return to_r(store.load(record.content_key, record.serializer))

    def to_rvalue(self, value: Any) -> RValue:
        from ledgerflow.r.convert import NoEquivalent, r_class_name, to_python

        rds = np.asarray(self._ri.baseenv["serialize"](value, self._ri.NULL)).tobytes()
        length = int(self._ri.baseenv["length"](value)[0])
        try:
            python, has_python = to_python(value), True
        except NoEquivalent:
            python, has_python = None, False
        return RValue(rds, r_class_name(value), length, python, has_python)

    def from_rvalue(self, value: RValue) -> Any:
        return self._unserialize(value.rds)

    def _unserialize(self, rds: bytes) -> Any:
        ri = self._ri
        return ri.baseenv["unserialize"](ri.ByteSexpVector(rds))


def _namespace(package: str) -> Any:
    import rpy2.rinterface as ri

    try:
        return ri.baseenv["asNamespace"](ri.StrSexpVector([package]))
    except Exception as error:  # an RRuntimeError: the package is not installed
        raise RuntimeError(
            f"R cannot load the {package} package ({error}): install it with "
            "R CMD INSTALL r_client/ledgerflow (scripts/setup does)"
        ) from None


def _visible_names(flow: FlowSpec) -> list[str]:
    """What `self` holds when the step starts: inherited artifacts and parameters."""
    state = flow.__dict__
    names = set(state["_inherited"]) | {n for n in state if not n.startswith("_")}
    return sorted(n for n in names if not n.startswith("_"))


def _foreach_item(flow: FlowSpec) -> tuple[str, int] | None:
    """(the foreach's artifact, this task's index) in a foreach step."""
    stack = flow.__dict__.get("_foreach_stack")
    if not stack:
        return None
    split_step, index, _ = stack[-1]
    return flow.__dict__["_foreach_params"][split_step], index


def _merge_callback(flow: FlowSpec, inputs: Inputs) -> Any:
    import rpy2.rinterface as ri

    @ri.rternalize
    def merge(exclude: Any, include: Any, already: Any) -> Any:
        before = set(flow.__dict__["_inherited"])
        set_in_step = set(map(str, already))  # set on self first: not merged
        chosen = [name for name in map(str, include) if name not in set_in_step]
        if chosen:
            flow.merge_artifacts(inputs, include=chosen)
        elif not len(include):
            flow.merge_artifacts(inputs, exclude=[*map(str, exclude), *set_in_step])
        return ri.StrSexpVector(sorted(set(flow.__dict__["_inherited"]) - before))

    return merge
