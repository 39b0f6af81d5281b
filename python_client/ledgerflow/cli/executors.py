"""``ledgerflow executors``: the executors that asked the metadata service for work
recently, each with its capacity (free of total) and the task attempts it runs."""

from __future__ import annotations

import json

import click

from ledgerflow.cli.errors import friendly_errors
from ledgerflow.cli.ledger import print_table, stamp
from ledgerflow.config import ConfigError, load_config
from ledgerflow.metadata_client import connect
from ledgerflow.ui.executors_page import executor_json, free_of_total, queue_names, task_state


@click.command("executors")
@click.option(
    "--service",
    default=None,
    metavar="HOST:PORT",
    help="The metadata service (default: $LEDGERFLOW_SERVICE).",
)
@click.option(
    "--seen-within",
    type=click.IntRange(0, 86_400),
    default=0,
    metavar="SECONDS",
    help="Executors heard from in the last SECONDS (default: the service's, 60 s).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per executor.")
@friendly_errors
def executors(service: str | None, seen_within: int, as_json: bool) -> None:
    """The executors that asked the service for work recently: each one's capacity
    (free/total cpu, memory in MB, gpu), the queues it serves, when it was last heard
    from, and the task attempts it holds leases on."""
    try:
        config = load_config(metadata="service", service=service)
    except ConfigError:
        raise click.UsageError(
            "executors ask a metadata service for work: name it with --service HOST:PORT "
            "(or set LEDGERFLOW_SERVICE)"
        ) from None
    metadata = connect(config)
    try:
        found = metadata.executors(seen_within)
    finally:
        metadata.close()
    if as_json:
        for executor in found.executors:
            click.echo(json.dumps(executor_json(executor, stamp(executor.last_seen_at))))
        return
    if not found.executors:
        click.echo(
            f"no executor asked for work in the last {found.seen_within_seconds} s "
            f"(service {config.service_address})"
        )
        return
    rows = []
    for executor in found.executors:
        first = [
            executor.executor_id,
            free_of_total(executor, "cpu"),
            free_of_total(executor, "memory_mb"),
            free_of_total(executor, "gpu"),
            queue_names(executor.queues),
            stamp(executor.last_seen_at),
        ]
        tasks = [f"{t.pathspec} attempt {t.attempt} ({task_state(t)})" for t in executor.tasks]
        rows.append([*first, tasks[0] if tasks else "-"])
        rows.extend(["", "", "", "", "", "", task] for task in tasks[1:])
    print_table(rows, ["EXECUTOR", "CPU FREE/TOTAL", "MEMORY MB FREE/TOTAL", "GPU FREE/TOTAL",
                       "QUEUES", "LAST SEEN (UTC)", "RUNS"])  # fmt: skip
