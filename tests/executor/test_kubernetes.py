"""The kubernetes backend against kmock's in-memory API emulator and a fake kubelet
(tests/kube_emulator.py): no Kubernetes API server can run here, so this checks the
Job manifests against the Kubernetes schemas and the Pod Security Standard
"restricted" (its rules are written out below, as the API server's admission applies
them), and the executor's create, watch and delete life cycle against the emulator,
not a live cluster. The pods' datastore is S3 (moto's server over HTTP): a pod mounts
nothing of this machine.

With KUBECONFIG set when the tests start, the same tests run against that cluster: the
manifests also go through the API server's validation (a dry-run create), and the runs
need LEDGERFLOW_TEST_IMAGE, LEDGERFLOW_TEST_SERVICE_HOST and an S3 the pods reach
(LEDGERFLOW_TEST_DATASTORE_ROOT, LEDGERFLOW_TEST_S3_ENDPOINT_URL; docs/executor.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from conftest import (
    FLOWS,
    Cluster,
    exit_of,
    make_cluster,
    moto_s3,
    run_over_memory,
    s3_datastore_env,
)
from kube_emulator import KUBERNETES_VERSION, LIVE_KUBECONFIG, KubeEmulator, kubernetes_for_tests
from kubernetes.client import BatchV1Api, CoreV1Api
from ledgerflow.engine import MAX_LOST_ATTEMPTS, TaskOutcome
from ledgerflow.runtime.task import TaskRequest, TaskSpec
from ledgerflow.v1 import executor_service_pb2, records_pb2
from ledgerflow_executor.backends import BackendError, Launch
from ledgerflow_executor.backends.kubernetes import (
    POD_OVERHEAD_MB,
    AttemptFiles,
    KubernetesBackend,
    is_loopback,
    trouble_now,
)
from waiting import wait_for

pytestmark = pytest.mark.slow

# The emulator never pulls it; a live cluster runs LEDGERFLOW_TEST_IMAGE instead.
IMAGE = os.environ.get("LEDGERFLOW_TEST_IMAGE", "registry.example/team/flows:1.2")
SECRET = "AKIA-ledgerflow-test-9b2d4e61"


# ---- the Pod Security Standard "restricted" (v1.25 and later), as admission checks it ----

# Restricted: only these volume types.
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret"})  # fmt: skip
# Baseline: the sysctls a pod may set.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
})  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                           "container_engine_t"})  # fmt: skip
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
# What has no pod in it, so nothing for Pod Security to check.
PODLESS_KINDS = frozenset({"Secret", "Service", "ConfigMap"})


def pod_templates(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, pod metadata) of each pod a manifest makes."""
    kind, spec = manifest["kind"], manifest.get("spec") or {}
    if kind == "Pod":
        return [(spec, manifest.get("metadata") or {})]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    elif kind not in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        assert kind in PODLESS_KINDS, f"a {kind} here: which pods does it make?"
        return []
    template = spec["template"]
    return [(template["spec"], template.get("metadata") or {})]


def restricted_violations(manifest: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" (with "baseline", which it includes) refuses in
    the pods a manifest makes; empty when it admits them."""
    found: list[str] = []
    for pod, metadata in pod_templates(manifest):
        context = pod.get("securityContext") or {}
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(field):
                found.append(f"host namespaces: {field}")
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            found.append("HostProcess pod")
        for volume in pod.get("volumes") or []:
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                found.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUMES)}")
        for sysctl in context.get("sysctls") or []:
            if sysctl["name"] not in SAFE_SYSCTLS:
                found.append(f"sysctl {sysctl['name']}")
        for key, value in (metadata.get("annotations") or {}).items():
            if key.startswith(APPARMOR_ANNOTATION) and not (
                value == "runtime/default" or value.startswith("localhost/")
            ):
                found.append(f"AppArmor annotation {key}={value}")
        found += _context_violations("pod", context)
        containers = [*(pod.get("initContainers") or []), *pod["containers"],
                      *(pod.get("ephemeralContainers") or [])]  # fmt: skip
        for container in containers:
            where = f"container {container['name']}"
            own = container.get("securityContext") or {}
            found += _context_violations(where, own)
            if own.get("privileged"):
                found.append(f"{where}: privileged")
            if own.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allowPrivilegeEscalation is not false")
            capabilities = own.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                found.append(f"{where}: capabilities do not drop ALL")
            if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
                found.append(f"{where}: adds capabilities {capabilities['add']}")
            # The container's own setting wins over the pod's.
            if own.get("runAsNonRoot", context.get("runAsNonRoot")) is not True:
                found.append(f"{where}: runAsNonRoot is not true")
            seccomp = own.get("seccompProfile") or context.get("seccompProfile") or {}
            if seccomp.get("type") not in SECCOMP_TYPES:
                found.append(f"{where}: seccompProfile {seccomp.get('type')}")
            for port in container.get("ports") or []:
                if port.get("hostPort"):
                    found.append(f"{where}: hostPort {port['hostPort']}")
    return found


def _context_violations(where: str, context: dict[str, Any]) -> list[str]:
    """The rules a pod's and a container's securityContext share."""
    found = []
    if context.get("runAsUser") == 0:
        found.append(f"{where}: runAsUser 0")
    if context.get("runAsNonRoot") is False:
        found.append(f"{where}: runAsNonRoot false")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}: seccompProfile Unconfined")
    if (context.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in SECCOMP_TYPES:
        found.append(f"{where}: appArmorProfile {context['appArmorProfile']['type']}")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{where}: seLinuxOptions {selinux}")
    if context.get("procMount", "Default") != "Default":
        found.append(f"{where}: procMount {context['procMount']}")
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where}: HostProcess")
    return found


def admitted(manifest: dict[str, Any]) -> None:
    """Asserts that the manifest passes the schemas and "restricted", and mounts nothing
    of a node's (no hostPath anywhere in it)."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert restricted_violations(manifest) == [], manifest["metadata"]["name"]
    assert "hostPath" not in json.dumps(manifest)


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, with the tests' bucket (a live cluster: the S3 named for it)."""
    if LIVE_KUBECONFIG:
        yield os.environ.get("LEDGERFLOW_TEST_S3_ENDPOINT_URL", "")
        return
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def datastore(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 datastore's settings (a fresh prefix), also in this process's environment
    (boto3 reads its credentials there)."""
    if LIVE_KUBECONFIG:
        root = os.environ.get("LEDGERFLOW_TEST_DATASTORE_ROOT", "")
        if not root:
            pytest.skip("runs on a live cluster need LEDGERFLOW_TEST_DATASTORE_ROOT (S3)")
        prefix = f"{root.rstrip('/')}/{uuid.uuid4().hex[:8]}"
        env = {"LEDGERFLOW_DATASTORE": "s3", "LEDGERFLOW_DATASTORE_ROOT": prefix}
        if s3_endpoint:
            env["LEDGERFLOW_S3_ENDPOINT_URL"] = s3_endpoint
        return env
    env = s3_datastore_env(s3_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeEmulator]:
    with kubernetes_for_tests(tmp_path) as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


@pytest.fixture
def on_kubernetes(
    tmp_path: Path, emulator: KubeEmulator, datastore: dict[str, str]
) -> Iterator[Cluster]:
    host = "127.0.0.1"
    if emulator.live:
        needed = ("LEDGERFLOW_TEST_IMAGE", "LEDGERFLOW_TEST_SERVICE_HOST")
        if not all(os.environ.get(name) for name in needed):
            pytest.skip(f"runs on a live cluster need {' and '.join(needed)}")
        host = os.environ["LEDGERFLOW_TEST_SERVICE_HOST"]
    for cluster in make_cluster(tmp_path, f"sqlite://{tmp_path / 'ledger.db'}", host):
        cluster.env["KUBECONFIG"] = str(emulator.kubeconfig)
        cluster.env.update(datastore)  # the flows' code packages and artifacts: S3
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


def _contract_launch(folder: Path, mode: str, env: dict[str, str], **overrides: object) -> Launch:
    """An attempt of flows/contract_task.py (it does what `mode` says), as the executor
    prepares one: its task request in its folder, where its output and result come."""
    folder.mkdir(parents=True, exist_ok=True)
    request = TaskRequest(
        TaskSpec("start", "1", [], []),
        facts=dict(flow_name="ContractTask", run_id="1", step_name="start", task_id="1",
                   retry_count=0),
        parameters_json={"mode": f'"{mode}"'},
    )  # fmt: skip
    spec, result = folder / "spec.json", folder / "result"
    spec.write_text(request.to_json())
    flow = FLOWS / "contract_task.py"
    return _launch(
        folder, name=f"ledgerflow-{mode.replace('.', '-')}-{uuid.uuid4().hex[:8]}",
        command=[sys.executable, str(flow), "task", "--spec", str(spec), "--result", str(result)],
        env={**env, "LEDGERFLOW_PYLINT": "0"}, mounts=(), task=f"ContractTask/1/start/1.{mode}",
        flow_file=str(flow), spec_path=str(spec), result_path=str(result), **overrides,
    )  # fmt: skip


def _attempt_files(env: dict[str, str], name: str) -> list[str]:
    """What the datastore holds of an attempt (its pod's task, output and result)."""
    files = AttemptFiles.of(env)
    found = files.client.list_objects_v2(Bucket=files.bucket, Prefix=f"{files.prefix}/{name}/")
    return [item["Key"].rsplit("/", 1)[1] for item in found.get("Contents", [])]


# ---- the manifests ---------------------------------------------------------------------------


def test_the_restricted_checker_refuses_what_the_profile_refuses() -> None:
    """The checker below is what the other tests trust: each rule it has catches."""
    ok_context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                  "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip

    def job(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
        task = {"name": "task", "image": "i", "securityContext": dict(ok_context), **container}
        spec = {"containers": [task], **pod}
        return {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": spec}}}

    assert restricted_violations(job({}, {})) == []
    refused = {
        "hostPath": job({"volumes": [{"name": "v", "hostPath": {"path": "/"}}]}, {}),
        "hostNetwork": job({"hostNetwork": True}, {}),
        "hostPID": job({"hostPID": True}, {}),
        "hostIPC": job({"hostIPC": True}, {}),
        "privileged": job({}, {"securityContext": {**ok_context, "privileged": True}}),
        "allowPrivilegeEscalation": job({}, {"securityContext": {
            k: v for k, v in ok_context.items() if k != "allowPrivilegeEscalation"}}),
        "drop ALL": job({}, {"securityContext": {**ok_context, "capabilities": {}}}),
        "adds": job({}, {"securityContext": {**ok_context, "capabilities": {
            "drop": ["ALL"], "add": ["SYS_ADMIN"]}}}),
        "runAsNonRoot": job({}, {"securityContext": {
            k: v for k, v in ok_context.items() if k != "runAsNonRoot"}}),
        "runAsUser 0": job({"securityContext": {"runAsUser": 0}}, {}),
        "seccompProfile": job({}, {"securityContext": {
            k: v for k, v in ok_context.items() if k != "seccompProfile"}}),
        "Unconfined": job({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, {}),
        "hostPort": job({}, {"ports": [{"containerPort": 80, "hostPort": 80}]}),
        "sysctl": job({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}},
                      {}),
        "procMount": job({}, {"securityContext": {**ok_context, "procMount": "Unmasked"}}),
        "seLinuxOptions": job({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}, {}),
    }  # fmt: skip
    for rule, manifest in refused.items():
        assert restricted_violations(manifest), rule
    # Set once for the pod, runAsNonRoot and seccomp hold for its containers.
    pod_wide = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    own = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert restricted_violations(job({"securityContext": pod_wide}, {"securityContext": own})) == []


def test_job_manifests_validate_pass_restricted_and_carry_the_steps_resources(
    emulator: KubeEmulator, tmp_path: Path
) -> None:
    backend = KubernetesBackend(IMAGE, service_account="flows", service="10.0.0.5:50051",
                                pull_policy="Always", pull_secrets=("regcred", "mirror"),
                                run_as_user=4242)  # fmt: skip
    try:
        plain = backend.job_manifest(_launch(tmp_path))
        big = backend.job_manifest(_launch(tmp_path, gpu=2, cpu=4, memory_mb=32768,
                                           timeout_seconds=90.4, image="team/train:2",
                                           name="ledgerflow-big"))  # fmt: skip
    finally:
        backend.close()
    for manifest in (plain, big):
        admitted(manifest)
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
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert pod["securityContext"]["runAsUser"] == 4242
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {}}]  # nothing of the node's
    container = pod["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (IMAGE, "Always")
    assert container["securityContext"]["runAsUser"] == 4242
    # The step's memory, and the pod's supervisor's (it fetches the task, stores output).
    memory = f"{256 + POD_OVERHEAD_MB}Mi"
    assert container["resources"]["limits"] == {"cpu": "0.5", "memory": memory}
    # The task's environment is in the Job's Secret; the manifest says only which
    # attempt the pod runs.
    plan = {e["name"]: json.loads(e["value"]) for e in container["env"]}
    assert plan == {"LEDGERFLOW_KUBERNETES_PLAN": {
        "attempts": [plain["metadata"]["name"]], "output_seconds": 5.0}}  # fmt: skip
    assert container["envFrom"] == [{"secretRef": {"name": plain["metadata"]["name"]}}]
    labels = spec["template"]["metadata"]["labels"]
    assert (labels["ledgerflow.dev/flow"], labels["ledgerflow.dev/step"]) == ("Train", "fit")
    assert (labels["ledgerflow.dev/task-id"], labels["ledgerflow.dev/attempt"]) == ("3", "1")
    assert plain["metadata"]["annotations"]["ledgerflow.dev/task"] == "Train/17/fit/3.1"
    big_container = big["spec"]["template"]["spec"]["containers"][0]
    assert big_container["image"] == "team/train:2"
    assert big_container["resources"]["requests"] == {
        "cpu": "4", "memory": f"{32768 + POD_OVERHEAD_MB}Mi", "nvidia.com/gpu": "2"
    }  # fmt: skip
    assert big["spec"]["activeDeadlineSeconds"] == 90


def test_every_object_the_backend_creates_is_admitted(
    emulator: KubeEmulator, datastore: dict[str, str], tmp_path: Path
) -> None:
    """A task, a GPU task and a @parallel gang started as the executor starts them: each
    Job, Secret and Service the cluster then holds passes the schemas and "restricted",
    and none mounts a node's folder; the pods are told the service address given."""
    backend = KubernetesBackend(IMAGE, service="flows-service.ledgerflow:50051",
                                datastore="s3", pull_secrets=("regcred",))  # fmt: skip
    core, batch = CoreV1Api(emulator.api), BatchV1Api(emulator.api)
    try:
        backend.start(_contract_launch(tmp_path / "one", "ok", datastore))
        backend.start(_contract_launch(tmp_path / "gpu", "ok", datastore, gpu=1))
        backend.start_gang([_contract_launch(tmp_path / f"node{i}", "ok", datastore)
                            for i in range(3)])  # fmt: skip
        selector = "ledgerflow.dev/launcher"
        found = [
            *json.loads(batch.list_namespaced_job(emulator.namespace, label_selector=selector,
                                                  _preload_content=False).data)["items"],
            *json.loads(core.list_namespaced_secret(emulator.namespace, label_selector=selector,
                                                    _preload_content=False).data)["items"],
            *json.loads(core.list_namespaced_service(emulator.namespace, label_selector=selector,
                                                     _preload_content=False).data)["items"],
        ]  # fmt: skip
    finally:
        backend.close()
    kinds = sorted(item["kind"] for item in found)
    assert kinds == ["Job"] * 3 + ["Secret"] * 3 + ["Service"], kinds
    for item in found:
        item.setdefault("apiVersion", "batch/v1" if item["kind"] == "Job" else "v1")
        admitted(item)
        if item["kind"] == "Secret":  # the service address the pods reach, given here
            service = base64.b64decode(item["data"]["LEDGERFLOW_SERVICE"]).decode()
            assert service == "flows-service.ledgerflow:50051"
        if item["kind"] == "Job":
            pod = item["spec"]["template"]["spec"]
            assert pod["imagePullSecrets"] == [{"name": "regcred"}]
            assert pod["automountServiceAccountToken"] is False  # no account named


def test_the_task_environment_is_a_secret_owned_by_the_job(
    emulator: KubeEmulator, datastore: dict[str, str], tmp_path: Path
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
    launch = _contract_launch(tmp_path, "ok", {**datastore, "AWS_ACCESS_KEY_ID": SECRET})
    try:
        backend.start(launch)
    finally:
        backend.close()
    assert [kind for kind, _ in calls] == ["secret", "job", "owner"]
    secret, job, (owned, patch) = (body for _, body in calls)
    admitted(secret)
    admitted(job)
    assert secret["metadata"]["name"] == owned == job["metadata"]["name"] == launch.name
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {**launch.env, "AWS_ACCESS_KEY_ID": SECRET,
                       "LEDGERFLOW_SERVICE": "10.0.0.5:50051"}  # fmt: skip
    assert SECRET not in json.dumps(job)
    assert patch == {"metadata": {"ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": launch.name, "uid": "job-uid-1"}
    ]}}  # fmt: skip
    # What the pod will run waits for it in the datastore, not in a folder of this host.
    assert _attempt_files(datastore, launch.name) == ["task"]


def test_a_local_datastore_is_refused(emulator: KubeEmulator, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="needs the S3 datastore"):
        KubernetesBackend(IMAGE, datastore="local")
    backend = KubernetesBackend(IMAGE)  # told no datastore: each attempt's is checked
    try:
        local = {"LEDGERFLOW_DATASTORE": "local", "LEDGERFLOW_DATASTORE_ROOT": str(tmp_path)}
        with pytest.raises(BackendError, match="needs the S3 datastore"):
            backend.start(_launch(tmp_path, env=local))
        assert not BatchV1Api(emulator.api).list_namespaced_job(emulator.namespace).items
    finally:
        backend.close()


def test_an_executor_with_a_local_datastore_refuses_to_start(
    on_kubernetes: Cluster, datastore: dict[str, str]
) -> None:
    for name in datastore:
        if name.startswith("LEDGERFLOW_"):
            on_kubernetes.env.pop(name)
    answer = on_kubernetes.cli("executor", "--service", on_kubernetes.address, "--backend",
                               "kubernetes", "--image", IMAGE, check=False)  # fmt: skip
    assert answer.returncode == 2 and "Traceback" not in answer.stderr, answer.stderr
    assert "needs the S3 datastore (LEDGERFLOW_DATASTORE=s3" in answer.stderr
    assert "this executor's datastore is 'local'" in answer.stderr


def test_a_pod_runs_its_task_from_s3_and_its_output_comes_back(
    emulator: KubeEmulator, datastore: dict[str, str], tmp_path: Path
) -> None:
    """The pod fetches its task and code from the datastore and stores its output and
    result there; the executor copies them into the attempt's folder (the output while
    it runs), then deletes them."""
    kubelet = emulator.kubelet()
    backend = KubernetesBackend(IMAGE, datastore="s3")
    try:
        ok = _contract_launch(tmp_path / "ok", "ok", datastore)
        handle = backend.start(ok)
        assert exit_of(backend, handle) == 0
        outcome = TaskOutcome.from_bytes(Path(ok.result_path).read_bytes())
        assert (outcome.ok, outcome.next_steps) == (True, ["end"])
        assert "hello from the task" in Path(ok.stdout_path).read_text()
        assert _attempt_files(datastore, ok.name) == []

        raised = _contract_launch(tmp_path / "raise", "raise", datastore)
        handle = backend.start(raised)
        exit_of(backend, handle)
        outcome = TaskOutcome.from_bytes(Path(raised.result_path).read_bytes())
        own = ("ValueError", records_pb2.FAILURE_KIND_EXCEPTION)
        assert (outcome.error_type, outcome.kind) == own
        assert "the step raised" in Path(raised.stderr_path).read_text()

        exits = _contract_launch(tmp_path / "exit", "exit", datastore)
        handle = backend.start(exits)  # the task's exit code is the container's
        assert exit_of(backend, handle) == 3 and not Path(exits.result_path).exists()
        assert backend.why_ended(handle, 3, exits.memory_mb) is None  # the task's own

        sleeping = _contract_launch(tmp_path / "sleep", "sleep", datastore)
        handle = backend.start(sleeping)
        stdout = Path(sleeping.stdout_path)
        wait_for(lambda: stdout.exists() and "hello" in stdout.read_text(), 60,
                 "the running task's output to come back")  # fmt: skip
        backend.kill(handle)
        assert exit_of(backend, handle, 60) != 0
        assert not Path(sleeping.result_path).exists()
    finally:
        backend.close()
        kubelet.close()


def test_a_pod_that_cannot_set_up_is_an_infrastructure_failure(
    emulator: KubeEmulator, datastore: dict[str, str], tmp_path: Path
) -> None:
    """Its task gone from the datastore, the pod fails, not the task: the failure says
    why and is the infrastructure's (it uses up no @retry)."""
    backend = KubernetesBackend(IMAGE, datastore="s3")
    launch = _contract_launch(tmp_path, "ok", datastore)
    try:
        handle = backend.start(launch)
        AttemptFiles.of(datastore).forget(launch.name)
        kubelet = emulator.kubelet()  # the pod starts only now
        try:
            code = exit_of(backend, handle)
        finally:
            kubelet.close()
        assert code != 0 and not Path(launch.result_path).exists()
        outcome = backend.why_ended(handle, code, launch.memory_mb)
        assert outcome is not None
        assert (outcome.error_type, outcome.kind) == (
            "ExecutorError", records_pb2.FAILURE_KIND_INFRASTRUCTURE
        )  # fmt: skip
        assert "cannot set up the attempt: no task at s3://" in outcome.error_message
        assert "cannot set up the attempt" in Path(launch.stderr_path).read_text()
    finally:
        backend.close()


def test_a_pod_whose_image_cannot_run_the_attempt_says_why(
    emulator: KubeEmulator, datastore: dict[str, str], tmp_path: Path
) -> None:
    """A container that ends before its supervisor stored anything (an image without
    this ledgerflow, say): the pod's log, which the cluster keeps as the termination
    message, becomes the attempt's stderr, and the failure the infrastructure's. The
    test plays the kubelet that reports such a pod, through the API."""
    backend = KubernetesBackend(IMAGE, datastore="s3")
    launch = _contract_launch(tmp_path, "ok", datastore)
    core, namespace = CoreV1Api(emulator.api), emulator.namespace
    pod_log = ("/opt/ledgerflow/bin/python: Error while finding module specification for "
               "'ledgerflow_executor.backends.kubernetes' (ModuleNotFoundError: No module "
               "named 'ledgerflow_executor')")  # fmt: skip
    try:
        handle = backend.start(launch)
        labels = backend.job_manifest(launch)["spec"]["template"]["metadata"]["labels"]
        pod = f"{launch.name}-pod"
        core.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "task", "image": IMAGE}]},
            "status": {"phase": "Pending"},
        })  # fmt: skip
        terminated = {"exitCode": 1, "reason": "Error", "message": pod_log}
        core.patch_namespaced_pod_status(pod, namespace, {"status": {
            "phase": "Failed",
            "containerStatuses": [{"name": "task", "ready": False, "restartCount": 0,
                                   "image": IMAGE, "imageID": "",
                                   "state": {"terminated": terminated}}],
        }})  # fmt: skip
        code = exit_of(backend, handle, 60)
        outcome = backend.why_ended(handle, code, launch.memory_mb)
        assert outcome is not None and code == 1
        assert (outcome.error_type, outcome.kind) == (
            "ExecutorError", records_pb2.FAILURE_KIND_INFRASTRUCTURE
        )  # fmt: skip
        assert outcome.error_message.startswith(
            f"ledgerflow pod: the container of Job {launch.name} exited with code 1 before it "
            "stored its task's output: /opt/ledgerflow/bin/python: Error while finding"
        ), outcome.error_message
        assert pod_log in Path(launch.stderr_path).read_text()
        assert _attempt_files(datastore, launch.name) == []  # its task went too
    finally:
        backend.close()


def test_output_is_copied_again_only_when_it_changed(
    datastore: dict[str, str], tmp_path: Path
) -> None:
    files = AttemptFiles.of(datastore)
    seen: dict[str, str] = {}
    copy = tmp_path / "stdout"
    assert not files.fetch("ledgerflow-a", "stdout", copy, seen) and not copy.exists()
    files.put("ledgerflow-a", "stdout", b"one\n")
    assert files.fetch("ledgerflow-a", "stdout", copy, seen) and copy.read_bytes() == b"one\n"
    copied = copy.stat().st_mtime_ns
    assert files.fetch("ledgerflow-a", "stdout", copy, seen)  # unchanged: not fetched again
    assert copy.stat().st_mtime_ns == copied
    files.put("ledgerflow-a", "stdout", b"one\ntwo\n")
    assert files.fetch("ledgerflow-a", "stdout", copy, seen)
    assert copy.read_bytes() == b"one\ntwo\n"
    files.forget("ledgerflow-a")
    assert _attempt_files(datastore, "ledgerflow-a") == []


def test_loopback_addresses() -> None:
    for address in ("127.0.0.1:50051", "localhost:50051", "[::1]:50051", "127.8.0.1:1"):
        assert is_loopback(address), address
    for address in ("10.0.0.5:50051", "ledgerflow.flows.svc:50051", "[fd00::1]:50051"):
        assert not is_loopback(address), address


def test_the_kubernetes_flags_reach_the_pods(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    """--pod-service is the address pods are told (in their Secret, as the kubelet gives
    it them), and --image-pull-policy, --image-pull-secret and --run-as-user shape the
    pods; every Job stays admitted."""
    if emulator.live:
        pytest.skip("the pods are told an address of the emulator's host")
    pod_service = f"localhost:{on_kubernetes.port}"  # reached, and not --service
    kubelet = emulator.kubelet()
    try:
        on_kubernetes.executor("--image", IMAGE, "--pod-service", pod_service,
                               "--image-pull-policy", "Never", "--image-pull-secret", "regcred",
                               "--image-pull-secret", "mirror", "--run-as-user", "4242",
                               backend="kubernetes")  # fmt: skip
        run_id = on_kubernetes.submit("secret_env", "--seconds", "3")
        told: list[str] = []

        def secret_seen() -> bool:
            for secret in (
                CoreV1Api(emulator.api)
                .list_namespaced_secret(
                    emulator.namespace, label_selector="ledgerflow.dev/launcher"
                )
                .items
            ):
                told.append(base64.b64decode(secret.data["LEDGERFLOW_SERVICE"]).decode())
            return bool(told)

        wait_for(secret_seen, 60, "the running task's Secret")
        assert set(told) == {pod_service}
        assert on_kubernetes.wait_finished("SecretEnv", run_id, seconds=120)
        assert len(kubelet.jobs_seen) == 2 and not kubelet.invalid, kubelet.invalid
        for job in kubelet.jobs_seen:
            admitted(job)
            pod = job["spec"]["template"]["spec"]
            assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
            assert pod["securityContext"]["runAsUser"] == 4242
            assert pod["containers"][0]["imagePullPolicy"] == "Never"
        assert "a loopback address" not in on_kubernetes.log_text()
    finally:
        kubelet.close()


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
        # Told the service on loopback, and no --pod-service: the executor says so.
        assert "a loopback address, which inside a pod is the pod itself" in (
            on_kubernetes.log_text()
        )
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
        for job in kubelet.jobs_seen:
            admitted(job)
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


def _pending(
    *,
    conditions: list[dict[str, str]] | None = None,
    waiting: str | None = None,
    running: bool = False,
) -> dict[str, Any]:
    """A pending pod's status as the API server reports it."""
    state: dict[str, Any] = {"running": {}} if running else {"waiting": {"reason": waiting}}
    return {"status": {"phase": "Pending", "conditions": conditions or [],
                       "containerStatuses": [{"image": IMAGE, "state": state}]}}  # fmt: skip


def test_a_pods_trouble_lasts_until_it_gets_past_it() -> None:
    """Between two pulls of an image that cannot be had the kubelet reports the container
    waiting for nothing wrong: the trouble (and so the executor's --start-timeout clock)
    goes on until the container runs; an unschedulable pod's until it is scheduled."""
    pull_failed = _pending(waiting="ErrImagePull")
    trouble = trouble_now(pull_failed, None)
    assert trouble is not None and trouble.error_type == "ImagePullError"
    assert trouble_now(_pending(waiting="ContainerCreating"), trouble) is trouble
    assert trouble_now(_pending(waiting="ImagePullBackOff"), trouble) is not None
    assert trouble_now(_pending(running=True), trouble) is None
    assert trouble_now(_pending(waiting="ContainerCreating"), None) is None  # no trouble yet

    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    trouble = trouble_now(_pending(conditions=[unschedulable]), None)
    assert trouble is not None and trouble.error_type == "Unschedulable"
    unsure = {"type": "PodScheduled", "status": "False"}
    assert trouble_now(_pending(conditions=[unsure]), trouble) is trouble
    scheduled = {"type": "PodScheduled", "status": "True"}
    assert trouble_now(_pending(conditions=[scheduled], waiting="ContainerCreating"),
                       trouble) is None  # fmt: skip


def test_a_pod_no_node_can_take_is_given_back_after_the_start_timeout(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    """Unschedulable for --start-timeout: the executor deletes its Job and gives the
    lease back (TaskNotStarted, no TaskStarted); after the infrastructure's retries the
    run fails with the scheduler's words."""
    kubelet = emulator.kubelet(gpus=1)
    try:
        on_kubernetes.executor("--image", IMAGE, "--gpus", "4", "--start-timeout", "1",
                               backend="kubernetes")  # fmt: skip
        run_id = on_kubernetes.submit("needs_gpus")  # its train step asks for 4 GPUs
        assert not on_kubernetes.wait_finished("NeedsGpus", run_id, seconds=120)
        events = on_kubernetes.events("NeedsGpus", run_id)
        given_back = [e.task_not_started for e in events if e.HasField("task_not_started")]
        assert len(given_back) == MAX_LOST_ATTEMPTS + 1, given_back
        assert {(g.task.step_name, g.attempt, g.error_type) for g in given_back} == {
            ("train", 0, "Unschedulable")
        }
        assert "Insufficient nvidia.com/gpu" in given_back[0].error_message
        assert "the executor's --start-timeout" in given_back[0].error_message
        assert not [
            e
            for e in events
            if e.HasField("task_started") and e.task_started.task.step_name == "train"
        ]
        wait_for(lambda: not kubelet.jobs(), 30, "the given-back Jobs to be deleted")
    finally:
        kubelet.close()


def test_a_job_a_dead_executor_left_is_deleted_by_its_replacement(
    on_kubernetes: Cluster, emulator: KubeEmulator
) -> None:
    """A Job outlives its executor (kill -9). Its TaskStarted names it; once its lease
    lapses, the executor started in the dead one's place finds it (its annotations) and
    deletes it, with its Secret."""
    kubelet = emulator.kubelet()
    try:
        run_id = on_kubernetes.submit("slow_items", "--count", "1", "--seconds", "300")
        doomed = on_kubernetes.executor("--image", IMAGE, backend="kubernetes")
        wait_for(lambda: on_kubernetes.running("SlowItems", run_id, "work"), 120,
                 "the item to run")  # fmt: skip
        (started,) = [e.task_started for e in on_kubernetes.events("SlowItems", run_id)
                      if e.HasField("task_started") and "/work/" in e.stream]  # fmt: skip
        assert started.backend == "kubernetes"
        namespace, job = started.backend_handle.split("/")
        assert namespace == kubelet.namespace

        def job_names() -> list[str]:
            return [j["metadata"]["name"] for j in kubelet.jobs()]

        assert job in job_names()
        doomed.kill()
        doomed.wait()
        on_kubernetes.executor("--image", IMAGE, backend="kubernetes")
        wait_for(lambda: job not in job_names(), 90, f"the replacement to delete Job {job}")
        wait_for(lambda: f"executor: killed {job}, left running by" in on_kubernetes.log_text(),
                 30, "the replacement to say so")  # fmt: skip
        on_kubernetes.cli("cancel", f"SlowItems/{run_id}")
        assert not on_kubernetes.wait_finished("SlowItems", run_id, seconds=60)
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
        admitted(manifest)
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
    # Pod i (its JOB_COMPLETION_INDEX) runs node i's attempt, whose files are its own.
    plan = json.loads(env["LEDGERFLOW_KUBERNETES_PLAN"])
    assert plan["attempts"] == [launch.name for launch in nodes]
    assert container["command"] == ["python", "-m", "ledgerflow_executor.backends.kubernetes"]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
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
        for job in kubelet.jobs_seen:
            admitted(job)
        wait_for(lambda: not kubelet.jobs(), 30, "the executor to delete every finished Job")
        services = CoreV1Api(emulator.api).list_namespaced_service(emulator.namespace)
        assert not services.items  # the gang's headless Service went with its Job
    finally:
        kubelet.close()
