"""The command line of a flow file: ``python myflow.py run|resume|show|check|logs|tag|dump``."""

from __future__ import annotations

import faulthandler
import inspect
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledgerflow._cli_errors import friendly_errors
from ledgerflow._code_package import DEFAULT_SUFFIXES, save_package
from ledgerflow._config import Config, ConfigError, load_config, open_datastore
from ledgerflow._decorators import Retry
from ledgerflow._flowspec import FlowSpec
from ledgerflow._graph import FlowGraph, InvalidGraph
from ledgerflow._launcher import task_process
from ledgerflow._parameters import (
    IncludeFile,
    JSONType,
    Parameter,
    parameters_as_json,
    parameters_from_json,
)
from ledgerflow._task import TaskRequest, run_attempt

if TYPE_CHECKING:
    from ledgerflow._metadata import MetadataClient
    from ledgerflow._resume import ResumeOrigin

# What only `run`, `resume` and the other commands need is imported in them: every task
# process starts through this module (`python FLOW task`), and pays for each import.


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
                found[attr] = value
    return found


class _Session:
    """What every command needs: settings, the ledger, the datastore."""

    def __init__(
        self,
        flow_class: type[FlowSpec],
        graph: FlowGraph,
        metadata: str | None,
        datastore: str | None,
    ) -> None:
        self.flow_class, self.graph = flow_class, graph
        try:
            self.config: Config = load_config(metadata=metadata, datastore=datastore)
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        self._metadata: MetadataClient | None = None
        self._store: Any = None
        self.package_suffixes: tuple[str, ...] = DEFAULT_SUFFIXES

    @property
    def metadata(self) -> MetadataClient:
        if self._metadata is None:
            from ledgerflow._metadata import connect

            self._metadata = connect(self.config)
        return self._metadata

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = open_datastore(self.config)
        return self._store


def _parse_with(specs: tuple[str, ...]) -> Retry | None:
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


def _execute(
    session: _Session,
    parameters: dict[str, Any],
    params: dict[str, Parameter],
    max_workers: int,
    tags: tuple[str, ...],
    with_: tuple[str, ...],
    launcher: str,
    code_package: bool,
    origin: ResumeOrigin | None = None,
) -> None:
    from ledgerflow._launcher import CommandLauncher
    from ledgerflow._runtime import LocalRuntime

    flow_file = sys.modules[session.flow_class.__module__].__file__
    package_key = (
        save_package(session.store, Path(str(flow_file)), session.package_suffixes)
        if code_package
        else ""
    )
    runtime = LocalRuntime(
        session.flow_class,
        session.graph,
        session.metadata,
        session.store,
        username=session.config.username,
        parameters=parameters,
        parameters_json=parameters_as_json(parameters, params, session.store),
        max_workers=max_workers,
        tags=tags,
        default_retry=_parse_with(with_),
        origin=origin,
        metadata_kind=session.config.metadata,
        launcher=CommandLauncher(str(flow_file)) if launcher == "command" else None,
        code_package_key=package_key,
    )
    result = runtime.run()
    session.metadata.close()
    sys.exit(0 if result.succeeded else 1)


def _submit(
    session: _Session,
    parameters: dict[str, Any],
    params: dict[str, Parameter],
    tags: tuple[str, ...],
    with_: tuple[str, ...],
    detach: bool,
    origin: ResumeOrigin | None = None,
) -> None:
    """run --remote (and resume --remote, given the origin): submits the run, then
    follows it (or returns at once)."""
    from ledgerflow._progress import RunReporter
    from ledgerflow._remote import follow, submit

    if session.config.metadata != "service":
        raise click.UsageError(
            "run --remote needs a metadata service that executors reach: set "
            "LEDGERFLOW_SERVICE=HOST:PORT (and start executors with `ledgerflow executor`)"
        )
    flow_file = Path(str(sys.modules[session.flow_class.__module__].__file__))
    run_id = submit(
        session.metadata, session.store, session.flow_class, session.graph, flow_file,
        username=session.config.username,
        parameters_json=parameters_as_json(parameters, params, session.store),
        tags=tags, package_suffixes=session.package_suffixes, default_retry=_parse_with(with_),
        origin=origin,
    )  # fmt: skip
    flow = session.graph.name
    if detach:
        click.echo(run_id)
        sys.exit(0)
    reporter = RunReporter()
    reporter.run_started(flow, run_id, session.config.username, "remote on executors via service")
    try:
        ok = follow(session.metadata, flow, run_id, reporter)
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped following; {flow}/{run_id} goes on on the executors. Stop it with "
            f"`ledgerflow cancel {flow}/{run_id}`.",
            err=True,
        )
        sys.exit(130)
    session.metadata.close()
    sys.exit(0 if ok else 1)


_remote_options = [
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

_run_options = [
    click.option(
        "--max-workers",
        default=4,
        show_default=True,
        type=click.IntRange(1, 512),
        help="How many tasks run at once.",
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
]


def _with_options(options: list[Any]) -> Callable[[Any], Any]:
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
    if param.type in _CLICK_TYPES:
        settings["type"] = _CLICK_TYPES[param.type]
    elif param.type is JSONType:
        settings["metavar"] = "JSON"
    elif isinstance(param, IncludeFile):
        settings["metavar"] = "PATH"
    suffix = (
        f" [default: {param.default!r}]"
        if param.default is not None
        else " [required]"
        if param.required
        else ""
    )
    settings["help"] = (param.help or "") + suffix
    return settings


def parameter_lines(params: dict[str, Parameter]) -> list[str]:
    """What `show` prints for the parameters: spelling, type (as --help names it),
    default and help."""
    lines = []
    for name, param in params.items():
        settings = option_settings(param)
        kind = settings.get("metavar") or settings.get("type", click.STRING).name.upper()
        if param.default is not None:
            default = f" = {param.default!r}"
        else:
            default = " (required)" if param.required else ""
        about = f": {param.help}" if param.help else ""
        lines.append(f"  --{name} {kind}{default}{about}")
    return lines


def _lint(flow_class: type[FlowSpec]) -> None:
    """Stops with pylint's report when it finds errors in the flow file."""
    from ledgerflow._lint import pylint_available, pylint_errors

    if not pylint_available():
        click.echo("pylint is not installed: extra checks are off (pip install pylint)", err=True)
        return
    report = pylint_errors(str(sys.modules[flow_class.__module__].__file__))
    if report:
        raise click.ClickException(
            f"pylint found errors in the flow file:\n{report}\n"
            "Fix them, or run with --no-pylint to skip this check."
        )


def _group_help(name: str, doc: str | None) -> str:
    """The flow's name and its whole docstring, paragraphs kept (click's ``\\b``
    marks a paragraph it must not rewrap)."""
    if not doc or not doc.strip():
        return name
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return f"{name}\n\n" + "\n\n".join(f"\b\n{p}" for p in paragraphs)


def build_cli(flow_class: type[FlowSpec], graph: FlowGraph) -> click.Group:
    params = flow_parameters(flow_class)

    @click.group(help=_group_help(graph.name, flow_class.__doc__))
    @click.option(
        "--metadata",
        type=click.Choice(["local", "service"]),
        default=None,
        help="Where the ledger is: embedded SQLite (local) or the service at LEDGERFLOW_SERVICE.",
    )
    @click.option(
        "--datastore",
        type=click.Choice(["local", "s3"]),
        default=None,
        help="Where artifacts go (default: LEDGERFLOW_DATASTORE or local).",
    )
    @click.option(
        "--package-suffixes",
        default=",".join(DEFAULT_SUFFIXES),
        show_default=True,
        help="Which files beside the flow file its code package holds, by suffix.",
    )
    @click.option(
        "--pylint/--no-pylint",
        default=None,
        help="Check the flow file with pylint's error checks before run, resume and check, "
        "when pylint is installed (default: on; LEDGERFLOW_PYLINT=0 turns it off).",
    )
    @click.pass_context
    def cli(
        ctx: click.Context,
        metadata: str | None,
        datastore: str | None,
        package_suffixes: str,
        pylint: bool | None,
    ) -> None:
        ctx.obj = _Session(flow_class, graph, metadata, datastore)
        ctx.obj.package_suffixes = tuple(
            suffix.strip() for suffix in package_suffixes.split(",") if suffix.strip()
        )
        if pylint is None:
            pylint = os.environ.get("LEDGERFLOW_PYLINT", "1").lower() not in ("0", "false", "no")
        if pylint and ctx.invoked_subcommand in ("run", "resume", "check"):
            _lint(flow_class)

    def parameter_options(command: Any) -> Any:
        """One option per parameter, named as Metaflow names it (``--movie_data`` for
        ``Parameter('movie_data')``), with the dashed spelling as an alias."""
        for param in reversed(list(params.values())):
            command = click.option(*option_names(param.name), param.name, **option_settings(param))(
                command
            )
        return command

    @cli.command()
    @_with_options(_run_options)
    @_with_options(_remote_options)
    @parameter_options
    @click.pass_obj
    @friendly_errors
    def run(
        session: _Session,
        max_workers: int,
        tags: tuple[str, ...],
        code_package: bool,
        launcher: str,
        with_: tuple[str, ...],
        remote: bool,
        detach: bool,
        **raw: Any,
    ) -> None:
        """Run the flow from start to end."""
        if detach and not remote:
            raise click.UsageError("--detach goes with --remote")
        values = {}
        for name, param in params.items():
            given = raw.get(name)
            if given is None and param.default is None and param.required:
                raise click.UsageError(
                    f"missing parameter --{name}: {param.help or 'it has no default'}"
                )
            try:
                values[name] = param.convert(given if given is not None else param.default)
            except (ValueError, TypeError) as error:
                raise click.BadParameter(str(error), param_hint=f"--{name}") from None
        if remote:
            _submit(session, values, params, tags, with_, detach)
        _execute(session, values, params, max_workers, tags, with_, launcher, code_package)

    @cli.command()
    @click.argument("step", required=False)
    @click.option("--origin-run-id", help="The run to resume (default: your latest run).")
    @_with_options(_run_options)
    @_with_options(_remote_options)
    @click.pass_obj
    @friendly_errors
    def resume(
        session: _Session,
        step: str | None,
        origin_run_id: str | None,
        max_workers: int,
        tags: tuple[str, ...],
        code_package: bool,
        launcher: str,
        with_: tuple[str, ...],
        remote: bool,
        detach: bool,
    ) -> None:
        """Run again from STEP (default: the failed step), reusing the tasks before it."""
        if detach and not remote:
            raise click.UsageError("--detach goes with --remote")
        from ledgerflow._resume import find_origin, plan_resume

        flow = session.graph.name
        origin_run = find_origin(session.metadata, flow, session.config.username, origin_run_id)
        origin = plan_resume(session.metadata, session.graph, origin_run, step)
        click.echo(
            f"Resuming {flow}/{origin.run_id} from step {origin.from_step!r}: "
            f"cloning {', '.join(sorted(origin.clone_steps)) or 'nothing'}"
        )
        values = parameters_from_json(origin_run.parameters, params, session.store)
        if remote:
            _submit(session, values, params, tags, with_, detach, origin)
        _execute(session, values, params, max_workers, tags, with_, launcher, code_package, origin)

    @cli.command(hidden=True)
    @click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False))
    @click.option("--result", "result_path", required=True, type=click.Path(dir_okay=False))
    @click.pass_obj
    @friendly_errors
    def task(session: _Session, spec_path: str, result_path: str) -> None:
        """Run one task attempt, described by a TaskRequest as JSON, and write its
        outcome to RESULT: the entry point of launchers, containers and executors."""
        task_process()
        faulthandler.enable()  # a segfault leaves Python's traceback on stderr
        request = TaskRequest.from_json(Path(spec_path).read_text())
        store = session.store
        store.parallel_hash = True  # this process will not fork
        values = parameters_from_json(request.parameters_json, params, store)
        run_attempt(session.flow_class, session.graph, request.spec, store, values,
                    request.facts).write(result_path)  # fmt: skip

    @cli.command("task-server", hidden=True)
    @click.pass_obj
    @friendly_errors
    def task_server(session: _Session) -> None:
        """Run many task attempts, each in a fork of this warm process, as requests
        arrive on stdin (see _task_server.py): what executors keep per code package."""
        from ledgerflow._task_server import serve

        store = session.store

        def run_request(request: TaskRequest, result_path: str) -> None:
            store.after_fork()
            values = parameters_from_json(request.parameters_json, params, store)
            run_attempt(session.flow_class, session.graph, request.spec, store, values,
                        request.facts).write(result_path)  # fmt: skip

        serve(run_request)

    @cli.command()
    def show() -> None:
        """Show the steps and how they connect."""
        doc = (flow_class.__doc__ or "").strip()
        click.echo(graph.name)
        if doc:
            click.echo(textwrap.indent(inspect.cleandoc(doc), "  "))
        click.echo(f"\nsteps:\n{graph.describe()}")
        if params:
            click.echo("\nparameters:\n" + "\n".join(parameter_lines(params)))

    @cli.command()
    def check() -> None:
        """Check the flow's graph without running it."""
        click.echo(f"{graph.name}: the graph is valid ({len(graph.nodes)} steps)")

    @cli.command()
    @click.argument("pathspec")
    @click.option("--stderr", "stream", flag_value="stderr", help="Show stderr only.")
    @click.option("--stdout", "stream", flag_value="stdout", help="Show stdout only.")
    @click.pass_obj
    @friendly_errors
    def logs(session: _Session, pathspec: str, stream: str | None) -> None:
        """Show the output of RUN_ID/STEP[/TASK_ID] (every attempt)."""
        parts = pathspec.strip("/").split("/")
        if len(parts) not in (2, 3):
            raise click.BadParameter(
                "use RUN_ID/STEP or RUN_ID/STEP/TASK_ID", param_hint="PATHSPEC"
            )
        tasks = session.metadata.tasks(graph.name, parts[0], parts[1])
        if len(parts) == 3:
            tasks = [t for t in tasks if t.task_id == parts[2]]
        if not tasks:
            raise click.ClickException(f"no task at {graph.name}/{pathspec}")
        for task in tasks:
            for attempt in task.attempts:
                for name, key in (("stdout", attempt.stdout_key), ("stderr", attempt.stderr_key)):
                    if stream in (None, name) and key:
                        click.echo(
                            f"--- {task.pathspec} attempt {attempt.attempt} {name}", err=True
                        )
                        click.echo(
                            session.store.load(key, "raw").decode(errors="replace"), nl=False
                        )

    @cli.group()
    def tag() -> None:
        """Add, remove or list a run's tags (each change is kept in the ledger)."""

    @tag.command("add")
    @click.option("--run-id", required=True)
    @click.argument("tags", nargs=-1, required=True)
    @click.pass_obj
    @friendly_errors
    def tag_add(session: _Session, run_id: str, tags: tuple[str, ...]) -> None:
        """Add TAGS to a run."""
        click.echo(" ".join(session.metadata.add_run_tags(graph.name, run_id, tags)))

    @tag.command("remove")
    @click.option("--run-id", required=True)
    @click.argument("tags", nargs=-1, required=True)
    @click.pass_obj
    @friendly_errors
    def tag_remove(session: _Session, run_id: str, tags: tuple[str, ...]) -> None:
        """Remove TAGS from a run (system tags cannot be removed)."""
        click.echo(" ".join(session.metadata.remove_run_tags(graph.name, run_id, tags)))

    @tag.command("list")
    @click.option("--run-id", required=True)
    @click.pass_obj
    @friendly_errors
    def tag_list(session: _Session, run_id: str) -> None:
        """List a run's user and system tags."""
        run_record = session.metadata.run(graph.name, run_id)
        click.echo("user tags:   " + " ".join(run_record.tags))
        click.echo("system tags: " + " ".join(run_record.system_tags))

    @cli.command()
    @click.argument("pathspec")
    @click.option("--name", "names", multiple=True, help="Only these artifacts, in full.")
    @click.pass_obj
    @friendly_errors
    def dump(session: _Session, pathspec: str, names: tuple[str, ...]) -> None:
        """Show the artifacts of RUN_ID/STEP/TASK_ID, or of every task of RUN_ID/STEP."""
        parts = pathspec.strip("/").split("/")
        if len(parts) not in (2, 3):
            raise click.BadParameter(
                "use RUN_ID/STEP or RUN_ID/STEP/TASK_ID", param_hint="PATHSPEC"
            )
        run_id, step_name, task_id = (*parts, "")[:3]  # no task id: every task
        found = session.metadata.artifacts(graph.name, run_id, step_name, task_id, names=names)
        visible = [a for a in found if not a.name.startswith("_")]
        if not visible:
            raise click.ClickException(f"no artifacts at {graph.name}/{pathspec}")
        by_task: dict[str, list[Any]] = {}
        for artifact in visible:
            by_task.setdefault(artifact.task_pathspec, []).append(artifact)
        for task_pathspec, artifacts in by_task.items():
            if len(parts) == 2:
                click.echo(f"--- {task_pathspec}")
            for artifact in artifacts:
                value = session.store.load(artifact.content_key, artifact.serializer)
                text = repr(value) if names else _short(repr(value))
                click.echo(f"{artifact.name} ({artifact.type_name}, {artifact.size} bytes): {text}")

    return cli


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_flow_cli(flow_class: type[FlowSpec]) -> None:
    try:
        graph = FlowGraph(flow_class)
        build = build_cli(flow_class, graph)
    except InvalidGraph as error:
        click.echo(f"Error: {flow_class.__name__} is not a valid flow: {error}", err=True)
        sys.exit(1)
    # An R flow's file is run for its script (ledgerflow.r), which names itself here.
    prog_name = os.environ.pop("LEDGERFLOW_PROG_NAME", "") or f"python {Path(sys.argv[0]).name}"
    build(prog_name=prog_name, args=sys.argv[1:])
