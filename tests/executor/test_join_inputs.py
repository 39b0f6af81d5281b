"""How an executor reads a task's inputs' artifacts: a join's inputs of one step in
calls of up to 100 tasks (ListArtifacts' task_ids), not a call each, each input with
its current attempt's artifacts. Against the real application, SQLite and Postgres."""

from __future__ import annotations

import events as ev
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.v1 import ledger_service_pb2 as ledger_api
from ledgerflow_executor.attempt import artifacts_of
from ledgerflow_service import LedgerApplication, Principal

ALICE = Principal("alice", authenticated=False)


def test_a_joins_inputs_are_read_a_hundred_tasks_a_call(app: LedgerApplication) -> None:
    events = [ev.run_started("F", "1"), ev.task_started("F", "1", "start", "1"),
              ev.artifacts("F", "1", "start", "1", things="k0"),
              ev.task_succeeded("F", "1", "start", "1")]  # fmt: skip
    for task in range(2, 252):
        events += [ev.task_started("F", "1", "work", str(task)),
                   ev.artifacts("F", "1", "work", str(task), doubled=f"k{task}"),
                   ev.task_succeeded("F", "1", "work", str(task))]  # fmt: skip
    app.append(ledger_api.AppendRequest(events=events), ALICE)
    metadata = EmbeddedMetadata("", "alice", app=app)
    inputs = [f"F/1/work/{task}" for task in range(251, 1, -1)]

    found = artifacts_of(metadata, [*inputs, "F/1/start/1", "F/1/work/999"])

    assert metadata.calls == 4  # work: 251 tasks (999 among them) in 100 + 100 + 51; start
    assert {path: found[path]["doubled"].content_key for path in inputs} == {
        f"F/1/work/{task}": f"k{task}" for task in range(2, 252)
    }
    assert list(found["F/1/start/1"]) == ["things"]
    assert found["F/1/work/999"] == {}  # no such task: nothing recorded
