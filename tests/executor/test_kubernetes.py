"""The kubernetes backend against kmock's in-memory API emulator and a fake kubelet
(tests/kube_emulator.py): no Kubernetes API server can run here, so this checks the
Job manifests against the Kubernetes schemas and the executor's create, watch and
delete life cycle against the emulator, not a live cluster.

With KUBECONFIG set when the tests start, the same tests run against that cluster: the
manifests also go through the API server's validation (a dry-run create), and the runs
need LEDGERFLOW_TEST_IMAGE and LEDGERFLOW_TEST_SERVICE_HOST (docs/executor.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from conftest import Cluster, make_cluster, run_over_memory
from kube_emulator import KUBERNETES_VERSION, KubeEmulator, kubernetes_for_tests
from kubernetes.client import BatchV1Api, CoreV1Api
from ledgerflow.v1 import executor_service_pb2, records_pb2
from ledgerflow_executor.backends import BackendError, Launch
from ledgerflow_executor.backends.kubernetes import KubernetesBackend
from waiting import wait_for

pytestmark = pytest.mark.slow

# The emulator never pulls it; a live cluster runs LEDGERFLOW_TEST_IMAGE instead.
IMAGE = os.environ.get("LEDGERFLOW_TEST_IMAGE", "registry.example/team/flows:1.2")


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeEmulator]:
    with kubernetes_for_tests(tmp_path) as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


@pytest.fixture
def on_kubernetes(tmp_path: Path, emulator: KubeEmulator) -> Iterator[Cluster]:
    host = "127.0.0.1"
    if emulator.live:
        needed = ("LEDGERFLOW_TEST_IMAGE", "LEDGERFLOW_TEST_SERVICE_HOST")
        if not all(os.environ.get(name) for name in needed):
            pytest.skip(f"runs on a live cluster need {' and '.join(needed)}")
        host = os.environ["LEDGERFLOW_TEST_SERVICE_HOST"]
    for cluster in make_cluster(tmp_path, f"sqlite://{tmp_path / 'ledger.db'}", host):
        cluster.env["KUBECONFIG"] = str(emulator.kubeconfig)
        yield cluster


def _launch(tmp_path: Path, **overrides: object) -> Launch:
    fields: dict[str, object] = dict(
        name="ledgerflow-5d0c1e9e-52c4-4b2e-a6a1-0f0f3cbb1b61",
        command=["/usr/bin/python3", "/code/flow.py", "task", "--spec", "s", "--result", "r"],
        workdir=str(tmp_path), stdout_path=str(tmp_path / "stdout"),
        stderr_path=str(tmp_path / "stderr"), cpu=0.5, memory_mb=256, gpu=0,
        env={"LEDGERFLOW_DATASTORE": "s3"},
        mounts=("/code",), task="Train/17/fit/3.1",
    )  # fmt: skip
    fields.update(overrides)
    return Launch(**fields)  # type: ignore[arg-type]


def test_job_manifests_validate_and_carry_the_steps_resources(
    emulator: KubeEmulator, tmp_path: Path
) -> None:
    backend = KubernetesBackend(IMAGE, service_account="flows", service="10.0.0.5:50051")
    try:
        plain = backend.job_manifest(_launch(tmp_path))
        big = backend.job_manifest(_launch(tmp_path, gpu=2, cpu=4, memory_mb=32768,
                                           timeout_seconds=90.4, image="team/train:2",
                                           name="ledgerflow-big"))  # fmt: skip
    finally:
        backend.close()
    for manifest in (plain, big):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        if emulator.live:  # the API server's own checks, creating nothing
            BatchV1Api(emulator.api).create_namespaced_job(
                emulator.namespace, manifest, dry_run="All"
            )
    assert plain["metadata"]["namespace"] == emulator.namespace  # the kubeconfig context's
    spec = plain["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0
    assert "activeDeadlineSeconds" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "flows"
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"cpu": "0.5", "memory": "256Mi"}
    # The task's environment is in the Job's Secret, not in the Job.
    assert "env" not in container
    assert container["envFrom"] == [{"secretRef": {"name": plain["metadata"]["name"]}}]
    labels = spec["template"]["metadata"]["labels"]
    assert (labels["ledgerflow.dev/flow"], labels["ledgerflow.dev/step"]) == ("Train", "fit")
    assert (labels["ledgerflow.dev/task-id"], labels["ledgerflow.dev/attempt"]) == ("3", "1")
    assert plain["metadata"]["annotations"]["ledgerflow.dev/task"] == "Train/17/fit/3.1"
    big_container = big["spec"]["template"]["spec"]["containers"][0]
    assert big_container["image"] == "team/train:2"
    assert big_container["resources"]["requests"] == {
        "cpu": "4", "memory": "32768Mi", "nvidia.com/gpu": "2"
    }  # fmt: skip
    assert big["spec"]["activeDeadlineSeconds"] == 90


SECRET = "AKIA-ledgerflow-test-9b2d4e61"


def test_the_task_environment_is_a_secret_owned_by_the_job(
    emulator: KubeEmulator, tmp_path: Path
) -> None:
    """The Secret first (the pod never waits for it), then the Job, then the Job made
    the Secret's owner (the emulator gives no uid, so the API here is a recorder)."""
    backend = KubernetesBackend(IMAGE, service="10.0.0.5:50051")
    calls: list[tuple[str, Any]] = []

    class Recorder:
        def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> None:
            calls.append(("secret", body))

        def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> Any:
            calls.append(("job", body))
            return SimpleNamespace(metadata=SimpleNamespace(uid="job-uid-1"))

        def patch_namespaced_secret(self, name: str, namespace: str, body: Any) -> None:
            calls.append(("owner", (name, body)))

    backend.batch = backend.core = Recorder()  # type: ignore[assignment]
    launch = _launch(tmp_path, env={"LEDGERFLOW_DATASTORE": "s3", "AWS_ACCESS_KEY_ID": SECRET})
    try:
        backend.start(launch)
    finally:
        backend.close()
    assert [kind for kind, _ in calls] == ["secret", "job", "owner"]
    secret, job, (owned, patch) = (body for _, body in calls)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert secret["metadata"]["name"] == owned == job["metadata"]["name"] == launch.name
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"LEDGERFLOW_DATASTORE": "s3", "AWS_ACCESS_KEY_ID": SECRET,
                       "LEDGERFLOW_SERVICE": "10.0.0.5:50051"}  # fmt: skip
    assert SECRET not in json.dumps(job)
    assert patch == {"metadata": {"ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": launch.name, "uid": "job-uid-1"}
    ]}}  # fmt: skip


def test_a_task_reads_its_credentials_from_its_jobs_secret(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    kubelet = emulator.kubelet()
    try:
        on_kubernetes.executor("--image", IMAGE, backend="kubernetes",
                               env={"AWS_ACCESS_KEY_ID": SECRET})  # fmt: skip
        result = on_kubernetes.flow("secret_env", "run", "--remote")
        assert "succeeded" in result.stdout, result.stdout
        run_id = result.stdout.split(" run ", 1)[1].split()[0]
        digest = on_kubernetes.artifact(f"SecretEnv/{run_id}/start", "key_digest")
        assert digest == hashlib.sha256(SECRET.encode()).hexdigest()
        assert len(kubelet.jobs_seen) == 2 and not kubelet.invalid, kubelet.invalid
        for job in kubelet.jobs_seen:  # no manifest holds it; each names its Secret
            assert SECRET not in json.dumps(job)
            container = job["spec"]["template"]["spec"]["containers"][0]
            assert container["envFrom"] == [{"secretRef": {"name": job["metadata"]["name"]}}]
        wait_for(lambda: not kubelet.jobs(), 30, "the executor to delete every finished Job")
        secrets = CoreV1Api(emulator.api).list_namespaced_secret(
            emulator.namespace, label_selector="ledgerflow.dev/launcher"
        )
        assert not secrets.items  # each went with its Job
    finally:
        kubelet.close()


def test_a_job_needs_an_image(emulator: KubeEmulator, tmp_path: Path) -> None:
    backend = KubernetesBackend()
    try:
        with pytest.raises(BackendError, match="needs an image: --image"):
            backend.start(_launch(tmp_path))
    finally:
        backend.close()


def test_a_run_goes_through_create_watch_and_delete(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    kubelet = emulator.kubelet()
    try:
        on_kubernetes.executor("--image", IMAGE, backend="kubernetes")
        result = on_kubernetes.flow("remote_branches", "run", "--remote", "--width", "3")
        assert "succeeded" in result.stdout, result.stdout
        run_id = result.stdout.split(" run ", 1)[1].split()[0]
        dump = on_kubernetes.flow("remote_branches", "dump", f"{run_id}/end")
        assert "[0, 10, 20]" in dump.stdout
        logs = on_kubernetes.flow("remote_branches", "logs", f"{run_id}/b")
        assert "hello from b" in logs.stdout
        assert len(kubelet.jobs_seen) == 10 and not kubelet.invalid, kubelet.invalid
        wait_for(lambda: not kubelet.jobs(), 30, "the executor to delete every finished Job")
    finally:
        kubelet.close()


def test_an_oomkilled_pod_fails_with_the_memory_message(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    kubelet = emulator.kubelet(oom_steps={"hog"})
    try:
        on_kubernetes.executor("--image", IMAGE, backend="kubernetes")
        run_over_memory(on_kubernetes)
    finally:
        kubelet.close()


def test_a_task_sees_the_gpus_its_pod_was_given(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    if emulator.live:
        pytest.skip("GPUs on a live cluster: scripts/gpu-check on a GPU machine")
    kubelet = emulator.kubelet(gpus=1)
    try:
        on_kubernetes.executor("--image", IMAGE, "--gpus", "1", backend="kubernetes")
        result = on_kubernetes.flow("gpu_visibility", "run", "--remote")
        run_id = result.stdout.split(" run ", 1)[1].split()[0]
        seen = on_kubernetes.flow("gpu_visibility", "dump", f"{run_id}/join", "--name", "seen")
        # The device plugin's GPU, not an index of the executor's (which means nothing in
        # the pod); a task with no GPU is told it has none.
        assert (
            "'with_gpu': {'CUDA_VISIBLE_DEVICES': None, 'NVIDIA_VISIBLE_DEVICES': 'GPU-fake-0'}"
        ) in seen.stdout, seen.stdout
        assert "'without_gpu': {'CUDA_VISIBLE_DEVICES': ''}" in seen.stdout, seen.stdout
    finally:
        kubelet.close()


def test_an_unschedulable_pod_says_why_and_cancel_deletes_jobs(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    kubelet = emulator.kubelet(gpus=1)
    try:
        on_kubernetes.executor("--image", IMAGE, "--gpus", "4", backend="kubernetes")
        run_id = on_kubernetes.submit("needs_gpus")  # its train step asks for 4 GPUs
        reasons: list[str] = []

        def says_why() -> bool:
            request = executor_service_pb2.ListQueuedTasksRequest(flow_name="NeedsGpus",
                                                                  run_id=run_id)  # fmt: skip
            tasks = on_kubernetes.metadata().list_queued_tasks(request).tasks
            reasons[:] = [t.waiting_reason for t in tasks
                          if t.state != records_pb2.QUEUE_STATE_QUEUED]  # fmt: skip
            return any("Unschedulable" in reason for reason in reasons)

        wait_for(says_why, 60, f"the pod's reason to show: {reasons}")
        assert reasons[0].startswith("pending in Kubernetes (pod ledgerflow-"), reasons
        assert "Insufficient nvidia.com/gpu" in reasons[0]
        assert len(kubelet.jobs()) == 1
        on_kubernetes.cli("cancel", f"NeedsGpus/{run_id}")
        assert not on_kubernetes.wait_finished("NeedsGpus", run_id, seconds=60)
        wait_for(lambda: not kubelet.jobs(), 30, "the cancelled Job to be deleted")
    finally:
        kubelet.close()


def test_no_kubeconfig_gives_a_clear_error(on_kubernetes: Cluster, tmp_path: Path) -> None:
    on_kubernetes.env["KUBECONFIG"] = str(tmp_path / "missing-kubeconfig")
    answer = on_kubernetes.cli("executor", "--service", on_kubernetes.address, "--backend",
                               "kubernetes", "--image", IMAGE, check=False)  # fmt: skip
    assert answer.returncode == 2 and "Traceback" not in answer.stderr, answer.stderr
    assert "no Kubernetes configuration found" in answer.stderr


def test_a_gangs_indexed_job_and_service_validate(emulator: KubeEmulator, tmp_path: Path) -> None:
    backend = KubernetesBackend(IMAGE)
    nodes = []
    for index in range(3):
        folder = tmp_path / f"node{index}"
        folder.mkdir()
        nodes.append(
            _launch(folder, name=f"ledgerflow-gang{index}", task=f"Train/17/fit/{index + 3}.0")
        )
    try:
        job, service = backend.gang_manifests(nodes)
    finally:
        backend.close()
    for manifest in (job, service):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    name = job["metadata"]["name"]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    # A failed node ends its own pod, not the Job's others (as on every backend).
    assert spec["backoffLimitPerIndex"] == 0 and "backoffLimit" not in spec
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == name == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"ledgerflow.dev/job": name}
    assert spec["template"]["metadata"]["labels"]["ledgerflow.dev/job"] == name
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LEDGERFLOW_PARALLEL_MAIN_IP"] == f"{name}-0.{name}"
    script = container["command"][2]
    for index, launch in enumerate(nodes):  # pod i runs node i's attempt, into its files
        assert f"{index}) cd {launch.workdir} && exec python " in script
        assert f">{launch.stdout_path} 2>{launch.stderr_path}" in script
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {n.workdir for n in nodes}
    assert "ledgerflow.dev/task-id" not in spec["template"]["metadata"]["labels"]


def test_a_gang_runs_as_one_indexed_job(on_kubernetes: Cluster, emulator: KubeEmulator) -> None:
    if emulator.live:
        pytest.skip("the gang's nodes meet on node 0: a live cluster needs its own DNS check")
    kubelet = emulator.kubelet()
    try:
        on_kubernetes.executor("--image", IMAGE, backend="kubernetes")
        flow = Path(__file__).parents[1] / "sdk" / "flows" / "parallel_flow.py"
        result = subprocess.run(
            [sys.executable, str(flow), "run", "--remote"],
            env={**on_kubernetes.env, "LEDGERFLOW_SERVICE": on_kubernetes.address},
            cwd=on_kubernetes.home, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr + on_kubernetes.log_text()
        run_id = result.stdout.split(" run ", 1)[1].split()[0]
        assert on_kubernetes.artifact(f"ParallelFlow/{run_id}/join", "heard") == [1, 2]
        indexed = [j for j in kubelet.jobs_seen if j["spec"].get("completionMode") == "Indexed"]
        assert len(indexed) == 1 and indexed[0]["spec"]["completions"] == 3
        assert len(kubelet.jobs_seen) == 4 and not kubelet.invalid, kubelet.invalid
        wait_for(lambda: not kubelet.jobs(), 30, "the executor to delete every finished Job")
        services = CoreV1Api(emulator.api).list_namespaced_service(emulator.namespace)
        assert not services.items  # the gang's headless Service went with its Job
    finally:
        kubelet.close()
