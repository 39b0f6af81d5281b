"""Cards in the ledger (read_models/cards.py, queries/tasks.py), on SQLite and on a real
Postgres server: recorded by an open attempt, returned with their task (a clone with
its origin's), bad input refused with nothing written, and rebuilt as folded live."""

from __future__ import annotations

import events as ev
import pytest
from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow.v1 import query_service_pb2 as q
from ledgerflow_service import LedgerApplication
from ledgerflow_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from test_ledger_contract import append, refused, snapshot

KEY = "ab" * 32


def cards_event(run: str, *cards: records_pb2.Card, attempt: int = 0, step: str = "start",
                task: str = "1") -> events_pb2.Event:  # fmt: skip
    return events_pb2.Event(
        event_id=ev.new_id(),
        cards_recorded=events_pb2.CardsRecorded(
            task=ev.ref("Flow", run, step, task), attempt=attempt, cards=list(cards)
        ),
    )


def card(card_id: str = "", kind: str = "default", **extra: object) -> records_pb2.Card:
    fields: dict[str, object] = {"content_key": KEY, "size": 10, **extra}
    return records_pb2.Card(id=card_id, type=kind, **fields)  # type: ignore[arg-type]


def _task(
    app: LedgerApplication, run: str, step: str = "start", task: str = "1"
) -> records_pb2.Task:
    request = q.GetTaskRequest(flow_name="Flow", run_id=run, step_name=step, task_id=task)
    return app.get_task(request).task


def test_cards_are_returned_with_their_task_and_attempt(app: LedgerApplication) -> None:
    append(app, ev.run_started("Flow", "1"), ev.task_started("Flow", "1", "start", "1"))
    append(app, cards_event("1", card(), card("report", "blank", error="ValueError: no")))
    append(app, ev.task_succeeded("Flow", "1", "start", "1"))
    found = _task(app, "1").cards
    assert [(c.id, c.type, c.attempt, c.error) for c in found] == [
        ("", "default", 0, ""), ("report", "blank", 0, "ValueError: no")
    ]  # fmt: skip
    assert found[0].content_key == KEY and found[0].size == 10
    assert found[0].created_at.seconds > 0
    # ListTasks carries them too; a task without cards has none.
    append(app, ev.task_started("Flow", "1", "end", "2"))
    listed = app.list_tasks(q.ListTasksRequest(flow_name="Flow", run_id="1")).tasks
    assert [len(t.cards) for t in listed] == [2, 0]
    # A clone (resume) shows its origin's cards.
    append(app, ev.run_started("Flow", "2", origin_run_id="1"),
           ev.task_cloned("Flow", "2", "start", "1", "Flow/1/start/1"))  # fmt: skip
    assert [c.id for c in _task(app, "2").cards] == ["", "report"]


def test_a_card_recorded_again_keeps_its_first_record(app: LedgerApplication) -> None:
    append(app, ev.run_started("Flow", "1"), ev.task_started("Flow", "1", "start", "1"))
    append(app, cards_event("1", card("report", "blank")))
    append(app, cards_event("1", card("report", "blank", error="later")))
    assert [c.error for c in _task(app, "1").cards] == [""]


@pytest.mark.parametrize(
    ("cards", "error", "match"),
    [
        ([card("not-an-id")], InvalidArgument, "card id 'not-an-id' is not a valid"),
        ([card(kind="")], InvalidArgument, "card type is missing"),
        ([card("a"), card("a", "blank")], AlreadyExists, "card id 'a' appears twice"),
        ([card(), card()], AlreadyExists, "default card without an id appears twice"),
        ([records_pb2.Card(type="blank")], InvalidArgument, "has no content_key"),
        ([card(content_key="../x")], InvalidArgument, "is not a datastore key"),
        ([card(error="x\x00")], InvalidArgument, "NUL character"),
        ([card(error="x" * 5000)], InvalidArgument, "at most 4000"),
        ([card(f"c{i}") for i in range(101)], InvalidArgument, "at most 100"),
    ],
)
def test_bad_cards_are_refused_with_nothing_written(
    app: LedgerApplication, cards: list[records_pb2.Card], error: type, match: str
) -> None:
    append(app, ev.run_started("Flow", "1"), ev.task_started("Flow", "1", "start", "1"))
    refused(app, error, cards_event("1", *cards), match=match)


def test_only_an_open_attempt_records_cards(app: LedgerApplication) -> None:
    refused(app, FailedPrecondition, cards_event("9", card()), match="has not been started")
    append(app, ev.run_started("Flow", "1"), ev.task_started("Flow", "1", "start", "1"))
    refused(app, FailedPrecondition, cards_event("1", card(), attempt=2), match="not attempt 2")
    append(app, ev.task_succeeded("Flow", "1", "start", "1"))
    refused(app, FailedPrecondition, cards_event("1", card()), match="already finished")


def test_a_rebuild_gives_the_cards_the_live_fold_gave(app: LedgerApplication) -> None:
    append(app, ev.run_started("Flow", "1"), ev.task_started("Flow", "1", "start", "1"))
    append(app, cards_event("1", card(), card("report", "blank")))
    append(app, cards_event("1", card("report", "blank", error="ignored")))
    live = snapshot(app)
    assert live["cards"]
    app.rebuild_projections()
    assert snapshot(app) == live
