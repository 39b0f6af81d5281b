"""Group commit: batches queued while another is written share one transaction, and
each stays atomic and independent. Runs on SQLite and Postgres."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import events as ev
import pytest
from ledgerflow.v1 import events_pb2, query_service_pb2
from ledgerflow_service import LedgerApplication, Principal
from ledgerflow_service.errors import FailedPrecondition
from ledgerflow_service.store.group_commit import GroupCommit

ALICE = Principal("alice", authenticated=False)


@contextmanager
def queued_together(appender: GroupCommit, count: int) -> Iterator[Callable[..., None]]:
    """Holds the appender's writer until `count` batches are queued, so that they are
    written as one group; yields `submit(events, principal)`. Outcomes (envelopes or
    the exception) land in `submit.outcomes`, in submission order."""
    outcomes: list[Any] = [None] * count
    threads: list[threading.Thread] = []

    def submit(events: list[events_pb2.Event], principal: Principal = ALICE) -> None:
        index = len(threads)

        def run() -> None:
            try:
                outcomes[index] = appender.append(events, principal)
            except Exception as error:
                outcomes[index] = error

        thread = threading.Thread(target=run)
        threads.append(thread)
        thread.start()
        # Queued in this order: the next batch is submitted only once this one waits.
        deadline = time.monotonic() + 10
        while len(appender._queue) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.005)

    submit.outcomes = outcomes  # type: ignore[attr-defined]
    with appender._writer:
        yield submit
    for thread in threads:
        thread.join(timeout=30)


def count_events(app: LedgerApplication) -> int:
    with app.database.read() as tx:
        row = tx.query_one("SELECT COUNT(*) FROM events")
    return int(row[0]) if row else 0


def test_queued_batches_commit_together_in_order(app: LedgerApplication) -> None:
    app.appender.append([ev.run_started("MyFlow", "1")], ALICE)
    bob = Principal("bob", authenticated=True, roles=frozenset({"executor"}))
    with queued_together(app.appender, 3) as submit:
        submit([ev.task_started("MyFlow", "1", "start", "1")])
        submit([ev.task_started("MyFlow", "1", "start", "2")], bob)
        submit([ev.run_heartbeat("MyFlow", "1"), ev.task_succeeded("MyFlow", "1", "start", "1")])
    first, second, third = submit.outcomes  # type: ignore[attr-defined]
    positions = [e.global_position for batch in (first, second, third) for e in batch]
    assert positions == [2, 3, 4, 5]  # in queue order, no gaps
    # One transaction: one commit time for all three.
    assert len({e.recorded_at.ToMicroseconds() for b in (first, second, third) for e in b}) == 1
    assert [e.actor for e in second] == ["bob"] and second[0].actor_authenticated
    assert first[0].actor == "alice" and not first[0].actor_authenticated
    assert third[0].stream_version == 2  # the run stream: started, then this heartbeat


def test_a_refused_batch_fails_alone(app: LedgerApplication) -> None:
    app.appender.append([ev.run_started("MyFlow", "1")], ALICE)
    with queued_together(app.appender, 3) as submit:
        submit([ev.task_started("MyFlow", "1", "start", "1")])
        submit([ev.task_succeeded("MyFlow", "1", "start", "99")])  # never started
        submit([ev.task_started("MyFlow", "1", "start", "2")])
    good, bad, also_good = submit.outcomes  # type: ignore[attr-defined]
    assert isinstance(bad, FailedPrecondition) and "has not been started" in bad.message
    assert good[0].global_position == 2 and also_good[0].global_position == 3
    assert count_events(app) == 3
    tasks = app.list_tasks(
        query_service_pb2.ListTasksRequest(flow_name="MyFlow", run_id="1", step_name="start")
    )
    assert sorted(t.task_id for t in tasks.tasks) == ["1", "2"]


def test_a_retried_batch_in_a_group_gets_its_original_events(app: LedgerApplication) -> None:
    first_try = [ev.run_started("MyFlow", "1"), ev.task_started("MyFlow", "1", "start", "1")]
    original = app.appender.append(first_try, ALICE)
    with queued_together(app.appender, 2) as submit:
        submit(list(first_try))  # the client retries, not knowing the first try landed
        submit([ev.task_started("MyFlow", "1", "start", "2")])
    retried, fresh = submit.outcomes  # type: ignore[attr-defined]
    assert [e.global_position for e in retried] == [e.global_position for e in original]
    assert fresh[0].global_position == 3
    assert count_events(app) == 3


def test_the_same_batch_queued_twice_is_recorded_once(app: LedgerApplication) -> None:
    app.appender.append([ev.run_started("MyFlow", "1")], ALICE)
    batch = [ev.task_started("MyFlow", "1", "start", "1")]
    with queued_together(app.appender, 2) as submit:
        submit(list(batch))
        submit(list(batch))  # e.g. a retry sent before the first attempt was answered
    one, two = submit.outcomes  # type: ignore[attr-defined]
    assert one[0].global_position == two[0].global_position == 2
    assert count_events(app) == 2


@pytest.mark.parametrize("text", ["with a \x1e record separator", ""])
def test_any_text_survives_the_batched_insert(app: LedgerApplication, text: str) -> None:
    """Texts travel to Postgres joined by a separator; those that hold it (or a lone
    empty text) take another path, and every one reads back unchanged."""
    app.appender.append([ev.run_started("MyFlow", "1")], ALICE)
    app.appender.append(
        [
            ev.task_started("MyFlow", "1", "start", "1"),
            ev.task_failed("MyFlow", "1", "start", "1", message=text),
        ],
        ALICE,
    )
    tasks = app.list_tasks(
        query_service_pb2.ListTasksRequest(flow_name="MyFlow", run_id="1", step_name="start")
    )
    assert [a.error_message for a in tasks.tasks[0].attempts] == [text]


def test_a_groups_plan_reads_every_row_its_batches_plans_read(app: LedgerApplication) -> None:
    """A group is folded from one plan merged from its batches' plans: it must load every
    row any of them would have loaded (a notification's run among them), or a batch
    valid alone would be refused in a group."""
    from ledgerflow_service.read_models.fold import plan_batch
    from ledgerflow_service.store.addressing import address_of

    notified = events_pb2.Event(
        event_id=ev.new_id(),
        notification_requested=events_pb2.NotificationRequested(
            flow_name="F", run_id="2", notification=0, outcome="success"
        ),
    )
    batches = [
        [ev.run_started("F", "1"), ev.task_started("F", "1", "start", "1")],
        [notified],
        [ev.table_written("F", "1", "start", "1", "ns", "t"), ev.run_finished("F", "3", True)],
    ]
    dialect = app.database.dialect

    def plan(events: list[events_pb2.Event]) -> Any:
        return plan_batch(((e.event_id, e, address_of(e)) for e in events), dialect)

    merged = app.read_models.merge([plan(batch) for batch in batches], dialect)
    assert merged.queries == plan([e for batch in batches for e in batch]).queries
