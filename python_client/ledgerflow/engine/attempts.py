"""The attempt policy: what happens after an attempt fails, as Metaflow defines it.

Two budgets, counted apart:

- The task's own failures (an exception, a timeout, a kill, running out of memory) use
  up ``@retry(times=N)``: after failure number ``f`` the task runs again while
  ``f <= N``.
- The infrastructure's failures (an attempt lost with its executor, whose lease lapsed;
  an engine that could not start it, or never began it: an image it could not pull, a
  pod no node could take; a node that failed under it) are retried on a budget of their
  own, :data:`MAX_LOST_ATTEMPTS`, and leave ``@retry``'s alone.

``@catch`` acts once ``@retry`` is used up. The last attempt catches an exception its
step raises itself (:func:`catches_in_process`): it stores the error in ``catch_var``
and the flow goes on. An attempt that dies without reporting (timed out, killed,
segfaulted) cannot catch anything, so one more attempt follows, the *fallback*
(:func:`runs_fallback`): it runs no user code and records that failure in ``catch_var``
instead. A foreach step is never caught: how many items would follow is unknown; nor is a
switch: which case would follow is unknown.

A node of a @parallel gang is not tried again, neither after a failure of its own nor
after a loss: it would start alone, where its gang could no longer meet it (the gang's
other nodes are running or done). So its first failure fails the task, and the run.
Metaflow retries the whole gang; that is not done here yet.

Attempt numbers count every attempt that started, lost ones included, so an attempt's
``retry_count`` is its number, as in Metaflow. A local run retries at once, as
Metaflow's local runtime does; on executors ``minutes_between_retries`` passes first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ledgerflow.v1 import records_pb2

# Attempts of one task that may be lost with their executors before the run fails.
MAX_LOST_ATTEMPTS = 3


class Next(enum.Enum):
    RETRY = "retry"  # run the step again
    CATCH = "catch"  # run @catch's fallback attempt
    FAIL = "fail"  # the task fails, and with it the run


@dataclass(frozen=True)
class Tally:
    """A task's failed attempts so far, counted apart (see the module doc)."""

    failures: int = 0  # the task's own
    lost: int = 0  # the infrastructure's

    def after(self, kind: int) -> Tally:
        """The tally once one more attempt of `kind` (a records_pb2.FailureKind) failed."""
        if is_infrastructure(kind):
            return Tally(self.failures, self.lost + 1)
        return Tally(self.failures + 1, self.lost)


def is_infrastructure(kind: int) -> bool:
    return kind == records_pb2.FAILURE_KIND_INFRASTRUCTURE


@dataclass(frozen=True)
class Decision:
    next: Next
    delay_seconds: float  # before the next attempt may start
    reason: str  # for people: the queue's reason, the progress line


def _catchable(step: records_pb2.StepSpec) -> bool:
    unknown_next = step.kind in (records_pb2.STEP_KIND_FOREACH, records_pb2.STEP_KIND_SWITCH)
    return step.catch and not unknown_next and not step.parallel


_GANG_NODE_FAILED = (
    "a node of a @parallel gang is not tried again: alone, it could not rejoin its gang"
)


def catches_in_process(step: records_pb2.StepSpec, failures: int) -> bool:
    """Whether an attempt that starts after `failures` failures of the task's own
    catches its step's exception itself: under @catch, its last try under @retry."""
    return _catchable(step) and failures >= step.retries


def runs_fallback(step: records_pb2.StepSpec, failures: int) -> bool:
    """Whether the attempt after `failures` failures is @catch's fallback."""
    return _catchable(step) and failures > step.retries


def after_failure(
    step: records_pb2.StepSpec, failures: int, error_type: str, *, remote: bool
) -> Decision:
    """What follows the task's own failure number `failures` (this one included)."""
    if step.parallel:
        return Decision(Next.FAIL, 0.0, f"{error_type}: {_GANG_NODE_FAILED}")
    if failures <= step.retries:
        delay = 60 * step.minutes_between_retries if remote else 0.0
        return Decision(Next.RETRY, delay, f"retry {failures} of {step.retries} after {error_type}")
    if runs_fallback(step, failures) and failures == step.retries + 1:
        return Decision(Next.CATCH, 0.0, f"@catch records {error_type}; the flow goes on")
    tries = f"{failures} attempt(s)" if failures > 1 else "its only attempt"
    return Decision(Next.FAIL, 0.0, f"{error_type} on {tries}")


def decide(
    step: records_pb2.StepSpec, tally: Tally, kind: int, error_type: str, *, remote: bool
) -> Decision:
    """What follows a failed attempt of `kind`, given the tally that counts it."""
    if is_infrastructure(kind):
        return after_lost(step, tally.lost, f"the infrastructure failed it ({error_type})")
    return after_failure(step, tally.failures, error_type, remote=remote)


LOST_WITH_EXECUTOR = "its executor stopped renewing its lease"


def after_lost(step: records_pb2.StepSpec, lost: int, cause: str = LOST_WITH_EXECUTOR) -> Decision:
    """What follows the infrastructure's failure number `lost` of a task: an attempt
    lost with its executor (the default `cause`), one its engine could not start or
    never began (TaskNotStarted), one a failed node took down."""
    if step.parallel:
        return Decision(Next.FAIL, 0.0, f"{cause}: {_GANG_NODE_FAILED}")
    if lost <= MAX_LOST_ATTEMPTS:
        return Decision(
            Next.RETRY, 0.0, f"{cause}; tried again ({lost} of {MAX_LOST_ATTEMPTS} such retries)"
        )
    return Decision(Next.FAIL, 0.0, f"{cause}, {lost} times")


def after_not_started(
    step: records_pb2.StepSpec, lost: int, error_type: str, error_message: str
) -> Decision:
    """What follows an attempt its engine never began (TaskNotStarted), the task's
    infrastructure failure number `lost`: no code of it ran, so the same attempt is
    queued again on the infrastructure's budget."""
    return after_lost(step, lost, f"it never began: {error_type}: {error_message}".rstrip(": "))


def after_queue_timeout(reason: str) -> Decision:
    """What follows an attempt that no executor took within its run's --queue-timeout
    (TaskQueueTimedOut, `reason` says why it waited): the task fails for good, on
    neither budget, whatever its decorators. No code of it ran, so @retry has nothing
    to retry, and queueing it again would wait the same way; @catch cannot record a
    failure no task had."""
    return Decision(Next.FAIL, 0.0, reason)
