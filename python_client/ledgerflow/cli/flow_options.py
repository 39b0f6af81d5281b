"""A flow's Parameters and ``--with`` as command-line options of ``run`` and ``resume``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ledgerflow._decorators import Retry
from ledgerflow._graph import InvalidGraph
from ledgerflow._graph_message import StepDefaults
from ledgerflow._parameters import (
    IncludeFile,
    JSONType,
    Parameter,
    ParameterContext,
)
from ledgerflow.engine.graph import DEFAULT_MAX_NUM_SPLITS, MAX_FOREACH_SPLITS
from ledgerflow.engine.queues import MAX_PRIORITY, MAX_QUEUE_TIMEOUT_SECONDS, MAX_WORKERS


def flow_parameters(flow_class: type) -> dict[str, Parameter]:
    found: dict[str, Parameter] = {}
    for cls in reversed(flow_class.__mro__):
        for attr, value in vars(cls).items():
            if isinstance(value, Parameter):
                if attr != value.name:
                    raise InvalidGraph(
                        f"parameter {value.name!r} is assigned to class attribute "
                        f"{attr!r}: use the same name for both"
                    )
                if value.name in RESERVED_NAMES:
                    raise InvalidGraph(
                        f"parameter {value.name!r} has the name of an option of run, resume "
                        f"or deploy (--{value.name.replace('_', '-')}): rename it"
                    )
                found[attr] = value
    return found


# The options of `run`, `resume` and `deploy` by their Python names: a parameter of the
# same name would share its option and its LEDGERFLOW_RUN_ variable.
RESERVED_NAMES = frozenset({
    "max_num_splits", "max_workers", "tags", "tag", "code_package", "launcher", "with_",
    "run_id_file", "remote", "detach", "origin_run_id", "step", "branch", "production",
    "deployment_file", "webhooks", "commands", "notify_on", "pylint", "priority",
    "queue_timeout",
})  # fmt: skip


def step_defaults(with_: tuple[str, ...], max_num_splits: int) -> StepDefaults:
    """The command line's settings for every step (--with, --max-num-splits)."""
    return StepDefaults(parse_with(with_), max_num_splits)


def parse_with(specs: tuple[str, ...]) -> Retry | None:
    retry = None
    for spec in specs:
        name, _, args = spec.partition(":")
        if name != "retry":
            raise click.BadParameter(
                f"--with {spec}: only 'retry' can be added to every step from the command line",
                param_hint="--with",
            )
        options: dict[str, float] = {}
        for pair in filter(None, args.split(",")):
            key, _, value = pair.partition("=")
            if key not in ("times", "minutes_between_retries"):
                raise click.BadParameter(
                    f"--with retry takes times= and minutes_between_retries=, not {key!r}"
                )
            options[key] = float(value)
        default = Retry()  # the same defaults as @retry
        retry = Retry(
            times=int(options.get("times", default.times)),
            minutes_between_retries=options.get(
                "minutes_between_retries", default.minutes_between_retries
            ),
        )
    return retry


def with_options(options: list[Any]) -> Callable[[Any], Any]:
    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


_CLICK_TYPES = {int: click.INT, float: click.FLOAT, bool: click.BOOL}


def option_names(name: str) -> list[str]:
    """``--name`` as written, and ``--dashed-name`` when it differs."""
    dashed = name.replace("_", "-")
    return [f"--{name}"] + ([f"--{dashed}"] if dashed != name else [])


def option_settings(param: Parameter) -> dict[str, Any]:
    """The click settings of a parameter's option: its type (so that --help says
    INTEGER for an int default), and its help with the default or [required]."""
    settings: dict[str, Any] = {"default": None}
    if param.separator is not None:  # text, split into the type's items by convert()
        settings["metavar"] = f"VALUE[{param.separator}VALUE...]"
    elif param.type in _CLICK_TYPES:
        settings["type"] = _CLICK_TYPES[param.type]
    elif param.type is JSONType:
        settings["metavar"] = "JSON"
    elif isinstance(param, IncludeFile):
        settings["metavar"] = "PATH"
    suffix = (
        f" [default: {default_text(param)}]"
        if param.default is not None
        else " [required]"
        if param.required
        else ""
    )
    settings["help"] = (param.help or "") + suffix
    return settings


def default_text(param: Parameter) -> str:
    """The default as --help and `show` say it (a function's is computed per run)."""
    if param.default_is_function:
        return "computed when the run starts"
    return repr(param.default)


def parameter_values(
    params: dict[str, Parameter], given: dict[str, Any], flow_name: str, user_name: str
) -> dict[str, Any]:
    """Each parameter's value: the option given, else its LEDGERFLOW_RUN_NAME variable,
    else its default (called now when it is a function); a CLI error for a required one
    missing or a value that does not convert."""
    values = {}
    for name, param in params.items():
        given_value = given.get(name)
        source = f"--{name}"
        if given_value is None and os.environ.get(param.environment_variable):
            given_value = os.environ[param.environment_variable]
            source = param.environment_variable
        try:
            if given_value is not None:
                values[name] = param.convert(given_value)
                continue
            values[name] = param.default_value(ParameterContext(flow_name, user_name, name))
        except (ValueError, TypeError) as error:
            raise click.BadParameter(str(error), param_hint=source) from None
        except Exception as error:  # the user's default function: say which failed
            raise click.UsageError(
                f"the default of --{name} failed: {type(error).__name__}: {error}"
            ) from None
        if values[name] is None and param.required:
            raise click.UsageError(
                f"missing parameter --{name}: {param.help or 'it has no default'} (or set "
                f"{param.environment_variable})"
            )
    return values


def parameter_lines(params: dict[str, Parameter]) -> list[str]:
    """What `show` prints for the parameters: spelling, type (as --help names it),
    default and help."""
    lines = []
    for name, param in params.items():
        settings = option_settings(param)
        kind = settings.get("metavar") or settings.get("type", click.STRING).name.upper()
        if param.default is not None:
            default = f" = {default_text(param)}"
        else:
            default = " (required)" if param.required else ""
        about = f": {param.help}" if param.help else ""
        lines.append(f"  --{name} {kind}{default}{about}")
    return lines


# @project's branches, as Metaflow spells them (before the command, or after `deploy`).
PROJECT_OPTIONS = [
    click.option(
        "--branch",
        default=None,
        help="With @project: run or deploy on branch test.BRANCH (default: user.<you>).",
    ),
    click.option(
        "--production",
        is_flag=True,
        help="With @project: run or deploy on the production branch (prod).",
    ),
]

REMOTE_OPTIONS = [
    click.option(
        "--remote",
        is_flag=True,
        help="Submit the run to the metadata service (LEDGERFLOW_SERVICE): executors run "
        "its tasks with the resources each step asks for; this command follows it.",
    ),
    click.option(
        "--detach", is_flag=True, help="With --remote: print the run id and return at once."
    ),
]

# How the service's queue treats a remote run's tasks (docs/executor.md, "Queues"):
# for `run --remote`, `resume --remote` and each run of a deployment, within the
# bounds the service checks too (engine/queues.py).


def queue_options(when: str) -> list[Callable[..., Any]]:
    """--priority and --queue-timeout, for the runs the service queues: `when` says
    which ("With --remote: " for run and resume; "" for deploy, whose runs all are)."""

    def said(text: str) -> str:
        return when + text if when else text[0].upper() + text[1:]

    return [
        click.option(
            "--priority",
            type=click.IntRange(-MAX_PRIORITY, MAX_PRIORITY),
            default=None,
            help=said(
                "executors take the tasks of higher-priority runs first "
                f"(-{MAX_PRIORITY} to {MAX_PRIORITY}; default 0)."
            ),
        ),
        click.option(
            "--queue-timeout",
            type=click.IntRange(1, MAX_QUEUE_TIMEOUT_SECONDS),
            default=None,
            metavar="SECONDS",
            help=said(
                "a task that waits this long in the queue without any executor taking it "
                "fails, and its run with it, saying why it waited (default: no limit)."
            ),
        ),
    ]


QUEUE_OPTIONS = queue_options("With --remote: ")
# The same for each run of a deployment (`deploy`), with its cap (run's --max-workers
# is the local runtime's too: see RUN_OPTIONS).
DEPLOY_QUEUE_OPTIONS = [
    *queue_options(""),
    click.option(
        "--max-workers",
        type=click.IntRange(1, MAX_WORKERS),
        default=None,
        help="At most this many tasks of each run leased or running at once, across all "
        "executors (default: as the executors' capacity allows).",
    ),
]

MAX_NUM_SPLITS_OPTION = click.option(
    "--max-num-splits",
    default=DEFAULT_MAX_NUM_SPLITS,
    show_default=True,
    type=click.IntRange(1, MAX_FOREACH_SPLITS),
    envvar="LEDGERFLOW_RUN_MAX_NUM_SPLITS",
    help="The most items one foreach may split into (a task that splits into more "
    f"fails, saying so); the service takes at most {MAX_FOREACH_SPLITS:,}. "
    "[env LEDGERFLOW_RUN_MAX_NUM_SPLITS]",
)

RUN_OPTIONS = [
    MAX_NUM_SPLITS_OPTION,
    click.option(
        "--max-workers",
        default=4,
        show_default=True,
        type=click.IntRange(1, 512),
        help="How many tasks run at once. With --remote: at most this many of the run's "
        "tasks leased or running at once across all executors (not given: no cap).",
    ),
    click.option("--tag", "tags", multiple=True, help="Tag the run (repeatable)."),
    click.option(
        "--code-package",
        is_flag=True,
        help="Store the flow file and the files beside it (see --package-suffixes) as the "
        "run's code package: run.code reads it back.",
    ),
    click.option(
        "--launcher",
        type=click.Choice(["fork", "command"]),
        default="fork",
        show_default=True,
        help="How each task gets its process: a fork of the runtime (fast), or the task "
        "entry point 'python FLOW_FILE task' in a new interpreter, as containers run it.",
    ),
    click.option(
        "--with",
        "with_",
        multiple=True,
        metavar="retry[:times=N,...]",
        help="Add a decorator to every step (repeatable).",
    ),
    click.option(
        "--run-id-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Write the run's id to this file as soon as the run has one, so that a "
        "script (or ledgerflow.Runner) that started this command can find the run.",
    ),
]
