"""FlowSpecBase: a flow as its steps see it (``ledgerflow.FlowSpec`` adds the command
line). A step runs on an instance whose attributes are the artifacts: values set with
``self.x = ...`` are stored when the step ends; values inherited from the previous step
are loaded only when read."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow._flow_config import Config
from ledgerflow.datastore.content import ContentStore
from ledgerflow.exceptions import InvalidArtifact, InvalidNextCall, MergeArtifactsException
from ledgerflow.v1 import records_pb2

_IMMUTABLE = (bytes, str, int, float, complex, bool, type(None), tuple, frozenset)


@dataclass(frozen=True)
class Transition:
    """What a step's ``self.next()`` said: the steps that follow; for a foreach, the
    list's name and length (num_parallel: no list, the gang's size); for a switch,
    the case its condition chose."""

    next_steps: list[str]
    foreach: str | None = None
    num_splits: int = 0
    switch_step: str = ""


class _ArtifactReader:
    """Lazy access to one task's artifacts (by record), loading each value once."""

    def __init__(
        self, store: ContentStore | None, records: dict[str, records_pb2.Artifact]
    ) -> None:
        self._store = store
        self._records = records
        self._values: dict[str, Any] = {}

    def has(self, name: str) -> bool:
        return name in self._records

    def get(self, name: str) -> Any:
        if name not in self._values:
            record = self._records[name]
            assert self._store is not None
            self._values[name] = self._store.load(record.content_key, record.serializer)
        return self._values[name]


class InputView:
    """One input of a join: the artifacts of one incoming task, read-only."""

    def __init__(self, step_name: str, pathspec: str, reader: _ArtifactReader) -> None:
        self._step_name = step_name
        self._pathspec = pathspec
        self._reader = reader

    def __getattr__(self, name: str) -> Any:
        reader = self.__dict__.get("_reader")
        if reader is None or name.startswith("_") or not reader.has(name):
            raise AttributeError(f"input {self.__dict__.get('_pathspec')} has no artifact {name!r}")
        return reader.get(name)

    def __repr__(self) -> str:
        return f"<input {self._pathspec}>"


class Inputs(Sequence[InputView]):
    """The inputs of a join: iterate them, index them, or name a branch (inputs.a)."""

    def __init__(self, views: list[InputView]) -> None:
        self._views = views

    def __getitem__(self, index: Any) -> Any:
        return self._views[index]

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[InputView]:
        return iter(self._views)

    def __getattr__(self, step_name: str) -> InputView:
        matches = [v for v in self.__dict__.get("_views", []) if v._step_name == step_name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise AttributeError(f"no input comes from step {step_name!r}")
        raise AttributeError(
            f"{len(matches)} inputs come from step {step_name!r} (a foreach): "
            "iterate over inputs instead"
        )


class FlowSpecBase:
    """A flow as a task sees it: the artifacts and the API a step uses. Flows subclass
    :class:`ledgerflow.FlowSpec` (``_flow_entry.py``), which adds the command line; the
    runtime and the task runner know only this base, so nothing here imports them."""

    # ---- set up by the task runner ------------------------------------------------

    def _prepare(
        self,
        *,
        store: ContentStore,
        step_name: str,
        step_names: set[str],
        out_funcs: list[str],
        switch_cases: dict[str, str],
        starts_gang: bool,
        inherited: dict[str, records_pb2.Artifact],
        foreach_stack: list[tuple[str, int, int]],
        foreach_params: dict[str, str],
        parameters: dict[str, Any],
        is_join: bool = False,
    ) -> None:
        self._store = store
        self._step_name = step_name
        self._step_names = step_names
        self._out_funcs = out_funcs
        self._switch_cases = switch_cases
        self._starts_gang = starts_gang
        self._inherited = dict(inherited)
        self._reader = _ArtifactReader(store, self._inherited)
        self._foreach_stack = foreach_stack
        self._foreach_params = foreach_params
        self._transition: Transition | None = None
        self._is_join = is_join
        for name, value in parameters.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        flow_class: type = type(self)
        if name in _read_only_names(flow_class) and "_inherited" in self.__dict__:
            declared = getattr(flow_class, name, None)
            what = (
                "a Config" if isinstance(declared, Config)
                else "a Parameter" if name in self.__dict__
                else "a constant of the flow class"
            )  # fmt: skip
            raise AttributeError(
                f"cannot set self.{name} in step {self._step_name!r}: it is {what}, "
                f"read-only while the flow runs; store the new value under another name"
            )
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        if name.startswith("_") or "_inherited" not in state:
            raise AttributeError(name)
        if name in state["_inherited"]:
            return state["_reader"].get(name)
        hint = (
            " Join steps start empty: read inputs.<step>.<name>, or call "
            "self.merge_artifacts(inputs)."
            if state.get("_is_join")
            else ""
        )
        raise AttributeError(f"step {state.get('_step_name')!r} has no artifact {name!r}.{hint}")

    # ---- the API a step uses ------------------------------------------------------

    def next(
        self,
        *steps: Any,
        foreach: str | None = None,
        condition: str | None = None,
        num_parallel: int | None = None,
    ) -> None:
        """Names the step(s) that run after this one; foreach='x' runs the next step
        once per item of the artifact self.x; a dict of cases with condition='x' runs
        the one case that self.x names (a switch); num_parallel=N starts N tasks of a
        @parallel step together (a gang)."""
        if self.__dict__.get("_transition") is not None:
            raise InvalidNextCall(f"step {self._step_name!r} called self.next() twice")
        if condition is not None or any(isinstance(target, dict) for target in steps):
            self._transition = self._switch(steps, condition)
            return
        names = self._step_names_of(steps)
        if names != self._out_funcs:
            raise InvalidNextCall(
                f"step {self._step_name!r} went to {names} but its code says {self._out_funcs}"
            )
        if num_parallel is not None or self._starts_gang:
            if isinstance(num_parallel, bool) or not isinstance(num_parallel, int):
                raise InvalidNextCall(f"num_parallel= takes a whole number, got {num_parallel!r}")
            if num_parallel < 1:
                raise InvalidNextCall(f"num_parallel={num_parallel}: a gang needs at least 1 node")
            self._transition = Transition(names, num_splits=num_parallel)
            return
        num_splits = 0
        if foreach is not None:
            try:
                values = getattr(self, foreach)
                num_splits = len(values)
            except AttributeError:
                raise InvalidNextCall(
                    f"foreach={foreach!r}: set self.{foreach} to a list before calling self.next()"
                ) from None
            except TypeError:
                raise InvalidNextCall(
                    f"foreach={foreach!r}: self.{foreach} has no length; make it a list"
                ) from None
            if num_splits == 0:
                raise InvalidNextCall(
                    f"foreach={foreach!r}: self.{foreach} is empty, so "
                    f"step {names[0]!r} would never run"
                )
        self._transition = Transition(names, foreach, num_splits)

    def _step_names_of(self, steps: Sequence[Any]) -> list[str]:
        names = []
        for target in steps:
            name = getattr(target, "__name__", None)
            if name not in self._step_names:
                raise InvalidNextCall(f"self.next() takes steps such as self.end, got {target!r}")
            names.append(name)
        return names

    def _switch(self, steps: Sequence[Any], condition: str | None) -> Transition:
        """The case of ``self.next({...}, condition='x')`` that self.x names."""
        if len(steps) != 1 or not isinstance(steps[0], dict) or condition is None:
            raise InvalidNextCall(
                "a switch is self.next({'high': self.a, 'low': self.b}, condition='mode'): "
                "one dict of cases and the artifact that picks one"
            )
        cases = dict(zip(steps[0], self._step_names_of(list(steps[0].values())), strict=True))
        if cases != self._switch_cases:
            raise InvalidNextCall(
                f"step {self._step_name!r} switched over {cases} but its code says "
                f"{self._switch_cases}"
            )
        try:
            value = getattr(self, condition)
        except AttributeError:
            raise InvalidNextCall(
                f"condition={condition!r}: set self.{condition} to one of "
                f"{', '.join(map(repr, cases))} before calling self.next()"
            ) from None
        if not isinstance(value, str) or value not in cases:
            raise InvalidNextCall(
                f"condition={condition!r}: self.{condition} is {value!r}, which is none of "
                f"the cases {', '.join(map(repr, cases))}"
            )
        return Transition([cases[value]], switch_step=cases[value])

    @property
    def input(self) -> Any:
        """In a foreach step: this task's item of the foreach list."""
        if not self.__dict__.get("_foreach_stack"):
            raise AttributeError("self.input exists only in steps inside a foreach")
        split_step, index, _ = self._foreach_stack[-1]
        if split_step not in self._foreach_params:
            raise AttributeError(
                "a @parallel step has no self.input: current.parallel.node_index says "
                "which node of the gang this task is"
            )
        return getattr(self, self._foreach_params[split_step])[index]

    @property
    def index(self) -> int | None:
        """In a foreach step: this task's position in the foreach list."""
        stack = self.__dict__.get("_foreach_stack")
        return stack[-1][1] if stack else None

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for each enclosing foreach, outermost first: the
        value is this task's item of that foreach's list."""
        frames = self.__dict__.get("_foreach_stack", [])
        return [(i, n, self._foreach_item(split, i)) for split, i, n in frames]

    def _foreach_item(self, split_step: str, index: int) -> Any:
        try:
            return getattr(self, self._foreach_params[split_step])[index]
        except (AttributeError, KeyError, IndexError, TypeError):
            return None  # the list was renamed or replaced since the split

    def merge_artifacts(
        self, inputs: Inputs, exclude: Sequence[str] = (), include: Sequence[str] = ()
    ) -> None:
        """In a join: carries over every artifact on which the inputs agree. An artifact
        whose value differs between inputs must be set on self first, or excluded.
        Everything is checked first: on an error nothing has been merged."""
        if not self.__dict__.get("_is_join"):
            raise MergeArtifactsException(
                f"merge_artifacts() works only in a join step; {self._step_name!r} is not one"
            )
        if include and exclude:
            raise MergeArtifactsException("pass include= or exclude=, not both")
        candidates: dict[str, list[tuple[InputView, records_pb2.Artifact]]] = {}
        for view in inputs:
            for name, record in view._reader._records.items():
                if name.startswith("_") or name in exclude or (include and name not in include):
                    continue
                candidates.setdefault(name, []).append((view, record))
        missing = [name for name in include if name not in candidates]
        if missing:
            raise MergeArtifactsException(f"include= names {missing}, which no input has")
        merged = {}
        for name, found in candidates.items():
            if name in self.__dict__:
                continue
            keys = {record.content_key for _, record in found}
            if len(keys) > 1:
                sources = ", ".join(view._pathspec for view, _ in found)
                raise MergeArtifactsException(
                    f"artifact {name!r} differs between inputs ({sources}): set self.{name} "
                    f"before merge_artifacts(), or pass exclude=['{name}']"
                )
            merged[name] = found[0][1]
        self._inherited.update(merged)

    # ---- read by the task runner --------------------------------------------------

    def _artifacts_to_store(self) -> tuple[dict[str, Any], dict[str, records_pb2.Artifact]]:
        """(values to serialize, records to pass through unchanged)."""
        values = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        clashes = sorted(set(values) & self._step_names)
        if clashes:
            raise InvalidArtifact(f"artifact(s) {clashes} have the names of steps: rename them")
        passthrough = {}
        for name, record in self._inherited.items():
            if name in values:
                continue
            loaded = self._reader._values.get(name, _NOT_LOADED)
            if loaded is _NOT_LOADED or isinstance(loaded, _IMMUTABLE):
                passthrough[name] = record
            else:  # read and possibly changed in place: store what it is now
                values[name] = loaded
        return values, passthrough


_NOT_LOADED = object()


@functools.cache
def _read_only_names(flow_class: type) -> frozenset[str]:
    """The names a step may not assign on self: the flow's Parameters and its class
    constants (as in Metaflow, where both are read-only properties)."""
    names, seen = set(), set()
    for cls in flow_class.__mro__:  # the nearest definition of a name decides
        if cls.__module__.startswith("ledgerflow.") or cls is object:
            continue
        for name, value in vars(cls).items():
            if name in seen or name.startswith("_"):
                continue
            seen.add(name)
            if callable(value) or isinstance(value, (property, staticmethod, classmethod)):
                continue
            names.add(name)
    return frozenset(names)
