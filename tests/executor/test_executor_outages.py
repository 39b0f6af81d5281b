"""Faults an executor's running work must survive, injected for real: the database
stopped for 20 s, the service stopped for 20 s, the executor frozen (SIGSTOP) for less
and for more than its lease, the executor killed (-9) while its container runs. Healthy
work is never killed and run again for a gap the service could not hear through
(orchestration/leases.py); work whose lease really lapsed is run again, its first
attempt's late outcome refused and what it left running killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, attempts_of, make_cluster
from postgres_server import PostgresServer, create_database
from waiting import wait_for

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 20
LEASE_SECONDS = 5  # far shorter than the outages, which must not cost the work


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A Postgres server of this test's own, which it stops and starts again."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _work_attempts(cluster: Cluster, run_id: str) -> list[int]:
    events = cluster.events("SlowItems", run_id)
    started = attempts_of(events, "task_started")
    return [attempt for stream, attempt in started if "/work/" in stream]


def _lease_expiries(cluster: Cluster, run_id: str) -> int:
    return sum(e.HasField("lease_expired") for e in cluster.events("SlowItems", run_id))


def _start_long_item(cluster: Cluster, seconds: int) -> str:
    run_id = cluster.submit("slow_items", "--count", "1", "--seconds", str(seconds))
    cluster.executor(lease_seconds=LEASE_SECONDS)
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 60, "the item to run")
    return run_id


def test_a_database_outage_does_not_cost_running_work(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = create_database(own_postgres.url, "outage")
    for cluster in make_cluster(tmp_path, url):
        run_id = _start_long_item(cluster, OUTAGE_SECONDS + 10)
        own_postgres.stop()
        time.sleep(OUTAGE_SECONDS)  # four leases' worth: none of it counts against them
        own_postgres.start()
        assert cluster.wait_finished("SlowItems", run_id, seconds=120), cluster.log_text()
        assert _work_attempts(cluster, run_id) == [0]
        assert _lease_expiries(cluster, run_id) == 0


def test_a_service_outage_does_not_cost_running_work(cluster: Cluster) -> None:
    run_id = _start_long_item(cluster, OUTAGE_SECONDS + 10)
    cluster.stop_service()
    time.sleep(OUTAGE_SECONDS)
    cluster.start_service()
    assert cluster.wait_finished("SlowItems", run_id, seconds=120), cluster.log_text()
    assert _work_attempts(cluster, run_id) == [0]
    assert _lease_expiries(cluster, run_id) == 0


def test_an_executor_frozen_for_less_than_its_lease_loses_nothing(cluster: Cluster) -> None:
    run_id = _start_long_item(cluster, 8)
    executor = cluster.executors[0]
    executor.send_signal(signal.SIGSTOP)
    time.sleep(LEASE_SECONDS / 2)
    executor.send_signal(signal.SIGCONT)
    assert cluster.wait_finished("SlowItems", run_id, seconds=120), cluster.log_text()
    assert _work_attempts(cluster, run_id) == [0]
    assert _lease_expiries(cluster, run_id) == 0


def test_an_executor_frozen_past_its_lease_has_its_attempt_run_again(cluster: Cluster) -> None:
    """The service cannot tell a frozen executor from a dead one: the lease lapses and
    the task runs again. Thawed, the executor is told its lease is gone, kills the
    first attempt, and the service refuses whatever it would still record of it."""
    run_id = _start_long_item(cluster, 6)
    executor = cluster.executors[0]
    executor.send_signal(signal.SIGSTOP)
    wait_for(lambda: _lease_expiries(cluster, run_id) == 1, 60, "the lease to lapse")
    executor.send_signal(signal.SIGCONT)
    assert cluster.wait_finished("SlowItems", run_id, seconds=120), cluster.log_text()
    assert _work_attempts(cluster, run_id) == [0, 1]
    events = cluster.events("SlowItems", run_id)
    succeeded = [e.task_succeeded.attempt for e in events
                 if e.HasField("task_succeeded") and "/work/" in e.stream]  # fmt: skip
    assert succeeded == [1]
    assert not any(e.HasField("task_failed") for e in events)


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_a_container_a_dead_executor_left_is_killed_by_its_replacement(
    cluster: Cluster, engine: str, request: pytest.FixtureRequest
) -> None:
    """The container outlives its executor (kill -9). Where it runs is in its
    TaskStarted; once its lease lapses, the executor started in the dead one's place
    finds it by its label and kills it, rather than let it run beside the attempt that
    replaces it."""
    args: tuple[str, ...] = ()
    root: tuple[str, ...] = ("--rootfs", "/:O")
    if engine == "docker":
        cluster.env["DOCKER_HOST"] = request.getfixturevalue("dockerd")
        args = ("--image", request.getfixturevalue("docker_task_image"))
        root = (args[1],)
    run_id = cluster.submit("slow_items", "--count", "1", "--seconds", "300")
    doomed = cluster.executor(*args, backend=engine, lease_seconds=LEASE_SECONDS)
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 120, "the item to run")
    started = [e.task_started for e in cluster.events("SlowItems", run_id)
               if e.HasField("task_started") and "/work/" in e.stream]  # fmt: skip
    assert started[0].backend == engine
    host, container = started[0].backend_handle.split("/")
    assert host == socket.gethostname()
    with_env = {**os.environ, **cluster.env}

    def listed() -> list[str]:
        names = subprocess.run([engine, "ps", "--format", "{{.Names}}"], capture_output=True,
                               text=True, check=True, env=with_env)  # fmt: skip
        return names.stdout.split()

    # TaskStarted is recorded just before the engine is asked to run the container.
    wait_for(lambda: container in listed(), 60, f"{engine} to run {container}")
    # An attempt of another service's, on the same engine: not this service's to judge.
    decoy = f"ledgerflow-decoy-{engine}"
    subprocess.run([engine, "run", "--detach", "--rm", "--name", decoy, "--label",
                    "ledgerflow.attempt=Other/1/start/1.0", "--label",
                    "ledgerflow.service=127.0.0.1:9", *root, "sleep", "300"],
                   check=True, capture_output=True, env=with_env)  # fmt: skip
    try:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        cluster.executor(*args, backend=engine, lease_seconds=LEASE_SECONDS)
        wait_for(lambda: container not in listed(), 90,
                 f"the replacement executor to kill {container}")  # fmt: skip
        wait_for(lambda: f"executor: killed {container}, left running by" in cluster.log_text(),
                 30, "the replacement to say so")  # fmt: skip
        time.sleep(LEASE_SECONDS + 1)  # another sweep
        assert decoy in listed()
    finally:
        subprocess.run([engine, "rm", "--force", decoy], capture_output=True, env=with_env)
    cluster.cli("cancel", f"SlowItems/{run_id}")
    assert not cluster.wait_finished("SlowItems", run_id, seconds=120)


def test_a_warm_container_ends_with_its_executor(cluster: Cluster) -> None:
    """A warm container's task server reads its requests from the executor through the
    engine's attached client: when the executor dies (kill -9), the server hears its
    stdin close, kills the attempt it runs and exits, and the engine removes the
    container; the attempt runs again under the executor that replaces it."""
    run_id = cluster.submit("slow_items", "--count", "1", "--seconds", "4")
    doomed = cluster.executor("--warm-containers", backend="podman",
                              lease_seconds=LEASE_SECONDS)  # fmt: skip
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 120, "the item to run")

    def warm_containers() -> list[str]:
        listed = subprocess.run(["podman", "ps", "--filter",
                                 f"label=ledgerflow.warm={cluster.address}", "--format",
                                 "{{.Names}}"],
                                capture_output=True, text=True, check=True)  # fmt: skip
        return listed.stdout.split()

    assert warm_containers()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    wait_for(lambda: not warm_containers(), 30, "the warm containers to end")
    cluster.executor("--warm-containers", backend="podman", lease_seconds=LEASE_SECONDS)
    assert cluster.wait_finished("SlowItems", run_id, seconds=120), cluster.log_text()
    assert _work_attempts(cluster, run_id) == [0, 1]
