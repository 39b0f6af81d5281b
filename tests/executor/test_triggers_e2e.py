"""Flows that start flows, end to end with the CLI and an executor: an event published
with `ledgerflow events publish` starts the first of three chained flows, each
upstream success starts the next, each reads what started it through
`current.trigger`, the last one's webhook hears of its success, and
`ledgerflow deployments show` says how the chain is doing. The rules themselves
(once per cause, retries, bad input) are in tests/service/test_triggers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Cluster
from ledgerflow.v1 import query_service_pb2
from waiting import wait_for
from webhook import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([])
    yield found
    found.close()


def only_run(cluster: Cluster, flow: str) -> str:
    """The run id of the flow's one run, once it has one."""
    found: list[str] = []

    def started() -> bool:
        metadata = cluster.metadata()
        runs = metadata.list_runs(query_service_pb2.ListRunsRequest(flow_name=flow)).runs
        metadata.close()
        found[:] = [run.run_id for run in runs]
        return bool(found)

    wait_for(started, 120, f"a run of {flow}\n{cluster.log_text()}")
    assert len(found) == 1, found
    return found[0]


def test_an_event_starts_a_chain_of_three_flows_and_a_webhook_hears_the_end(
    cluster: Cluster, receiver: Receiver
) -> None:
    cluster.executor(env={"LEDGERFLOW_TOKEN": "the-executors-own"})
    cluster.flow("chain_ingest", "deploy")
    train = cluster.flow("chain_train", "deploy").stdout
    assert "triggers:   when a run of ChainIngest succeeds" in train
    report = cluster.flow("chain_report", "deploy", "--notify-webhook", receiver.url,
                          "--notify-on", "success").stdout  # fmt: skip
    assert f"notify:     on success: POST {receiver.url}" in report

    published = cluster.cli("events", "publish", "data_ready", "--payload",
                            '{"date": "2026-12-06", "source": "s3"}').stdout  # fmt: skip
    assert "started ChainIngest/event-" in published
    ingest = only_run(cluster, "ChainIngest")
    assert cluster.wait_finished("ChainIngest", ingest)
    train_id = only_run(cluster, "ChainTrain")
    assert cluster.wait_finished("ChainTrain", train_id)
    report_id = only_run(cluster, "ChainReport")
    assert cluster.wait_finished("ChainReport", report_id)

    started_by = cluster.client_says(f"Step('ChainIngest/{ingest}/start').task.data.started_by")
    assert started_by == {"kind": "event", "event": "data_ready",
                          "payload": {"date": "2026-12-06", "source": "s3"}}  # fmt: skip
    assert cluster.client_says(f"Run('ChainIngest/{ingest}').data.date") == "2026-12-06"
    ingest_data = f"Step('ChainIngest/{ingest}/start').task.data"
    assert cluster.client_says(f"{ingest_data}.executor_token") is None
    assert cluster.client_says(f"{ingest_data}.service") == cluster.address
    train_data = f"Step('ChainTrain/{train_id}/start').task.data"
    assert cluster.client_says(f"{train_data}.upstream") == f"ChainIngest/{ingest}"
    assert cluster.client_says(f"{train_data}.rows") == 30
    assert cluster.client_says(f"Run('ChainReport/{report_id}').data.rows") == 30
    assert cluster.client_says(f"Run('ChainReport/{report_id}').trigger.kind") == "run"

    wait_for(lambda: bool(receiver.received), 30, f"the webhook\n{cluster.log_text()}")
    (told,) = receiver.received
    assert (told["flow"], told["run_id"], told["outcome"]) == ("ChainReport", report_id,
                                                                "success")  # fmt: skip
    audit = cluster.cli("audit", f"ChainReport/{report_id}").stdout
    assert "NotificationRequested" in audit and "NotificationResult" in audit

    shown = cluster.cli("deployments", "show", "ChainTrain").stdout
    assert "triggers:   when a run of ChainIngest succeeds" in shown
    assert "health:     last 1 finished, 0 failed (0%)" in shown


def test_bad_triggers_and_events_get_clear_errors(cluster: Cluster) -> None:
    # ChainTrain waits for ChainIngest, which is not deployed here.
    refused = cluster.flow("chain_train", "deploy", check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "waits for runs of 'ChainIngest', which is not deployed" in refused.stderr
    for args, message in [
        (("bad name!",), "is not valid"),
        (("ready", "--payload", "[1]"), "must be a JSON object"),
        (("ready", "--payload", "x" * 70_000), "an event's payload holds at most 65,536"),
    ]:
        result = cluster.cli("events", "publish", *args, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    nobody = cluster.cli("events", "publish", "ready").stdout
    assert "no deployment waits for it" in nobody
