"""A flow's Configs on its command line: ``--config NAME PATH`` and ``--config-value
NAME JSON``, options of the flow's command itself (before ``run``, as Metaflow has
them), so that one loading serves run, resume, show, check and deploy alike.

The values are loaded once, before anything reads the graph, and then *applied*: the
decorators that were given a config's value while the class was defined (see
``ledgerflow._flow_config.deferrable``) are replayed with plain values, and Parameter
defaults and class constants that read a config get theirs. From then on the
decorators' stored options are ordinary ones, so the graph message (a local run,
``run --remote``, ``deploy``) and ``show`` need nothing of configs. The values are
recorded with the run's parameters (``ConfigRecord``): a task, a resume and the client
read them back from the ledger, never from the file again.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from ledgerflow._decorators import step_options
from ledgerflow._flow_config import (
    CONFIG_RECORD,
    Config,
    ConfigError,
    ConfigValue,
    DeferredValue,
    PendingDecorator,
    has_deferred,
    pending_decorators,
    resolve_deferred,
)
from ledgerflow._flow_decorators import flow_notify, flow_project, flow_schedule, flow_triggers
from ledgerflow._graph import FlowGraph, InvalidGraph
from ledgerflow._parameters import Parameter, Recorded
from ledgerflow.cli.flow_options import RESERVED_NAMES
from ledgerflow.engine.projects import ProjectError
from ledgerflow.engine.schedules import ScheduleError
from ledgerflow.engine.triggers import TriggerError

# Each config's value by name: a ConfigValue, or None for one not given and without
# a default.
ConfigValues = dict[str, ConfigValue | None]

# Set on a flow class once its configs are applied (a process applies them once).
_APPLIED = "_ledgerflow_config_values"

CONFIG_OPTIONS = [
    click.option(
        "--config",
        "config",
        nargs=2,
        multiple=True,
        metavar="NAME PATH",
        help="Read config NAME from the file at PATH (JSON unless the config's parser "
        "reads another format; repeatable). Goes before the command: --config NAME PATH run.",
    ),
    click.option(
        "--config-value",
        "config_value",
        nargs=2,
        multiple=True,
        metavar="NAME JSON",
        help="Set config NAME to this JSON object (repeatable).",
    ),
]


def flow_configs(flow_class: type, params: Mapping[str, Parameter]) -> dict[str, Config]:
    """The flow's Configs by name; InvalidGraph for a name taken by a parameter or an
    option of run, resume or deploy, or one that differs from its attribute's."""
    found: dict[str, Config] = {}
    for cls in reversed(flow_class.__mro__):
        for attr, value in vars(cls).items():
            if not isinstance(value, Config):
                continue
            name = value._spec.name
            if attr != name:
                raise InvalidGraph(
                    f"config {name!r} is assigned to class attribute {attr!r}: use the same "
                    "name for both"
                )
            if name in params:
                raise InvalidGraph(f"config {name!r} has the name of a parameter: rename one")
            if name in RESERVED_NAMES:
                raise InvalidGraph(
                    f"config {name!r} has the name of an option of run, resume or deploy "
                    f"(--{name.replace('_', '-')}): rename it"
                )
            found[attr] = value
    return found


def recorded_with(
    params: Mapping[str, Parameter], configs: Mapping[str, Config]
) -> dict[str, Recorded]:
    """How each value the run records is written and read back: the parameters, then
    the configs (both go to the run's parameters)."""
    return {**params, **{name: CONFIG_RECORD for name in configs}}


# ---- loading ----------------------------------------------------------------------------


def load_configs(
    flow_name: str,
    configs: Mapping[str, Config],
    files: tuple[tuple[str, str], ...] = (),
    texts: tuple[tuple[str, str], ...] = (),
) -> ConfigValues:
    """Each config's value, from --config / --config-value, else its default file,
    else its default_value; a one-line ClickException for anything wrong."""
    given: dict[str, tuple[str, str]] = {}
    for option, pairs in (("--config", files), ("--config-value", texts)):
        for name, argument in pairs:
            if name not in configs:
                known = ", ".join(configs) or "none"
                raise click.ClickException(
                    f"{option} {name}: {flow_name} has no config named {name!r} "
                    f"(its configs: {known})"
                )
            if name in given:
                raise click.ClickException(f"config {name!r} is given twice: give it once")
            given[name] = (option, argument)
    try:
        return {name: _load(config, given.get(name)) for name, config in configs.items()}
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _load(config: Config, given: tuple[str, str] | None) -> ConfigValue | None:
    spec = config._spec
    if given is not None and given[0] == "--config-value":
        text = given[1]
        return _checked(spec.name, _parse_json(spec.name, text, "--config-value"), "--config-value")
    if given is not None or spec.default is not None:
        path = given[1] if given is not None else str(spec.default)
        return _from_file(config, Path(path), default=given is None)
    if isinstance(spec.default_value, str):
        return _checked(spec.name, _parse(config, spec.default_value, "its default_value"),
                        "its default_value")  # fmt: skip
    if spec.default_value is not None:
        return _checked(spec.name, spec.default_value, "its default_value")
    if spec.required:
        raise ConfigError(
            f"config {spec.name!r} is required: give --config {spec.name} PATH or "
            f"--config-value {spec.name} JSON before the command"
        )
    return None


def _from_file(config: Config, path: Path, *, default: bool) -> ConfigValue:
    name = config._spec.name
    what = f"its default file {path}" if default else f"file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        hint = f": give --config {name} PATH" if default else ""
        raise ConfigError(f"config {name!r}: {what} does not exist{where}{hint}") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise ConfigError(f"config {name!r}: cannot read {what}: {reason}") from None
    return _checked(name, _parse(config, text, str(path)), str(path))


def _parse(config: Config, text: str, source: str) -> Any:
    """The text read by the config's parser: its own, else TOML for a .toml file,
    else JSON."""
    spec = config._spec
    if spec.parser is None:
        if source.endswith(".toml"):
            import tomllib  # only here: most flows have no TOML config

            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(
                    f"config {spec.name!r}: {source} is not valid TOML: {error}"
                ) from None
        return _parse_json(spec.name, text, source)
    parser = _parser(spec.name, spec.parser)
    label = spec.parser if isinstance(spec.parser, str) else _name_of(spec.parser)
    try:
        return parser(text)
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise ConfigError(
            f"config {spec.name!r}: its parser {label} failed on {source}: {reason}"
        ) from None


def _parse_json(name: str, text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"config {name!r}: {source} is not valid JSON: {error}") from None


def _parser(name: str, parser: Callable[[str], Any] | str) -> Callable[[str], Any]:
    """A parser given as a function, or by its ``module.function`` name."""
    if callable(parser):
        return parser
    module_name, _, function_name = parser.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"config {name!r}: cannot load its parser {parser}: {error}") from None
    if not callable(function):
        raise ConfigError(f"config {name!r}: its parser {parser} is not a function")
    return function  # type: ignore[no-any-return]


def _name_of(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", repr(function))
    return f"{module}.{name}" if module else name


def _checked(name: str, value: Any, source: str) -> ConfigValue:
    """The value as every reader will see it: a JSON object, as the run records it
    (so a task, a resume and the client read exactly what the run started with)."""
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"config {name!r}: {source} holds a {type(value).__name__}, not an object of "
            "keys and values"
        )
    try:
        recorded = json.loads(json.dumps(_plain_mapping(value)))
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"config {name!r}: {source} holds a value that is not JSON data: {error}"
        ) from None
    return ConfigValue(recorded)


def _plain_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return value.to_dict() if isinstance(value, ConfigValue) else dict(value)


def origin_configs(
    flow_name: str, configs: Mapping[str, Config], recorded: Mapping[str, Any]
) -> ConfigValues:
    """The configs of a resumed run: the origin's values, as Metaflow's resume reuses
    them; a config the origin did not have (added since) is loaded from its default."""
    missing = {name: config for name, config in configs.items() if name not in recorded}
    values = load_configs(flow_name, missing)
    return {name: values[name] if name in missing else recorded[name] for name in configs}


# ---- applying ---------------------------------------------------------------------------


def apply_configs(flow_class: type, graph: FlowGraph, values: ConfigValues) -> None:
    """Replays each decorator that waited for the configs, with plain values, and sets
    the Parameter defaults and class constants that read one; then checks what the
    replayed decorators set, as the flow's loading checks the others. A one-line
    ClickException for a config that lacks what is read or a value a decorator
    refuses. A process applies its configs once."""
    applied = vars(flow_class).get(_APPLIED)
    if applied is not None:
        if applied == values:
            return
        raise click.ClickException(f"{graph.name}'s configs are already set in this process")
    setattr(flow_class, _APPLIED, dict(values))
    try:
        _apply(flow_class, values)
        _check_decorators(flow_class, graph)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _apply(flow_class: type, values: ConfigValues) -> None:
    for cls in reversed(flow_class.__mro__):
        if cls.__module__.startswith("ledgerflow.") or cls is object:
            continue
        for attr, value in list(vars(cls).items()):
            if isinstance(value, Parameter) and has_deferred(value.default):
                value.settle_default(_read(value.default, values, f"the default of --{attr}"))
            elif isinstance(value, DeferredValue) or (
                not isinstance(value, Config) and has_deferred(value)
            ):
                setattr(cls, attr, _read(value, values, f"{cls.__name__}.{attr}"))
            for pending in pending_decorators(value):
                _replay(pending, value, values, f"step {attr}")
        for pending in pending_decorators(cls):
            _replay(pending, cls, values, cls.__name__)


def _read(value: Any, values: ConfigValues, what: str) -> Any:
    try:
        return resolve_deferred(value, values)
    except ConfigError as error:
        raise ConfigError(f"{what}: {error}") from None


def _replay(pending: PendingDecorator, target: Any, values: ConfigValues, where: str) -> None:
    """Applies a waiting decorator; a ConfigError naming it and `where` it is when a
    config lacks what it reads or the decorator refuses the value."""
    try:
        pending.apply(target, values)
    except (ValueError, TypeError) as error:  # ConfigError included
        text = str(error)
        if text.startswith(f"{pending.name}:") or text.startswith(f"{pending.name} "):
            raise ConfigError(f"{where}: {text}") from None  # the decorator's own message
        raise ConfigError(f"{pending.name} on {where}: {text}") from None


def _check_decorators(flow_class: type, graph: FlowGraph) -> None:
    """What the flow's loading checks for the decorators given plainly (the task
    hooks with the graph, the flow decorators' stored errors), for the replayed ones."""
    for node in graph:
        for hook in step_options(getattr(flow_class, node.name, None)).hooks:
            try:
                hook.check_step(node.name)
            except ValueError as error:
                raise ConfigError(str(error)) from None
    try:
        flow_schedule(flow_class)
        flow_project(flow_class)
        flow_triggers(flow_class)
        flow_notify(flow_class)
    except (ScheduleError, ProjectError, TriggerError) as error:
        decorator = {ScheduleError: "@schedule", ProjectError: "@project"}.get(type(error), "")
        raise ConfigError(f"{graph.name}'s {decorator or 'decorator'}: {error}") from None


def config_lines(configs: Mapping[str, Config], values: ConfigValues) -> list[str]:
    """What `show` prints for the configs: each one's value as JSON, and its help."""
    lines = []
    for name, value in values.items():
        text = json.dumps(value.to_dict()) if value is not None else "None"
        about = configs[name]._spec.help
        lines.append(f"  {name} = {text}" + (f": {about}" if about else ""))
    return lines
