"""One engine: the same flow run on this machine (`run`) and on an executor (`run
--remote`, the local backend) leaves the same ledger, up to ids, times and the events
only orchestration writes (queued, leased, heartbeats, logs).

Each flow below runs both ways against one service; the two ledgers are reduced to
what the run rules decide (which tasks ran, under which foreach frames and with which
inputs, each attempt and how it ended, which artifacts it recorded, how the run ended)
and compared. Every flow file of tests/ and examples/ is either compared here or named
in NOT_COMPARED with the reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, make_cluster
from ledgerflow.v1 import events_pb2

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
# Events only the orchestration of a remote run writes, and what a run says while alive.
_ORCHESTRATION_ONLY = {
    "task_queued", "task_leased", "lease_expired", "task_cancelled", "task_heartbeat",
    "run_heartbeat", "logs_recorded",
}  # fmt: skip

# (flow file, its arguments): each runs both ways.
COMPARED = {
    "examples/branch_flow.py": (),
    "examples/foreach_flow.py": (),
    "tests/sdk/flows/branch_flow.py": (),
    "tests/sdk/flows/foreach_flow.py": (),
    "tests/sdk/flows/quiet_catch_flow.py": (),
    "tests/sdk/flows/timeout_flow.py": (),
    "tests/sdk/flows/segfault_flow.py": (),
    "tests/sdk/flows/wide_flow.py": ("--width", "5"),
    "tests/executor/flows/catch_everything.py": (),
    "tests/executor/flows/retry_rules.py": (),
    "tests/executor/flows/nested_items.py": (),
    "tests/executor/flows/remote_branches.py": (),
    "tests/executor/flows/flaky_branch.py": (),
    "tests/sdk/flows/card_flow.py": (),
    "tests/sdk/flows/config_flow.py": (),
    "tests/sdk/flows/switch_flow.py": ("--mode", "quick"),
    "tests/sdk/flows/parallel_flow.py": (),
    "tests/sdk/flows/gangs_in_foreach_flow.py": (),
}
# Flow files not compared here, and why.
NOT_COMPARED = {
    "tests/sdk/flows/bad_artifact_name_flow.py": "its failure is a refused artifact name, the "
    "same code path as any exception (retry_rules)",
    "tests/executor/flows/pricing_flow.py": "a deployment's flow: its runs are fired by the "
    "service (test_deployments.py); its steps are linear, as in the flows above",
    "tests/sdk/flows/features_flow.py": "reads files given by path and a marker folder "
    "shared with the test; its rules (retry, catch, foreach) are in the flows above",
    "tests/sdk/flows/bad_artifact_flow.py": "its failure is an unpicklable artifact, the "
    "same code path as any exception (retry_rules)",
    "tests/sdk/flows/environment_flow.py": "@environment only",
    "tests/executor/flows/secret_env.py": "a secrets-passing test's flow: one linear step "
    "reading its environment",
    "tests/sdk/flows/hosted_flow.py": "a hosting test's flow",
    "tests/sdk/flows/python_values_flow.py": "the Python side of the R conversion tests: "
    "one linear step of values for R to read",
    "tests/sdk/flows/model_flow.py": "a hosting test's flow: one linear step keeping an "
    "object of a class from the module beside it",
    "tests/sdk/flows/include_flow.py": "IncludeFile reads the submitter's file",
    "tests/sdk/flows/invalid_flow.py": "never runs: its graph is refused",
    "tests/sdk/flows/lint_error_flow.py": "never runs: pylint refuses it",
    "tests/sdk/flows/metadata_flow.py": "opens the ledger from inside a step",
    "tests/sdk/flows/habits_flow.py": "opens its own task from inside a step",
    "tests/sdk/flows/retry_wait_flow.py": "remotely it waits @retry's two minutes",
    "tests/sdk/flows/pandas_frame_flow.py": "one linear step of data",
    "tests/sdk/flows/params_flow.py": "parameters only",
    "tests/sdk/flows/secrets_flow.py": "its secrets' sources come from the environment of "
    "whoever runs the task (test_executor.py runs it on an executor)",
    "tests/sdk/flows/param_sources_flow.py": "parameters only",
    "tests/sdk/flows/pid_flow.py": "records process ids",
    "tests/sdk/flows/runner_flow.py": "ledgerflow.Runner's parameters and a failure set by "
    "the environment; its rules are in the flows above",
    "tests/sdk/flows/s3_flow.py": "needs an S3 server",
    "tests/sdk/flows/sleepy_flow.py": "sleeps for interruption tests",
    "tests/sdk/flows/table_reader.py": "needs the tables' S3",
    "tests/sdk/flows/table_writer.py": "needs the tables' S3",
    "tests/executor/flows/gpu_items.py": "asks for GPUs",
    "tests/executor/flows/gpu_visibility.py": "asks for GPUs",
    "tests/executor/flows/needs_gpus.py": "asks for GPUs",
    "tests/executor/flows/resource_limits.py": "memory limits are the backend's",
    "tests/executor/flows/memory_threads.py": "memory limits are the backend's; records "
    "the cgroup it ran in",
    "tests/executor/flows/deployer_flow.py": "ledgerflow.Deployer's flow: its runs are "
    "fired by the service (test_deployer.py); one linear step, as in the flows above",
    "tests/executor/flows/slow_items.py": "sleeps for lease tests",
    "tests/executor/flows/spread_items.py": "records which executor ran it",
    "tests/executor/flows/table_publish.py": "needs the tables' S3",
    "tests/executor/flows/contract_task.py": "runs one step by hand in the backend contract",
    "tests/sdk/flows/duplicate_card_flow.py": "never runs: two of its cards share an id",
    "tests/executor/flows/chain_ingest.py": "a deployment's flow, started by a published "
    "event (test_triggers_e2e.py); one linear step, as in the flows above",
    "tests/executor/flows/chain_train.py": "a deployment's flow, started by an upstream "
    "run's success (test_triggers_e2e.py); one linear step",
    "tests/executor/flows/chain_report.py": "a deployment's flow, started by an upstream "
    "run's success (test_triggers_e2e.py); one linear step",
    "tests/sdk/flows/config_file_flow.py": "reads its config files from the folder it runs "
    "in; config_flow.py, compared above, carries configs to the executor",
}


def test_every_flow_is_compared_or_says_why_not() -> None:
    files = {
        str(path.relative_to(ROOT))
        for folder in ("examples", "tests/sdk/flows", "tests/executor/flows")
        for path in (ROOT / folder).glob("*.py")
        if "FlowSpec" in path.read_text()
    }
    assert files - {*COMPARED, *NOT_COMPARED} == set()
    assert {*COMPARED, *NOT_COMPARED} - files == set()


def _run(cluster: Cluster, flow_file: str, *args: str) -> str:
    """Runs the flow file against the cluster's service; returns the run id."""
    return _run_printing(cluster, flow_file, *args)[0]


def _run_printing(cluster: Cluster, flow_file: str, *args: str) -> tuple[str, str]:
    """Runs the flow file against the cluster's service; returns the run id and what
    the run printed."""
    result = subprocess.run(
        [sys.executable, str(ROOT / flow_file), *args],
        env={**cluster.env, "LEDGERFLOW_SERVICE": cluster.address},
        cwd=cluster.home, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    found = re.search(r" run (\d+) by ", result.stdout)
    assert found, f"{flow_file} {args}: {result.stdout}{result.stderr}{cluster.log_text()}"
    return found.group(1), result.stdout


def ledger_shape(events: list[events_pb2.Event]) -> Counter[tuple[object, ...]]:
    """What the run rules decided, without ids, times or orchestration: each event as
    (kind, task by step and foreach indices, attempt, what it says)."""
    keys: dict[str, tuple[object, ...]] = {}
    for event in events:
        kind = event.WhichOneof("payload")
        if kind in ("task_started", "task_cloned"):
            payload = getattr(event, kind)
            path = "/".join((payload.task.flow_name, payload.task.run_id,
                             payload.task.step_name, payload.task.task_id))  # fmt: skip
            keys[path] = (payload.task.step_name, tuple(f.index for f in payload.foreach_stack))
    shape: Counter[tuple[object, ...]] = Counter()
    for event in events:
        kind = event.WhichOneof("payload")
        if kind in _ORCHESTRATION_ONLY:
            continue
        payload = getattr(event, kind)
        if kind == "run_started":
            # A map: its order is not part of what was recorded.
            shape[(kind, tuple(sorted(payload.parameters.items())))] += 1
            continue
        if kind == "run_finished":
            shape[(kind, payload.succeeded)] += 1
            continue
        task = payload.task
        key = keys["/".join((task.flow_name, task.run_id, task.step_name, task.task_id))]
        detail: object = ""
        if kind == "task_started":
            inputs = tuple(sorted(keys[p] for p in payload.input_pathspecs))
            stack = tuple((f.step_name, f.index, f.num_splits) for f in payload.foreach_stack)
            detail = (inputs, stack, payload.resources.SerializeToString())
        elif kind == "task_failed":
            detail = (payload.error_type, payload.kind)
        elif kind == "task_succeeded":
            detail = payload.num_splits
        elif kind == "artifacts_recorded":
            detail = tuple(sorted((a.name, a.type_name) for a in payload.artifacts))
        elif kind == "cards_recorded":  # which cards, and whether each rendered
            detail = tuple(sorted((c.id, c.type, bool(c.error)) for c in payload.cards))
        elif kind == "task_cloned":
            detail = tuple(sorted(keys.get(p, p) for p in payload.input_pathspecs))
        shape[(kind, key, getattr(payload, "attempt", 0), detail)] += 1
    return shape


def _compare(cluster: Cluster, flow: str, local_id: str, remote_id: str) -> None:
    local = ledger_shape(cluster.events(flow, local_id))
    remote = ledger_shape(cluster.events(flow, remote_id))
    assert local == remote, (
        f"{flow}: only local {sorted(local - remote)}; only remote {sorted(remote - local)}"
    )


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("same-ledger")
    yield from make_cluster(tmp, f"sqlite://{tmp / 'ledger.db'}")


@pytest.fixture(scope="module")
def running(shared_cluster: Cluster) -> Cluster:
    shared_cluster.executor(cpus=4, memory=8192)
    return shared_cluster


@pytest.mark.parametrize("flow_file", sorted(COMPARED))
def test_a_flow_leaves_the_same_ledger_locally_and_remotely(
    running: Cluster, flow_file: str
) -> None:
    args = COMPARED[flow_file]
    local_id = _run(running, flow_file, "run", *args)
    remote_id = _run(running, flow_file, "run", "--remote", *args)
    flow = _flow_of(running, flow_file)
    _compare(running, flow, local_id, remote_id)


def test_resume_leaves_the_same_ledger_locally_and_remotely(
    running: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-b"
    flow_file = "tests/executor/flows/retry_rules.py"
    origins = {}
    for mode in ("local", "remote"):
        marker.touch()
        remote = ("--remote",) if mode == "remote" else ()
        origins[mode] = _run(running, flow_file, "run", *remote, "--fail-marker", str(marker))
    _compare(running, "RetryRules", origins["local"], origins["remote"])
    marker.unlink()
    local = _run(running, flow_file, "resume", "--origin-run-id", origins["local"])
    remote = _run(running, flow_file, "resume", "--remote", "--origin-run-id", origins["remote"])
    _compare(running, "RetryRules", local, remote)
    shape = ledger_shape(running.events("RetryRules", local))
    assert ("run_finished", True) in shape
    assert sum(n for k, n in shape.items() if k[0] == "task_cloned") == 2  # start and a


def test_caught_failures_are_the_same_both_ways(running: Cluster) -> None:
    flow_file = "tests/executor/flows/catch_everything.py"
    caught = []
    for remote in ((), ("--remote",)):
        run_id, printed = _run_printing(running, flow_file, "run", *remote)
        caught.append(running.artifact(f"CatchEverything/{run_id}/join", "caught"))
        # The progress says what the fallback attempts record, following a remote run too.
        assert "times_out/" in printed and "@catch records TimeoutException" in printed
        assert "@catch records TaskProcessDied" in printed and "retried/" in printed
    assert (
        caught[0]
        == caught[1]
        == {
            "raises": "builtins.ValueError",
            "times_out": "TimeoutException",
            "killed": "TaskProcessDied",
            "retried": "builtins.KeyError",
        }
    )


def _flow_of(cluster: Cluster, flow_file: str) -> str:
    found = re.search(r"class (\w+)\(FlowSpec\)", (ROOT / flow_file).read_text())
    assert found
    return found.group(1)


def test_a_foreach_over_its_limit_fails_the_same_way_locally_and_remotely(
    running: Cluster,
) -> None:
    flow_file = "tests/sdk/flows/wide_flow.py"
    local_id = _run(running, flow_file, "run", "--width", "101")
    remote_id = _run(running, flow_file, "run", "--remote", "--width", "101")
    _compare(running, "WideFlow", local_id, remote_id)
    for run_id in (local_id, remote_id):
        (failed,) = [e.task_failed for e in running.events("WideFlow", run_id)
                     if e.HasField("task_failed")]  # fmt: skip
        assert failed.task.step_name == "start"
        assert failed.error_type == "TooManySplits"
        assert failed.error_message == (
            "Foreach in step *start* yielded 101 child steps which is more than the current "
            "maximum of 100 children. You can raise the maximum with the --max-num-splits "
            "option."
        )
    raised = _run(running, flow_file, "run", "--remote", "--width", "101", "--max-num-splits",
                  "101")  # fmt: skip
    assert running.wait_finished("WideFlow", raised)
