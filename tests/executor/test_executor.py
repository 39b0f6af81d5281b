"""Remote runs end to end with real processes: a metadata service, executors that run
tasks as local processes or podman containers, and `run --remote` following the run
from the ledger's watch stream."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import FLOWS, Cluster, attempts_of, run_over_memory
from ledgerflow.engine import MAX_LOST_ATTEMPTS
from ledgerflow.exceptions import RpcError
from ledgerflow.v1 import events_pb2, query_service_pb2, records_pb2
from waiting import wait_for

pytestmark = pytest.mark.slow


def test_a_remote_run_goes_through_branches_joins_and_a_foreach(cluster: Cluster) -> None:
    cluster.executor()
    result = cluster.flow("remote_branches", "run", "--remote", "--width", "3")
    assert "RemoteBranches/" in result.stdout and "succeeded" in result.stdout
    assert "✓ gather/" in result.stdout
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    events = cluster.events("RemoteBranches", run_id)
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds.count("task_queued") == kinds.count("task_leased") == 10
    assert kinds[-1] == "run_finished" and events[-1].actor == "ledgerflow-service"
    # The run is an ordinary run to the client API: artifacts, logs, code package.
    dump = cluster.flow("remote_branches", "dump", f"{run_id}/end")
    assert "[0, 10, 20]" in dump.stdout
    logs = cluster.flow("remote_branches", "logs", f"{run_id}/b")
    assert "hello from b" in logs.stdout


def test_detach_returns_at_once_and_the_run_goes_on(cluster: Cluster) -> None:
    run_id = cluster.submit("slow_items", "--count", "2")
    assert run_id.isdigit()
    cluster.executor()
    assert cluster.wait_finished("SlowItems", run_id)


@pytest.mark.parametrize("warm", [False, True], ids=["a-container-a-task", "warm-containers"])
def test_podman_enforces_memory_and_cpu(cluster: Cluster, warm: bool) -> None:
    cluster.executor(*(["--warm-containers"] if warm else []), backend="podman", memory=8192)
    run_id = run_over_memory(cluster)
    dump = cluster.flow("resource_limits", "dump", f"{run_id}/modest", "--name", "quota")
    assert "50000 100000" in dump.stdout  # cpu=0.5: half of each 100 ms period
    # The container killed for memory left no file where the executor was started.
    assert not (cluster.home / "oom").exists()


def test_warm_containers_are_for_podman_alone(cluster: Cluster) -> None:
    for backend in ("local", "docker"):
        answer = cluster.cli("executor", "--service", cluster.address, "--backend", backend,
                             "--warm-containers", check=False)  # fmt: skip
        assert answer.returncode == 2 and "Traceback" not in answer.stderr, answer.stderr
        assert f"--warm-containers is for --backend podman, not {backend}" in answer.stderr


def test_a_container_killed_by_someone_is_not_said_to_be_out_of_memory(
    cluster: Cluster,
) -> None:
    """Exit 137 under a memory limit is an OOM kill only where the engine recorded one:
    a `podman kill` is a kill."""
    run_id = cluster.submit("slow_items", "--count", "1", "--seconds", "300")
    cluster.executor(backend="podman")
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 120, "the item to run")
    (started,) = [e.task_started for e in cluster.events("SlowItems", run_id)
                  if e.HasField("task_started") and "/work/" in e.stream]  # fmt: skip
    container = started.backend_handle.split("/")[1]

    def killed() -> bool:
        return subprocess.run(["podman", "kill", "--signal", "KILL", container],
                              capture_output=True, check=False).returncode == 0  # fmt: skip

    wait_for(killed, 60, f"podman to kill {container}")
    assert not cluster.wait_finished("SlowItems", run_id)
    (failure,) = [e.task_failed for e in cluster.events("SlowItems", run_id)
                  if e.HasField("task_failed")]  # fmt: skip
    assert failure.kind == records_pb2.FAILURE_KIND_KILLED, failure
    assert failure.error_type == "TaskProcessDied"
    assert "memory" not in failure.error_message


def test_an_image_podman_cannot_pull_never_begins_and_fails_the_run_with_podmans_words(
    cluster: Cluster,
) -> None:
    """No TaskStarted for an attempt whose container never existed: its lease is given
    back (TaskNotStarted), tried again on the infrastructure's budget, and the run fails
    saying why."""
    cluster.executor("--image", "localhost/no-such-image:never", backend="podman")
    run_id = cluster.submit("slow_items", "--count", "1")
    followed = cluster.cli("runs", "follow", f"SlowItems/{run_id}", check=False, timeout=180)
    assert followed.returncode != 0, followed.stdout
    said = followed.stdout + followed.stderr
    assert "never began: ImagePullError" in said and "no-such-image" in said, said
    events = cluster.events("SlowItems", run_id)
    given_back = [e.task_not_started for e in events if e.HasField("task_not_started")]
    assert len(given_back) == MAX_LOST_ATTEMPTS + 1
    assert {(g.task.step_name, g.attempt) for g in given_back} == {("start", 0)}
    assert not [e for e in events if e.HasField("task_started")]
    assert (
        "podman could not create the attempt's container from localhost/no-such-image:never "
        "(exit 125)"
    ) in given_back[0].error_message
    (finished,) = [e.run_finished for e in events if e.HasField("run_finished")]
    assert not finished.succeeded


def test_a_pull_that_hangs_is_given_up_after_the_start_timeout(cluster: Cluster) -> None:
    """A registry that accepts connections and never answers: podman waits on it. After
    --start-timeout the executor kills podman's client and gives the lease back."""
    with socket.socket() as registry:
        registry.bind(("127.0.0.1", 0))
        registry.listen(64)  # connections queue here, and are never answered
        image = f"127.0.0.1:{registry.getsockname()[1]}/stuck:1"
        cluster.executor("--image", image, "--start-timeout", "2", backend="podman")
        run_id = cluster.submit("slow_items", "--count", "1")
        assert not cluster.wait_finished("SlowItems", run_id, seconds=120)
    events = cluster.events("SlowItems", run_id)
    given_back = [e.task_not_started for e in events if e.HasField("task_not_started")]
    assert len(given_back) == MAX_LOST_ATTEMPTS + 1
    assert given_back[0].error_type == "ImagePullError"
    assert f"did not create the attempt's container from {image}" in given_back[0].error_message
    assert "the executor's --start-timeout" in given_back[0].error_message
    assert not [e for e in events if e.HasField("task_started")]
    pulling = subprocess.run(["pgrep", "-af", "podman run"], capture_output=True, text=True,
                             check=False).stdout  # fmt: skip
    assert image not in pulling, pulling  # each client killed, none left pulling


def test_each_task_sees_exactly_its_gpus(cluster: Cluster) -> None:
    # No GPU here: what a task is told (scripts/gpu-check also computes on a real one).
    cluster.executor("--gpus", "1")
    result = cluster.flow("gpu_visibility", "run", "--remote")
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    seen = cluster.flow("gpu_visibility", "dump", f"{run_id}/join", "--name", "seen").stdout
    assert "'with_gpu': {'CUDA_VISIBLE_DEVICES': '0'" in seen, seen
    assert "'without_gpu': {'CUDA_VISIBLE_DEVICES': ''" in seen, seen


def test_a_remote_step_publishes_its_table_version(cluster: Cluster, tmp_path: Path) -> None:
    cluster.env["LEDGERFLOW_TABLE_ROOT"] = str(tmp_path / "tables")
    cluster.executor()
    result = cluster.flow("table_publish", "run", "--remote")
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    request = query_service_pb2.ListTableVersionsRequest(namespace="team", table="published")
    (version,) = cluster.metadata().list_table_versions(request).versions
    assert (version.version, version.num_rows) == (1, 3)
    assert version.written_by == f"TablePublish/{run_id}/start/1"


def test_an_r_flow_runs_remotely(cluster: Cluster) -> None:
    cluster.executor()
    script = Path(__file__).parents[1] / "sdk" / "r_flows" / "talk_flow.R"
    result = subprocess.run(
        ["Rscript", str(script), "run", "--remote"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address,
             "LEDGERFLOW_PYTHON": sys.executable},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + cluster.log_text()
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    assert cluster.artifact(f"MyFlow/{run_id}/join", "out") == 3


def test_a_task_image_built_here_runs_remote_tasks(cluster: Cluster, task_image: str) -> None:
    cluster.executor("--image", task_image, backend="podman", memory=8192)
    result = cluster.flow("remote_branches", "run", "--remote", "--width", "2")
    assert "succeeded" in result.stdout
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    dump = cluster.flow("remote_branches", "dump", f"{run_id}/end")
    assert "[0, 10]" in dump.stdout


def test_docker_runs_tasks_with_their_limits(
    cluster: Cluster, docker_task_image: str, dockerd: str
) -> None:
    cluster.env["DOCKER_HOST"] = dockerd
    cluster.executor("--image", docker_task_image, backend="docker", memory=8192)
    run_id = run_over_memory(cluster)
    dump = cluster.flow("resource_limits", "dump", f"{run_id}/modest", "--name", "quota")
    assert "50000 100000" in dump.stdout


def test_two_executors_never_run_one_attempt_twice(pg_cluster: Cluster) -> None:
    run_id = pg_cluster.submit("slow_items", "--count", "50")
    pg_cluster.executor(cpus=2)
    pg_cluster.executor(cpus=2)
    assert pg_cluster.wait_finished("SlowItems", run_id, seconds=400)
    events = pg_cluster.events("SlowItems", run_id)
    started = attempts_of(events, "task_started")
    assert len(started) == 53 == len(set(started))
    leases = [e.task_leased for e in events if e.HasField("task_leased")]
    assert len({lease.executor_id for lease in leases}) == 2  # both took work


def test_a_killed_executor_loses_its_lease_and_another_runs_the_task(cluster: Cluster) -> None:
    run_id = cluster.submit("slow_items", "--count", "1", "--seconds", "30")
    doomed = cluster.executor(lease_seconds=5)
    metadata = cluster.metadata()

    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 60,
             "the first executor to start the item")  # fmt: skip
    lease = next(t for t in cluster.queued("SlowItems", run_id) if t.step_name == "work")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    cluster.executor(lease_seconds=5)
    # A late event of the dead executor is refused: its lease expired.
    wait_for(
        lambda: any(e.HasField("lease_expired") for e in cluster.events("SlowItems", run_id)),
        60,
        "the lease to expire",
    )
    late = events_pb2.TaskSucceeded(
        task=events_pb2.TaskRef(
            flow_name="SlowItems", run_id=run_id, step_name="work", task_id=lease.task_id
        ),
        attempt=0,
        lease_id=_lease_id(cluster, run_id, lease.task_id),
    )
    with pytest.raises(RpcError) as refused:
        metadata.append_events([events_pb2.Event(event_id=_uuid(), task_succeeded=late)])
    assert refused.value.code == "FAILED_PRECONDITION"
    assert cluster.wait_finished("SlowItems", run_id, seconds=240)
    events = cluster.events("SlowItems", run_id)
    work = [a for a in attempts_of(events, "task_started") if "/work/" in a[0]]
    assert [attempt for _, attempt in work] == [0, 1]
    failed = [e.task_failed for e in events if e.HasField("task_failed")]
    assert failed == []  # the lost attempt is closed by LeaseExpired, not by a TaskFailed
    metadata.close()


def test_a_service_restart_mid_run_loses_nothing(cluster: Cluster) -> None:
    cluster.executor(cpus=1)
    follower = subprocess.Popen(
        [sys.executable, str(FLOWS / "slow_items.py"), "run", "--remote", "--count", "4",
         "--seconds", "2"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address}, cwd=cluster.home,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert follower.stdout is not None
    first = follower.stdout.readline()
    run_id = first.split(" run ", 1)[1].split()[0]
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 60, "an item to run")
    cluster.stop_service()
    time.sleep(2)
    cluster.start_service()
    output, _ = follower.communicate(timeout=180)
    assert follower.returncode == 0, first + output + cluster.log_text()
    assert "reconnecting" in output and f"SlowItems/{run_id} succeeded" in output
    assert cluster.wait_finished("SlowItems", run_id)


def test_a_failed_remote_run_is_resumed_remotely(cluster: Cluster) -> None:
    cluster.executor()
    failed = cluster.flow("flaky_branch", "run", "--remote", check=False)
    assert failed.returncode == 1 and "RuntimeError" in failed.stdout
    origin = failed.stdout.split(" run ", 1)[1].split()[0]
    # The executor gets the fix through its environment; the steps before `check`
    # are cloned, not run again.
    cluster.executors[0].kill()
    cluster.executors[0].wait()
    cluster.env["FLAKY_OK"] = "1"
    cluster.executor()
    resumed = cluster.flow("flaky_branch", "resume", "--remote", "--origin-run-id", origin)
    assert "succeeded" in resumed.stdout
    run_id = resumed.stdout.split(" run ", 1)[1].split()[0]
    events = cluster.events("FlakyBranch", run_id)
    cloned = sorted(e.stream.split("/")[2] for e in events if e.HasField("task_cloned"))
    assert cloned == ["gather", "start", "work", "work", "work"]
    ran = sorted(e.stream.split("/")[2] for e in events if e.HasField("task_started"))
    assert ran == ["check", "end"]
    dump = cluster.flow("flaky_branch", "dump", f"{run_id}/end", "--name", "total")
    assert "12" in dump.stdout


def test_sigterm_drains_an_executor(cluster: Cluster) -> None:
    run_id = cluster.submit("slow_items", "--count", "4", "--seconds", "3")
    executor = cluster.executor(cpus=1)  # two items at a time
    wait_for(lambda: cluster.running("SlowItems", run_id, "work"), 60, "an item to run")
    executor.send_signal(signal.SIGTERM)
    assert executor.wait(timeout=60) == 0
    events = cluster.events("SlowItems", run_id)
    work_started = [e for e in events if e.HasField("task_started") and "/work/" in e.stream]
    work_done = [e for e in events if e.HasField("task_succeeded") and "/work/" in e.stream]
    # What it had started finished and was recorded; it took nothing more.
    assert 1 <= len(work_started) == len(work_done) <= 2
    waiting = [t for t in cluster.queued("SlowItems", run_id) if t.step_name == "work"]
    assert [t.state for t in waiting] == [records_pb2.QUEUE_STATE_QUEUED] * (4 - len(work_done))
    assert "draining" in cluster.log_text()


def test_cancel_stops_a_remote_run(cluster: Cluster) -> None:
    run_id = cluster.submit("slow_items", "--count", "6", "--seconds", "60")
    cluster.executor(cpus=1)
    wait_for(
        lambda: cluster.running("SlowItems", run_id, "work"),
        60,
        "an item to run",
    )
    said = cluster.cli("cancel", f"SlowItems/{run_id}", "--reason", "changed my mind")
    assert "cancel of SlowItems/" in said.stdout
    assert not cluster.wait_finished("SlowItems", run_id, seconds=60)
    events = cluster.events("SlowItems", run_id)
    cancelled = sum(e.HasField("task_cancelled") for e in events)  # were queued
    failed = [e.task_failed for e in events if e.HasField("task_failed")]  # were running
    assert cancelled >= 1 and failed and cancelled + len(failed) == 6
    assert {(f.error_type, f.error_message) for f in failed} == {("Cancelled", "changed my mind")}


def test_a_task_no_executor_can_take_says_why_it_waits(cluster: Cluster) -> None:
    cluster.executor()
    run_id = cluster.submit("needs_gpus")
    # At first the start step may wait for the executor's first call; then the train
    # step waits for good, and says why.
    expected = [("train", "waiting: no executor offers gpu=4")]

    def says_why() -> bool:
        found = cluster.queued("NeedsGpus", run_id)
        return [(t.step_name, t.waiting_reason) for t in found] == expected

    wait_for(says_why, 60, f"the reason {expected}")
    cluster.cli("cancel", f"NeedsGpus/{run_id}")
    assert not cluster.wait_finished("NeedsGpus", run_id, seconds=60)


def test_bad_input_gives_clear_errors(cluster: Cluster) -> None:
    no_service = cluster.cli("executor", check=False)
    assert no_service.returncode == 2 and "--service HOST:PORT" in no_service.stderr
    unknown = cluster.cli(
        "executor", "--service", cluster.address, "--backend", "slurmish", check=False
    )
    assert unknown.returncode == 2 and "'slurmish' is not one of" in unknown.stderr
    unreachable = cluster.cli("executor", "--service", "127.0.0.1:1", check=False)
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "127.0.0.1:1 is unavailable" in unreachable.stderr
    assert "warning" not in unreachable.stderr  # this machine's capacity, the default
    cores = os.cpu_count() or 1
    past = cluster.cli("executor", "--service", "127.0.0.1:1", "--cpus", str(cores * 32),
                       "--memory", "99999999", check=False)  # fmt: skip
    assert f"--cpus {cores * 32} is more than this machine's {cores} cores" in past.stderr
    assert "--memory 99999999 (MB) is more than this machine's" in past.stderr
    no_service = cluster.flow("slow_items", "run", "--detach", check=False)
    assert no_service.returncode == 2 and "--detach goes with --remote" in no_service.stderr
    bad_run = cluster.cli("cancel", "SlowItems", check=False)
    assert bad_run.returncode == 2 and "FLOW/RUN_ID" in bad_run.stderr


def _lease_id(cluster: Cluster, run_id: str, task_id: str) -> str:
    leases = [
        e.task_leased
        for e in cluster.events("SlowItems", run_id)
        if e.HasField("task_leased") and e.task_leased.task.task_id == task_id
    ]
    return leases[0].lease_id


def _uuid() -> str:
    return str(uuid.uuid4())


def test_a_remote_task_reads_its_secrets_itself(cluster: Cluster, tmp_path: Path) -> None:
    """@secrets is resolved in the task's own process on the executor's machine: the
    value is never sent to the task, and reaches neither the ledger nor the logs."""
    password = "remote-secret-4c1d9e"
    secrets_file = tmp_path / "db.env"
    secrets_file.write_text(f"DB_PASSWORD={password}\n")
    cluster.executor(env={"SECRETS_FILE": str(secrets_file)})
    flow = Path(__file__).parents[1] / "sdk" / "flows" / "secrets_flow.py"
    result = subprocess.run(
        [sys.executable, str(flow), "run", "--remote"],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address}, cwd=cluster.home,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + cluster.log_text()
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    digest = cluster.client_says(f"Run('SecretsFlow/{run_id}')['start'].task.data.password_digest")
    assert digest == hashlib.sha256(password.encode()).hexdigest()
    assert not any(password.encode() in e.SerializeToString()
                   for e in cluster.events("SecretsFlow", run_id))  # fmt: skip
    stdout = cluster.client_says(f"Run('SecretsFlow/{run_id}')['start'].task.stdout")
    assert "connected with a password of" in stdout and password not in stdout
