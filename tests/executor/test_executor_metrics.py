"""What the service and the executor say about executors: ListExecutors over real gRPC
(each executor's capacity and the tasks it holds, who may ask, what it refuses),
`ledgerflow executors` with a real executor running a task, and the executor's
Prometheus `/metrics` scraped over HTTP on loopback while it runs tasks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import events as ev
import grpc
import pytest
from conftest import Cluster
from ledgerflow.ui.executors_page import free_of_total
from ledgerflow.v1 import (
    common_pb2,
    events_pb2,
    executor_service_pb2,
    executor_service_pb2_grpc,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    records_pb2,
)
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.server import build_server
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_for

pytestmark = pytest.mark.slow

GRAPH = ev.one_step_graph()
ALICE = [("authorization", "Bearer s3cret-alice")]
RUNNER = [("authorization", "Bearer s3cret-runner")]


@pytest.fixture
def stubs(app: LedgerApplication, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A service with bearer tokens on loopback (SQLite, then Postgres): its executor and
    ledger stubs."""
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-alice alice\ns3cret-runner runner executor\n")
    server, port = build_server(app, port=0, tokens=TokenTable.from_file(tokens))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield (executor_service_pb2_grpc.ExecutorServiceStub(channel),
               ledger_service_pb2_grpc.LedgerServiceStub(channel))  # fmt: skip
    finally:
        channel.close()
        server.stop(0).wait()


def _lease(executor: Any, executor_id: str, cpu: float, queues: list[str]) -> Any:
    capacity = executor_service_pb2.Capacity(cpu=cpu, memory_mb=4096, gpu=1)
    request = executor_service_pb2.LeaseTaskRequest(
        executor_id=executor_id, free=capacity, total=capacity, queues=queues
    )
    return executor.LeaseTask(request, metadata=RUNNER)


def _refused(call: Any, code: grpc.StatusCode, *, metadata: Any = RUNNER) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call(metadata)
    assert caught.value.code() == code, caught.value.details()
    return str(caught.value.details())


def test_list_executors_over_grpc(stubs: tuple[Any, Any]) -> None:
    executor, ledger = stubs
    listed = executor_service_pb2.ListExecutorsRequest()
    # Who may ask: any caller the service knows, as for the other executor RPCs.
    _refused(lambda md: executor.ListExecutors(listed, metadata=md),
             grpc.StatusCode.UNAUTHENTICATED, metadata=[])  # fmt: skip
    _refused(lambda md: executor.ListExecutors(listed, metadata=md),
             grpc.StatusCode.UNAUTHENTICATED,
             metadata=[("authorization", "Bearer wrong")])  # fmt: skip
    none = executor.ListExecutors(listed, metadata=ALICE)
    assert list(none.executors) == [] and none.seen_within_seconds == 60

    started = ev.run_started("Remote", "1", graph=GRAPH)
    ledger.Append(ledger_service_pb2.AppendRequest(events=[started]), metadata=ALICE)
    leased = _lease(executor, "exec-b", 4, ["", "gpu"])
    assert leased.task.pathspec == "Remote/1/start/1"
    assert not _lease(executor, "exec-a", 2, []).HasField("task")  # nothing left: idle

    answer = executor.ListExecutors(listed, metadata=ALICE)
    assert [e.executor_id for e in answer.executors] == ["exec-a", "exec-b"]
    idle, busy = answer.executors
    assert list(idle.tasks) == [] and list(idle.queues) == [""]
    assert (idle.total.cpu, idle.free.cpu, idle.total.gpu) == (2, 2, 1)
    # What the lease call handed out is no longer free.
    assert (busy.total.cpu, busy.free.cpu) == (4, 3)
    assert (busy.total.memory_mb, busy.free.memory_mb) == (4096, 4096 - 512)
    assert list(busy.queues) == ["", "gpu"]
    assert [(t.pathspec, t.attempt, t.state) for t in busy.tasks] == [
        ("Remote/1/start/1", 0, records_pb2.QUEUE_STATE_LEASED)
    ]
    assert busy.tasks[0].executor_id == "exec-b"
    assert abs(busy.last_seen_at.ToSeconds() - leased.lease_expires_at.ToSeconds() + 30) < 5

    # Pages, by executor id.
    first_page = executor_service_pb2.ListExecutorsRequest()
    first_page.page.page_size = 1
    first = executor.ListExecutors(first_page, metadata=ALICE)
    assert [e.executor_id for e in first.executors] == ["exec-a"]
    assert first.page.next_page_token
    first_page.page.page_token = first.page.next_page_token
    second = executor.ListExecutors(first_page, metadata=ALICE)
    assert [e.executor_id for e in second.executors] == ["exec-b"]
    assert not second.page.next_page_token

    # What it refuses: a window past a day, a page past 1000, a token it never gave.
    for bad, said in [
        (executor_service_pb2.ListExecutorsRequest(seen_within_seconds=86_401), "at most 86400"),
        (executor_service_pb2.ListExecutorsRequest(page=common_pb2.PageRequest(page_size=1001)),
         "at most 1000"),
        (executor_service_pb2.ListExecutorsRequest(
            page=common_pb2.PageRequest(page_token="bm90IG1pbmU")), "page_token"),
    ]:  # fmt: skip
        details = _refused(lambda md, bad=bad: executor.ListExecutors(bad, metadata=md),
                           grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip
        assert said in details
    within = executor_service_pb2.ListExecutorsRequest(seen_within_seconds=86_400)
    assert len(executor.ListExecutors(within, metadata=RUNNER).executors) == 2


def test_an_executor_that_only_renewed_since_a_restart_is_listed_without_capacity(
    app: LedgerApplication, database_url: str
) -> None:
    alice = Principal("alice", authenticated=False)
    app.append(ledger_service_pb2.AppendRequest(
        events=[ev.run_started("Remote", "1", graph=GRAPH)]), alice)  # fmt: skip
    capacity = executor_service_pb2.Capacity(cpu=2, memory_mb=1024)
    leased = app.lease_task(executor_service_pb2.LeaseTaskRequest(
        executor_id="busy-1", free=capacity, total=capacity), alice)  # fmt: skip
    started = events_pb2.TaskStarted(task=ev.ref("Remote", "1", "start", "1"), attempt=0,
                                     lease_id=leased.lease_id)  # fmt: skip
    app.append(ledger_service_pb2.AppendRequest(
        events=[events_pb2.Event(event_id=ev.new_id(), task_started=started)]), alice)  # fmt: skip
    restarted = LedgerApplication(open_database(database_url))  # knows no executor yet
    try:
        assert list(restarted.list_executors(executor_service_pb2.ListExecutorsRequest())
                    .executors) == []  # fmt: skip
        t = leased.task
        renewed = restarted.renew_lease(executor_service_pb2.RenewLeaseRequest(
            executor_id="busy-1", flow_name=t.flow_name, run_id=t.run_id,
            step_name=t.step_name, task_id=t.task_id, attempt=t.attempt,
            lease_id=leased.lease_id), alice)  # fmt: skip
        assert renewed.keep_running
        (busy,) = restarted.list_executors(executor_service_pb2.ListExecutorsRequest()).executors
    finally:
        restarted.close()
    assert busy.executor_id == "busy-1"
    assert not busy.HasField("total") and not busy.HasField("free") and not busy.queues
    assert [task.pathspec for task in busy.tasks] == ["Remote/1/start/1"]
    assert free_of_total(busy, "cpu") == "?"


def _said(cluster: Cluster, pattern: str) -> str:
    """The first group of `pattern` in the cluster's logs, once it is there."""
    found: list[str] = []

    def there() -> bool:
        match = re.search(pattern, cluster.log_text())
        if match:
            found.append(match.group(1))
        return bool(match)

    wait_for(there, 60, f"{pattern!r} in the logs")
    return found[0]


def _scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    with urllib.request.urlopen(f"{address}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_executors_command_and_metrics_while_an_executor_runs_tasks(cluster: Cluster) -> None:
    none = cluster.cli("executors")
    assert none.stdout.startswith("no executor asked for work in the last 60 s"), none.stdout
    embedded = subprocess.run([sys.executable, "-m", "ledgerflow.cli", "executors"],
                              env=cluster.env, cwd=cluster.home, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    assert embedded.returncode == 2 and "--service HOST:PORT" in embedded.stderr

    cluster.executor("--metrics-port", "0", cpus=2, memory=4096)
    executor_id = _said(cluster, r"executor (\S+): local,")
    metrics = _said(cluster, r"executor metrics on (http://127\.0\.0\.1:\d+)/metrics")
    before = _scrape(metrics)
    assert before[("ledgerflow_executor_leases_total", ())] == 0
    assert before[("ledgerflow_executor_capacity", (("resource", "cpu"), ("state", "total")))] == 2

    run_id = cluster.submit("slow_items", "--count", "2", "--seconds", "4")
    runs: list[str] = []

    def both_items_run() -> bool:
        shown = cluster.cli("executors").stdout
        runs[:] = re.findall(rf"SlowItems/{run_id}/work/\d+ attempt 0 \(running\)", shown)
        return len(runs) == 2

    wait_for(both_items_run, 90, f"two work items running\n{cluster.log_text()}")
    table = cluster.cli("executors").stdout
    header, first = table.splitlines()[:2]
    assert header.split()[:2] == ["EXECUTOR", "CPU"]
    assert first.startswith(executor_id)
    assert re.search(r"\b1/2\b", first)  # two items of cpu=0.5 running: 1 of 2 free
    assert re.search(rf"\b{4096 - 512}/4096\b", first)
    listed = [json.loads(line) for line in cluster.cli("executors", "--json").stdout.splitlines()]
    (mine,) = listed
    assert mine["executor_id"] == executor_id and mine["queues"] == [""]
    assert mine["total"] == {"cpu": 2.0, "memory_mb": 4096, "gpu": 0}
    running = sorted((t["pathspec"], t["attempt"], t["state"]) for t in mine["tasks"])
    assert [state for *_, state in running] == ["running", "running"]

    during = _scrape(metrics)
    assert during[("ledgerflow_executor_attempts_running", ())] == 2
    assert during[("ledgerflow_executor_leases_total", ())] == 3  # start, and the two items
    assert during[("ledgerflow_executor_capacity", (("resource", "cpu"), ("state", "free")))] == 1
    assert during[("ledgerflow_executor_rpc_seconds_count", (("rpc", "LeaseTasks"),))] >= 2
    assert cluster.wait_finished("SlowItems", run_id)

    # A cancelled run: its running item's renewal is answered "stop".
    cancelled = cluster.submit("slow_items", "--count", "1", "--seconds", "120")
    wait_for(lambda: cluster.running("SlowItems", cancelled, "work"), 60, "the item to run")
    cluster.cli("cancel", f"SlowItems/{cancelled}")
    assert not cluster.wait_finished("SlowItems", cancelled, seconds=60)

    def settled() -> bool:
        return _scrape(metrics)[("ledgerflow_executor_attempts_running", ())] == 0

    wait_for(settled, 30, "no attempt running")
    after = _scrape(metrics)
    finished = {labels[0][1]: value for (name, labels), value in after.items()
                if name == "ledgerflow_executor_attempts_finished_total"}  # fmt: skip
    assert finished == {"succeeded": 6.0, "cancelled": 1.0}  # the second run's start too
    assert after[("ledgerflow_executor_leases_total", ())] == 7
    assert after[("ledgerflow_executor_renewals_refused_total", ())] >= 1
    assert after[("ledgerflow_executor_rpc_seconds_count", (("rpc", "RenewLease"),))] >= 1
    wait_for(lambda: "(running)" not in cluster.cli("executors").stdout, 30, "an idle executor")
