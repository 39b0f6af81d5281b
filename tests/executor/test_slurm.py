"""The Slurm backend against a real Slurm cluster on this host (tests/slurm_cluster.py:
slurmctld and two slurmd nodes, cgroup limits, two fake GPUs on n1): each attempt is a
batch job with its step's resources, and Slurm enforces them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, attempts_of, make_cluster, run_over_memory
from ledgerflow.v1 import executor_service_pb2, records_pb2
from ledgerflow_executor.backends import Launch
from ledgerflow_executor.backends import slurm as slurm_backend
from slurm_cluster import SlurmCluster, slurm_cluster
from waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def on_slurm(tmp_path: Path, slurm: SlurmCluster) -> Iterator[Cluster]:
    """A service, and flows whose executors submit to the Slurm cluster."""
    for cluster in make_cluster(tmp_path, f"sqlite://{tmp_path / 'ledger.db'}"):
        cluster.env["SLURM_CONF"] = str(slurm.conf)
        yield cluster
    slurm.run("scancel", "--full", "--user", "root", check=False)


def _run_id(stdout: str) -> str:
    return stdout.split(" run ", 1)[1].split()[0]


def _named(name: str, step: str, run_id: str) -> bool:
    """Whether a job's name (STEP.TASK.ATTEMPT@FLOW/RUN) is one of the step's in the run."""
    return name.startswith(f"{step}.") and name.endswith(f"/{run_id}")


def _jobs(slurm: SlurmCluster) -> dict[str, str]:
    """Job name: state, of every job Slurm still lists."""
    listed = slurm.run("squeue", "--noheader", "--states=all", "--format=%j|%T").stdout
    return dict(line.split("|") for line in listed.splitlines())


def test_slurm_enforces_memory_and_cores(on_slurm: Cluster, slurm: SlurmCluster) -> None:
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    run_id = run_over_memory(on_slurm)
    # Each attempt was a job named after its task; Slurm saw the hog run out of memory.
    states = _jobs(slurm)
    hog = [state for name, state in states.items() if _named(name, "hog", run_id)]
    assert hog == ["OUT_OF_MEMORY"], states

    spread = on_slurm.flow("spread_items", "run", "--remote", "--count", "2")
    placed = on_slurm.artifact(f"SpreadItems/{_run_id(spread.stdout)}/join", "placements")
    assert all(len(p["cores"]) == 1 and p["job"] for p in placed), placed  # cpu=1: one core


def test_tasks_run_in_the_task_image_within_their_jobs_limits(
    on_slurm: Cluster, slurm: SlurmCluster, task_image: str
) -> None:
    on_slurm.executor("--image", task_image, backend="slurm", cpus=None, memory=None)
    run_over_memory(on_slurm)
    spread = on_slurm.flow("spread_items", "run", "--remote", "--count", "2")
    placed = on_slurm.artifact(f"SpreadItems/{_run_id(spread.stdout)}/join", "placements")
    assert all(p["job"] and len(p["cores"]) == 1 for p in placed), placed
    job_script = slurm.run("scontrol", "write", "batch_script", placed[0]["job"], "-").stdout
    assert "podman run --env SLURM_JOB_ID" in job_script and task_image in job_script


def test_a_foreach_runs_across_both_nodes(on_slurm: Cluster) -> None:
    on_slurm.executor("--partition", "debug", backend="slurm", cpus=None, memory=None)
    result = on_slurm.flow("spread_items", "run", "--remote", "--count", "20", "--seconds", "1")
    placed = on_slurm.artifact(f"SpreadItems/{_run_id(result.stdout)}/join", "placements")
    assert len(placed) == 20
    assert {p["node"] for p in placed} == {"n1", "n2"}, placed
    assert len({p["job"] for p in placed}) == 20


def test_gpu_tasks_get_their_own_gpus_and_a_third_waits(on_slurm: Cluster) -> None:
    # The executor offers 3 GPUs; Slurm has 2, so it holds the third job back.
    on_slurm.executor("--gpus", "3", backend="slurm", cpus=None, memory=None)
    run_id = on_slurm.submit("gpu_items", "--count", "3", "--seconds", "6")
    pending: list[str] = []

    def a_job_waits_in_slurm() -> bool:
        request = executor_service_pb2.ListQueuedTasksRequest(flow_name="GpuItems", run_id=run_id)
        tasks = on_slurm.metadata().list_queued_tasks(request).tasks
        started = [t for t in tasks if t.state != records_pb2.QUEUE_STATE_QUEUED]
        pending.extend(t.waiting_reason for t in started if t.waiting_reason)
        return any(reason.endswith("): Resources") for reason in pending)

    wait_for(a_job_waits_in_slurm, 60, f"a GPU job pending in Slurm for resources: {pending}")
    assert all(reason.startswith("pending in Slurm (job ") for reason in pending), pending
    assert on_slurm.wait_finished("GpuItems", run_id)
    placed = on_slurm.artifact(f"GpuItems/{run_id}/join", "placements")
    assert all(p["node"] == "n1" for p in placed), placed  # n2 has no GPUs
    assert {p["gpus"] for p in placed} == {"0", "1"}, placed
    first, second, third = sorted(placed, key=lambda p: p["began"])
    assert first["gpus"] != second["gpus"]  # the two that ran together had one each
    assert third["began"] >= min(first["ended"], second["ended"]) - 0.5  # it waited


def test_a_job_pending_in_slurm_begins_its_attempt_only_when_it_runs(
    on_slurm: Cluster, slurm: SlurmCluster
) -> None:
    """Time in Slurm's queue is not running time: TaskStarted is recorded once squeue
    says the job runs; meanwhile the task is leased, and says why it waits."""
    blockers = [
        slurm.run("sbatch", "--parsable", "--exclusive", f"--nodelist={node}",
                  "--output=/dev/null", "--wrap=sleep 300").stdout.strip()
        for node in ("n1", "n2")
    ]  # fmt: skip

    def holding() -> bool:
        states = slurm.run("squeue", "--noheader", f"--jobs={','.join(blockers)}",
                           "--format=%T").stdout.split()  # fmt: skip
        return states == ["RUNNING", "RUNNING"]

    wait_for(holding, 60, "the other jobs to hold both nodes")
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    run_id = on_slurm.submit("slow_items", "--count", "1")

    def first_step() -> list[records_pb2.QueuedTask]:
        return [t for t in on_slurm.queued("SlowItems", run_id) if t.step_name == "start"]

    def pending() -> bool:
        start = first_step()
        return bool(start) and start[0].waiting_reason.startswith("pending in Slurm (job ")

    wait_for(pending, 60, "the start step's job to pend in Slurm")
    time.sleep(1)  # several squeue answers later, still pending
    assert [t.state for t in first_step()] == [records_pb2.QUEUE_STATE_LEASED]
    events = on_slurm.events("SlowItems", run_id)
    assert not [e for e in events if e.HasField("task_started")]
    released = time.time()
    slurm.run("scancel", *blockers)
    assert on_slurm.wait_finished("SlowItems", run_id)
    began = [e for e in on_slurm.events("SlowItems", run_id)
             if e.HasField("task_started") and "/start/" in e.stream]  # fmt: skip
    assert began[0].recorded_at.ToMicroseconds() / 1e6 >= released


def test_cancel_reaches_scancel(on_slurm: Cluster, slurm: SlurmCluster) -> None:
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    run_id = on_slurm.submit("spread_items", "--count", "2", "--seconds", "120")

    def running() -> bool:
        work = [s for n, s in _jobs(slurm).items() if _named(n, "work", run_id)]
        return work == ["RUNNING", "RUNNING"]

    wait_for(running, 60, "two running jobs")
    on_slurm.cli("cancel", f"SpreadItems/{run_id}")
    assert not on_slurm.wait_finished("SpreadItems", run_id, seconds=60)

    def cancelled() -> bool:
        work = [s for n, s in _jobs(slurm).items() if _named(n, "work", run_id)]
        return work == ["CANCELLED", "CANCELLED"]

    wait_for(cancelled, 30, "Slurm to cancel both jobs")


def test_a_slurmctld_restart_mid_run_loses_nothing(on_slurm: Cluster, slurm: SlurmCluster) -> None:
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    run_id = on_slurm.submit("spread_items", "--count", "6", "--seconds", "3")
    wait_for(lambda: any(_named(n, "work", run_id) for n in _jobs(slurm)), 60, "a job")
    slurm.stop_controller()
    slurm.start_controller()
    assert on_slurm.wait_finished("SpreadItems", run_id, seconds=240)
    events = on_slurm.events("SpreadItems", run_id)
    started = attempts_of(events, "task_started")
    assert len(started) == len(set(started)) == 9  # start, 6 items, join, end: once each


def test_an_unreachable_slurm_gives_a_clear_error(
    on_slurm: Cluster, slurm: SlurmCluster, tmp_path: Path
) -> None:
    # The cluster's configuration, with a controller port nothing listens on.
    conf = tmp_path / "slurm.conf"
    lines = slurm.conf.read_text().splitlines()
    conf.write_text("\n".join("SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
                              for line in lines))  # fmt: skip
    on_slurm.env["SLURM_CONF"] = str(conf)
    answer = on_slurm.cli("executor", "--service", on_slurm.address, "--backend", "slurm",
                          check=False)  # fmt: skip
    assert answer.returncode == 1, answer.stderr
    assert "Error: sinfo failed:" in answer.stderr and "Traceback" not in answer.stderr
    assert "Unable to contact slurm controller" in answer.stderr
    on_slurm.env["SLURM_CONF"] = str(slurm.conf)
    nowhere = on_slurm.cli("executor", "--service", on_slurm.address, "--backend", "slurm",
                           "--partition", "nowhere", check=False)  # fmt: skip
    assert nowhere.returncode == 1 and "Traceback" not in nowhere.stderr, nowhere.stderr
    assert "nowhere" in nowhere.stderr, nowhere.stderr


def test_a_job_past_its_time_limit_ends_as_a_timeout(
    slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The executor ends an attempt at its @timeout itself; Slurm's own limit (whole
    # minutes, checked every 30 s) is for when it cannot: about 60 to 90 s here.
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    backend = slurm_backend.SlurmBackend()
    job = backend.start(Launch(
        name="over-time", command=["sleep", "600"], workdir=str(tmp_path),
        stdout_path=str(tmp_path / "stdout"), stderr_path=str(tmp_path / "stderr"),
        cpu=1, memory_mb=64, gpu=0, timeout_seconds=1, task="Slow/1/start/1.0",
    ))  # fmt: skip
    exits: list[tuple[int, int]] = []
    wait_for(lambda: bool(exits.extend(backend.poll()) or exits), 180, "Slurm's time limit")
    assert [handle for handle, _ in exits] == [job]
    ended = backend.why_ended(job, -9, 64)
    assert ended is not None and not ended.ok
    assert ended.kind == records_pb2.FAILURE_KIND_TIMEOUT
    assert (ended.error_type, ended.error_message) == (
        "TimeoutException",
        f"Slurm ended job {job} at its time limit (--time)",
    )
    assert _jobs(slurm)["start.1.0@Slow/1"] == "TIMEOUT"


@pytest.mark.parametrize(
    ("wait_status", "exit_code"), [(0, 0), (768, 3), (9, -9), (15, -15), (256, 1)]
)
def test_squeue_wait_statuses_become_exit_codes(wait_status: int, exit_code: int) -> None:
    assert slurm_backend._exit_code(wait_status) == exit_code


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [("gpu:2", 2), ("(null)", 0), ("gpu:a100:4(S:0)", 4), ("gpu:1,gpu:v100:2", 3), ("mps:100", 0)],
)
def test_sinfo_gres_counts_gpus(gres: str, gpus: int) -> None:
    assert slurm_backend._gres_gpus(gres) == gpus


def _steps(slurm: SlurmCluster) -> list[str]:
    """Names of the job steps running now."""
    return slurm.run("squeue", "--steps", "--noheader", "--format=%j").stdout.split()


def test_steps_in_held_allocations_keep_each_steps_limits(on_slurm: Cluster) -> None:
    on_slurm.executor("--slurm-steps", "--gpus", "3", backend="slurm", cpus=None, memory=None)
    run_over_memory(on_slurm)

    spread = on_slurm.flow("spread_items", "run", "--remote", "--count", "6", "--seconds", "1")
    placed = on_slurm.artifact(f"SpreadItems/{_run_id(spread.stdout)}/join", "placements")
    assert {p["node"] for p in placed} == {"n1", "n2"}, placed
    assert len({p["job"] for p in placed}) == 2  # the two held allocations, one a node
    assert all(len(p["cores"]) == 1 for p in placed), placed

    run_id = on_slurm.submit("gpu_items", "--count", "3", "--seconds", "4")
    reasons: list[str] = []

    def a_step_waits() -> bool:
        request = executor_service_pb2.ListQueuedTasksRequest(flow_name="GpuItems", run_id=run_id)
        tasks = on_slurm.metadata().list_queued_tasks(request).tasks
        reasons.extend(t.waiting_reason for t in tasks if t.state != records_pb2.QUEUE_STATE_QUEUED
                       and t.waiting_reason)  # fmt: skip
        return any(r.startswith("pending in Slurm (a step of job ") for r in reasons)

    wait_for(a_step_waits, 60, f"a GPU step waiting for its GPU: {reasons}")
    assert on_slurm.wait_finished("GpuItems", run_id)
    placed = on_slurm.artifact(f"GpuItems/{run_id}/join", "placements")
    first, second, third = sorted(placed, key=lambda p: p["began"])
    assert {first["gpus"], second["gpus"]} == {"0", "1"}, placed
    assert third["began"] >= min(first["ended"], second["ended"]) - 0.5


def test_cancel_ends_a_step(on_slurm: Cluster, slurm: SlurmCluster) -> None:
    on_slurm.executor("--slurm-steps", backend="slurm", cpus=None, memory=None)
    run_id = on_slurm.submit("spread_items", "--count", "2", "--seconds", "120")
    wait_for(lambda: sum(_named(n, "work", run_id) for n in _steps(slurm)) == 2, 60, "two steps")
    on_slurm.cli("cancel", f"SpreadItems/{run_id}")
    assert not on_slurm.wait_finished("SpreadItems", run_id, seconds=60)
    wait_for(lambda: not any(_named(n, "work", run_id) for n in _steps(slurm)), 30,
             "the steps to end")  # fmt: skip


PARALLEL_FLOW = Path(__file__).parents[1] / "sdk" / "flows" / "parallel_flow.py"


def _parallel_run(cluster: Cluster, *args: str) -> str:
    """Runs the @parallel flow remotely; returns its run id."""
    result = subprocess.run(
        [sys.executable, str(PARALLEL_FLOW), "run", "--remote", *args],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + cluster.log_text()
    return _run_id(result.stdout)


def test_a_gang_is_one_job_of_n_tasks_that_meet_on_the_main_node(
    on_slurm: Cluster, slurm: SlurmCluster
) -> None:
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    run_id = _parallel_run(on_slurm)  # three nodes meet on node 0's NodeAddr
    assert on_slurm.artifact(f"ParallelFlow/{run_id}/join", "heard") == [1, 2]
    gangs = [n for n in _jobs(slurm) if ".gang3@" in n]
    assert len(gangs) == 1 and _named(gangs[0], "train", run_id), gangs
    listed = slurm.run("squeue", "--noheader", "--states=all", "--format=%j|%C|%D").stdout
    job = next(line for line in listed.splitlines() if ".gang3@" in line)
    assert job.split("|")[1:] == ["3", "2"]  # three cores, one a task, on both nodes


def test_a_gang_in_the_task_image_meets_on_the_main_node(
    on_slurm: Cluster, task_image: str
) -> None:
    # Each node's podman container is told node 0's address by the job (here it is
    # 127.0.0.1, the nodes' NodeAddr, as current.parallel's default would be: so the
    # flow notes whether it was told).
    on_slurm.executor("--image", task_image, backend="slurm", cpus=None, memory=None)
    run_id = _parallel_run(on_slurm, "--nodes", "2")
    assert on_slurm.artifact(f"ParallelFlow/{run_id}/join", "heard") == [1]
    assert on_slurm.artifact(f"ParallelFlow/{run_id}/join", "told_main_ip") == [True, True]


def test_a_gang_is_one_srun_step_in_a_held_node(on_slurm: Cluster) -> None:
    on_slurm.executor("--slurm-steps", backend="slurm", cpus=None, memory=None)
    run_id = _parallel_run(on_slurm, "--nodes", "2")  # a node has 2 cores
    assert on_slurm.artifact(f"ParallelFlow/{run_id}/join", "heard") == [1]
    assert on_slurm.artifact(f"ParallelFlow/{run_id}/join", "nodes_seen") == [0, 1]


def test_a_job_script_holds_no_credentials(on_slurm: Cluster, slurm: SlurmCluster) -> None:
    """Anyone who may see a job reads its script back (`scontrol write batch_script`):
    the attempt's environment is in a 0600 file the job sources and deletes."""
    secret = "AKIA-ledgerflow-test-3c8e0a52"
    on_slurm.executor(backend="slurm", cpus=None, memory=None,
                      env={"AWS_ACCESS_KEY_ID": secret})  # fmt: skip
    run_id = on_slurm.submit("secret_env", "--seconds", "3")
    scripts: list[str] = []

    def script_read() -> bool:
        listed = slurm.run("squeue", "--noheader", "--format=%i|%j").stdout
        for line in listed.splitlines():
            job_id, name = line.split("|", 1)
            if _named(name, "start", run_id):
                said = slurm.run("scontrol", "write", "batch_script", job_id, "-", check=False)
                if said.returncode == 0 and said.stdout:
                    scripts.append(said.stdout)
        return bool(scripts)

    try:
        wait_for(script_read, 60, "the start step's job script")
    except AssertionError:
        raise AssertionError(on_slurm.log_text()) from None
    # Plain squeue (8 characters of a name) tells the jobs apart: step, task, attempt.
    plain = slurm.run("squeue", "--noheader", "--states=all").stdout
    assert " start.1. " in plain, plain
    assert on_slurm.wait_finished("SecretEnv", run_id, seconds=120), on_slurm.log_text()
    digest = on_slurm.artifact(f"SecretEnv/{run_id}/start", "key_digest")
    assert digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in scripts[0] and "AWS_ACCESS_KEY_ID" not in scripts[0], scripts[0]
    assert "/env.sh; rm -f " in scripts[0], scripts[0]


def test_an_attempts_environment_file_is_private(tmp_path: Path) -> None:
    launch = Launch(name="ledgerflow-x", command=["python", "flow.py"], workdir=str(tmp_path),
                    stdout_path="o", stderr_path="e", cpu=1, memory_mb=64, gpu=0,
                    env={"AWS_SECRET_ACCESS_KEY": "it's $secret"})  # fmt: skip
    path = slurm_backend.write_env_script(launch)
    assert path.stat().st_mode & 0o777 == 0o600
    said = subprocess.run(["bash", "-c", f". {path}; printf %s \"$AWS_SECRET_ACCESS_KEY\""],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert said.stdout == "it's $secret"


def test_a_jobs_name_says_what_it_runs() -> None:
    launch = Launch(name="ledgerflow-x", command=["python"], workdir="/w", stdout_path="o",
                    stderr_path="e", cpu=1, memory_mb=64, gpu=0,
                    task="Train/17/fit/3.1")  # fmt: skip
    assert slurm_backend.job_name(launch) == "fit.3.1@Train/17"
    assert slurm_backend.job_name(launch, gang=4) == "fit.3.1.gang4@Train/17"
    # ... and, with its comment (the launch's name), which attempt of which lease it is.
    found = slurm_backend.attempt_of_job("fit.3.1.gang4@Train/17", "ledgerflow-x@10.0.0.5:50051")
    assert found is not None
    assert (found.task, found.attempt, found.lease_id, found.service) == (
        "Train/17/fit/3", 1, "x", "10.0.0.5:50051"
    )  # fmt: skip
    assert slurm_backend.attempt_of_job("fit.3.1@Train/17", "someone else's") is None
    assert slurm_backend.attempt_of_job("ledgerflow-hold", "") is None


def test_a_job_a_dead_executor_left_is_cancelled_by_its_replacement(
    on_slurm: Cluster, slurm: SlurmCluster
) -> None:
    """A batch job outlives its executor (kill -9). Its TaskStarted says how to find it
    (its comment); once its lease lapses, the executor started in the dead one's place
    lists it, finds its attempt no longer current, and cancels it."""
    run_id = on_slurm.submit("slow_items", "--count", "1", "--seconds", "300")
    doomed = on_slurm.executor(backend="slurm", cpus=None, memory=None)

    def work_jobs() -> dict[str, str]:
        return {n: s for n, s in _jobs(slurm).items() if _named(n, "work", run_id)}

    wait_for(lambda: list(work_jobs().values()) == ["RUNNING"], 60, "the item's job to run")
    (first_job,) = work_jobs()
    # Its TaskStarted is recorded once the executor's squeue sees it run.
    wait_for(lambda: on_slurm.running("SlowItems", run_id, "work"), 30, "the attempt to begin")
    started = [e.task_started for e in on_slurm.events("SlowItems", run_id)
               if e.HasField("task_started") and "/work/" in e.stream]  # fmt: skip
    assert started[0].backend == "slurm"
    comments = slurm.run("squeue", "--noheader", "--format=%k").stdout.split()
    assert started[0].backend_handle in comments
    doomed.kill()
    doomed.wait()
    on_slurm.executor(backend="slurm", cpus=None, memory=None)
    wait_for(lambda: work_jobs().get(first_job) == "CANCELLED", 90,
             f"the replacement executor to cancel {first_job}")  # fmt: skip
    wait_for(lambda: "left running by SlowItems/" in on_slurm.log_text(), 30,
             "the replacement to say so")  # fmt: skip
