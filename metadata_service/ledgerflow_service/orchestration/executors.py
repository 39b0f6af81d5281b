"""ListExecutors: the executors this service process heard from recently (the lease
desk's memory of its callers), each with its capacity and the tasks it holds leases on
(the queue read model, which knows each leased task's executor)."""

from __future__ import annotations

from ledgerflow.v1 import common_pb2, executor_service_pb2

from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.orchestration.leases import EXECUTOR_SEEN_SECONDS, LeaseDesk
from ledgerflow_service.queries import queue as queue_queries
from ledgerflow_service.queries.paging import page_size, take_page, text_token

# The longest window a caller may ask for (the desk keeps at most 10,000 executors).
MAX_SEEN_WITHIN_SECONDS = 86_400


def list_executors(
    desk: LeaseDesk,
    request: executor_service_pb2.ListExecutorsRequest,
    scope: CallScope | None = None,
) -> executor_service_pb2.ListExecutorsResponse:
    """A page of the executors seen within the request's window, by id."""
    within = request.seen_within_seconds or int(EXECUTOR_SEEN_SECONDS)
    if within > MAX_SEEN_WITHIN_SECONDS:
        raise InvalidArgument(
            f"seen_within_seconds is at most {MAX_SEEN_WITHIN_SECONDS}, got {within}"
        )
    page = request.page or common_pb2.PageRequest()
    size = page_size(page)
    after = text_token(page.page_token) if page.page_token else None
    seen = [e for e in desk.executors(within) if after is None or e.executor_id > after]
    seen = seen[: size + 1]
    with desk.database.read(scope) as tx:
        held = queue_queries.held_by(tx, [e.executor_id for e in seen])
    records = []
    for executor in seen:
        record = executor_service_pb2.ExecutorStatus(
            executor_id=executor.executor_id,
            queues=executor.queues,
            tasks=held[executor.executor_id],
        )
        if executor.total is not None and executor.free is not None:
            record.total.CopyFrom(executor.total)
            record.free.CopyFrom(executor.free)
        record.last_seen_at.FromMicroseconds(executor.seen_at_us)
        records.append(record)
    kept, token = take_page(records, [e.executor_id for e in seen], size)
    response = executor_service_pb2.ListExecutorsResponse(
        executors=kept, seen_within_seconds=within
    )
    response.page.next_page_token = token
    return response
