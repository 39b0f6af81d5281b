"""The rules of a run, in one place: what follows a finished task, what happens after an
attempt fails, which events an attempt's outcome becomes, and the facts ``current``
shows a task.

The local runtime (``ledgerflow.runtime.scheduler``), the service's process manager and queue
read model (``ledgerflow_service.orchestration``, ``read_models.queue``) and the
executor (``ledgerflow_executor``) all decide with these functions, so a flow follows
the same rules on a laptop and on executors, and their ledgers agree. The package
depends on nothing but the contract messages (``ledgerflow.v1``), the standard library
and croniter: the service imports it without importing the SDK.

- :mod:`.graph`: successors, foreach fan-out, join instances and their inputs' order.
- :mod:`.attempts`: ``@retry``, ``@catch`` and lost attempts.
- :mod:`.outcomes`: an attempt's outcome, why an attempt with no report failed, and the
  events both become.
- :mod:`.facts`: what ``current`` says inside a task.
- :mod:`.schedules`: a deployment's due times and the ids of a due time's run (croniter).
- :mod:`.projects`: ``@project``'s branches, their names and tags.
- :mod:`.queues`: a remote run's queue policy (priority, cap, queue timeout): its bounds.
"""

from ledgerflow.engine.attempts import (
    MAX_LOST_ATTEMPTS,
    Decision,
    Next,
    Tally,
    after_failure,
    after_lost,
    after_not_started,
    after_queue_timeout,
    catches_in_process,
    decide,
    is_infrastructure,
    runs_fallback,
)
from ledgerflow.engine.facts import task_facts
from ledgerflow.engine.graph import (
    JoinArrival,
    JoinBook,
    NextTask,
    RunGraph,
    UnknownStep,
    gang_failed_reason,
    gang_key,
    in_join_order,
)
from ledgerflow.engine.outcomes import (
    TaskOutcome,
    death_note,
    died_outcome,
    failed,
    lineage_events,
    new_event,
    note_death,
    outcome_events,
    started_event,
)

__all__ = [
    "MAX_LOST_ATTEMPTS",
    "Decision",
    "JoinArrival",
    "JoinBook",
    "Next",
    "NextTask",
    "RunGraph",
    "Tally",
    "TaskOutcome",
    "UnknownStep",
    "after_failure",
    "after_lost",
    "after_not_started",
    "after_queue_timeout",
    "catches_in_process",
    "death_note",
    "decide",
    "died_outcome",
    "failed",
    "gang_failed_reason",
    "gang_key",
    "in_join_order",
    "is_infrastructure",
    "lineage_events",
    "new_event",
    "note_death",
    "outcome_events",
    "runs_fallback",
    "started_event",
    "task_facts",
]
