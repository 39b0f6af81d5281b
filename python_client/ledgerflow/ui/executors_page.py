"""The executors page, and `ledgerflow executors` with it: the executors that asked the
metadata service for work recently (ListExecutors), each with its capacity as free of
total and the task attempts it holds leases on, said the same way in both; and, on the
page, the queue (ListQueuedTasks): the open tasks of every remote run and why each
waits."""

from __future__ import annotations

from typing import Any

from ledgerflow.v1 import executor_service_pb2, records_pb2

# The page lists this many of the oldest open tasks, and says when there are more.
QUEUE_SHOWN = 200


def queue_names(queues: Any) -> str:
    """An executor's queues as people name them ("" is the default queue)."""
    return ", ".join(q or "default" for q in queues) or "-"


def task_state(task: records_pb2.QueuedTask) -> str:
    """queued, leased or running."""
    return records_pb2.QueueState.Name(task.state).removeprefix("QUEUE_STATE_").lower()


def free_of_total(executor: executor_service_pb2.ExecutorStatus, resource: str) -> str:
    """`free/total` of one resource (cpu, memory_mb, gpu); "?" while the executor has
    not said: it only renewed leases since the service started, busy."""
    if not executor.HasField("total"):
        return "?"
    free, total = getattr(executor.free, resource), getattr(executor.total, resource)
    if resource == "cpu":  # fractional; memory and GPUs whole, however many (never 2.6e+06)
        return f"{free:g}/{total:g}"
    return f"{free:d}/{total:d}"


def _capacity_json(executor: executor_service_pb2.ExecutorStatus, which: str) -> Any:
    if not executor.HasField("total"):
        return None
    capacity = getattr(executor, which)
    return {"cpu": capacity.cpu, "memory_mb": capacity.memory_mb, "gpu": capacity.gpu}


def executor_json(executor: executor_service_pb2.ExecutorStatus, seen: str) -> dict[str, Any]:
    """One executor as JSON (`seen`: its last_seen_at as text)."""
    return {
        "executor_id": executor.executor_id,
        "total": _capacity_json(executor, "total"),
        "free": _capacity_json(executor, "free"),
        "queues": list(executor.queues),
        "last_seen_at": seen,
        "tasks": [
            {"pathspec": t.pathspec, "attempt": t.attempt, "state": task_state(t),
             "cpu": t.resources.cpu, "memory_mb": t.resources.memory_mb, "gpu": t.resources.gpu}
            for t in executor.tasks
        ],
    }  # fmt: skip
