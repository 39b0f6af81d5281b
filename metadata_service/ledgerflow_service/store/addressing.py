"""Where an event belongs: its kind, stream and run, derived from its payload (never
trusted from the client), with the names and ids in it checked. Used by the event
store to address appends and by the read models to find the rows an event touches."""

from __future__ import annotations

import functools
from typing import NamedTuple

from ledgerflow.v1 import events_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import (
    DEPLOYMENT_STREAM_PREFIX,
    EVENT_STREAM_PREFIX,
    check_deployment_name,
    check_id,
    check_identifier,
    checked_event_name,
    run_pathspec,
    task_pathspec,
)

# Payload kinds whose stream is their run (the others' stream is their task).
RUN_EVENTS = (
    "run_started", "run_heartbeat", "run_finished", "tags_added", "tags_removed",
    "run_cancel_requested", "notification_requested", "notification_sending",
    "notification_result",
)  # fmt: skip
# Payload kinds whose stream is their deployment's ("deployment:NAME").
DEPLOYMENT_EVENTS = (
    "deployment_created", "deployment_paused", "deployment_resumed", "deployment_deleted",
)  # fmt: skip


class EventAddress(NamedTuple):
    """Where an event belongs, derived from its payload (never trusted from the client)."""

    kind: str
    stream: str
    run_pathspec: str
    task_pathspec: str | None


def address_of(event: events_pb2.Event) -> EventAddress:
    """Validates the ids in the payload and derives the event's stream."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise InvalidArgument("event has no payload: set one of run_started, task_started, ...")
    payload = getattr(event, kind)
    if kind in RUN_EVENTS:
        path = checked_run_pathspec(payload.flow_name, payload.run_id)
        return EventAddress(kind, path, path, None)
    if kind in DEPLOYMENT_EVENTS:
        stream = DEPLOYMENT_STREAM_PREFIX + check_deployment_name(payload.name)
        return EventAddress(kind, stream, stream, None)
    if kind == "event_published":
        stream = EVENT_STREAM_PREFIX + checked_event_name(payload.name)
        return EventAddress(kind, stream, stream, None)
    if not payload.HasField("task"):
        raise InvalidArgument(f"{kind} event has no task reference")
    ref = payload.task
    run_path, path = checked_task_pathspecs(ref.flow_name, ref.run_id, ref.step_name, ref.task_id)
    return EventAddress(kind, path, run_path, path)


# The events of a batch name the same few runs and tasks over and over: their names
# are checked once and remembered (only valid ones: a check that raises is not cached).
@functools.lru_cache(maxsize=4096)
def checked_run_pathspec(flow_name: str, run_id: str) -> str:
    return run_pathspec(check_identifier("flow_name", flow_name), check_id("run_id", run_id))


@functools.lru_cache(maxsize=16384)
def checked_task_pathspecs(
    flow_name: str, run_id: str, step_name: str, task_id: str
) -> tuple[str, str]:
    """(run pathspec, task pathspec)."""
    run_path = checked_run_pathspec(flow_name, run_id)
    check_identifier("step_name", step_name)
    check_id("task_id", task_id)
    return run_path, task_pathspec(flow_name, run_id, step_name, task_id)
