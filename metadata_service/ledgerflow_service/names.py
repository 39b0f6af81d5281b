"""Rules for names and ids. Flow and step names must be Python identifiers because
they are Python classes and methods; run and task ids become path segments."""

from __future__ import annotations

import keyword
import re
import uuid

from ledgerflow.engine.triggers import TriggerError, check_event_name

from ledgerflow_service.errors import InvalidArgument

_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
MAX_TAG_LENGTH = 512
MAX_NAME_LENGTH = 128
# An executor queue's name: kept per executor (to say why a task waits) and in each
# queued task, so bounded, as the number of queues an executor names is.
MAX_QUEUE_NAME_LENGTH = 128


def check_identifier(kind: str, value: str) -> str:
    """A flow, step or artifact name: a Python identifier, not a keyword."""
    if not value:
        raise InvalidArgument(f"{kind} is missing")
    if len(value) > MAX_NAME_LENGTH or not value.isidentifier() or keyword.iskeyword(value):
        raise InvalidArgument(
            f"{kind} {value[:MAX_NAME_LENGTH]!r} is not a valid Python identifier "
            "(letters, digits and _, not starting with a digit, not a keyword)"
        )
    return value


# A datastore key: a content address (the hash's hex digits) or a name like one, never
# a path: no '/', no '.', so that no key reads outside the datastore (see DATASTORE_KEY
# in ledgerflow.datastore.content, which readers check too).
_CONTENT_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}\Z")


def check_content_key(field: str, key: str, *, optional: bool = False) -> str:
    """A datastore key in an event (an artifact's value, a log, a code package)."""
    if optional and not key:
        return key
    if not _CONTENT_KEY_RE.match(key):
        raise InvalidArgument(
            f"{field} {key[:80]!r} is not a datastore key: keys are 1-128 letters, digits, "
            "'_' or '-' (a content hash), never a path"
        )
    return key


_DEPLOYMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")
# The stream of a deployment's events: not a run pathspec (no flow name has a ':').
DEPLOYMENT_STREAM_PREFIX = "deployment:"
# The stream of a published event's name (EventPublished).
EVENT_STREAM_PREFIX = "event:"


def checked_event_name(name: str) -> str:
    """A published event's name, or INVALID_ARGUMENT saying what a valid one is."""
    try:
        return check_event_name(name)
    except TriggerError as error:
        raise InvalidArgument(str(error)) from None


def check_deployment_name(name: str) -> str:
    """A deployment: "FlowName" or "project.branch.FlowName"."""
    if not _DEPLOYMENT_RE.match(name):
        raise InvalidArgument(
            f"deployment name {name[:200]!r} is not valid: use 1-200 letters, digits, '_', "
            "'.' or '-', not starting with '.' or '-'"
        )
    return name


def check_id(kind: str, value: str) -> str:
    """A run or task id: letters, digits, '_', '.', '-' (at most 128), no '/'."""
    if not value:
        raise InvalidArgument(f"{kind} is missing")
    if not _ID_RE.match(value):
        raise InvalidArgument(
            f"{kind} {value[:128]!r} is not valid: use 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return value


def check_tag(tag: str) -> str:
    if not tag or not tag.strip():
        raise InvalidArgument("a tag must not be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise InvalidArgument(f"tag {tag[:40]!r}... is longer than {MAX_TAG_LENGTH} characters")
    if any(ord(c) < 32 for c in tag):
        raise InvalidArgument(f"tag {tag!r} contains control characters")
    return tag


def check_event_id(value: str) -> str:
    """A UUID, returned in canonical form (lower case, with hyphens)."""
    if _CANONICAL_UUID_RE.match(value):
        return value
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"event_id {value[:64]!r} is not a UUID") from None


def run_pathspec(flow_name: str, run_id: str) -> str:
    return f"{flow_name}/{run_id}"


def task_pathspec(flow_name: str, run_id: str, step_name: str, task_id: str) -> str:
    return f"{flow_name}/{run_id}/{step_name}/{task_id}"


def parse_pathspec(pathspec: str, parts: int) -> list[str]:
    """Splits Flow/run[/step[/task]] into exactly `parts` segments."""
    segments = pathspec.split("/")
    if len(segments) != parts or not all(segments):
        shape = "/".join(["Flow", "run_id", "step", "task_id"][:parts])
        raise InvalidArgument(f"pathspec {pathspec!r} is not of the form {shape}")
    return segments
