"""The notifications read model: each @notify of a finished run of a deployment, and
where its delivery stands.

A notification is requested with its run's RunFinished (the process manager appends
both together), claimed by one service replica for an attempt (NotificationSending)
and settled by the attempt's result (NotificationResult): delivered, tried again later
with backoff, or given up after MAX_ATTEMPTS. Every step is an event in the run's
stream, so ``ledgerflow audit`` shows who was told, when and how it went; the sender
(``orchestration/notifications.py``) only asks which notifications are due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerflow.engine.triggers import NOTIFY_OUTCOMES, TriggerError, check_notify
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import FailedPrecondition, InvalidArgument
from ledgerflow_service.validation import check_text

if TYPE_CHECKING:
    from ledgerflow_service.read_models.fold import ReadModelFold
    from ledgerflow_service.store.projector import PendingEvent

# Attempts before a notification is given up ("failed").
MAX_ATTEMPTS = 5
# The wait before attempt 2, 3, ... (seconds).
RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)
# The longest claim a replica may take on a notification (seconds): it outlives the
# attempt's timeout; after it, another replica takes the notification (the claimant
# died mid-attempt).
MAX_CLAIM_SECONDS = 3600


@dataclass
class NotificationRow:
    run_pathspec: str
    notification: int
    deployment: str
    outcome: str
    spec: bytes
    # "pending", "sending", "sent" or "failed".
    state: str
    attempts: int
    next_try_us: int | None
    claimed_until_us: int | None
    detail: str
    requested_at_us: int

    def notify(self) -> records_pb2.Notify:
        return records_pb2.Notify.FromString(bytes(self.spec))


def key(p: events_pb2.NotificationSending | events_pb2.NotificationResult) -> tuple[str, int]:
    return (f"{p.flow_name}/{p.run_id}", p.notification)


def _row(fold: ReadModelFold, found: tuple[str, int]) -> NotificationRow:
    row = fold.notifications.get(found)
    if row is None:
        raise FailedPrecondition(f"notification {found[1]} of run {found[0]} was never requested")
    return row


def notification_requested(
    fold: ReadModelFold, p: events_pb2.NotificationRequested, item: PendingEvent
) -> None:
    path = item.address.run_pathspec
    run = fold.run(path, open_only=False)
    if run.finished_at_us is None:
        raise FailedPrecondition(f"run {path} has not finished: there is nothing to tell yet")
    if p.outcome not in NOTIFY_OUTCOMES:
        raise InvalidArgument(f"notification outcome {p.outcome!r} is not success or failure")
    try:
        check_notify(p.notify)
    except TriggerError as error:
        raise InvalidArgument(str(error)) from None
    found = (path, p.notification)
    if fold.notifications.get(found) is not None:
        raise FailedPrecondition(f"notification {p.notification} of run {path} already exists")
    trigger = records_pb2.Trigger.FromString(bytes(run.trigger_message or b""))
    row = NotificationRow(
        run_pathspec=path,
        notification=p.notification,
        deployment=trigger.deployment,
        outcome=p.outcome,
        spec=p.notify.SerializeToString(deterministic=True),
        state="pending",
        attempts=0,
        next_try_us=item.recorded_at_us,
        claimed_until_us=None,
        detail="",
        requested_at_us=item.recorded_at_us,
    )
    fold.notifications[found] = row
    fold.mark(row)


def notification_sending(
    fold: ReadModelFold, p: events_pb2.NotificationSending, item: PendingEvent
) -> None:
    """A replica claims the next attempt. A claim that ran out is settled first (a
    NotificationResult for its attempt), so a late result of the old claimant is
    refused: each attempt has one sender and one result."""
    row = _row(fold, key(p))
    if row.state != "pending":
        raise FailedPrecondition(
            f"notification {p.notification} of run {row.run_pathspec} is {row.state}"
        )
    if p.attempt != row.attempts + 1:
        raise FailedPrecondition(
            f"notification {p.notification} of run {row.run_pathspec}: attempt {p.attempt} "
            f"is not the next ({row.attempts + 1})"
        )
    if not 0 < p.claim_seconds <= MAX_CLAIM_SECONDS:
        raise InvalidArgument(f"a claim holds 1 to {MAX_CLAIM_SECONDS} seconds")
    row.state, row.attempts = "sending", p.attempt
    row.claimed_until_us = item.recorded_at_us + p.claim_seconds * 1_000_000
    fold.mark(row)


def notification_result(
    fold: ReadModelFold, p: events_pb2.NotificationResult, item: PendingEvent
) -> None:
    row = _row(fold, key(p))
    check_text("notification_result.detail", p.detail)
    if row.state != "sending" or p.attempt != row.attempts:
        raise FailedPrecondition(
            f"notification {p.notification} of run {row.run_pathspec} has no attempt "
            f"{p.attempt} in flight"
        )
    row.detail, row.claimed_until_us = p.detail, None
    if p.delivered:
        row.state, row.next_try_us = "sent", None
    elif row.attempts >= MAX_ATTEMPTS:
        row.state, row.next_try_us = "failed", None
    else:
        delay = RETRY_DELAYS[min(row.attempts, len(RETRY_DELAYS)) - 1]
        row.state, row.next_try_us = "pending", item.recorded_at_us + int(delay * 1e6)
    fold.mark(row)


# The handler of each kind of event this read model folds.
HANDLERS: dict[str, Callable[..., None]] = {
    "notification_requested": notification_requested,
    "notification_sending": notification_sending,
    "notification_result": notification_result,
}
