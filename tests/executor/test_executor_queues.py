"""Queue governance end to end (docs/executor.md, "Queues"): `run --remote` with
--priority, --max-workers and --queue-timeout against a real service and real
executors, and the command line refusing bad values before anything is recorded."""

from __future__ import annotations

import pytest
from conftest import Cluster
from ledgerflow.v1 import events_pb2, query_service_pb2

pytestmark = pytest.mark.slow


def _holding(events: list[events_pb2.Event]) -> list[tuple[int, int]]:
    """(from, to) in microseconds of each leased attempt: leased until its outcome or
    its lost lease."""
    leased: dict[tuple[str, int], int] = {}
    spans = []
    for event in events:
        kind = event.WhichOneof("payload")
        at = event.recorded_at.ToMicroseconds()
        if kind == "task_leased":
            leased[(event.stream, event.task_leased.attempt)] = at
        elif kind in ("task_succeeded", "task_failed", "lease_expired"):
            began = leased.pop((event.stream, getattr(event, kind).attempt), None)
            if began is not None:
                spans.append((began, at))
    assert not leased, f"attempts leased and never ended: {leased}"
    return spans


def _most_at_once(spans: list[tuple[int, int]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in edges:  # an end before a start at the same instant
        now += step
        most = max(most, now)
    return most


def test_max_workers_caps_a_remote_run_across_two_executors(cluster: Cluster) -> None:
    cluster.executor(cpus=2)
    cluster.executor(cpus=2)  # room for 8 items at once between them
    run_id = cluster.submit("slow_items", "--count", "6", "--seconds", "1", "--max-workers", "2")
    assert cluster.wait_finished("SlowItems", run_id)
    events = cluster.events("SlowItems", run_id)
    assert _most_at_once(_holding(events)) == 2
    (started,) = [e.run_started for e in events if e.HasField("run_started")]
    assert started.queue_policy.max_workers == 2


def test_higher_priority_runs_go_first(cluster: Cluster) -> None:
    low = cluster.submit("slow_items", "--count", "1")
    high = cluster.submit("slow_items", "--count", "1", "--priority", "5")
    cluster.executor(cpus=1)  # one task at a time
    assert cluster.wait_finished("SlowItems", low) and cluster.wait_finished("SlowItems", high)

    def first_lease(run_id: str) -> int:
        return min(e.recorded_at.ToMicroseconds() for e in cluster.events("SlowItems", run_id)
                   if e.HasField("task_leased"))  # fmt: skip

    assert first_lease(high) < first_lease(low)


def test_a_task_no_executor_takes_fails_at_the_queue_deadline(cluster: Cluster) -> None:
    cluster.executor("--queue", "gpu")  # present, but it serves another queue only
    id_file = cluster.home / "run-id"
    result = cluster.flow("slow_items", "run", "--remote", "--queue-timeout", "3",
                          "--run-id-file", str(id_file), check=False)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "no executor took it within 3 s: waiting: no executor" in output, output
    assert "Traceback" not in output
    run_id = id_file.read_text().strip()
    (timed_out,) = [e.task_queue_timed_out for e in cluster.events("SlowItems", run_id)
                    if e.HasField("task_queue_timed_out")]  # fmt: skip
    assert timed_out.task.step_name == "start" and timed_out.queue_timeout_seconds == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--remote", "--max-workers", "-1"), "Invalid value for '--max-workers'"),
        (("run", "--remote", "--max-workers", "100000"), "Invalid value for '--max-workers'"),
        (("run", "--remote", "--priority", "1001"), "Invalid value for '--priority'"),
        (("run", "--remote", "--priority", "high"), "Invalid value for '--priority'"),
        (("run", "--remote", "--queue-timeout", "0"), "Invalid value for '--queue-timeout'"),
        (("run", "--priority", "3"), "--priority goes with --remote"),
        (("run", "--queue-timeout", "30"), "--queue-timeout goes with --remote"),
        (("deploy", "--max-workers", "0"), "Invalid value for '--max-workers'"),
        (("deploy", "--priority", "-2000"), "Invalid value for '--priority'"),
    ],
)
def test_bad_queue_options_are_usage_errors_that_record_nothing(
    cluster: Cluster, args: tuple[str, ...], message: str
) -> None:
    result = cluster.flow("slow_items", *args, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    client = cluster.metadata()
    try:
        assert list(client.list_flows(query_service_pb2.ListFlowsRequest()).flows) == []
    finally:
        client.close()


def test_deploy_records_the_queue_policy_of_its_runs(cluster: Cluster) -> None:
    cluster.flow("slow_items", "deploy", "--priority", "3", "--max-workers", "2",
                 "--queue-timeout", "600")  # fmt: skip
    client = cluster.metadata()
    try:
        policy = client.deployment("SlowItems").queue_policy
    finally:
        client.close()
    assert (policy.priority, policy.max_workers, policy.queue_timeout_seconds) == (3, 2, 600)
