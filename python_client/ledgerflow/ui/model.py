"""What the UI's pages show, read through the metadata client (gRPC or the embedded
ledger, the same messages either way): runs, a run with its steps and graph, a task
with its attempts, logs and artifacts, a run's events, the deployments with their last
runs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledgerflow import client
from ledgerflow.datastore.safe_load import load_data_only
from ledgerflow.engine.deployments import deployment_tag, trigger_name
from ledgerflow.health import Health, health_of
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui.artifacts import unreadable
from ledgerflow.ui.text import cut
from ledgerflow.v1 import audit_service_pb2, common_pb2, query_service_pb2, records_pb2

STATUS = {
    common_pb2.STATUS_RUNNING: "running",
    common_pb2.STATUS_SUCCEEDED: "succeeded",
    common_pb2.STATUS_FAILED: "failed",
    common_pb2.STATUS_LOST: "lost",
    common_pb2.STATUS_UNSPECIFIED: "unknown",
}
STATUS_VALUES = {name: value for value, name in STATUS.items() if name != "unknown"}
PREVIEW_BYTES = 4096


# A Timestamp as an aware datetime, None when unset (as the client API reads them).
when = client._time


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from `start` to `end` (now while `end` is unset), never below 0; None
    when `start` is unset: the one arithmetic of a run's or a task's duration."""
    began, ended = when(start), when(end) or datetime.now(UTC)
    return None if began is None else max(0.0, (ended - began).total_seconds())


def duration(start: Any, end: Any) -> str:
    seconds = seconds_between(start, end)
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@dataclass
class StepView:
    name: str
    counts: Counter[str] = field(default_factory=Counter)
    inputs: set[str] = field(default_factory=set)
    # From the run's graph: linear, split, foreach, join or end ("" when it has none).
    kind: str = ""
    # The tasks a foreach fans out to: known once its foreach tasks succeeded (ui.foreach).
    planned: int | None = None

    @property
    def state(self) -> str:
        """The step's color: failed over running over succeeded; "waiting" until one
        of its tasks starts."""
        for state in ("failed", "lost", "running", "succeeded"):
            if self.counts.get(state):
                return state
        return "waiting" if not self.total else "unknown"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class RunView:
    run: records_pb2.Run
    steps: dict[str, StepView]

    @property
    def status(self) -> str:
        return STATUS[self.run.status]

    def parameters(self) -> dict[str, Any]:
        return {name: json.loads(text) for name, text in sorted(self.run.parameters.items())}


def tag_history(metadata: MetadataClient, flow: str, run_id: str) -> list[tuple[Any, str, str]]:
    """(when, "added" or "removed", tags) for each change of the run's tags: all of them,
    however many events the run has (a run of 10,000 tasks has 30,000; the run's page
    asks for this only when its reader opens the history)."""
    changes = []
    for event in events_of(metadata, flow, run_id, most=None):
        kind = event.WhichOneof("payload")
        if kind in ("tags_added", "tags_removed"):
            tags = ", ".join(getattr(event, kind).tags)
            changes.append((when(event.recorded_at), kind.removeprefix("tags_"), tags))
    return changes


# The most tasks one read of a run's (or a step's) tasks returns: a foreach splits into
# at most 10,000 items, and a run may hold several such steps.
MAX_TASKS = 100_000


def tasks_of(
    metadata: MetadataClient, flow: str, run_id: str, step: str = "", most: int = MAX_TASKS
) -> list[records_pb2.Task]:
    """The run's tasks (only `step`'s when it names one), page after page, at most
    `most` of them: the one way the pages read tasks (timeline, step page, foreach)."""
    request = query_service_pb2.ListTasksRequest(flow_name=flow, run_id=run_id, step_name=step)
    request.page.page_size = min(1000, most)
    found, _ = read_pages(metadata.list_tasks, request, "tasks", most)
    return found[:most]


def read_pages(
    call: Callable[[Any], Any], request: Any, field: str, most: int | None = None
) -> tuple[list[Any], str]:
    """A list RPC's items, page after page until the last (or `most` items read), and
    the token of what is left ("" when none): the one paging loop of the pages."""
    found: list[Any] = []
    while True:
        answer = call(request)
        found.extend(getattr(answer, field))
        token = str(answer.page.next_page_token)
        if not token or (most is not None and len(found) >= most):
            return found, token
        request.page.page_token = token


def run_view(metadata: MetadataClient, flow: str, run_id: str) -> RunView:
    """A run, its steps (each with its tasks counted by status and the steps that feed
    it; ui.foreach.plan_counts adds how many tasks a foreach plans). The steps are
    those of the graph the run recorded as it started, the ones not reached yet included; a run
    that recorded none shows the steps begun so far, linked by the inputs their tasks
    took. The steps come counted
    by the service, so a run of 10,000 tasks reads as fast as one of ten."""
    asked = query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id, include_graph=True)
    answer = metadata.get_run(asked)
    steps = declared_steps(answer.graph)
    request = query_service_pb2.ListStepsRequest(flow_name=flow, run_id=run_id)
    request.page.page_size = 1000
    for step in metadata.list_steps(request).steps:
        counts: Counter[str] = Counter({
            "running": step.running_count, "succeeded": step.succeeded_count,
            "failed": step.failed_count, "lost": step.lost_count,
        })  # fmt: skip
        view = steps.setdefault(step.step_name, StepView(step.step_name))
        view.counts = +counts
        view.inputs.update(step.in_steps)
    return RunView(answer.run, steps)


def declared_steps(graph: records_pb2.FlowGraph) -> dict[str, StepView]:
    """The graph's steps in source order, each with the steps that lead into it."""
    steps = {
        spec.name: StepView(spec.name, kind=records_pb2.StepKind.Name(spec.kind)
                            .removeprefix("STEP_KIND_").lower())
        for spec in graph.steps
    }  # fmt: skip
    for spec in graph.steps:
        for target in spec.next_steps:
            steps[target].inputs.add(spec.name)
    return steps


def task_view(metadata: MetadataClient, flow: str, run_id: str, step: str, task_id: str) -> Any:
    request = query_service_pb2.GetTaskRequest(
        flow_name=flow, run_id=run_id, step_name=step, task_id=task_id
    )
    return metadata.get_task(request).task


# A card's page is user content: served as a sandbox of its own (an opaque origin, so
# its scripts reach neither the UI's pages nor its cookies) that loads nothing from the
# network, and may be framed by the UI only.
CARD_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts; default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, max-age=3600",
}


def cards_of(task: records_pb2.Task) -> list[records_pb2.Card]:
    """The cards of the task's latest attempt that recorded any (as get_cards)."""
    if not task.cards:
        return []
    last = max(c.attempt for c in task.cards)
    return [c for c in task.cards if c.attempt == last]


def artifacts_of(
    metadata: MetadataClient, flow: str, run_id: str, step: str, task_id: str
) -> list[records_pb2.Artifact]:
    request = query_service_pb2.ListArtifactsRequest(
        flow_name=flow, run_id=run_id, step_name=step, task_id=task_id
    )
    request.page.page_size = 1000
    return list(metadata.list_artifacts(request).artifacts)


def preview(store: Any, artifact: records_pb2.Artifact) -> str | None:
    """A short text of a small value; None for a large one (download it instead)."""
    if artifact.size > PREVIEW_BYTES * 16:
        return None
    try:
        # Never unpickle what names code: a crafted artifact would run it here.
        text = repr(load_data_only(store, artifact.content_key, artifact.serializer))
    except Exception as error:  # not plain data, or a value this process cannot load
        return unreadable(error)
    return cut(text, PREVIEW_BYTES)


def events_of(
    metadata: MetadataClient, flow: str, run_id: str, most: int | None = 10_000
) -> list[Any]:
    """The run's events, oldest first: the first `most` of them (None: all)."""
    request = audit_service_pb2.ListEventsRequest(run_pathspec=f"{flow}/{run_id}")
    request.page.page_size = 1000
    return read_pages(metadata.list_events, request, "events", most)[0]


# ---- deployments ----------------------------------------------------------------------

# The runs the deployments page shows of each deployment: enough to see whether its
# schedule is healthy, few enough that the page stays one cheap query a deployment.
RECENT_RUNS = 5


def trigger_kind(trigger: records_pb2.Trigger) -> str:
    """What fired a deployment's run: "schedule", "manual" or "backfill" (the words the
    pages build their sentences from)."""
    return trigger_name(trigger.kind)


def utc(stamp: Any, seconds: bool = False) -> str:
    """A Timestamp as "2026-12-06 03:00 UTC" ("-" when unset). Due times fall on whole
    minutes, so seconds only for the times someone pressed a button (a manual trigger)."""
    at = when(stamp)
    if at is None:
        return "-"
    return at.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def in_zone(stamp: Any, zone: str) -> str:
    """A Timestamp in the schedule's own time zone ("" for UTC or an unknown zone), since
    "03:00 every day" is read there and UTC alone would hide that."""
    at = when(stamp)
    if at is None or not zone or zone == "UTC":
        return ""
    try:
        return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
    except (ZoneInfoNotFoundError, ValueError):
        return ""


def deployment_anchor(name: str) -> str:
    """The id of a deployment's section on /deployments, so that a run's page can link
    to the very deployment that fired it (names are letters, digits, '_', '.', '-')."""
    return f"deployment-{name}"


@dataclass
class DeploymentView:
    deployment: records_pb2.Deployment
    # Its latest runs, newest first (at most RECENT_RUNS).
    runs: list[records_pb2.Run]
    # How those runs went (ledgerflow.health).
    health: Health

    @property
    def state(self) -> str:
        return "paused" if self.deployment.paused else "active"

    @property
    def anchor(self) -> str:
        return deployment_anchor(self.deployment.name)

    @property
    def schedule(self) -> str:
        """The cron with the zone it is read in ("0 3 * * * (Europe/Helsinki)"); "" for
        a deployment that runs only when triggered."""
        if not self.deployment.HasField("schedule"):
            return ""
        schedule = self.deployment.schedule
        text = f"{schedule.cron} ({schedule.timezone or 'UTC'})"
        return text + (", catching up missed times" if schedule.catchup else "")


def deployment_views(metadata: MetadataClient) -> list[DeploymentView]:
    """The deployments (not deleted), each with its last runs: one ListDeployments, then
    one small ListRuns a deployment, filtered by the `deployment:NAME` system tag every
    run it fires carries, so the page costs the same however many runs they have (and
    one ListTasks for a deployment whose last runs failed, for the error)."""
    views = []
    for deployment in sorted(metadata.deployments(), key=lambda d: d.name):
        request = query_service_pb2.ListRunsRequest(
            flow_name=deployment.flow_name, tags=[deployment_tag(deployment.name)]
        )
        request.page.page_size = RECENT_RUNS
        runs = list(metadata.list_runs(request).runs)
        views.append(DeploymentView(deployment, runs, health_of(metadata, runs)))
    return views
