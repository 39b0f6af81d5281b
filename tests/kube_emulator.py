"""A stand-in Kubernetes for the kubernetes backend's tests: kmock's in-memory API
emulator in a process of its own (no API server can run here), a kubeconfig that points
at it, and a fake kubelet that plays the cluster's part.

The emulator stores and serves objects and watches, nothing more: no controllers, no
validation, no scheduling. So the kubelet here, a thread in the test process, does what
the Job controller and a node would: for each Job it validates the manifest against the
Kubernetes schemas (kubernetes-validate, for KUBERNETES_VERSION), makes its pod, runs the
container's command as a local process (the image is not used: the work folder and
datastore are at the same paths here), and reports the pod's phase and its container's
termination through the status subresource; deleting a Job stops its process and
deletes its pod. Steps named in `oom_steps` end as a kubelet ends a container over its
memory limit (OOMKilled, exit 137); pods asking for more GPUs than `gpus` stay pending
as unschedulable, and the others get GPUs as the NVIDIA device plugin gives them (named
in NVIDIA_VISIBLE_DEVICES; the process does not inherit this host's CUDA_VISIBLE_DEVICES).
An indexed Job (a @parallel gang) gets a pod per index, each told its index as the Job
controller tells it (JOB_COMPLETION_INDEX, and the pod's annotation); and since all
pods run on this host, the kubelet plays the cluster's DNS too: a pod's name under its
headless Service (JOB-0.JOB) in a container's environment becomes 127.0.0.1. A
container's environment from Secrets (``envFrom: secretRef``, ``valueFrom:
secretKeyRef``) is read from the emulator as a kubelet reads it; a Job whose Secrets
are not there yet waits for them (a kubelet would retry its pod's container).

When the environment names a real cluster (``KUBECONFIG`` set before the tests start),
`kubernetes_for_tests` gives that cluster instead: the cluster runs the pods, and a
JobObserver in the kubelet's place only records and validates the Jobs the executor
creates. Running tasks there needs an image with this ledgerflow installed
(``LEDGERFLOW_TEST_IMAGE``), nodes that see this host's /tmp at the same paths, and an
address of this host the pods reach (``LEDGERFLOW_TEST_SERVICE_HOST``); see
docs/executor.md.

Also a command line: ``python tests/kube_emulator.py`` serves until killed and prints
its port.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "1.33"
LAUNCHER_LABEL = "ledgerflow.dev/launcher"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# A real cluster to test against, read before any test points KUBECONFIG elsewhere.
LIVE_KUBECONFIG = os.environ.get("KUBECONFIG", "")


def _serve() -> None:
    import kmock

    async def main() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources.load_bundled()
            print(server.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


def write_kubeconfig(path: Path, port: int, namespace: str = "flows") -> None:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: emulator\n"
        f"clusters:\n- name: emulator\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "users:\n- name: tester\n  user:\n    token: not-checked\n"
        "contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: tester\n"
        f"    namespace: {namespace}\n"
    )


@dataclass
class _Pod:
    name: str
    process: subprocess.Popen[bytes] | None = None
    gpus: tuple[int, ...] = ()


@dataclass
class JobObserver:
    """Records and validates each Job the executor creates (jobs_seen, invalid, jobs()):
    on a live cluster, which runs the pods itself, all a test needs."""

    api: Any
    namespace: str
    jobs_seen: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        from kubernetes import client

        self.batch = client.BatchV1Api(self.api)
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()

    def jobs(self) -> list[dict[str, Any]]:
        """The executors' Jobs the cluster holds now, as dicts."""
        return _launched_jobs(self.batch, self.namespace)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as error:  # keep going: the test sees what went wrong
                print(f"{type(self).__name__}: {error!r}", file=sys.stderr)
            self._stop.wait(0.1)

    def _step(self) -> None:
        for job in self.jobs():
            self._record(job)

    def _record(self, job: dict[str, Any]) -> None:
        key = job["metadata"].get("uid") or job["metadata"]["name"]  # kmock sets no uid
        if key not in self._seen:
            self._seen.add(key)
            self.jobs_seen.append(job)
            self.invalid.extend(_schema_errors(job))


@dataclass
class FakeKubelet(JobObserver):
    """Plays the Job controller and a node against the emulator (see the module)."""

    oom_steps: set[str] = field(default_factory=set)
    gpus: int = 0
    _pods: dict[str, list[_Pod]] = field(default_factory=dict)  # by Job

    def __post_init__(self) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(self.api)
        self._free_gpus = list(range(self.gpus))
        super().__post_init__()

    def close(self) -> None:
        super().close()
        for pods in self._pods.values():
            for pod in pods:
                if pod.process and pod.process.poll() is None:
                    pod.process.kill()

    def _step(self) -> None:
        present = {job["metadata"]["name"]: job for job in self.jobs()}
        for name, job in present.items():
            if name not in self._pods:
                self._admit(job)
        for name, pods in list(self._pods.items()):
            for pod in pods:
                if name not in present:  # the Job was deleted: its pods go too
                    if pod.process and pod.process.poll() is None:
                        pod.process.kill()
                    self._delete_pod(pod.name)
                    self._free_gpus.extend(pod.gpus)
                elif pod.process and pod.process.poll() is not None:
                    code = pod.process.returncode
                    self._terminate(pod.name, code, "Completed" if code == 0 else "Error")
                    pod.process = None
                    self._free_gpus.extend(pod.gpus)
                    pod.gpus = ()
            if name not in present:
                del self._pods[name]

    def _admit(self, job: dict[str, Any]) -> None:
        """The Job's pods: one, or for an indexed Job one per completion index, each
        given its index as the Job controller does."""
        self._record(job)
        if not self._secrets_there(job["spec"]["template"]["spec"]["containers"][0]):
            return  # admitted on a later round
        name = job["metadata"]["name"]
        self._pods[name] = []
        if job["spec"].get("completionMode") == "Indexed":
            for index in range(int(job["spec"]["completions"])):
                self._start_pod(job, f"{name}-{index}", index)
        else:
            self._start_pod(job, f"{name}-pod", None)

    def _start_pod(self, job: dict[str, Any], pod_name: str, index: int | None) -> None:
        name = job["metadata"]["name"]
        pod = _Pod(pod_name)
        self._pods[name].append(pod)
        template = job["spec"]["template"]
        annotations = {} if index is None else {INDEX_ANNOTATION: str(index)}
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod.name,
                    "namespace": self.namespace,
                    "labels": {**template["metadata"]["labels"], "job-name": name},
                    "annotations": annotations,
                },
                "spec": template["spec"],
                "status": {"phase": "Pending"},
            },
        )
        container = template["spec"]["containers"][0]
        wants_gpus = int(container["resources"]["limits"].get("nvidia.com/gpu", "0"))
        if wants_gpus > len(self._free_gpus):
            message = f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu ({self.gpus} here)."
            condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": message}  # fmt: skip
            self._status(pod.name, {"phase": "Pending", "conditions": [condition]})
            return
        self._status(pod.name, {"phase": "Running"})
        step = template["metadata"]["labels"].get("ledgerflow.dev/step", "")
        if step in self.oom_steps:
            self._terminate(pod.name, 137, "OOMKilled")
            return
        pod.gpus = tuple(self._free_gpus[:wants_gpus])
        del self._free_gpus[:wants_gpus]
        host = {k: v for k, v in os.environ.items() if not k.endswith("_VISIBLE_DEVICES")}
        env = {**host, **self._container_env(container)}
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)
        subdomain = template["spec"].get("subdomain")
        if subdomain:  # the cluster's DNS: the Service's pods are all on this host
            env = {k: _resolve_pod_name(v, subdomain) for k, v in env.items()}
        if pod.gpus:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(f"GPU-fake-{i}" for i in pod.gpus)
        pod.process = subprocess.Popen(
            [sys.executable if part == "python" else part for part in _command(container)],
            cwd=container.get("workingDir"),
            env=env,
        )

    def _secret(self, name: str) -> dict[str, str] | None:
        """A Secret's values, decoded, or None when there is none of that name."""
        from kubernetes.client import ApiException

        try:
            found = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}

    def _secrets_there(self, container: dict[str, Any]) -> bool:
        names = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
        names += [e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})]  # fmt: skip
        return all(self._secret(name) is not None for name in names)

    def _container_env(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as a kubelet makes it: envFrom first, then env
        (plain values and secretKeyRef), a later one winning."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                env.update(self._secret(source["secretRef"]["name"]) or {})
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                env[entry["name"]] = (self._secret(ref["name"]) or {})[ref["key"]]
            else:
                env[entry["name"]] = entry.get("value", "")
        return env

    def _terminate(self, pod: str, code: int, reason: str) -> None:
        terminated = {"exitCode": code, "reason": reason}
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {"name": "task", "ready": False, "restartCount": 0, "image": "task",
                 "imageID": "", "state": {"terminated": terminated}}
            ],
        }  # fmt: skip
        self._status(pod, status)

    def _status(self, pod: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(pod, self.namespace, {"status": status})

    def _delete_pod(self, pod: str) -> None:
        from kubernetes.client import ApiException

        with suppress(ApiException):
            self.core.delete_namespaced_pod(pod, self.namespace)


def _resolve_pod_name(value: str, subdomain: str) -> str:
    """What the cluster's DNS gives a pod of the headless Service `subdomain`
    (``JOB-INDEX.JOB``): here, where the fake kubelet runs every pod, this host."""
    host, _, domain = value.partition(".")
    is_pod = domain == subdomain and host.rpartition("-")[2].isdigit()
    return "127.0.0.1" if is_pod and host.startswith(f"{subdomain}-") else value


def _launched_jobs(batch: Any, namespace: str) -> list[dict[str, Any]]:
    """The Jobs an executor launched (others in a live namespace are not ours)."""
    found = batch.list_namespaced_job(
        namespace, label_selector=LAUNCHER_LABEL, _preload_content=False
    )
    return list(json.loads(found.data)["items"])


def _schema_errors(job: dict[str, Any]) -> list[str]:
    """What the Kubernetes schemas (KUBERNETES_VERSION, strict) find wrong with a Job."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{job['metadata']['name']}: {error.message}"]
    return []


def _command(container: dict[str, Any]) -> list[str]:
    """The container's command; `python` inside `sh -c` becomes this interpreter."""
    command = [*container["command"], *container.get("args", [])]
    if command[:2] == ["/bin/sh", "-c"]:
        script = command[2].replace("exec python ", f"exec {sys.executable} ")
        return ["/bin/sh", "-c", script]
    return command


@dataclass
class KubeEmulator:
    """The Kubernetes a test talks to: the emulator, or a live cluster (`live`)."""

    kubeconfig: Path
    namespace: str
    api: Any
    live: bool = False

    def kubelet(self, **options: Any) -> FakeKubelet | JobObserver:
        """What plays the nodes: the fake kubelet (its options: oom_steps, gpus), or on
        a live cluster an observer (the cluster's own limits and GPUs apply)."""
        if self.live:
            return JobObserver(self.api, self.namespace)
        return FakeKubelet(self.api, self.namespace, **options)


@contextmanager
def kube_emulator(folder: Path, namespace: str = "flows") -> Iterator[KubeEmulator]:
    """The emulator in a process of its own, and a kubeconfig at folder/kubeconfig."""
    from kubernetes import client

    process = subprocess.Popen(
        [sys.executable, __file__], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the emulator did not start: {line}{process.stderr.read()}")
        port = int(line)
        kubeconfig = folder / "kubeconfig"
        write_kubeconfig(kubeconfig, port, namespace)
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{port}"
        api = client.ApiClient(configuration)
        yield KubeEmulator(kubeconfig, namespace, api)
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def kubernetes_for_tests(folder: Path) -> Iterator[KubeEmulator]:
    """The live cluster LIVE_KUBECONFIG names, else a fresh emulator."""
    if not LIVE_KUBECONFIG:
        with kube_emulator(folder) as emulator:
            yield emulator
        return
    from kubernetes import config

    _, context = config.list_kube_config_contexts(config_file=LIVE_KUBECONFIG)
    namespace = context["context"].get("namespace") or "default"
    api = config.new_client_from_config(config_file=LIVE_KUBECONFIG)
    try:
        yield KubeEmulator(Path(LIVE_KUBECONFIG), namespace, api, live=True)
    finally:
        api.close()


if __name__ == "__main__":
    _serve()
