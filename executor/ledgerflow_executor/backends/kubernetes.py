"""The Kubernetes backend: each attempt becomes a Job (the official ``kubernetes``
client), so the cluster enforces its resources: requests and limits for cpu, memory and
``nvidia.com/gpu``, ``activeDeadlineSeconds`` from @timeout, ``backoffLimit: 0``
(retries are the service's), and ``ttlSecondsAfterFinished`` for what is left.

Pods are followed by one watch on the namespace (by a label of this executor's): a
terminated container gives the exit code, OOMKilled the memory message, a Job past its
deadline a timeout, a pod that cannot be scheduled a waiting reason. Cancelling deletes
the Job.

A pod needs nothing of the executor's machine: no folder of it is mounted (no
``hostPath``), only the S3 datastore and the metadata service are reached. Before the
Job, the executor stores the attempt's task under the datastore's root
(``ROOT/attempts/NAME/task``: the run's code package key and the task request); the
pod's container runs this module (``python -m ledgerflow_executor.backends.kubernetes``,
from the image's ledgerflow), which fetches them, runs the task entry point as any
backend does (``python FLOW_FILE task --spec SPEC --result RESULT``) in a scratch
``emptyDir``, and stores its stdout and stderr as they grow and its result at the end
beside the task. The executor copies them into the attempt's folder (output while it
runs, everything when its pod ends) and deletes them. So the backend refuses a local
datastore. The pod's memory is the step's plus POD_OVERHEAD_MB for that supervisor.

Every pod passes the Pod Security Standard "restricted": it runs as a non-root user
(``--run-as-user``), without privilege escalation or any capability, under the
runtime's default seccomp profile, with no host namespace, port or path, and only an
``emptyDir`` volume. Its service account token is not mounted unless
``--service-account`` names one.

The attempt's environment (the datastore's settings, the AWS_* credentials and the
service address the pods reach: every variable the executor gives the task) is never in
the Job's manifest, which anyone who may list Jobs reads: it goes in a ``Secret`` of the
Job's name, made before the Job and then owned by it (``ownerReferences``: the cluster
deletes it with the Job, should the executor not), and reaches the container through
``envFrom: secretRef``. The manifest holds plain values only for what the Job itself
decides (which attempts its pods run, a gang's main node address).

A @parallel gang is one indexed Job (``completionMode: Indexed``, a pod per node, all
started at once, ``backoffLimitPerIndex: 0``) whose pods each run their node's attempt by
``JOB_COMPLETION_INDEX``, with a headless Service of the Job's name, owned by the Job, so
that node 0 is ``JOB-0.JOB`` in the cluster's DNS (current.parallel.main_ip).

Verified against the Kubernetes schemas (kubernetes-validate), the restricted profile's
rules and an in-memory API emulator (kmock), not a live cluster: see docs/executor.md.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.engine.facts import MAIN_IP_VARIABLE
from ledgerflow.engine.outcomes import TIMEOUT_ERROR
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.backends.base import Backend, BackendError, Launch, Leftover

log = logging.getLogger(__name__)

GROUP = "ledgerflow.dev"
# Finished Jobs the executor could not delete are collected by the cluster after this.
TTL_SECONDS_AFTER_FINISHED = 3600
# A watch is opened again after this long, as API servers end long watches anyway.
WATCH_SECONDS = 300
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")
# Set by the Job controller on each pod of an indexed Job: which index it runs.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

# What the pod's container runs: this module, from the image's ledgerflow.
POD_COMMAND = ["python", "-m", "ledgerflow_executor.backends.kubernetes"]
# The plain variable that tells a pod which attempts its Job runs (a gang's: one per
# completion index) and how often to store their output.
PLAN_VARIABLE = "LEDGERFLOW_KUBERNETES_PLAN"
# Under the S3 datastore's root: each attempt's task and what its pod leaves.
ATTEMPTS_FOLDER = "attempts"
# How often a pod stores its task's output when it grew, and the executor fetches it.
OUTPUT_SECONDS = 5.0
# The pod's scratch space (an emptyDir): the task's work folder, code and output.
SCRATCH = "/tmp"
# Memory for the supervisor in the pod (Python and boto3, ~60 MB) on top of the step's.
POD_OVERHEAD_MB = 128
# The pods' user: any but root (the images `ledgerflow executor image build` makes have
# no user of their own, so the pod names one).
DEFAULT_RUN_AS_USER = 1000
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# How a pod says that it, not its task, failed (its stderr's first line, and the pod's
# log, which the cluster keeps as the termination message); and its exit code then.
POD_FAILURE = "ledgerflow pod: "
POD_FAILURE_EXIT = 70
# A container's termination reasons when it failed as a process (not killed for memory,
# deleted or evicted).
CONTAINER_FAILED = ("Error", "ContainerCannotRun", "StartError")
NEEDS_S3 = (
    "the kubernetes backend needs the S3 datastore (LEDGERFLOW_DATASTORE=s3 and "
    "LEDGERFLOW_DATASTORE_ROOT=s3://bucket/prefix, with LEDGERFLOW_S3_ENDPOINT_URL for "
    "S3 elsewhere than AWS): its pods fetch the code package and the task and store "
    "artifacts, output and results there, and mount no folder of this machine"
)


@dataclass
class _Attempt:
    job: str
    name: str = ""  # the launch's: its files' folder in the datastore
    files: AttemptFiles | None = None
    outputs: tuple[str, str, str] = ("", "", "")  # where stdout, stderr, result go here
    done: bool = False
    pod_seen: bool = False
    waiting: str = "pending in Kubernetes: no pod yet"
    trouble: TaskOutcome | None = None  # why its pod cannot run now (_start_trouble)
    reason: str = ""  # the container's or pod's termination reason
    message: str = ""
    pod_failure: str = ""  # the pod failed, not its task (POD_FAILURE's line)
    etags: dict[str, str] = field(default_factory=dict)  # of the parts as copied here


class KubernetesBackend(Backend):
    name = "kubernetes"
    holds_attempts_back = True  # a pod may wait for a node: begun once it runs
    assigns_gpus = True

    def __init__(
        self,
        image: str = "",
        namespace: str = "",
        service_account: str = "",
        context: str = "",
        service: str = "",
        *,
        datastore: str = "",
        pull_policy: str = "IfNotPresent",
        pull_secrets: tuple[str, ...] = (),
        run_as_user: int = DEFAULT_RUN_AS_USER,
    ) -> None:
        """`service`: the metadata service's address as the pods reach it; `datastore`:
        the executor's (refused unless "s3"; when not given, each attempt's is checked)."""
        super().__init__()
        if datastore and datastore != "s3":
            raise BackendError(f"{NEEDS_S3}; this executor's datastore is {datastore!r}")
        if pull_policy not in PULL_POLICIES:
            raise BackendError(
                f"imagePullPolicy {pull_policy!r}: use one of {', '.join(PULL_POLICIES)}"
            )
        if run_as_user <= 0:
            raise BackendError(f"--run-as-user {run_as_user}: pods never run as root")
        try:
            from kubernetes import client, config
        except ImportError:
            raise BackendError(
                "the kubernetes backend needs the kubernetes client: "
                "pip install 'ledgerflow[kubernetes]'"
            ) from None
        # KUBECONFIG read now: the client reads it once, when first imported.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=kubeconfig, context=context or None)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active)
            namespace = namespace or chosen.get("context", {}).get("namespace", "")
        except (config.ConfigException, OSError, TypeError) as error:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise BackendError(f"no Kubernetes configuration found: {error}") from None
        self.api = client.ApiClient()
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.ApiException = client.ApiException
        self.image = image
        self.namespace = namespace or "default"
        self.service_account = service_account
        self.service = service
        self.pull_policy = pull_policy
        self.pull_secrets = tuple(dict.fromkeys(pull_secrets))
        self.run_as_user = run_as_user
        self.launcher = uuid.uuid4().hex[:12]  # labels this executor's Jobs and pods
        self._attempts: dict[int, _Attempt] = {}
        self._by_job: dict[str, int] = {}
        self._exited: list[tuple[int, int]] = []
        self._reported: list[int] = []  # exits the last poll returned (forgotten next)
        self._next_handle = 1
        self._gang_jobs: set[str] = set()  # Jobs with a Service of their own
        self._stores: dict[tuple[str, str], tuple[AttemptFiles, Any]] = {}
        self._packages: dict[tuple[str, str], str] = {}  # code package keys, by flow file
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # one copy of an attempt's files at a time
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._follow_pods, name="lf-k8s", daemon=True)
        self._watcher.start()
        self._copier = threading.Thread(target=self._copy_output, name="lf-k8s-out", daemon=True)
        self._copier.start()

    # ---- manifests ------------------------------------------------------------------------

    def job_manifest(self, launch: Launch) -> dict[str, Any]:
        """The Job for one attempt (a plain dict, as `kubectl apply` would take it)."""
        image = launch.image or self.image
        if not image:
            raise BackendError(
                "the kubernetes backend needs an image: --image, or @resources(image=...)"
            )
        labels = {f"{GROUP}/launcher": self.launcher, f"{GROUP}/job": launch.name}
        labels.update(_task_labels(launch.task))
        quantities: dict[str, str] = {
            "cpu": f"{launch.cpu:g}",
            "memory": f"{launch.memory_mb + POD_OVERHEAD_MB}Mi",
        }
        if launch.gpu:
            quantities["nvidia.com/gpu"] = str(launch.gpu)
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": self.run_as_user,
                "runAsGroup": self.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # A service account's token only where one was named for the tasks.
            "automountServiceAccountToken": bool(self.service_account),
            "containers": [
                {
                    "name": "task",
                    "image": image,
                    "imagePullPolicy": self.pull_policy,
                    "command": list(POD_COMMAND),
                    "env": [{"name": PLAN_VARIABLE, "value": _plan([launch])}],
                    # The task's environment, from the Secret (secret_manifest).
                    "envFrom": [{"secretRef": {"name": launch.name}}],
                    "resources": {"requests": dict(quantities), "limits": dict(quantities)},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsNonRoot": True,
                        "runAsUser": self.run_as_user,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
                    # A pod that fails before its task runs says why in its log.
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        }
        if self.pull_secrets:
            pod_spec["imagePullSecrets"] = [{"name": name} for name in self.pull_secrets]
        if self.service_account:
            pod_spec["serviceAccountName"] = self.service_account
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        }
        if launch.timeout_seconds:
            spec["activeDeadlineSeconds"] = max(1, round(launch.timeout_seconds))
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": launch.name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {f"{GROUP}/task": launch.task, f"{GROUP}/service": launch.service},
            },
            "spec": spec,
        }

    def task_env(self, launch: Launch) -> dict[str, str]:
        """Every variable the executor gives the task (all in its Secret)."""
        env = dict(launch.env)
        if self.service:
            env["LEDGERFLOW_SERVICE"] = self.service
        return env

    def secret_manifest(self, launch: Launch, job_uid: str = "") -> dict[str, Any]:
        """The Secret that holds the attempt's environment (a Job's: named after it,
        read by its pods through envFrom), owned by the Job once it has its uid."""
        labels = {f"{GROUP}/launcher": self.launcher, f"{GROUP}/job": launch.name}
        metadata: dict[str, Any] = {"name": launch.name, "namespace": self.namespace,
                                    "labels": labels}  # fmt: skip
        if job_uid:
            metadata["ownerReferences"] = [_owned_by_job(launch.name, job_uid)]
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.task_env(launch).items()}
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": data}  # fmt: skip

    def gang_manifests(self, launches: list[Launch]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The indexed Job of a @parallel gang (a pod per node: pod i runs launches[i])
        and the headless Service that names its pods in the cluster's DNS."""
        manifest = self.job_manifest(launches[0])
        name, count = manifest["metadata"]["name"], len(launches)
        # The gang's labels name its step, not one task: every pod has them.
        for key in ("task-id", "attempt"):
            manifest["metadata"]["labels"].pop(f"{GROUP}/{key}", None)
            manifest["spec"]["template"]["metadata"]["labels"].pop(f"{GROUP}/{key}", None)
        manifest["metadata"]["annotations"] = {
            f"{GROUP}/tasks": json.dumps([launch.task for launch in launches]),
            f"{GROUP}/service": launches[0].service,
        }
        pod_spec = manifest["spec"]["template"]["spec"]
        # Pod i (JOB_COMPLETION_INDEX) runs the plan's attempt i.
        pod_spec["containers"][0]["env"] = [
            {"name": PLAN_VARIABLE, "value": _plan(launches)},
            {"name": MAIN_IP_VARIABLE, "value": f"{name}-0.{name}"},
        ]
        pod_spec["subdomain"] = name
        # A node's failure ends its own pod only (the executor records it; the run fails
        # with it), as on the other backends: not the whole Job at once.
        del manifest["spec"]["backoffLimit"]
        manifest["spec"].update(
            completionMode="Indexed", completions=count, parallelism=count,
            backoffLimitPerIndex=0,
        )  # fmt: skip
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": dict(manifest["metadata"]["labels"])},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": {f"{GROUP}/job": name}},
        }  # fmt: skip
        return manifest, service

    # ---- one attempt ----------------------------------------------------------------------

    def start(self, launch: Launch) -> int:
        manifest = self.job_manifest(launch)
        files = self._stage([launch])
        try:
            self._create_job(launch, manifest)
        except BackendError:
            files.forget(launch.name)
            raise
        return self._track(launch.name, [(launch.name, launch)], files)[0]

    def _stage(self, launches: list[Launch]) -> AttemptFiles:
        """Stores each attempt's task (its code package's key and its task request)
        where its pod fetches it: the S3 datastore."""
        files, store = self._datastore(launches[0].env)
        staged = []
        try:
            for launch in launches:
                task = {"code_package": self._code_package(store, launch),
                        "spec": Path(launch.spec_path).read_text()}  # fmt: skip
                files.put(launch.name, "task", json.dumps(task).encode())
                staged.append(launch.name)
        except Exception as error:  # a file unread, or S3 refused it or is out of reach
            for name in staged:
                files.forget(name)
            raise BackendError(f"cannot store the attempt's task in S3: {error}") from None
        return files

    def _datastore(self, env: Mapping[str, str]) -> tuple[AttemptFiles, Any]:
        """The attempts' files and the content store, in the attempt's S3 datastore."""
        if env.get("LEDGERFLOW_DATASTORE") != "s3":
            raise BackendError(
                f"{NEEDS_S3}; this attempt's is {env.get('LEDGERFLOW_DATASTORE', 'local')!r}"
            )
        root, endpoint = (
            env.get("LEDGERFLOW_DATASTORE_ROOT", ""),
            env.get("LEDGERFLOW_S3_ENDPOINT_URL", ""),
        )
        if (root, endpoint) not in self._stores:
            from ledgerflow.datastore.content import ContentStore, S3Storage

            try:
                files = AttemptFiles(root, endpoint or None)
                store = ContentStore(S3Storage(root, endpoint_url=endpoint or None))
            except ValueError as error:
                raise BackendError(f"{NEEDS_S3}: {error}") from None
            self._stores[(root, endpoint)] = (files, store)
        return self._stores[(root, endpoint)]

    def _code_package(self, store: Any, launch: Launch) -> str:
        """The key of the attempt's code package in the datastore: its run's (the
        executor's launches name it), else, for a launch made without a run, the flow
        file's, packed as `run --remote` packs it."""
        from ledgerflow.runtime.code_package import DEFAULT_SUFFIXES, INFO_NAME, save_package

        if launch.code_package:
            return launch.code_package
        flow_file = Path(launch.flow_file or launch.command[1])
        cache = (str(flow_file), getattr(store.storage, "prefix", ""))
        if cache not in self._packages:
            suffixes = DEFAULT_SUFFIXES
            info = flow_file.parent / INFO_NAME  # an unpacked package says its suffixes
            if info.is_file():
                suffixes = tuple(json.loads(info.read_text()).get("suffixes", suffixes))
            self._packages[cache] = save_package(store, flow_file, suffixes)
        return self._packages[cache]

    def _create_job(self, launch: Launch, manifest: dict[str, Any]) -> Any:
        """Creates the Secret with the attempt's environment, then the Job, then makes
        the Job the Secret's owner (the Job's pods never start before their Secret is
        there). Returns the created Job."""
        name = manifest["metadata"]["name"]
        try:
            self.core.create_namespaced_secret(self.namespace, self.secret_manifest(launch))
        except self.ApiException as error:
            raise BackendError(
                f"Kubernetes refused the Secret of Job {name}: {_reason(error)}"
            ) from None
        try:
            created = self.batch.create_namespaced_job(self.namespace, manifest)
        except self.ApiException as error:
            self._delete_secret(name)
            raise BackendError(f"Kubernetes refused Job {name}: {_reason(error)}") from None
        uid = getattr(created.metadata, "uid", None)
        if uid:
            owned = {"metadata": {"ownerReferences": [_owned_by_job(name, uid)]}}
            try:
                self.core.patch_namespaced_secret(name, self.namespace, owned)
            except self.ApiException as error:  # the executor still deletes it
                log.warning("Secret %s: could not make Job %s its owner: %s",
                            name, name, _reason(error))  # fmt: skip
        return created

    def start_gang(self, launches: list[Launch]) -> list[int]:
        """One indexed Job for the gang, then its headless Service, owned by the Job
        (the cluster deletes it with the Job, should this executor not)."""
        manifest, service = self.gang_manifests(launches)
        name = manifest["metadata"]["name"]
        files = self._stage(launches)
        try:
            created = self._create_job(launches[0], manifest)
        except BackendError:
            for launch in launches:
                files.forget(launch.name)
            raise
        uid = getattr(created.metadata, "uid", None)
        if uid:
            service["metadata"]["ownerReferences"] = [_owned_by_job(name, uid)]
        self._gang_jobs.add(name)
        try:
            self.core.create_namespaced_service(self.namespace, service)
        except self.ApiException as error:
            self._delete(name)
            for launch in launches:
                files.forget(launch.name)
            raise BackendError(
                f"Kubernetes refused the Service of gang Job {name}: {_reason(error)}"
            ) from None
        keys = [(f"{name}#{index}", launch) for index, launch in enumerate(launches)]
        return self._track(name, keys, files)

    def _track(
        self, job: str, pods: list[tuple[str, Launch]], files: AttemptFiles | None
    ) -> list[int]:
        """Handles for the attempts of a Job, one per pod key (the Job's name, or for
        an indexed Job NAME#INDEX) and the attempt it runs."""
        handles = []
        with self._lock:
            for key, launch in pods:
                handle = self._next_handle
                self._next_handle += 1
                outputs = (launch.stdout_path, launch.stderr_path, launch.result_path)
                self._attempts[handle] = _Attempt(job, launch.name, files, outputs)
                self._by_job[key] = handle
                handles.append(handle)
        return handles

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            for handle in self._reported:  # the executor has asked all it needs of them
                self._attempts.pop(handle)
                for key in [k for k, h in self._by_job.items() if h == handle]:
                    del self._by_job[key]
            exited, self._exited = self._exited, []
            self._reported = [handle for handle, _ in exited]
            ended = {self._attempts[handle].job for handle in self._reported}
            # A gang's Job goes once every one of its pods has ended.
            jobs = [job for job in ended
                    if all(a.done for a in self._attempts.values() if a.job == job)]  # fmt: skip
        for job in jobs:
            self._delete(job)
        return exited

    def kill(self, handle: int) -> None:
        with self._lock:
            attempt = self._attempts.get(handle)
        if attempt is None or attempt.done:
            return
        self._delete(attempt.job)  # a gang's Job ends whole, as a gang cannot go on short
        # Its pods' deletion ends the attempts; those with no pod yet end here.
        with self._lock:
            keys = [k for k, h in self._by_job.items() if self._attempts[h].job == attempt.job]
        for key in keys:
            self._finish(key, -9, "Killed", "the Job was deleted", only_if_podless=True)

    def waiting(self, handle: int) -> str:
        with self._lock:
            attempt = self._attempts.get(handle)
            return attempt.waiting if attempt and not attempt.done else ""

    def begun(self, handle: int) -> bool:
        """Once its pod runs (or it ended): a pod pending for a node has not begun."""
        with self._lock:
            attempt = self._attempts.get(handle)
            return attempt is None or attempt.done or (attempt.pod_seen and not attempt.waiting)

    def start_trouble(self, handle: int) -> TaskOutcome | None:
        """Its pod's: no node can take it, or its image cannot be pulled."""
        with self._lock:
            attempt = self._attempts.get(handle)
            if attempt is None or attempt.done or attempt.trouble is None:
                return None
            trouble = attempt.trouble  # a copy: the executor adds to its message
            return failed(trouble.error_type, trouble.error_message, trouble.kind)

    def handle_of(self, launch: Launch) -> str:
        return f"{self.namespace}/{launch.name}"

    def leftovers(self) -> list[Leftover]:
        """The attempts' Jobs in the namespace, any executor's: named ledgerflow-LEASE,
        annotated with their task (a gang's: its first node's) and service."""
        jobs = self.batch.list_namespaced_job(self.namespace, label_selector=f"{GROUP}/job")
        found = []
        for job in jobs.items:
            name, notes = job.metadata.name, job.metadata.annotations or {}
            tasks = json.loads(notes.get(f"{GROUP}/tasks", "[]")) or [notes.get(f"{GROUP}/task")]
            task, _, attempt = str(tasks[0] or "").rpartition(".")
            if name.startswith("ledgerflow-") and task and attempt.isdigit():
                found.append(Leftover(name, task, int(attempt), name.removeprefix("ledgerflow-"),
                                      notes.get(f"{GROUP}/service", "")))  # fmt: skip
        return found

    def kill_leftover(self, leftover: Leftover) -> None:
        """Deletes its Job, its Secret and (a gang's) its Service."""
        self._delete(leftover.handle)
        with contextlib.suppress(self.ApiException):
            self.core.delete_namespaced_service(leftover.handle, self.namespace)

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        with self._lock:
            attempt = self._attempts.get(handle)
        if attempt is None:
            return None
        if attempt.reason == "OOMKilled":
            return died_outcome(exit_code, memory_mb=memory_mb)
        if attempt.reason == "DeadlineExceeded":
            message = f"Kubernetes ended Job {attempt.job} at its deadline"
            return failed(TIMEOUT_ERROR, message, records_pb2.FAILURE_KIND_TIMEOUT)
        if attempt.reason == "Evicted":
            message = f"the pod of Job {attempt.job} was evicted: {attempt.message}"
            return failed("NodeFailure", message, records_pb2.FAILURE_KIND_INFRASTRUCTURE)
        if attempt.pod_failure:
            return failed("ExecutorError", attempt.pod_failure,
                          records_pb2.FAILURE_KIND_INFRASTRUCTURE)  # fmt: skip
        return None

    def close(self) -> None:
        self._closing.set()

    # ---- the attempts' files ----------------------------------------------------------------

    def _copy_output(self) -> None:
        """Copies the output of running attempts, as their pods store it, into the
        attempts' folders (where the executor reads it and records it as it grows)."""
        while not self._closing.wait(OUTPUT_SECONDS):
            with self._lock:
                running = [a for a in self._attempts.values() if a.pod_seen and not a.done]
            for attempt in running:
                with self._fetch_lock:
                    if attempt.done or attempt.files is None:
                        continue  # its last copy is _collect's
                    try:
                        for part, path in zip(("stdout", "stderr"), attempt.outputs[:2],
                                              strict=True):  # fmt: skip
                            attempt.files.fetch(attempt.name, part, Path(path), attempt.etags)
                    except Exception as error:  # S3 out of reach: the next round
                        log.warning("output of %s not copied: %s", attempt.name, error)

    def _collect(self, attempt: _Attempt, code: int, *, pod: bool) -> None:
        """An ended attempt's output and result, from where its pod stored them, into
        its folder; then its files in the datastore go."""
        files = attempt.files
        if files is None:
            return
        with self._fetch_lock:
            stored: dict[str, bool] = {}
            try:
                if pod:
                    for part, path in zip(("stdout", "stderr", "result"), attempt.outputs,
                                          strict=True):  # fmt: skip
                        stored[part] = files.fetch(attempt.name, part, Path(path),
                                                   attempt.etags)  # fmt: skip
                files.forget(attempt.name)
            except Exception as error:  # S3 out of reach: the attempt has no result
                attempt.pod_failure = (
                    f"{POD_FAILURE}cannot fetch the attempt's output and result from S3: {error}"
                )
                log.warning("%s: %s", attempt.name, attempt.pod_failure)
                return
            if pod:
                self._account_for_pod(attempt, code, stored)

    def _account_for_pod(self, attempt: _Attempt, code: int, stored: dict[str, bool]) -> None:
        """Whether the pod failed, not its task: it said so (its stderr's first line, or
        its log), or its container failed before its supervisor stored any output (an
        image without this ledgerflow, say). Its log, as the cluster kept it (the
        termination message), goes into the attempt's stderr when the pod stored none."""
        stderr = Path(attempt.outputs[1])
        pod_log = attempt.message.strip()
        if pod_log and not stored["stderr"]:
            with open(stderr, "a") as out:
                out.write(f"{pod_log}\n")
        said = _pod_failure(_head(stderr)) or _pod_failure(pod_log)
        if said:
            attempt.pod_failure = said
        elif not (stored["stdout"] or stored["stderr"]) and attempt.reason in CONTAINER_FAILED:
            last = pod_log.splitlines()[-1] if pod_log else "its log is empty"
            attempt.pod_failure = (
                f"{POD_FAILURE}the container of Job {attempt.job} exited with code {code} "
                f"before it stored its task's output: {last}"
            )

    # ---- following pods -------------------------------------------------------------------

    def _follow_pods(self) -> None:
        """Watches this executor's pods until closed, opening the watch again when it
        ends or breaks (the events of every pod come again then: it is idempotent)."""
        while not self._closing.is_set():
            try:
                for event in self._watch():
                    self._on_pod(event.get("type", ""), event.get("object") or {})
                    if self._closing.is_set():
                        return
            except Exception as error:  # the API server restarts, the network breaks
                log.warning("the watch on pods broke (%s); watching again", error)
                self._closing.wait(1.0)

    def _watch(self) -> Any:
        response = self.api.call_api(
            "/api/v1/namespaces/{namespace}/pods",
            "GET",
            path_params={"namespace": self.namespace},
            query_params=[
                ("watch", "true"),
                ("labelSelector", f"{GROUP}/launcher={self.launcher}"),
                ("timeoutSeconds", str(WATCH_SECONDS)),
            ],
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release_conn()

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod.get("metadata", {})
        labels = metadata.get("labels") or {}
        if labels.get(f"{GROUP}/launcher") != self.launcher:
            return  # a selector the API server did not apply
        job = labels.get(f"{GROUP}/job", "")
        index = (metadata.get("annotations") or {}).get(COMPLETION_INDEX)
        if index is not None:  # a pod of a gang's indexed Job: one attempt of several
            job = f"{job}#{index}"
        status = pod.get("status") or {}
        terminated = _terminated(status)
        if terminated is not None:
            code = int(terminated.get("exitCode", 1))
            self._finish(job, code, terminated.get("reason", ""), terminated.get("message", ""))
        elif status.get("phase") == "Failed":  # the pod failed as a whole (evicted, deadline)
            self._finish(job, -9, status.get("reason", ""), status.get("message", ""))
        elif kind == "DELETED" and self._running(job):
            reason = self._job_failure(job)
            self._finish(job, -9, reason or "Killed", "the pod was deleted")
        else:
            self._set_waiting(job, pod)

    def _running(self, job: str) -> bool:
        with self._lock:
            handle = self._by_job.get(job)
            return handle is not None and not self._attempts[handle].done

    def _job_failure(self, job: str) -> str:
        """The reason a Job failed (DeadlineExceeded, say), when it did."""
        job = job.split("#")[0]  # a gang's pod: its Job's
        try:
            found = self.batch.read_namespaced_job_status(job, self.namespace)
        except self.ApiException:
            return ""
        for condition in (found.status and found.status.conditions) or []:
            if condition.type == "Failed" and condition.status == "True":
                return str(condition.reason or "")
        return ""

    def _set_waiting(self, job: str, pod: dict[str, Any]) -> None:
        """A pod not running yet: what it waits for, and its trouble (trouble_now)."""
        with self._lock:
            handle = self._by_job.get(job)
            if handle is not None:
                attempt = self._attempts[handle]
                attempt.waiting, attempt.pod_seen = _waiting_note(pod), True
                attempt.trouble = trouble_now(pod, attempt.trouble)

    def _finish(
        self, job: str, code: int, reason: str, message: str, *, only_if_podless: bool = False
    ) -> None:
        with self._lock:
            handle = self._by_job.get(job)
            if handle is None:
                return
            attempt = self._attempts[handle]
            if attempt.done or (only_if_podless and attempt.pod_seen):
                return
            attempt.done, attempt.reason, attempt.message = True, reason, message
        # Its files are in its folder before the executor hears that it ended.
        self._collect(attempt, code, pod=not only_if_podless)
        with self._lock:
            self._exited.append((handle, code))
        if self.on_exit is not None:
            self.on_exit.set()

    def _delete(self, job: str) -> None:
        """Deletes a Job, its Secret, and a gang Job's Service."""
        with contextlib.suppress(self.ApiException):
            self.batch.delete_namespaced_job(job, self.namespace, propagation_policy="Background")
        self._delete_secret(job)
        if job in self._gang_jobs:
            self._gang_jobs.discard(job)
            with contextlib.suppress(self.ApiException):
                self.core.delete_namespaced_service(job, self.namespace)

    def _delete_secret(self, name: str) -> None:
        with contextlib.suppress(self.ApiException):
            self.core.delete_namespaced_secret(name, self.namespace)


class AttemptFiles:
    """Attempts' files in the S3 datastore, beside its content-addressed values, at
    ROOT/attempts/NAME/PART: the task a pod runs ("task": its code package's key and
    task request, stored by the executor) and what the pod leaves ("stdout", "stderr",
    "result"). The executor deletes them once it has copied them."""

    PARTS = ("task", "stdout", "stderr", "result")

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        if not root.startswith("s3://") or not root[5:].partition("/")[0]:
            raise ValueError(f"S3 root {root!r} must look like s3://bucket/prefix")
        import boto3

        bucket, _, prefix = root[5:].partition("/")
        self.bucket = bucket
        self.prefix = "/".join(part for part in (prefix.strip("/"), ATTEMPTS_FOLDER) if part)
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    @classmethod
    def of(cls, env: Mapping[str, str]) -> AttemptFiles:
        """Where an environment's datastore keeps them (the S3 datastore only)."""
        if env.get("LEDGERFLOW_DATASTORE") != "s3":
            raise BackendError(NEEDS_S3)
        root = env.get("LEDGERFLOW_DATASTORE_ROOT", "")
        return cls(root, env.get("LEDGERFLOW_S3_ENDPOINT_URL") or None)

    def key(self, attempt: str, part: str) -> str:
        return f"{self.prefix}/{attempt}/{part}"

    def put(self, attempt: str, part: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(attempt, part), Body=data)

    def get(self, attempt: str, part: str) -> bytes | None:
        """The part's bytes, or None when there is none."""
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key(attempt, part))
        except self.client.exceptions.NoSuchKey:
            return None
        return bytes(found["Body"].read())

    def fetch(
        self, attempt: str, part: str, path: Path, seen: dict[str, str] | None = None
    ) -> bool:
        """Copies the part into `path` (replaced whole: a reader never sees half of
        it); False when there is none. `seen`: the ETag of each part as last copied,
        so that a part that has not changed since is not fetched again."""
        known = {} if seen is None else seen
        asked: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(attempt, part)}
        if part in known:
            asked["IfNoneMatch"] = known[part]
        try:
            found = self.client.get_object(**asked)
        except self.client.exceptions.NoSuchKey:
            return False
        except Exception as error:  # 304: `path` has it already
            answer = getattr(error, "response", {}).get("Error", {})
            if answer.get("Code") in ("304", "NotModified"):
                return True
            raise
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(found["Body"], out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        known[part] = found.get("ETag", "")
        return True

    def forget(self, attempt: str) -> None:
        """Deletes the attempt's files (the executor's copies stay)."""
        objects = [{"Key": self.key(attempt, part)} for part in self.PARTS]
        with contextlib.suppress(Exception):  # left behind: a lifecycle rule collects them
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": objects, "Quiet": True})  # fmt: skip


# ---- in the pod ------------------------------------------------------------------------------


def run_in_pod(environ: Mapping[str, str] | None = None) -> int:
    """The pod's side (its container's command): fetch the attempt's task from the
    datastore, run the task entry point in a scratch folder, store its output as it
    grows and its result at the end; returns the exit code for the container (the
    task's, or POD_FAILURE_EXIT when the pod, not the task, failed)."""
    env = dict(os.environ if environ is None else environ)
    plan = json.loads(env.pop(PLAN_VARIABLE))
    name = plan["attempts"][int(env.get("JOB_COMPLETION_INDEX") or 0)]
    work = Path(tempfile.mkdtemp(prefix="ledgerflow-attempt-"))
    files: AttemptFiles | None = None
    try:
        try:
            files = AttemptFiles.of(env)
            flow_file, spec = _unpack(files, name, work, env)
        except Exception as error:
            return _pod_failed(files, name, f"cannot set up the attempt: {error}")
        # The task may write its home folder; the image's may not be the pod user's.
        home = env.get("HOME", "")
        if not home or not os.access(home, os.W_OK):
            env["HOME"] = str(work)
        return _supervise(files, name, work, flow_file, spec, env,
                          float(plan.get("output_seconds", OUTPUT_SECONDS)))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _unpack(
    files: AttemptFiles, name: str, work: Path, env: Mapping[str, str]
) -> tuple[Path, Path]:
    """The attempt's flow file (its code package, unpacked) and task request."""
    from ledgerflow.datastore.content import ContentStore, S3Storage
    from ledgerflow.runtime.code_package import load_package

    stored = files.get(name, "task")
    if stored is None:
        raise LookupError(f"no task at s3://{files.bucket}/{files.key(name, 'task')}")
    task = json.loads(stored)
    endpoint = env.get("LEDGERFLOW_S3_ENDPOINT_URL") or None
    store = ContentStore(S3Storage(env["LEDGERFLOW_DATASTORE_ROOT"], endpoint_url=endpoint))
    flow_file = load_package(store, task["code_package"]).extract(work / "code")
    spec = work / "spec.json"
    spec.write_text(task["spec"])
    return flow_file, spec


def _supervise(
    files: AttemptFiles,
    name: str,
    work: Path,
    flow_file: Path,
    spec: Path,
    env: dict[str, str],
    every: float,
) -> int:
    outputs = (work / "stdout", work / "stderr")
    result = work / "result"
    command = [sys.executable, str(flow_file), "task", "--spec", str(spec), "--result",
               str(result)]  # fmt: skip
    with open(outputs[0], "wb") as out, open(outputs[1], "wb") as err:
        task = subprocess.Popen(command, stdout=out, stderr=err, cwd=work, env=env)

    def forward(signum: int, _frame: object) -> None:  # the Job deleted: the task ends
        with contextlib.suppress(ProcessLookupError):
            task.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    sizes = [0, 0]
    while True:
        try:
            code = task.wait(timeout=every)
            break
        except subprocess.TimeoutExpired:
            try:
                _store_output(files, name, outputs, sizes)
            except Exception as error:  # the next round, or at the end
                print(f"ledgerflow pod: output not stored yet: {error}", file=sys.stderr)
    try:
        _store_output(files, name, outputs, [-1, -1])
        if result.exists():
            files.put(name, "result", result.read_bytes())
    except Exception as error:
        return _pod_failed(None, name, f"cannot store the attempt's output in S3: {error}")
    return code if code >= 0 else 128 - code


def _store_output(
    files: AttemptFiles, name: str, outputs: tuple[Path, Path], sizes: list[int]
) -> None:
    """Stores the task's stdout and stderr where they grew (sizes: as last stored)."""
    for index, path in enumerate(outputs):
        size = path.stat().st_size
        if size != sizes[index]:
            with open(path, "rb") as source:
                files.put(name, path.name, source.read(size))
            sizes[index] = size


def _pod_failed(files: AttemptFiles | None, name: str, why: str) -> int:
    """Says that the pod failed, not its task: in its log (the cluster's termination
    message) and, where it can, as the attempt's stderr."""
    line = f"{POD_FAILURE}{why}"
    print(line, file=sys.stderr, flush=True)
    if files is not None:
        with contextlib.suppress(Exception):
            files.put(name, "stderr", f"{line}\n".encode())
    return POD_FAILURE_EXIT


def _pod_failure(text: str) -> str:
    """The line of a pod's own failure in `text`, or empty."""
    return next((line for line in text.splitlines() if line.startswith(POD_FAILURE)), "")


def _head(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as source:
            return source.read(size).decode(errors="replace")
    except OSError:
        return ""


# ---- helpers ---------------------------------------------------------------------------------


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names this machine's loopback (inside a pod: the pod itself)."""
    host = address.rpartition(":")[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plan(launches: list[Launch]) -> str:
    """What the pods of a Job run: attempt i in the pod of completion index i."""
    return json.dumps({"attempts": [launch.name for launch in launches],
                       "output_seconds": OUTPUT_SECONDS})  # fmt: skip


def _owned_by_job(name: str, uid: str) -> dict[str, Any]:
    """An ownerReference to a Job: the cluster deletes what has it with the Job."""
    return {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}


def _terminated(status: dict[str, Any]) -> dict[str, Any] | None:
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def _waiting_note(pod: dict[str, Any]) -> str:
    """Why a pod does not run yet, or empty when it runs."""
    status = pod.get("status") or {}
    if status.get("phase") == "Running":
        return ""
    name = pod.get("metadata", {}).get("name", "?")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return (
                f"pending in Kubernetes (pod {name}): {condition.get('reason', '')}: "
                f"{condition.get('message', '')}"
            ).rstrip(": ")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"pending in Kubernetes (pod {name}): {waiting.get('reason', '')}"
    return f"pending in Kubernetes (pod {name})"


# A container's waiting reasons that mean its image cannot be had (the kubelet goes on
# trying: the executor gives the attempt back after --start-timeout).
IMAGE_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                       "ErrImageNeverPull")  # fmt: skip


def _start_trouble(pod: dict[str, Any]) -> TaskOutcome | None:
    """Why a pending pod cannot run now, as an infrastructure failure: no node can take
    it (the scheduler's Unschedulable), or its image cannot be pulled; None while it
    only waits its turn (being scheduled, its image pulling)."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled", "False", "Unschedulable"
        ):  # fmt: skip
            message = condition.get("message") or "no node can take it"
            return failed("Unschedulable", f"no node can take its pod: {message}",
                          records_pb2.FAILURE_KIND_INFRASTRUCTURE)  # fmt: skip
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_FAILURES:
            said = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
            return failed("ImagePullError", f"the cluster cannot pull "
                          f"{container.get('image', 'its image')}: {said}",
                          records_pb2.FAILURE_KIND_INFRASTRUCTURE)  # fmt: skip
    return None


def trouble_now(pod: dict[str, Any], before: TaskOutcome | None) -> TaskOutcome | None:
    """A pending pod's trouble (_start_trouble), or the trouble it had `before` while it
    has not got past it: between two pulls of an image that cannot be had, the kubelet
    reports the container waiting for nothing wrong (ContainerCreating), and a pod no
    node took may be reported again without its condition's reason; neither must restart
    the executor's --start-timeout. Past it: the pod scheduled, or its containers out of
    waiting."""
    trouble = _start_trouble(pod)
    if trouble is not None or before is None:
        return trouble
    status = pod.get("status") or {}
    if before.error_type == "Unschedulable":
        scheduled = any(
            (c.get("type"), c.get("status")) == ("PodScheduled", "True")
            for c in status.get("conditions") or []
        )
        return None if scheduled else before
    containers = status.get("containerStatuses") or []
    still_waiting = all("waiting" in (c.get("state") or {}) for c in containers)
    return before if still_waiting else None


def _task_labels(task: str) -> dict[str, str]:
    """Labels that name the task ("Flow/run/step/task.attempt"), as label values allow."""
    parts = task.split("/")
    if len(parts) != 4:
        return {}
    flow, run_id, step, task_attempt = parts
    task_id, _, attempt = task_attempt.rpartition(".")
    named = {"flow": flow, "run-id": run_id, "step": step, "task-id": task_id, "attempt": attempt}
    return {f"{GROUP}/{key}": _label_value(value) for key, value in named.items()}


def _label_value(value: str) -> str:
    """At most 63 of [A-Za-z0-9_.-], beginning and ending alphanumeric."""
    return _LABEL_VALUE.sub("-", value)[:63].strip("-_.")


def _reason(error: Any) -> str:
    try:
        return str(json.loads(error.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


if __name__ == "__main__":  # a pod's container (POD_COMMAND)
    sys.exit(run_in_pod())
