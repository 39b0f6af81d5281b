"""The audit page's view of one event's payload: a one-line summary of what it says
(a TableVersionRead: which table and version, by which task) and the whole event as
JSON (protobuf's json_format, field names as in the .proto files)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from ledgerflow.ui.text import cut

SUMMARY_CHARS = 160
_TASK_FIELDS = ("flow_name", "run_id", "step_name", "task_id")


def event_json(event: Message) -> str:
    """The event as indented JSON (the page escapes it)."""
    return json_format.MessageToJson(event, preserving_proto_field_name=True, indent=2)


def summary(event: Message) -> str:
    """The payload's set fields as `name=value`, a task as its pathspec, cut to
    SUMMARY_CHARS."""
    kind = event.WhichOneof("payload")
    if kind is None:
        return ""
    payload = getattr(event, kind)
    parts = [f"{field.name}={_short(field, value)}" for field, value in payload.ListFields()]
    text = ", ".join(parts)
    return cut(text, SUMMARY_CHARS)


def _short(field: Any, value: Any) -> str:
    if field.message_type is None:
        if field.is_repeated:
            return "[" + ", ".join(map(str, value)) + "]"
        return str(value) if not isinstance(value, bool) else str(value).lower()
    if field.is_repeated and not _is_map(field):
        return f"[{len(value)} {field.message_type.name}]"
    if _is_map(field):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    if all(hasattr(value, name) for name in _TASK_FIELDS):
        return "/".join(getattr(value, name) for name in _TASK_FIELDS)
    if field.message_type.full_name == "google.protobuf.Timestamp":
        return str(value.ToJsonString())
    return json_format.MessageToJson(value, preserving_proto_field_name=True, indent=None)


def _is_map(field: Any) -> bool:
    return bool(field.message_type and field.message_type.GetOptions().map_entry)
