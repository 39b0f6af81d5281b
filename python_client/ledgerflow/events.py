"""``ledgerflow.publish_event``: start the deployments that wait for an event
(``@trigger(event=...)``) from Python, as ``ledgerflow events publish`` does from a
shell; a step can call it to start another flow."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow.engine.triggers import TriggerError, check_event_name, parse_payload
from ledgerflow.exceptions import LedgerflowException


def publish_event(
    name: str, payload: dict[str, Any] | None = None, *, event_id: str | None = None
) -> list[str]:
    """Publishes event `name` with `payload` (a JSON-able dict of at most 64 KiB; its
    fields named as a parameter of a waiting flow set that parameter) to the metadata
    service; returns the runs it started ("Flow/run_id"). Give `event_id` (a UUID) to
    make a retried call publish once."""
    from ledgerflow import client

    try:
        check_event_name(name)
        text = json.dumps(payload if payload is not None else {})
        parse_payload(text)
    except (TriggerError, TypeError) as error:
        raise LedgerflowException(f"cannot publish event {name!r}: {error}") from None
    if client._config().metadata != "service":
        raise LedgerflowException(
            "events start deployments, which live in the metadata service: set "
            "LEDGERFLOW_SERVICE=HOST:PORT (see docs/production.md)"
        )
    metadata = client._clients()[0]
    return list(metadata.publish_event(name, text, event_id or "").runs)
