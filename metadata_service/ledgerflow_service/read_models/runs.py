"""The runs read model (with flows): a run starts once, with a user, its parameters
(JSON texts), its tags, maybe an origin run to resume from and its graph; it finishes
once, and succeeds only when its end step has."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ledgerflow_service.names import (
    check_content_key,
    check_id,
    run_pathspec,
)
from ledgerflow_service.read_models import deployments
from ledgerflow_service.read_models import graph as flow_graph
from ledgerflow_service.read_models.tags import set_initial_tags
from ledgerflow_service.validation import check_run_settings, check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

FLOW_COLUMNS = ("flow_name", "created_at_us", "created_by")
GRAPH_COLUMNS = ("run_pathspec", "graph")


@dataclass
class RunRow:
    pathspec: str
    flow_name: str
    run_id: str
    started_position: int
    user_name: str
    parameters_json: str
    origin_run_id: str
    created_at_us: int
    finished_at_us: int | None
    end_succeeded: int
    last_heartbeat_at_us: int
    code_package_key: str
    # What started a run of a deployment: its Trigger message, serialized (b"": none).
    trigger_message: bytes
    # 1 when the service orchestrates the run: never "lost" (queries/status.py).
    orchestrated: int


def run_started(fold: ReadModelFold, p: events_pb2.RunStarted, item: PendingEvent) -> None:
    path = item.address.run_pathspec
    if fold.runs.get(path) is not None:
        raise AlreadyExists(f"run {path} already exists")
    if not p.user:
        raise InvalidArgument("run_started.user is missing")
    check_text("run_started.user", p.user)
    check_content_key("run_started.code_package_key", p.code_package_key, optional=True)
    check_run_settings(p.tags, p.system_tags, p.parameters)
    if p.origin_run_id:
        origin = run_pathspec(p.flow_name, check_id("origin_run_id", p.origin_run_id))
        if fold.runs.get(origin) is None:
            raise NotFound(f"origin run {origin} does not exist")
    if p.flow_name not in fold.known_flows:
        fold.known_flows.add(p.flow_name)
        fold.new_flows[p.flow_name] = (p.flow_name, item.recorded_at_us, item.actor)
    run = RunRow(
        pathspec=path,
        flow_name=p.flow_name,
        run_id=p.run_id,
        started_position=item.position,
        user_name=p.user,
        parameters_json=json.dumps(dict(sorted(p.parameters.items()))),
        origin_run_id=p.origin_run_id,
        created_at_us=item.recorded_at_us,
        finished_at_us=None,
        end_succeeded=0,
        last_heartbeat_at_us=item.recorded_at_us,
        code_package_key=p.code_package_key,
        trigger_message=p.trigger.SerializeToString(deterministic=True)
        if p.HasField("trigger")
        else b"",
        orchestrated=int(p.HasField("graph")),
    )
    fold.runs[path] = run
    set_initial_tags(fold, path, p.system_tags, p.tags)
    _record_graph(fold, p, path)
    if p.HasField("trigger"):
        deployments.run_fired(fold, p, item)


def _record_graph(fold: ReadModelFold, p: events_pb2.RunStarted, path: str) -> None:
    """Keeps the run's graph for readers: a submitted one (which the service then
    orchestrates, see read_models/queue.py) or one a local run declared."""
    if p.HasField("graph") and p.HasField("declared_graph"):
        raise InvalidArgument(
            "run_started carries both graph (orchestrate the run) and declared_graph "
            "(a run the SDK runs itself): send one"
        )
    field = "graph" if p.HasField("graph") else "declared_graph"
    if not p.HasField(field):
        return
    graph = getattr(p, field)
    flow_graph.check(graph, field, orchestrated=field == "graph")
    fold.new_run_graphs.append((path, graph.SerializeToString()))


def run_heartbeat(fold: ReadModelFold, p: events_pb2.RunHeartbeat, item: PendingEvent) -> None:
    fold.run(item.address.run_pathspec, open_only=True)


def run_finished(fold: ReadModelFold, p: events_pb2.RunFinished, item: PendingEvent) -> None:
    run = fold.run(item.address.run_pathspec, open_only=True)
    if p.succeeded and not run.end_succeeded:
        raise FailedPrecondition(
            f"run {run.pathspec} cannot finish as succeeded: its end step has not succeeded"
        )
    run.finished_at_us = item.recorded_at_us


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {
    "run_started": run_started,
    "run_heartbeat": run_heartbeat,
    "run_finished": run_finished,
}
