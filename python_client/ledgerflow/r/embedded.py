"""R inside the runtime: the flow's script loaded once (forked tasks inherit the
embedded R), and each R step run on a ``self`` whose artifacts load when first used.

An R step's artifacts are stored as :class:`~ledgerflow.datastore.content.RValue`: R's own
serialization, which R readers restore exactly, and the Python equivalent where one
exists (ledgerflow.r.convert), which Python readers get. A Python artifact read in R is
converted the other way. The runtime holds R and little else: every megabyte it holds
makes each fork of it slower (R makes a fork ~5 ms here, R with numpy and pandas ~19
ms), and the conversions import numpy and pandas only for values that need them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from ledgerflow._current import current
from ledgerflow._flowspec import FlowSpecBase, Inputs
from ledgerflow.datastore.content import R_SERIALIZER, RValue
from ledgerflow.datastore.r_columns import COLUMNS
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
        # R sets LD_LIBRARY_PATH for what it starts; this process must not pass it on
        # (with R's library folders first, a Python it starts, say pylint's, loads the
        # system's libpython and finds none of its packages).
        os.environ.pop("LD_LIBRARY_PATH", None)
        import rpy2.rinterface as ri
        from rpy2.rinterface_lib import callbacks
        from rpy2.rinterface_lib.embedded import RRuntimeError

        # R's print() and message() write to the task's stdout and stderr as they are.
        callbacks.consolewrite_print = lambda text: sys.stdout.write(text)
        callbacks.consolewrite_warnerror = lambda text: sys.stderr.write(text)
        # Room on R's heap from the start, so a forked task seldom runs R's garbage
        # collector: a collection touches the whole heap, which the fork then copies.
        os.environ.setdefault("R_NSIZE", "4000000")
        os.environ.setdefault("R_VSIZE", "256M")
        # Rscript's default packages but methods (S4), which alone makes a fork of the
        # runtime ~40% slower; a package that needs it still loads it.
        os.environ.setdefault("R_DEFAULT_PACKAGES", "datasets,utils,grDevices,graphics,stats")
        ri.initr_simple()
        os.environ.pop("LD_LIBRARY_PATH", None)  # set again by R's start
        self._ri = ri
        self._package = _namespace("ledgerflow")
        try:
            flow = self._call("load_flow", ri.StrSexpVector([str(script)]))
            # What every task would do again (embedded.R's warm_up()), done once here.
            flow = self._call("warm_up", flow)
        except RRuntimeError:
            # R has printed its error (the script's, or a package the session had that
            # this R lacks); a Python traceback under it would only hide it.
            raise SystemExit(1) from None
        steps = flow[list(flow.names).index("steps")]
        self.functions: dict[str, Any] = {}
        self.foreach: dict[str, str] = {}  # a foreach step's artifact
        for name, spec in zip(steps.names, steps, strict=True):
            fields = dict(zip(spec.names, spec, strict=True))
            function = fields.get("r_function")
            self.functions[name] = None if function is None or function is ri.NULL else function
            over = fields.get("foreach")
            if over is not None and over is not ri.NULL:
                self.foreach[name] = str(over[0])
        # The step R runs now; R calls back into it through two functions made once.
        self._flow: FlowSpecBase | None = None
        self._inputs: Inputs | None = None
        # The R values this task stores as columns: their buffers are R's memory, which
        # R keeps only while rpy2 holds the value (rpy2's memoryview does not), so they
        # are held here until the task (a process of its own) ends.
        self._stored_as_columns: list[Any] = []
        self._loader = ri.rternalize(self._load_for_r)
        self._merger = ri.rternalize(self._merge_for_r)
        # Imported here, once, rather than in each task (a fork of this process).
        import ledgerflow.r.convert  # noqa: F401

    def _call(self, name: str, *args: Any) -> Any:
        return self._package[name](*args)

    # ---- one step ----------------------------------------------------------------------

    def run_step(self, flow: FlowSpecBase, step_name: str, inputs: Inputs | None = None) -> None:
        """Runs the R step on `flow` (the task's FlowSpec) and sets what it stored."""
        ri = self._ri
        self._flow, self._inputs = flow, inputs
        item = _foreach_item(flow)
        input_of = (
            ri.ListSexpVector([ri.StrSexpVector([item[0]]), ri.IntSexpVector([item[1]])])
            if item
            else ri.NULL
        )
        # One call into R (embedded.R's run_task()): the task's facts for current() (as
        # `current` gives them to a Python step), its self and inputs, the step.
        facts = json.dumps(current._facts, default=str)
        merger = input_names = input_steps = ri.NULL
        if inputs is not None:
            merger = self._merger
            input_names = ri.ListSexpVector(
                [ri.StrSexpVector(list(view._reader._records)) for view in inputs]
            )
            input_steps = ri.StrSexpVector([view._step_name for view in inputs])
        result = self._call(
            "run_task", ri.StrSexpVector([step_name]), self.functions.get(step_name) or ri.NULL,
            ri.StrSexpVector(_visible_names(flow)), self._loader, input_of, merger, input_names,
            input_steps, ri.StrSexpVector([facts]),
        )  # fmt: skip
        fields = dict(zip(result.names, result, strict=True))
        failed = fields["failed"]
        if failed is not ri.NULL:
            error = dict(zip(failed.names, failed, strict=True))
            raise RStepError(
                error["message"][0], error["call"][0], [str(x) for x in error["stack"]]
            )
        for name, value, rds, length in zip(
            fields["names"], fields["values"], fields["rds"], fields["lengths"], strict=True
        ):
            setattr(flow, name, self.to_rvalue(value, rds, length))
        if step_name in self.foreach:
            _say_how_a_frame_splits(flow, step_name, self.foreach[step_name])

    def _load_for_r(self, source: Any, name: Any) -> Any:
        """R's loader: an artifact of the step's task (source 0) or of an input (i).
        A Python function R calls cannot raise into R (rpy2 logs the error and R gets
        NULL): a failure comes back as a value that R raises (checked() in R)."""
        from ledgerflow.r.convert import NoEquivalent

        key = str(name[0])
        try:
            return self._load_source(int(source[0]), key)
        except NoEquivalent as error:
            return self._failure(f"artifact '{key}' has no R equivalent ({error})")
        except Exception as error:  # every failure reaches R as an error
            kind = type(error).__name__
            return self._failure(f"reading artifact '{key}' failed: {kind}: {error}")

    def _failure(self, message: str) -> Any:
        ri = self._ri
        failure = ri.ListSexpVector([ri.StrSexpVector([message])])
        failure.do_slot_assign("names", ri.StrSexpVector(["message"]))
        failure.do_slot_assign("class", ri.StrSexpVector(["ledgerflow_failure"]))
        return failure

    def _load_source(self, index: int, key: str) -> Any:
        assert self._flow is not None
        if index == 0:
            return self.load(self._flow, key)
        assert self._inputs is not None
        reader = self._inputs[index - 1]._reader
        return self.load_record(reader._store, reader._records[key])

    def _merge_for_r(self, exclude: Any, include: Any, already: Any) -> Any:
        """merge_artifacts(self, inputs) in a join: the names it added to self (or a
        failure, which R raises: see _load_for_r)."""
        try:
            return self._merge(exclude, include, already)
        except Exception as error:  # every failure reaches R as an error
            return self._failure(f"merge_artifacts: {_in_r_terms(str(error))}")

    def _merge(self, exclude: Any, include: Any, already: Any) -> Any:
        flow, inputs = self._flow, self._inputs
        assert flow is not None and inputs is not None
        before = set(flow.__dict__["_inherited"])
        set_in_step = set(map(str, already))  # set on self first: not merged
        chosen = [name for name in map(str, include) if name not in set_in_step]
        if chosen:
            flow.merge_artifacts(inputs, include=chosen)
        elif not len(include):
            flow.merge_artifacts(inputs, exclude=[*map(str, exclude), *set_in_step])
        return self._ri.StrSexpVector(sorted(set(flow.__dict__["_inherited"]) - before))

    # ---- values ------------------------------------------------------------------------

    def load(self, flow: FlowSpecBase, name: str) -> Any:
        """An artifact or parameter of `flow`, as an R value."""
        from ledgerflow.r.convert import to_r

        state = flow.__dict__
        if name in state and not name.startswith("_"):  # a parameter, or set this step
            value = state[name]
            return self.from_rvalue(value) if isinstance(value, RValue) else to_r(value)
        return self.load_record(state["_store"], state["_inherited"][name])

    def load_record(self, store: Any, record: records_pb2.Artifact) -> Any:
        from ledgerflow.r.convert import columns_to_r, to_r

        if record.serializer == R_SERIALIZER:
            rds, _, has_python, python = store.load_r(record.content_key)
            if has_python == COLUMNS:
                return columns_to_r(python)
            return self._unserialize(rds)
        return to_r(store.load(record.content_key, record.serializer))

    def to_rvalue(self, value: Any, rds: Any, length: int) -> RValue:
        """An R value, with its serialization (a raw vector; NULL where R leaves it to
        be stored as columns) and length from R."""
        from ledgerflow.r.convert import python_form, r_class_name

        serialized, has_python, python = python_form(value, rds)
        if has_python == COLUMNS:
            self._stored_as_columns.append(value)
        return RValue(serialized, r_class_name(value), length, python, has_python)

    def from_rvalue(self, value: RValue) -> Any:
        from ledgerflow.r.convert import columns_to_r

        if value.has_python == COLUMNS:
            return columns_to_r(value.python)
        return self._unserialize(value.rds)

    def _unserialize(self, rds: Any) -> Any:
        ri = self._ri
        return ri.baseenv["unserialize"](ri.ByteSexpVector.from_memoryview(memoryview(rds)))


def _say_how_a_frame_splits(flow: FlowSpecBase, step_name: str, over: str) -> None:
    """A foreach over a data.frame runs a task per column, as R counts a data.frame
    (length() and [[ ]] are by column, as lapply() goes): said, with the way to rows."""
    state = flow.__dict__
    value = state.get(over)
    if isinstance(value, RValue):
        r_class, length = value.r_class, value.length
    elif over in state.get("_inherited", {}):
        record = state["_inherited"][over]
        r_class, length = record.type_name.removeprefix("R "), -1
    else:
        return
    if r_class not in ("data.frame", "tbl_df", "data.table"):
        return
    count = f" ({length} columns)" if length >= 0 else ""
    sys.stderr.write(
        f'Warning in {step_name}: foreach = "{over}" is a data.frame: one task per column{count}, '
        f"self$input being the column, as R's length() and [[ ]] count a data.frame; for one "
        f"task per row, foreach over split({over}, seq_len(nrow({over})))\n"
    )


def _in_r_terms(message: str) -> str:
    """merge_artifacts()'s advice as an R step takes it."""
    message = re.sub(r"set self\.(\w+) before merge_artifacts\(\)",
                     r"set self$\1 before merge_artifacts(self, inputs)", message)  # fmt: skip
    return re.sub(r"pass exclude=\['(\w+)'\]", r'pass exclude = "\1"', message)


def _namespace(package: str) -> Any:
    import rpy2.rinterface as ri

    try:
        return ri.baseenv["asNamespace"](ri.StrSexpVector([package]))
    except Exception as error:  # an RRuntimeError: the package is not installed
        raise RuntimeError(
            f"R cannot load the {package} package ({error}): install it with "
            "R CMD INSTALL r_client/ledgerflow (scripts/setup does)"
        ) from None


def _visible_names(flow: FlowSpecBase) -> list[str]:
    """What `self` holds when the step starts: inherited artifacts and parameters."""
    state = flow.__dict__
    names = set(state["_inherited"]) | {n for n in state if not n.startswith("_")}
    return sorted(n for n in names if not n.startswith("_"))


def _foreach_item(flow: FlowSpecBase) -> tuple[str, int] | None:
    """(the foreach's artifact, this task's index) in a foreach step."""
    stack = flow.__dict__.get("_foreach_stack")
    if not stack:
        return None
    split_step, index, _ = stack[-1]
    return flow.__dict__["_foreach_params"][split_step], index
