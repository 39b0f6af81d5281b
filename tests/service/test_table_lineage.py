"""Tables with lineage in the ledger (read_models/lineage.py, queries/tables.py), on
SQLite and on a real Postgres server: versions numbered in the order their events
arrive, reads recorded against a version, bad input refused with nothing written."""

from __future__ import annotations

import events as ev
import pytest
from ledgerflow.v1 import common_pb2
from ledgerflow.v1 import query_service_pb2 as q
from ledgerflow_service import LedgerApplication
from ledgerflow_service.errors import FailedPrecondition, InvalidArgument, NotFound
from test_ledger_contract import append, refused


def _open_task(app: LedgerApplication, run: str, step: str = "start", task: str = "1") -> None:
    append(app, ev.run_started("Flow", run), ev.task_started("Flow", run, step, task))


def _versions(app: LedgerApplication, table: str = "scores", **fields: object) -> list:
    request = q.ListTableVersionsRequest(namespace="team", table=table, **fields)  # type: ignore[arg-type]
    return list(app.list_table_versions(request).versions)


def test_versions_are_numbered_in_order_with_their_writers_and_readers(
    app: LedgerApplication,
) -> None:
    _open_task(app, "1")
    _open_task(app, "2")
    first = ev.table_written("Flow", "1", "start", "1", "team", "scores", num_rows=7)
    second = ev.table_written("Flow", "2", "start", "1", "team", "scores")
    append(app, first)
    append(app, second, ev.table_read("Flow", "2", "start", "1", "team", "scores", 1))
    append(app, ev.task_started("Flow", "2", "later", "2"),
           ev.table_read("Flow", "2", "later", "2", "team", "scores", 1),
           ev.table_read("Flow", "2", "later", "2", "team", "scores", 1))  # fmt: skip

    one, two = _versions(app)
    assert (one.version, one.written_by, one.run_pathspec) == (1, "Flow/1/start/1", "Flow/1")
    assert one.location == first.table_version_written.location and one.num_rows == 7
    assert list(one.files) == ["part-00000.parquet"] and one.schema == "x: int64"
    assert (two.version, two.written_by) == (2, "Flow/2/start/1")
    # Each task's read of a version is recorded once.
    assert [(r.read_by, r.run_pathspec) for r in one.reads] == [
        ("Flow/2/start/1", "Flow/2"), ("Flow/2/later/2", "Flow/2")
    ]  # fmt: skip
    assert not two.reads
    assert [v.version for v in _versions(app, latest=True)] == [2]
    assert [v.version for v in _versions(app, version=1)] == [1]
    page = _versions(app, page=common_pb2.PageRequest(page_size=1))
    assert [v.version for v in page] == [1]

    append(app, ev.table_written("Flow", "1", "start", "1", "team", "inputs"))
    tables = app.list_tables(q.ListTablesRequest(namespace="team")).tables
    assert [(t.table, t.latest_version) for t in tables] == [("inputs", 1), ("scores", 2)]
    assert not app.list_tables(q.ListTablesRequest(namespace="others")).tables


def test_a_missing_table_or_version_names_what_exists(app: LedgerApplication) -> None:
    _open_task(app, "1")
    append(app, ev.table_written("Flow", "1", "start", "1", "team", "scores"))
    with pytest.raises(NotFound, match=r"no table team/scoers; the tables of 'team': scores"):
        _versions(app, "scoers")
    with pytest.raises(NotFound, match=r"team/scores has no version 5 \(newest: 1\)"):
        _versions(app, version=5)
    with pytest.raises(NotFound, match="namespace 'nobody' has no tables"):
        app.list_table_versions(q.ListTableVersionsRequest(namespace="nobody", table="scores"))
    with pytest.raises(InvalidArgument, match="version or latest, not both"):
        _versions(app, version=1, latest=True)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"namespace": "../etc"}, InvalidArgument, "not a valid table name"),
        ({"table": ""}, InvalidArgument, "not a valid table name"),
        ({"location": ""}, InvalidArgument, "has no location"),
        ({"files": ["../../x.parquet"]}, InvalidArgument, "must be a path inside"),
        ({"schema": "x\x00"}, InvalidArgument, "NUL character"),
        ({"attempt": 3}, FailedPrecondition, "attempt 3"),
    ],
)
def test_a_bad_write_is_refused_and_changes_nothing(
    app: LedgerApplication, change: dict, error: type, match: str
) -> None:
    _open_task(app, "1")
    event = ev.table_written("Flow", "1", "start", "1", "team", "scores")
    for name, value in change.items():
        if name == "files":
            del event.table_version_written.files[:]
            event.table_version_written.files.extend(value)
        else:
            setattr(event.table_version_written, name, value)
    refused(app, error, event, match=match)


def test_reading_a_version_that_does_not_exist_is_refused(app: LedgerApplication) -> None:
    _open_task(app, "1")
    refused(app, FailedPrecondition,
            ev.table_read("Flow", "1", "start", "1", "team", "scores", 1),
            match=r"team/scores has no version 1 \(no versions\)")  # fmt: skip
    append(app, ev.table_written("Flow", "1", "start", "1", "team", "scores"))
    refused(app, FailedPrecondition,
            ev.table_read("Flow", "1", "start", "1", "team", "scores", 2),
            match=r"no version 2 \(versions 1 to 1\)")  # fmt: skip


def test_a_finished_attempt_cannot_write_a_version(app: LedgerApplication) -> None:
    _open_task(app, "1")
    append(app, ev.task_succeeded("Flow", "1", "start", "1"))
    refused(app, FailedPrecondition,
            ev.table_written("Flow", "1", "start", "1", "team", "scores"),
            match="already finished")  # fmt: skip
