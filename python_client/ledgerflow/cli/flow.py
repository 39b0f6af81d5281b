"""The command line of a flow file: ``python myflow.py run|resume|show|check|logs|tag|dump``."""

from __future__ import annotations

import faulthandler
import inspect
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from ledgerflow._flow_decorators import flow_notify, flow_project, flow_schedule, flow_triggers
from ledgerflow._flowspec import FlowSpecBase
from ledgerflow._graph import FlowGraph, InvalidGraph
from ledgerflow._parameters import parameters_from_json
from ledgerflow.cli.errors import friendly_errors
from ledgerflow.cli.flow_cards import add_card_commands
from ledgerflow.cli.flow_configs import (
    CONFIG_OPTIONS,
    ConfigValues,
    apply_configs,
    config_lines,
    flow_configs,
    load_configs,
    origin_configs,
    recorded_with,
)
from ledgerflow.cli.flow_options import (
    DEPLOY_QUEUE_OPTIONS,
    MAX_NUM_SPLITS_OPTION,
    PROJECT_OPTIONS,
    QUEUE_OPTIONS,
    REMOTE_OPTIONS,
    RUN_OPTIONS,
    flow_parameters,
    option_names,
    option_settings,
    parameter_lines,
    parameter_values,
    step_defaults,
    with_options,
)
from ledgerflow.cli.flow_run import (
    Session,
    execute_here,
    remote_queue_policy,
    submit_and_follow,
)
from ledgerflow.cli.startup import freeze_imported_objects
from ledgerflow.engine.projects import ProjectError
from ledgerflow.engine.schedules import ScheduleError
from ledgerflow.engine.triggers import TriggerError
from ledgerflow.runtime.code_package import DEFAULT_SUFFIXES
from ledgerflow.runtime.launcher import task_process
from ledgerflow.runtime.task import TaskRequest, run_attempt

# What only `run`, `resume` and the other commands need is imported in them: every task
# process starts through this module (`python FLOW task`), and pays for each import.


def _lint(flow_class: type[FlowSpecBase]) -> None:
    """Stops with pylint's report when it finds errors in the flow file."""
    from ledgerflow._lint import PylintFailed, pylint_available, pylint_errors

    if not pylint_available():
        click.echo("pylint is not installed: extra checks are off (pip install pylint)", err=True)
        return
    try:
        report = pylint_errors(str(sys.modules[flow_class.__module__].__file__))
    except PylintFailed as failed:
        raise click.ClickException(f"{failed} (run with --no-pylint to skip this check)") from None
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


# The commands that read the flow's definition load its configs from the command line
# (each as it starts, so that `run --help` needs none); resume reads its origin's, a
# task its run's, and the others need none.
_LOADS_CONFIGS = ("run", "deploy", "show", "check")


def _use_configs(session: Session, values: ConfigValues) -> None:
    """Applies the configs to the flow class (decorators, defaults) for this command,
    then chooses the @project branch (@project's name may read a config)."""
    apply_configs(session.flow_class, session.graph, values)
    session.config_values = dict(values)
    session.project = flow_project(session.flow_class)
    session.choose_branch(*session.branch_choice)


def build_cli(flow_class: type[FlowSpecBase], graph: FlowGraph) -> click.Group:
    params = flow_parameters(flow_class)
    configs = flow_configs(flow_class, params)
    recorded = recorded_with(params, configs)

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
    @with_options(PROJECT_OPTIONS)
    @with_options(CONFIG_OPTIONS)
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
        branch: str | None,
        production: bool,
        config: tuple[tuple[str, str], ...],
        config_value: tuple[tuple[str, str], ...],
        pylint: bool | None,
    ) -> None:
        ctx.obj = Session(flow_class, graph, metadata, datastore)
        command = ctx.invoked_subcommand
        if (config or config_value) and command not in _LOADS_CONFIGS:
            raise click.ClickException(
                "resume reuses its origin run's configs: leave out --config and --config-value"
                if command == "resume"
                else f"--config and --config-value go with {', '.join(_LOADS_CONFIGS)}"
            )
        ctx.obj.config_options = (config, config_value)
        ctx.obj.branch_choice = (branch, production)
        if command not in (*_LOADS_CONFIGS, "resume"):  # those choose it with their configs
            ctx.obj.choose_branch(branch, production)
        ctx.obj.package_suffixes = tuple(
            suffix.strip() for suffix in package_suffixes.split(",") if suffix.strip()
        )
        if pylint is None:
            pylint = os.environ.get("LEDGERFLOW_PYLINT", "1").lower() not in ("0", "false", "no")
        if pylint and ctx.invoked_subcommand in ("run", "resume", "check"):
            _lint(flow_class)

    def load_given_configs(session: Session) -> None:
        """The configs given before the command (or their defaults), for run, deploy,
        show and check."""
        files, texts = session.config_options
        _use_configs(session, load_configs(graph.name, configs, files, texts))

    def parameter_options(command: Any) -> Any:
        """One option per parameter, named as Metaflow names it (``--movie_data`` for
        ``Parameter('movie_data')``), with the dashed spelling as an alias."""
        for param in reversed(list(params.values())):
            command = click.option(*option_names(param.name), param.name, **option_settings(param))(
                command
            )
        return command

    @cli.command()
    @with_options(RUN_OPTIONS)
    @with_options(REMOTE_OPTIONS)
    @with_options(QUEUE_OPTIONS)
    @parameter_options
    @click.pass_obj
    @friendly_errors
    def run(
        session: Session,
        max_workers: int,
        tags: tuple[str, ...],
        code_package: bool,
        launcher: str,
        with_: tuple[str, ...],
        remote: bool,
        detach: bool,
        priority: int | None,
        queue_timeout: int | None,
        run_id_file: str | None,
        max_num_splits: int,
        **raw: Any,
    ) -> None:
        """Run the flow from start to end."""
        load_given_configs(session)
        defaults = step_defaults(with_, max_num_splits)
        if detach and not remote:
            raise click.UsageError("--detach goes with --remote")
        policy = remote_queue_policy(remote, max_workers, priority, queue_timeout)
        values = parameter_values(params, raw, session.graph.name, session.config.username)
        values = {**values, **session.config_values}
        if remote:
            submit_and_follow(session, values, recorded, tags, defaults, detach,
                              run_id_file=run_id_file, policy=policy)  # fmt: skip
        execute_here(
            session, values, recorded, max_workers, tags, defaults, launcher, code_package,
            run_id_file=run_id_file,
        )  # fmt: skip

    @cli.command()
    @click.argument("step", required=False)
    @click.option("--origin-run-id", help="The run to resume (default: your latest run).")
    @with_options(RUN_OPTIONS)
    @with_options(REMOTE_OPTIONS)
    @with_options(QUEUE_OPTIONS)
    @click.pass_obj
    @friendly_errors
    def resume(
        session: Session,
        step: str | None,
        origin_run_id: str | None,
        max_workers: int,
        tags: tuple[str, ...],
        code_package: bool,
        launcher: str,
        with_: tuple[str, ...],
        remote: bool,
        detach: bool,
        priority: int | None,
        queue_timeout: int | None,
        run_id_file: str | None,
        max_num_splits: int,
    ) -> None:
        """Run again from STEP (default: the failed step), reusing the tasks before it."""
        defaults = step_defaults(with_, max_num_splits)
        if detach and not remote:
            raise click.UsageError("--detach goes with --remote")
        policy = remote_queue_policy(remote, max_workers, priority, queue_timeout)
        from ledgerflow.runtime.resume import find_origin, plan_resume

        flow = session.graph.name
        origin_run = find_origin(session.metadata, flow, session.config.username, origin_run_id)
        values = parameters_from_json(origin_run.parameters, recorded, session.store)
        values.update(origin_configs(flow, configs, values))
        _use_configs(session, {name: values[name] for name in configs})
        origin = plan_resume(session.metadata, session.graph, origin_run, step)
        click.echo(
            f"Resuming {flow}/{origin.run_id} from step {origin.from_step!r}: "
            f"cloning {', '.join(origin.cloned_steps()) or 'nothing'}"
        )
        if remote:
            submit_and_follow(session, values, recorded, tags, defaults, detach, origin,
                              run_id_file, policy)  # fmt: skip
        execute_here(
            session, values, recorded, max_workers, tags, defaults, launcher, code_package,
            origin, run_id_file,
        )  # fmt: skip

    @cli.command()
    @with_options(PROJECT_OPTIONS)
    @click.option("--tag", "tags", multiple=True, help="Tag every run of the deployment.")
    @click.option("--with", "with_", multiple=True, metavar="retry[:times=N,...]",
                  help="Add a decorator to every step (repeatable).")  # fmt: skip
    @click.option("--deployment-file", type=click.Path(dir_okay=False), default=None,
                  help="Write the deployment's name to this file once deployed (for "
                  "ledgerflow.Deployer and scripts).")  # fmt: skip
    @click.option(
        "--notify-webhook",
        "webhooks",
        multiple=True,
        metavar="URL",
        help="POST each finished run's facts to URL (as @notify(webhook=...)).",
    )
    @click.option(
        "--notify-command",
        "commands",
        multiple=True,
        metavar="CMD",
        help="Run CMD on the service for each finished run (as "
        "@notify(command=...); the service must allow it).",
    )
    @click.option(
        "--notify-on",
        default="failure",
        show_default=True,
        metavar="failure[,success]",
        help="Which finished runs --notify-webhook/--notify-command hear of.",
    )
    @MAX_NUM_SPLITS_OPTION
    @with_options(DEPLOY_QUEUE_OPTIONS)
    @parameter_options
    @click.pass_obj
    @friendly_errors
    def deploy(
        session: Session,
        branch: str | None,
        production: bool,
        tags: tuple[str, ...],
        with_: tuple[str, ...],
        deployment_file: str | None,
        webhooks: tuple[str, ...],
        commands: tuple[str, ...],
        notify_on: str,
        max_num_splits: int,
        priority: int | None,
        max_workers: int | None,
        queue_timeout: int | None,
        **raw: Any,
    ) -> None:
        """Deploy the flow to the metadata service, which runs it on its @schedule, its
        @trigger events, its @trigger_on_finish upstreams' successes and whenever
        triggered (`ledgerflow deployments --help`), on the executors."""
        from ledgerflow.cli.flow_deploy import deploy as deploy_flow
        from ledgerflow.engine.triggers import notify_message
        from ledgerflow.v1 import records_pb2

        load_given_configs(session)
        on = [part.strip() for part in notify_on.split(",") if part.strip()]
        try:
            notify = [notify_message(on, None, url) for url in webhooks]
            notify += [notify_message(on, command, None) for command in commands]
        except TriggerError as error:
            raise click.BadParameter(str(error)) from None
        if branch is not None or production:
            session.choose_branch(branch, production)
        values = parameter_values(params, raw, session.graph.name, session.config.username)
        values = {**values, **session.config_values}
        policy = records_pb2.QueuePolicy(priority=priority or 0, max_workers=max_workers or 0,
                                         queue_timeout_seconds=queue_timeout or 0)  # fmt: skip
        deploy_flow(session, values, recorded, tags, step_defaults(with_, max_num_splits),
                    deployment_file, notify, policy)  # fmt: skip

    @cli.command(hidden=True)
    @click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False))
    @click.option("--result", "result_path", required=True, type=click.Path(dir_okay=False))
    @click.pass_obj
    @friendly_errors
    def task(session: Session, spec_path: str, result_path: str) -> None:
        """Run one task attempt, described by a TaskRequest as JSON, and write its
        outcome to RESULT: the entry point of launchers, containers and executors."""
        task_process()
        faulthandler.enable()  # a segfault leaves Python's traceback on stderr
        request = TaskRequest.from_json(Path(spec_path).read_text())
        store = session.store
        store.parallel_hash = True  # this process will not fork
        values = parameters_from_json(request.parameters_json, recorded, store)
        _task_configs(session, values)
        run_attempt(session.flow_class, session.graph, request.spec, store, values,
                    request.facts).write(result_path)  # fmt: skip

    @cli.command("task-server", hidden=True)
    @click.pass_obj
    @friendly_errors
    def task_server(session: Session) -> None:
        """Run many task attempts, each in a fork of this warm process, as requests
        arrive on stdin (see runtime/task_server.py): what executors keep per code package."""
        from ledgerflow.runtime.task_server import serve

        store = session.store

        def run_request(request: TaskRequest, result_path: str) -> None:
            store.after_fork()
            values = parameters_from_json(request.parameters_json, recorded, store)
            _task_configs(session, values)  # in the fork: each request's run its own
            run_attempt(session.flow_class, session.graph, request.spec, store, values,
                        request.facts).write(result_path)  # fmt: skip

        serve(run_request)

    def _task_configs(session: Session, values: dict[str, Any]) -> None:
        """A task's configs are its run's, as recorded: what a step's decorators that
        work in the task (@card, @secrets) may read."""
        if configs:
            _use_configs(session, {name: values.get(name) for name in configs})

    @cli.command()
    @click.pass_obj
    @friendly_errors
    def show(session: Session) -> None:
        """Show the steps and how they connect, the parameters and the configs."""
        load_given_configs(session)
        doc = (flow_class.__doc__ or "").strip()
        click.echo(graph.name)
        if doc:
            click.echo(textwrap.indent(inspect.cleandoc(doc), "  "))
        click.echo(f"\nsteps:\n{graph.describe()}")
        if params:
            click.echo("\nparameters:\n" + "\n".join(parameter_lines(params)))
        if configs:
            click.echo("\nconfigs:\n" + "\n".join(config_lines(configs, session.config_values)))

    @cli.command()
    @click.pass_obj
    @friendly_errors
    def check(session: Session) -> None:
        """Check the flow's graph (and its decorators, with its configs) without running it."""
        load_given_configs(session)
        click.echo(f"{graph.name}: the graph is valid ({len(graph.nodes)} steps)")

    @cli.command()
    @click.argument("pathspec")
    @click.option("--stderr", "stream", flag_value="stderr", help="Show stderr only.")
    @click.option("--stdout", "stream", flag_value="stdout", help="Show stdout only.")
    @click.pass_obj
    @friendly_errors
    def logs(session: Session, pathspec: str, stream: str | None) -> None:
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
    def tag_add(session: Session, run_id: str, tags: tuple[str, ...]) -> None:
        """Add TAGS to a run."""
        click.echo(" ".join(session.metadata.add_run_tags(graph.name, run_id, tags)))

    @tag.command("remove")
    @click.option("--run-id", required=True)
    @click.argument("tags", nargs=-1, required=True)
    @click.pass_obj
    @friendly_errors
    def tag_remove(session: Session, run_id: str, tags: tuple[str, ...]) -> None:
        """Remove TAGS from a run (system tags cannot be removed)."""
        click.echo(" ".join(session.metadata.remove_run_tags(graph.name, run_id, tags)))

    @tag.command("list")
    @click.option("--run-id", required=True)
    @click.pass_obj
    @friendly_errors
    def tag_list(session: Session, run_id: str) -> None:
        """List a run's user and system tags."""
        run_record = session.metadata.run(graph.name, run_id)
        click.echo("user tags:   " + " ".join(run_record.tags))
        click.echo("system tags: " + " ".join(run_record.system_tags))

    @cli.command()
    @click.argument("pathspec")
    @click.option("--name", "names", multiple=True, help="Only these artifacts, in full.")
    @click.pass_obj
    @friendly_errors
    def dump(session: Session, pathspec: str, names: tuple[str, ...]) -> None:
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

    add_card_commands(cli, graph.name)
    return cli


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_flow_cli(flow_class: type[FlowSpecBase]) -> None:
    freeze_imported_objects()
    try:
        graph = FlowGraph(flow_class)
        build = build_cli(flow_class, graph)
        flow_schedule(flow_class)
        flow_project(flow_class)
        flow_triggers(flow_class)
        flow_notify(flow_class)
    except InvalidGraph as error:
        click.echo(f"Error: {flow_class.__name__} is not a valid flow: {error}", err=True)
        sys.exit(1)
    except (ScheduleError, ProjectError) as error:
        decorator = "@schedule" if isinstance(error, ScheduleError) else "@project"
        click.echo(f"Error: {flow_class.__name__}'s {decorator}: {error}", err=True)
        sys.exit(1)
    except TriggerError as error:
        click.echo(f"Error: {flow_class.__name__}: {error}", err=True)
        sys.exit(1)
    # An R flow's file is run for its script (ledgerflow.r), which names itself here.
    prog_name = os.environ.pop("LEDGERFLOW_PROG_NAME", "") or f"python {Path(sys.argv[0]).name}"
    build(prog_name=prog_name, args=sys.argv[1:])
