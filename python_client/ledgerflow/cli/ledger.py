"""The ``ledgerflow`` commands that read the ledger: ``flows``, ``runs``, ``audit`` and
``events tail``. Each reads through the client API or the typed metadata client, so
they work on the embedded ledger and against a service alike (LEDGERFLOW_SERVICE)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import click
from google.protobuf import json_format

from ledgerflow import client
from ledgerflow.cli.errors import friendly_errors
from ledgerflow.engine import new_event
from ledgerflow.exceptions import LedgerflowNotFound
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import (
    common_pb2,
    events_pb2,
    ledger_service_pb2,
    query_service_pb2,
    records_pb2,
)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def stamp(stamp: Any) -> str:
    """A Timestamp as UTC text ("-" when unset)."""
    when = client._time(stamp)
    return when.isoformat(timespec="milliseconds") if when else "-"


class _Time(click.ParamType):
    """An ISO 8601 time (``2026-11-27T08:00:00Z``, ``2026-11-27 08:00``); naive times are
    UTC."""

    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2026-11-27T08:00:00Z", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


TIME = _Time()


def print_table(rows: Iterable[list[str]], header: list[str]) -> None:
    rows = list(rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@click.command("flows")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per flow.")
@friendly_errors
def flows(as_json: bool) -> None:
    """List every flow in the ledger."""
    found = client.Ledgerflow().flows
    if as_json:
        for flow in found:
            click.echo(json.dumps({"flow": flow.id, "created_at": _when(flow.created_at)}))
        return
    if not found:
        click.echo(f"no flows in {client.get_metadata()}")
        return
    print_table(([f.id, _when(f.created_at)] for f in found), ["FLOW", "CREATED (UTC)"])


class _RunsGroup(click.Group):
    """`runs FLOW` lists a flow's runs (as it always did); `runs follow FLOW/RUN_ID`
    follows one: a first argument that names no subcommand goes to `runs list`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("runs", cls=_RunsGroup)
def runs() -> None:
    """A flow's runs: `ledgerflow runs FLOW` lists them, `ledgerflow runs follow
    FLOW/RUN_ID` follows one live."""


@runs.command("list")
@click.argument("flow")
@click.option("--tag", "tags", multiple=True, help="Only runs with this tag (repeatable).")
@click.option(
    "--namespace",
    "ns",
    default=None,
    help="Namespace to list: user:NAME, production:..., any tag (default: yours).",
)
@click.option("--all-namespaces", "-A", is_flag=True, help="Runs of every namespace.")
@click.option("--limit", default=20, show_default=True, help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@friendly_errors
def list_runs(
    flow: str,
    tags: tuple[str, ...],
    ns: str | None,
    all_namespaces: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List a flow's runs, newest first."""
    client.namespace(None if all_namespaces else (ns or client.get_namespace()))
    found = []
    for run in client.Flow(flow).runs(*tags):
        found.append(run)
        if len(found) >= limit:
            break
    if as_json:
        for run in found:
            click.echo(json.dumps({
                "pathspec": run.pathspec, "status": run.status, "user": run.user,
                "created_at": _when(run.created_at), "finished_at": _when(run.finished_at),
                "tags": sorted(run.user_tags), "system_tags": sorted(run.system_tags),
            }))  # fmt: skip
        return
    if not found:
        click.echo(f"no runs of {flow} in namespace {client.get_namespace() or '(all)'}")
        return
    print_table(
        (
            [
                r.id,
                r.status,
                r.user,
                _when(r.created_at),
                _when(r.finished_at),
                ", ".join(sorted(r.user_tags)),
            ]
            for r in found
        ),
        ["RUN", "STATUS", "USER", "CREATED (UTC)", "FINISHED (UTC)", "TAGS"],
    )


@runs.command("follow")
@click.argument("pathspec", metavar="FLOW/RUN_ID")
@friendly_errors
def follow_run(pathspec: str) -> None:
    """Follow a run live, as `run` shows it: its tasks so far, then each as it starts and
    ends, until the run finishes (a run started with --detach, or anyone's). The exit
    status is the run's; Ctrl-C stops following, not the run."""
    from ledgerflow.runtime.progress import RunReporter
    from ledgerflow.runtime.remote import follow

    flow, run_id = _run_key(pathspec)
    metadata, _ = client._clients()
    request = query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id)
    run = metadata.get_run(request).run
    reporter = RunReporter()
    reporter.run_started(flow, run_id, run.user, "following, as the ledger records it:")
    try:
        ok = follow(metadata, flow, run_id, reporter)
    except KeyboardInterrupt:
        click.echo(f"\nStopped following {flow}/{run_id}; the run goes on.", err=True)
        sys.exit(130)
    sys.exit(0 if ok else 1)


def _run_key(pathspec: str) -> tuple[str, str]:
    """FLOW and RUN_ID from FLOW/RUN_ID; a usage error otherwise."""
    parts = pathspec.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise click.UsageError(f"name the run as FLOW/RUN_ID, not {pathspec!r}")
    return parts[0], parts[1]


def _actor(event: events_pb2.Event) -> str:
    return event.actor if event.actor_authenticated else f"{event.actor} (claimed)"


def _event_json(event: events_pb2.Event) -> str:
    return json.dumps(json_format.MessageToDict(event, preserving_proto_field_name=True))


def _event_line(event: events_pb2.Event) -> str:
    return (
        f"{event.global_position:>8}  {stamp(event.recorded_at)}  {_actor(event):<24}  "
        f"{event.event_type:<17}  {event.stream}"
    )


@click.command("audit")
@click.argument("run_pathspec", metavar="FLOW/RUN_ID")
@click.option(
    "--task", "task", default=None, metavar="STEP/TASK_ID", help="Only this task's events."
)
@click.option("--actor", default=None, help="Only events appended by this principal.")
@click.option("--since", type=TIME, default=None, help="Only events recorded after this time.")
@click.option("--until", type=TIME, default=None, help="Only events recorded before this time.")
@click.option("--as-of", "as_of", type=TIME, default=None, help="Show the run as it was then.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@friendly_errors
def audit(
    run_pathspec: str,
    task: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    as_of: datetime | None,
    as_json: bool,
) -> None:
    """Who did what to a run, and when: its events in order, each with its actor
    (proven by the service's tokens, or "(claimed)" when the service takes the
    caller's word). With --as-of, the run and its tasks as the ledger described them
    at that time.

    Times are ISO 8601 (2026-11-27T08:00:00Z); a time without a zone is UTC.
    """
    client.namespace(None)  # an audit sees every namespace
    run = client.Run(run_pathspec)
    if as_of is not None:
        try:
            found, tasks = run.as_of(as_of)
        except LedgerflowNotFound:
            raise click.ClickException(
                f"run {run.pathspec} had not started by {as_of.isoformat()} (it started at "
                f"{_when(run.created_at)} UTC)"
            ) from None
        _print_run_as_of(found, tasks, when=as_of, as_json=as_json)
        return
    filters: dict[str, Any] = {}
    if task:
        filters["task_pathspec"] = f"{run.pathspec}/{task.strip('/')}"
    if actor:
        filters["actor"] = actor
    events = client._events_of(run.pathspec, **filters)
    shown = 0
    for event in events:
        recorded = event.recorded_at.ToDatetime(tzinfo=UTC)
        if (since and recorded <= since) or (until and recorded >= until):
            continue
        click.echo(_event_json(event) if as_json else _event_line(event))
        shown += 1
    if not shown and not as_json:
        click.echo(f"no events of {run.pathspec} match")


def _print_run_as_of(
    run: records_pb2.Run, tasks: list[records_pb2.Task], *, when: datetime, as_json: bool
) -> None:
    if as_json:
        click.echo(json.dumps({
            "as_of": when.isoformat(),
            "run": json_format.MessageToDict(run, preserving_proto_field_name=True),
            "tasks": [json_format.MessageToDict(t, preserving_proto_field_name=True)
                      for t in tasks],
        }))  # fmt: skip
        return

    def status(value: int) -> str:
        return common_pb2.Status.Name(value).removeprefix("STATUS_").lower()

    click.echo(f"{run.pathspec} as of {when.isoformat()}: {status(run.status)}")
    if run.tags:
        click.echo(f"  tags: {', '.join(run.tags)}")
    for task in tasks:
        click.echo(f"  {task.step_name}/{task.task_id}: {status(task.status)}")


@click.group("events")
def events() -> None:
    """The ledger's events, and events published for deployments to start on."""


@events.command("publish")
@click.argument("name")
@click.option(
    "--payload",
    default="",
    metavar="JSON",
    help='A JSON object (at most 64 KiB), e.g. \'{"date": "2026-12-06"}\': its '
    "fields named as a parameter of a waiting flow set that parameter.",
)
@click.option(
    "--event-id",
    default="",
    metavar="UUID",
    help="Name this event, so that publishing it again (a retry) starts nothing more.",
)
@friendly_errors
def publish(name: str, payload: str, event_id: str) -> None:
    """Publish event NAME: every deployment with @trigger(event=NAME) starts a run (needs
    the service: LEDGERFLOW_SERVICE=HOST:PORT)."""
    from ledgerflow.cli.service_client import service_metadata
    from ledgerflow.engine.triggers import check_event_name, parse_payload

    try:
        check_event_name(name)
        parse_payload(payload)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    answer = service_metadata().publish_event(name, payload, event_id)
    click.echo(f"Published {name} (event {answer.event_id})")
    for run in answer.runs:
        click.echo(f"  started {run}")
    if not answer.runs:
        click.echo("  no deployment waits for it (see `ledgerflow deployments list`)")


@events.command("tail")
@click.option("--flow", default=None, help="Only events of this flow's runs.")
@click.option("--run", "run_pathspec", default=None, metavar="FLOW/RUN_ID", help="Only this run.")
@click.option("--type", "event_types", multiple=True, help="Only this event type (repeatable).")
@click.option(
    "--from-start", is_flag=True, help="Begin with the first event, not with what comes next."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@friendly_errors
def tail(
    flow: str | None,
    run_pathspec: str | None,
    event_types: tuple[str, ...],
    from_start: bool,
    as_json: bool,
) -> None:
    """Follow the ledger live, as events are appended (Ctrl-C stops). With --run, the
    tail ends when the run finishes (at once if it has, unless --from-start)."""
    metadata, _ = client._clients()
    run = (run_pathspec or "").strip("/")
    wanted = set(event_types)
    if run:
        if _run_finished_already(metadata, run) and not from_start:
            click.echo(f"{run} has finished: no more events will come "
                       "(--from-start shows those it has)")  # fmt: skip
            return
        if wanted:  # its end is watched for, though not shown unless asked
            event_types = (*event_types, RUN_FINISHED)
    request = ledger_service_pb2.WatchEventsRequest(
        run_pathspec=run, event_types=list(event_types), from_head=not from_start
    )
    prefix = f"{flow}/" if flow else ""
    try:
        for event in metadata.watch_events(request):
            if event.stream.startswith(prefix) and (not wanted or event.event_type in wanted):
                click.echo(_event_json(event) if as_json else _event_line(event))
            if run and event.event_type == RUN_FINISHED:
                return
    except KeyboardInterrupt:
        pass


RUN_FINISHED = "RunFinished"


def _run_finished_already(metadata: MetadataClient, run: str) -> bool:
    """Whether `run` (FLOW/RUN_ID) has finished; a usage error when it is no run."""
    flow, run_id = _run_key(run)
    request = query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id)
    found = metadata.get_run(request).run
    return found.HasField("finished_at")


@click.command()
@click.argument("pathspec", metavar="FLOW/RUN_ID")
@click.option("--reason", default="", help="Why, for the ledger and for the run's followers.")
@friendly_errors
def cancel(pathspec: str, reason: str) -> None:
    """Cancel a remote run: its queued tasks are dropped, executors kill its running
    ones, and it finishes as failed."""
    flow, run_id = _run_key(pathspec)
    metadata, _ = client._clients()
    request = events_pb2.RunCancelRequested(flow_name=flow, run_id=run_id, reason=reason)
    metadata.append_events([new_event(run_cancel_requested=request)])
    click.echo(f"cancel of {flow}/{run_id} requested: running tasks stop at their next heartbeat")
