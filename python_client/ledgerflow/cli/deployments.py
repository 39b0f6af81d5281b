"""``ledgerflow deployments``: see, pause, resume, delete, trigger and backfill the
flows deployed to the metadata service (``python flow.py deploy``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta, tzinfo

import click

from ledgerflow.cli.errors import friendly_errors
from ledgerflow.cli.flow_deploy import describe_schedule
from ledgerflow.cli.ledger import TIME, print_table, stamp
from ledgerflow.cli.service_client import service_metadata
from ledgerflow.engine.deployments import (
    deployment_tag,
    production_namespace,
    trigger_name,
    trigger_tag,
)
from ledgerflow.engine.schedules import zone
from ledgerflow.engine.triggers import describe_notify, describe_triggers
from ledgerflow.health import health_of, run_seconds, seconds_text
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import common_pb2, records_pb2
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import query_service_pb2 as query_api


def _range_end(text: str, option: str, zone: tzinfo, end: bool) -> datetime:
    """One end of a backfill's range: a time (naive: UTC), or a date alone, which means
    that whole day in the schedule's time zone (the day a flow's partition date names):
    its first instant for --from, its last for --to."""
    if len(text.strip()) == len("2026-11-30"):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a date such as 2026-11-30",
                                     param_hint=option) from None  # fmt: skip
        start = datetime.combine(day, datetime.min.time(), zone)
        return start + timedelta(days=1, microseconds=-1) if end else start
    return TIME.convert(text, None, None)


# How often `backfill --max-parallel` looks at its runs.
_BACKFILL_POLL_SECONDS = 2.0


def _recent_runs(
    metadata: MetadataClient, deployment: records_pb2.Deployment, limit: int
) -> list[records_pb2.Run]:
    request = query_api.ListRunsRequest(
        flow_name=deployment.flow_name, tags=[deployment_tag(deployment.name)]
    )
    request.page.page_size = limit
    return list(metadata.list_runs(request).runs)


def _status(run: records_pb2.Run) -> str:
    return common_pb2.Status.Name(run.status).removeprefix("STATUS_").lower()


@click.group("deployments")
def deployments() -> None:
    """Flows deployed with `python flow.py deploy`: the service runs each on its
    @schedule, and when triggered, on the executors. Needs the service:
    LEDGERFLOW_SERVICE=HOST:PORT (docs/production.md)."""


@deployments.command("list")
@click.option("--flow", "flow_name", default="", help="Only this flow's deployments.")
@click.option("--project", default="", help="Only this @project's deployments.")
@click.option("--all", "include_deleted", is_flag=True, help="Deleted deployments too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per deployment.")
@friendly_errors
def list_deployments(flow_name: str, project: str, include_deleted: bool, as_json: bool) -> None:
    """List deployments by name."""
    found = service_metadata().deployments(flow_name, project, include_deleted)
    if as_json:
        for deployment in found:
            click.echo(json.dumps({
                "name": deployment.name, "flow": deployment.flow_name,
                "version": deployment.version, "paused": deployment.paused,
                "deleted": deployment.deleted,
                "cron": deployment.schedule.cron if deployment.HasField("schedule") else None,
                "timezone": deployment.schedule.timezone or "UTC",
                "next_run_at": stamp(deployment.next_run_at)
                if deployment.HasField("next_run_at") else None,
            }))  # fmt: skip
        return
    if not found:
        click.echo("no deployments (deploy one with `python flow.py deploy`)")
        return
    print_table(
        (
            [
                d.name,
                str(d.version),
                "deleted" if d.deleted else "paused" if d.paused else "active",
                d.schedule.cron if d.HasField("schedule") else "-",
                d.schedule.timezone or ("UTC" if d.HasField("schedule") else "-"),
                stamp(d.next_run_at) if d.HasField("next_run_at") else "-",
            ]
            for d in found
        ),
        ["NAME", "VERSION", "STATE", "CRON", "TIME ZONE", "NEXT RUN (UTC)"],
    )


@deployments.command("show")
@click.argument("name")
@click.option("--runs", "run_count", default=10, show_default=True, help="Recent runs shown.")
@friendly_errors
def show(name: str, run_count: int) -> None:
    """A deployment: its schedule and triggers, next run, parameters, recent runs and
    how they went (failure rate, duration trend, the last failure and how to resume
    it)."""
    metadata = service_metadata()
    deployment = metadata.deployment(name)
    state = "deleted" if deployment.deleted else "paused" if deployment.paused else "active"
    click.echo(f"{deployment.name}: {deployment.flow_name}, version {deployment.version}, {state}")
    if deployment.project:
        production = " (production)" if deployment.production else ""
        click.echo(f"  project:    {deployment.project}, branch {deployment.branch}{production}")
    click.echo(f"  deployed:   {stamp(deployment.deployed_at)} by {deployment.deployed_by}")
    click.echo(f"  schedule:   {describe_schedule(deployment)}")
    if deployment.parameters:
        values = ", ".join(f"{k}={v}" for k, v in sorted(deployment.parameters.items()))
        click.echo(f"  parameters: {values}")
    triggers = describe_triggers(deployment)
    if triggers:
        click.echo(f"  triggers:   {triggers}")
    for receiver in deployment.notify:
        click.echo(f"  notify:     {describe_notify(receiver, redact=True)}")
    click.echo(f"  namespace:  {production_namespace(deployment.name)}")
    runs = _recent_runs(metadata, deployment, run_count)
    if not runs:
        click.echo("  no runs yet")
        return
    health = health_of(metadata, runs)
    if health.finished:
        click.echo(f"  health:     last {health.summary()}")
    failure = health.last_failure
    if failure is not None:
        click.echo(f"  last failure: {failure.run.pathspec} at {stamp(failure.run.created_at)}"
                   + (f": {failure.error}" if failure.error else ""))  # fmt: skip
        click.echo(f"    resume it: {failure.resume} (add --remote for the executors)")
    click.echo("")
    print_table(
        (
            [
                r.run_id,
                _status(r),
                trigger_name(r.trigger.kind),
                stamp(r.trigger.scheduled_at),
                seconds_text(d) if (d := run_seconds(r)) is not None else "-",
                f"v{r.trigger.deployment_version}",
            ]
            for r in runs
        ),
        ["RUN", "STATUS", "TRIGGER", "FOR (UTC)", "TOOK", "VERSION"],
    )


@deployments.command("pause")
@click.argument("name")
@click.option("--reason", default="", help="Why, for the ledger.")
@friendly_errors
def pause(name: str, reason: str) -> None:
    """Start no runs until resumed: the schedule does not fire, triggers are refused, and
    the events and upstream successes it waits for start nothing (they are not kept for
    later)."""
    service_metadata().pause_deployment(name, reason)
    click.echo(f"{name} paused: nothing starts its runs until `ledgerflow deployments resume`")


@deployments.command("resume")
@click.argument("name")
@friendly_errors
def resume(name: str) -> None:
    """Fire the schedule again, from its next due time (due times passed meanwhile are
    skipped)."""
    deployment = service_metadata().resume_deployment(name)
    click.echo(f"{name} resumed: {describe_schedule(deployment)}")


@deployments.command("delete")
@click.argument("name")
@friendly_errors
def delete(name: str) -> None:
    """Stop the deployment for good; its runs stay. Deploying the name again revives it."""
    service_metadata().delete_deployment(name)
    click.echo(f"{name} deleted: it fires no more runs (its runs stay in the ledger)")


def _json_value(name: str, text: str, current: str | None) -> str:
    """A --PARAM value as JSON text: kept as a string when the deployment's value is
    one (an id such as 007 stays "007"); else read as JSON, and of the deployed value's
    kind (a number for a number: the run would fail on "abc" where `run` refuses it)."""
    deployed = json.loads(current) if current is not None else None
    if isinstance(deployed, str):
        return json.dumps(text)
    try:
        given = json.loads(text)
    except ValueError:
        if deployed is None:
            return json.dumps(text)
        given = text
    numeric = (int, float)
    same_kind = (
        deployed is None
        or (isinstance(deployed, bool) == isinstance(given, bool)
            and isinstance(given, numeric) == isinstance(deployed, numeric)
            and isinstance(given, list) == isinstance(deployed, list)
            and isinstance(given, dict) == isinstance(deployed, dict))
    )  # fmt: skip
    if not same_kind:
        raise click.BadParameter(
            f"{text!r} is not of the kind of the deployed value {current}",
            param_hint=f"--{name}",
        )
    return text


@deployments.command(
    "trigger", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("name")
@click.pass_context
@friendly_errors
def trigger(ctx: click.Context, name: str) -> None:
    """Start a run of the deployment now. `--PARAM value` (repeatable) replaces the
    deployed value of a parameter for this run: text for a text parameter, else JSON of
    the deployed value's kind (--alpha 0.5, --flags '["a"]'). Refused while paused."""
    metadata = service_metadata()
    deployment = metadata.deployment(name)
    given: dict[str, str] = {}
    args = list(ctx.args)
    while args:
        option = args.pop(0)
        if not option.startswith("--") or not args:
            raise click.UsageError(f"give parameters as --NAME VALUE pairs, not {option!r}")
        key = option[2:].replace("-", "_")
        given[key] = _json_value(key, args.pop(0), deployment.parameters.get(key))
    started = metadata.trigger_deployment(name, given)
    click.echo(f"triggered {started.flow_name}/{started.run_id}")


@deployments.command("backfill")
@click.argument("name")
@click.option("--from", "since_text", required=True, metavar="DATE|TIME",
              help="First due time: a date (that day, in the schedule's time zone) or a time "
              "(2026-11-01T03:00:00+02:00; UTC when it has no offset).")  # fmt: skip
@click.option("--to", "until_text", required=True, metavar="DATE|TIME",
              help="Last due time, included: a date means that whole day.")  # fmt: skip
@click.option("--max-parallel", type=click.IntRange(1, 10_000), default=None,
              help="Run at most this many at once: this command waits, starts the next as "
              "runs finish and returns after the last (Ctrl-C stops starting more). Without "
              "it, every run starts now and the command returns.")  # fmt: skip
@click.option("--yes", is_flag=True, help="Allow a range of more than 10,000 due times.")
@click.option("--dry-run", is_flag=True, help="Only count what would start.")
@friendly_errors
def backfill(
    name: str,
    since_text: str,
    until_text: str,
    max_parallel: int | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Run the deployment once for each due time of its schedule in a range of the
    past; due times already run (by the schedule or an earlier backfill) are skipped.
    With --max-parallel, the command stays until the last run it started finished."""
    metadata = service_metadata()
    deployment = metadata.deployment(name)
    flow = deployment.flow_name
    local = zone(deployment.schedule) if deployment.HasField("schedule") else UTC
    since = _range_end(since_text, "--from", local, end=False)
    until = _range_end(until_text, "--to", local, end=True)
    request = deploy_api.BackfillDeploymentRequest(name=name, allow_large=yes, dry_run=dry_run)
    request.since.FromDatetime(since.astimezone(UTC))
    request.until.FromDatetime(until.astimezone(UTC))
    if dry_run:
        answer = metadata.backfill_deployment(request)
        click.echo(f"{_due_times(answer.due_times)} in the range: {answer.remaining} would "
                   f"start, {answer.already_run} already run")  # fmt: skip
        return
    # With --max-parallel, the backfill runs still going (from an earlier command) count.
    running = _running_backfills(metadata, name, flow) if max_parallel else set()
    if max_parallel and len(running) >= max_parallel:
        click.echo(f"{len(running)} backfill runs are still going: waiting for a slot")
    started: list[str] = []
    said = False
    try:
        while True:
            free = max_parallel - len(running) if max_parallel else 0
            if not max_parallel or free > 0:
                request.limit = free
                answer = metadata.backfill_deployment(request)
                started.extend(answer.run_ids)
                running.update(answer.run_ids)
                if not said:
                    said = True
                    waiting = f", {answer.remaining} waiting (--max-parallel)"
                    started_now = f"{len(answer.run_ids)} started now"
                    click.echo(f"{_due_times(answer.due_times)}: {started_now}, "
                               f"{answer.already_run} already run"
                               + (waiting if answer.remaining else ""))  # fmt: skip
                if not max_parallel:
                    break
                if not answer.remaining:  # all started: report them as they finish
                    while running:
                        time.sleep(_BACKFILL_POLL_SECONDS)
                        _report_finished(metadata, flow, running)
                    break
            time.sleep(_BACKFILL_POLL_SECONDS)
            _report_finished(metadata, flow, running)
    except KeyboardInterrupt:
        click.echo("\nstopped starting runs (run the same backfill again to go on: what "
                   "already ran is skipped)", err=True)  # fmt: skip
    if not max_parallel:
        for run_id in started:
            click.echo(f"  {flow}/{run_id}")


def _due_times(count: int) -> str:
    return "1 due time" if count == 1 else f"{count:,} due times"


def _report_finished(metadata: MetadataClient, flow: str, running: set[str]) -> None:
    """Says which of `running` finished, and forgets them."""
    for run_id in sorted(running):
        record = metadata.run(flow, run_id)
        if record.status != common_pb2.STATUS_RUNNING:
            running.discard(run_id)
            click.echo(f"  {flow}/{run_id} {_status(record)}")


def _running_backfills(metadata: MetadataClient, name: str, flow: str) -> set[str]:
    request = query_api.ListRunsRequest(
        flow_name=flow, tags=[deployment_tag(name), trigger_tag(records_pb2.TRIGGER_KIND_BACKFILL)],
        statuses=[common_pb2.STATUS_RUNNING],
    )  # fmt: skip
    request.page.page_size = 1000
    return {run.run_id for run in metadata.list_runs(request).runs}
