"""What starts a deployment besides its schedule, and who hears of its runs: the rules
that ``@trigger``, ``@trigger_on_finish`` and ``@notify`` check when a flow is declared,
and that the service checks again when it is deployed and when an event is published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ledgerflow.v1 import records_pb2

# An event's name, as a deployment name's parts: letters, digits, '_', '.', '-'.
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
# The most a published event's payload (JSON text) may hold.
MAX_PAYLOAD_BYTES = 64 * 1024
NOTIFY_OUTCOMES = ("success", "failure")


class TriggerError(ValueError):
    """A trigger, an event or a notification that cannot work as given."""


def check_event_name(name: object) -> str:
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
        raise TriggerError(
            f"event name {name!r} is not valid: use 1-128 letters, digits, '_', '.' or '-' "
            "(e.g. 'data_ready')"
        )
    return name


def parse_payload(text: str) -> dict[str, Any]:
    """A published event's payload: a JSON object of at most MAX_PAYLOAD_BYTES (empty
    text is ``{}``)."""
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise TriggerError(
            f"the payload is {size:,} bytes; an event's payload holds at most "
            f"{MAX_PAYLOAD_BYTES:,} (publish a datastore key or a table name instead)"
        )
    if not text:
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise TriggerError(f"the payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise TriggerError(
            f'the payload must be a JSON object ({{"key": value}}), not {type(payload).__name__}'
        )
    return payload


def payload_parameters(
    payload: Mapping[str, Any], declared: Mapping[str, str], deployment: str
) -> dict[str, str]:
    """The parameter values (JSON text) an event's payload gives a run of `deployment`:
    its fields named as one of the flow's parameters (as Metaflow's @trigger maps
    them), each of the kind of the deployed value (`declared`, JSON text): a number
    may come as text ("5"), text as a number; anything else is a TriggerError."""
    return {
        name: json.dumps(_of_kind(name, value, json.loads(declared[name]), deployment))
        for name, value in payload.items()
        if name in declared
    }


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "text",
          list: "a list", dict: "an object"}  # fmt: skip


def _of_kind(name: str, value: Any, deployed: Any, deployment: str) -> Any:
    number = (int, float)
    if deployed is None or (type(value) is type(deployed)):
        return value
    if isinstance(deployed, float) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(deployed, number) and not isinstance(deployed, bool):
        if isinstance(value, str):
            try:
                parsed = float(value) if isinstance(deployed, float) else int(value)
            except ValueError:
                pass
            else:
                return parsed
    elif isinstance(deployed, str) and isinstance(value, number) and not isinstance(value, bool):
        return str(value)
    kind = _KINDS.get(type(deployed), type(deployed).__name__)
    raise TriggerError(
        f"the payload's {name!r} is {json.dumps(value)[:80]}, but {deployment}'s parameter "
        f"{name} takes {kind}"
    )


def trigger_cycle(upstreams: Mapping[str, Iterable[str]], name: str) -> list[str] | None:
    """A cycle of @trigger_on_finish through deployment `name`, as the deployments in
    the order they would start each other (ending where it began); None when there is
    none. `upstreams` maps each deployment to those whose runs start it."""
    downstream: dict[str, list[str]] = {}
    for waiting, sources in upstreams.items():
        for source in sources:
            downstream.setdefault(source, []).append(waiting)
    path, seen = [name], {name}

    def walk(node: str) -> list[str] | None:
        for nxt in sorted(downstream.get(node, ())):
            if nxt == name:
                return [*path, name]
            if nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                found = walk(nxt)
                if found:
                    return found
                path.pop()
        return None

    return walk(name)


def check_notify(notify: records_pb2.Notify) -> None:
    """A @notify: when (success and/or failure) and whom (a command or an http(s)
    webhook)."""
    if not notify.on:
        raise TriggerError("@notify needs on=['failure'] and/or 'success'")
    unknown = sorted(set(notify.on) - set(NOTIFY_OUTCOMES))
    if unknown:
        raise TriggerError(f"@notify(on=...) takes 'success' and 'failure', not {unknown[0]!r}")
    target = notify.WhichOneof("target")
    if target is None:
        raise TriggerError("@notify needs command='...' or webhook='http://...'")
    if target == "webhook":
        parts = urlsplit(notify.webhook)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TriggerError(
                f"@notify(webhook={notify.webhook!r}): a webhook is an http:// or https:// URL"
            )
    elif not notify.command.strip():
        raise TriggerError("@notify(command=...) is empty")
    if len(notify.webhook or notify.command) > 4096:
        raise TriggerError("@notify's command or webhook is longer than 4096 characters")


def notify_message(
    on: Iterable[str] | str, command: str | None, webhook: str | None
) -> records_pb2.Notify:
    """The Notify of ``@notify(on=..., command=... | webhook=...)``, checked."""
    if command is not None and webhook is not None:
        raise TriggerError("@notify takes command= or webhook=, not both (use two @notify)")
    outcomes = [on] if isinstance(on, str) else list(on)
    notify = records_pb2.Notify(on=outcomes)
    if command is not None:
        notify.command = command
    elif webhook is not None:
        notify.webhook = webhook
    check_notify(notify)
    return notify


def describe_triggers(spec: Any) -> str:
    """ "when a run of Upstream succeeds; on event data_ready" ("" without triggers);
    `spec` is a DeploymentCreated or a Deployment."""
    parts = [f"when a run of {name} succeeds" for name in spec.trigger_on_finish]
    parts += [f"on event {name}" for name in spec.trigger_on_events]
    return "; ".join(parts)


def describe_notify(notify: records_pb2.Notify, *, redact: bool = False) -> str:
    """ "on failure: POST https://hooks.example/…". With `redact` a webhook shows its
    scheme and host only: its path often holds a secret (a chat hook's token), and
    deployments are shown to every reader of the ledger."""
    if notify.webhook:
        url = notify.webhook
        if redact:
            parts = urlsplit(url)
            url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
        target = f"POST {url}"
    else:
        target = f"run {notify.command!r}"
    return f"on {' and '.join(notify.on)}: {target}"
