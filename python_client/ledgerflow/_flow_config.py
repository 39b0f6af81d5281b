"""Configs (Metaflow's ``Config`` and ``config_expr``): values a flow reads from a file
or a JSON text given on its command line, fixed for the whole run.

A config differs from a Parameter in *when* it is known: its value is loaded before
the flow's graph is read, so it may set decorator arguments (``@resources(cpu=
config.resources.cpu)``, ``@retry(times=config_expr("config.retries"))``) and
Parameter defaults. While the class body runs nothing is loaded yet, so reading a
config there gives a :class:`DeferredValue`, a note of what to read; a decorator given
one (directly or inside a list or dict) waits, through :func:`deferrable`, until the
flow's command line has loaded the configs and replays it with plain values
(``ledgerflow.cli.flow_configs``). Steps and the client read a config as a
:class:`ConfigValue`: keys as attributes or items, read-only all the way down.

This module imports nothing of the SDK: the decorators, parameters and cards import it.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")

# Where a decorator given a deferred argument leaves itself on the step function or
# flow class it decorates, to be replayed once the configs are loaded.
_PENDING = "_ledgerflow_deferred_decorators"


class ConfigError(ValueError):
    """A config that cannot be loaded or read; the flow's command line reports it in
    one line and runs nothing."""


# ---- the value steps read -------------------------------------------------------------


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, ConfigValue) else ConfigValue(value)
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


def plain(value: Any) -> Any:
    """A config's value (or part of one) as plain JSON-like data: dicts and lists."""
    if isinstance(value, ConfigValue):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class ConfigValue(Mapping[str, Any]):
    """A loaded config: ``self.config.model.lr`` or ``self.config["model"]["lr"]``.
    Nested objects are ConfigValues and lists are tuples, so nothing in it can be
    changed: a run's tasks, its resume and the client all read the value it recorded.
    A key that is a method name of a mapping (``items``, ``keys``, ``get``) or starts
    with ``_`` is read as an item."""

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", {key: _frozen(item) for key, item in data.items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            keys = ", ".join(map(str, self._data)) or "none"
            raise AttributeError(f"the config has no key {name!r} (its keys: {keys})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r}: a config's value is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete {name!r}: a config's value is read-only")

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(f"cannot set [{key!r}]: a config's value is read-only")

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"cannot delete [{key!r}]: a config's value is read-only")

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return (ConfigValue, (self.to_dict(),))

    def __repr__(self) -> str:
        return f"ConfigValue({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain copy (dicts and lists), e.g. to change or to serialize."""
        return {key: plain(item) for key, item in self._data.items()}


class ConfigRecord:
    """How a config's value is recorded with the run, next to its parameters (the
    ``record``/``restore`` of a Parameter): JSON text, read back as a ConfigValue."""

    def record(self, value: Any, store: Any) -> str:
        return json.dumps(plain(value))

    def restore(self, recorded: str, store: Any) -> Any:
        value = json.loads(recorded)
        return ConfigValue(value) if isinstance(value, Mapping) else value


CONFIG_RECORD = ConfigRecord()

# ---- what the class body sees ---------------------------------------------------------


class DeferredValue:
    """A config read before it is loaded (in the class body): ``config.resources.cpu``
    or ``config_expr('config.retries + 1')``, kept as what to read, and read by
    :meth:`resolve` once the configs are loaded."""

    __slots__ = ("_config", "_expression", "_namespace", "_path")

    def __init__(
        self,
        *,
        config: str = "",
        expression: str = "",
        namespace: Mapping[str, Any] | None = None,
        path: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        self._config, self._expression = config, expression
        self._namespace, self._path = namespace or {}, path

    def _then(self, step: tuple[str, Any]) -> DeferredValue:
        return DeferredValue(
            config=self._config, expression=self._expression, namespace=self._namespace,
            path=(*self._path, step),
        )  # fmt: skip

    def __getattr__(self, name: str) -> DeferredValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._then((".", name))

    def __getitem__(self, key: Any) -> DeferredValue:
        return self._then(("[]", key))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"{self!r} {_NOT_YET}")

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} {_NOT_YET}")

    def _no_value(self, *_: Any) -> Any:
        raise TypeError(f"{self!r} {_NOT_YET} (config_expr('...') computes with it)")

    # Arithmetic, comparisons and conversions in the class body: a value not loaded yet.
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _no_value
    __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __pow__ = __neg__ = _no_value
    __lt__ = __le__ = __gt__ = __ge__ = _no_value
    __int__ = __float__ = __index__ = __len__ = __format__ = __str__ = _no_value
    __eq__ = __ne__ = _no_value  # type: ignore[assignment]
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        text = f"config_expr({self._expression!r})" if self._expression else self._config
        for kind, key in self._path:
            text += f".{key}" if kind == "." else f"[{key!r}]"
        return text

    def resolve(self, values: Mapping[str, Any]) -> Any:
        """The value, as plain data, given each config's loaded value by name;
        ConfigError saying what could not be read."""
        if self._expression:
            try:
                # The flow author's own expression, as a decorator argument would be.
                current = eval(self._expression, {**self._namespace, **values})
            except Exception as error:
                raise ConfigError(f"{self!r} failed: {type(error).__name__}: {error}") from None
        elif self._config not in values:
            raise ConfigError(
                f"{self!r}: no config named {self._config!r} is an attribute of the flow class"
            )
        else:
            current = values[self._config]
        for kind, key in self._path:
            if current is None:
                raise ConfigError(f"{self!r}: config {self._config!r} has no value (none given)")
            try:
                if kind == "." and not isinstance(current, ConfigValue):
                    current = getattr(current, key)
                else:
                    current = current[key]
            except (KeyError, IndexError, TypeError, AttributeError):
                keys = (
                    f" (its keys: {', '.join(map(str, current))})"
                    if isinstance(current, Mapping)
                    else ""
                )
                raise ConfigError(f"{self!r}: the config has no key {key!r}{keys}") from None
        return plain(current)


_NOT_YET = (
    "has no value while the class is defined: configs are loaded when the command starts. "
    "Use it as a decorator argument or a Parameter default, or read self.<config> in a step"
)


def config_expr(expression: str) -> Any:
    """A Python expression over the flow's configs (by name), read once the configs are
    loaded: ``@retry(times=config_expr("config.retries"))``. It may also use the names
    of the module it is written in."""
    if not isinstance(expression, str):
        raise TypeError(f"config_expr takes the expression as text, not {type(expression)}")
    try:
        compile(expression, "<config_expr>", "eval")
    except SyntaxError as error:
        raise ValueError(
            f"config_expr({expression!r}) is not a Python expression: {error.msg}"
        ) from None
    return DeferredValue(expression=expression, namespace=sys._getframe(1).f_globals)


def _check_parser(parser: Callable[[str], Any] | str | None) -> None:
    named = isinstance(parser, str) and "." in parser
    if parser is not None and not callable(parser) and not named:
        raise ValueError(f"parser {parser!r} must be a function or a 'module.function' name")


@dataclass(frozen=True)
class ConfigSpec:
    """What a Config was declared with (kept apart so that its attributes are free to
    read the config's keys)."""

    name: str
    default: str | None
    default_value: Mapping[str, Any] | str | None
    help: str
    required: bool
    parser: Callable[[str], Any] | str | None


class Config:
    """A flow's config, a class attribute of the flow: ``config = Config("config",
    default="config.json")``. Its value is a JSON object read from ``--config NAME
    PATH`` or ``--config-value NAME JSON`` (options before the command: ``python
    flow.py --config config prod.json run``), else from the file `default` (relative to
    the current folder), else `default_value` (a dict, or a text for the parser);
    with none of them it is None, or an error when `required`. `parser` reads a file's
    text into a dict: a function or a ``"module.function"`` name; by default JSON, or
    TOML for a ``.toml`` file. Steps read ``self.config.key``; decorators and
    Parameter defaults may use ``config.key`` or :func:`config_expr`."""

    _spec: ConfigSpec

    def __init__(
        self,
        name: str,
        default: str | None = None,
        default_value: Mapping[str, Any] | str | None = None,
        help: str = "",
        required: bool = False,
        parser: Callable[[str], Any] | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"config name {name!r} must be a Python identifier")
        if default is not None and default_value is not None:
            raise ValueError(f"config {name!r}: give default= (a file) or default_value=, not both")
        if default is not None and not isinstance(default, str):
            raise ValueError(f"config {name!r}: default= is a file's path, not {default!r}")
        if default_value is not None and not isinstance(default_value, Mapping | str):
            raise ValueError(f"config {name!r}: default_value= is a dict or a text to parse")
        _check_parser(parser)
        spec = ConfigSpec(name, default, default_value, help or "", bool(required), parser)
        object.__setattr__(self, "_spec", spec)

    def __getattr__(self, key: str) -> DeferredValue:
        if key.startswith("_"):
            raise AttributeError(key)
        return DeferredValue(config=self._spec.name, path=((".", key),))

    def __getitem__(self, key: Any) -> DeferredValue:
        return DeferredValue(config=self._spec.name, path=(("[]", key),))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"config {self._spec.name!r} {_NOT_YET}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on config {self._spec.name!r}")

    def __repr__(self) -> str:
        return f"Config({self._spec.name!r})"


# ---- decorators that wait for the configs ---------------------------------------------


def has_deferred(value: Any) -> bool:
    """Whether `value` reads a config (itself, or inside a list, tuple, set or dict)."""
    if isinstance(value, DeferredValue | Config):
        return True
    if isinstance(value, dict):
        return any(has_deferred(k) or has_deferred(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(has_deferred(item) for item in value)
    return False


def resolve_deferred(value: Any, values: Mapping[str, Any]) -> Any:
    """`value` with each config read in it replaced by what it reads (plain data)."""
    if isinstance(value, DeferredValue):
        return value.resolve(values)
    if isinstance(value, Config):
        return plain(values.get(value._spec.name))
    if isinstance(value, dict):
        return {resolve_deferred(k, values): resolve_deferred(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(resolve_deferred(item, values) for item in value)
    return value


@dataclass(frozen=True)
class PendingDecorator:
    """A decorator given a config's value before it was loaded, with its options."""

    decorator: Callable[..., Any]
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return f"@{getattr(self.decorator, '__name__', 'decorator')}"

    def apply(self, target: Any, values: Mapping[str, Any]) -> None:
        """Decorates `target` as it would have been, with the options' values read."""
        self.decorator(**resolve_deferred(self.options, values))(target)


def pending_decorators(target: Any) -> list[PendingDecorator]:
    """The decorators waiting on `target` (a step function or a flow class), in the
    order Python applied them (bottom up)."""
    return list(getattr(target, "__dict__", {}).get(_PENDING, ()))


def deferrable(decorator: Callable[P, R]) -> Callable[P, R]:
    """Lets a decorator of the form ``deco(target=None, *, options...)`` take options
    that read configs: called with one, it applies nothing yet and leaves itself on
    its target, for the command line to replay with the loaded values (see
    ``ledgerflow.cli.flow_configs.apply_configs``). Without one it is the decorator."""

    @functools.wraps(decorator)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not has_deferred(kwargs) and not has_deferred(args[1:]):
            return decorator(*args, **kwargs)
        if len(args) > 1:
            raise TypeError(f"@{decorator.__name__} takes its options by name")
        pending = PendingDecorator(decorator, dict(kwargs))

        def later(target: Any) -> Any:
            waiting = target.__dict__.get(_PENDING)
            if waiting is None:
                waiting = []
                setattr(target, _PENDING, waiting)
            waiting.append(pending)
            return target

        return cast(R, later(args[0]) if args and args[0] is not None else later)

    return wrapper
