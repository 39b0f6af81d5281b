"""The Kubernetes backend: each attempt becomes a Job (the official ``kubernetes``
client), so the cluster enforces its resources: requests and limits for cpu, memory and
``nvidia.com/gpu``, ``activeDeadlineSeconds`` from @timeout, ``backoffLimit: 0``
(retries are the service's), and ``ttlSecondsAfterFinished`` for what is left.

Pods are followed by one watch on the namespace (by a label of this executor's): a
terminated container gives the exit code, OOMKilled the memory message, a Job past its
deadline a timeout, a pod that cannot be scheduled a waiting reason. Cancelling deletes
the Job. The task runs with its image's ``python``; its work folder and a local
datastore are mounted at the same paths from the node (hostPath), so the executor reads
the attempt's result and output there: run executors on the nodes, or keep the work root
on storage every node mounts at that path. With S3 as the datastore, tasks reach it from
the environment the executor passes on, as they reach the metadata service.

The attempt's environment (the datastore's settings, the AWS_* credentials and the
service address the executor passes on: every variable it gives the task) is never in
the Job's manifest, which anyone who may list Jobs reads: it goes in a ``Secret`` of the
Job's name, made before the Job and then owned by it (``ownerReferences``: the cluster
deletes it with the Job, should the executor not), and reaches the container through
``envFrom: secretRef``. The manifest holds plain values only for what the Job itself
decides (a gang's main node address).

A @parallel gang is one indexed Job (``completionMode: Indexed``, a pod per node, all
started at once, ``backoffLimitPerIndex: 0``) whose pods each run their node's attempt by
``JOB_COMPLETION_INDEX``, with a headless Service of the Job's name, owned by the Job, so
that node 0 is ``JOB-0.JOB`` in the cluster's DNS (current.parallel.main_ip).

Verified against the Kubernetes schemas (kubernetes-validate) and an in-memory API
emulator (kmock), not a live cluster: see docs/executor.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shlex
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.engine.facts import MAIN_IP_VARIABLE
from ledgerflow.engine.outcomes import TIMEOUT_ERROR
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.backends.base import Backend, BackendError, Launch

log = logging.getLogger(__name__)

GROUP = "ledgerflow.dev"
# Finished Jobs the executor could not delete are collected by the cluster after this.
TTL_SECONDS_AFTER_FINISHED = 3600
# A watch is opened again after this long, as API servers end long watches anyway.
WATCH_SECONDS = 300
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")
# Set by the Job controller on each pod of an indexed Job: which index it runs.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


@dataclass
class _Attempt:
    job: str
    done: bool = False
    pod_seen: bool = False
    waiting: str = "pending in Kubernetes: no pod yet"
    reason: str = ""  # the container's or pod's termination reason
    message: str = ""


class KubernetesBackend(Backend):
    name = "kubernetes"
    assigns_gpus = True

    def __init__(
        self,
        image: str = "",
        namespace: str = "",
        service_account: str = "",
        context: str = "",
        service: str = "",
    ) -> None:
        super().__init__()
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
        self.launcher = uuid.uuid4().hex[:12]  # labels this executor's Jobs and pods
        self._attempts: dict[int, _Attempt] = {}
        self._by_job: dict[str, int] = {}
        self._exited: list[tuple[int, int]] = []
        self._reported: list[int] = []  # exits the last poll returned (forgotten next)
        self._next_handle = 1
        self._gang_jobs: set[str] = set()  # Jobs with a Service of their own
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._follow_pods, name="lf-k8s", daemon=True)
        self._watcher.start()

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
        quantities: dict[str, str] = {"cpu": f"{launch.cpu:g}", "memory": f"{launch.memory_mb}Mi"}
        if launch.gpu:
            quantities["nvidia.com/gpu"] = str(launch.gpu)
        folders = list(dict.fromkeys((launch.workdir, *launch.mounts)))
        # The task's output goes to files the executor reads (and stores as it runs).
        run = (
            f"exec {shlex.join(['python', *launch.command[1:]])} "
            f">{shlex.quote(launch.stdout_path)} 2>{shlex.quote(launch.stderr_path)}"
        )
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "task",
                    "image": image,
                    "command": ["/bin/sh", "-c", run],
                    "workingDir": launch.workdir,
                    # The task's environment, from the Secret (secret_manifest).
                    "envFrom": [{"secretRef": {"name": launch.name}}],
                    "resources": {"requests": dict(quantities), "limits": dict(quantities)},
                }
            ],
        }
        _mount_folders(pod_spec, folders)
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
                "annotations": {f"{GROUP}/task": launch.task},
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
            f"{GROUP}/tasks": json.dumps([launch.task for launch in launches])
        }
        cases = " ".join(
            f"{index}) cd {shlex.quote(launch.workdir)} && exec "
            f"{shlex.join(['python', *launch.command[1:]])} "
            f">{shlex.quote(launch.stdout_path)} 2>{shlex.quote(launch.stderr_path)} ;;"
            for index, launch in enumerate(launches)
        )
        pod_spec = manifest["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        dispatch = f'case "$JOB_COMPLETION_INDEX" in {cases} *) exit 1 ;; esac'
        container["command"] = ["/bin/sh", "-c", dispatch]
        container["env"] = [{"name": MAIN_IP_VARIABLE, "value": f"{name}-0.{name}"}]
        _mount_folders(
            pod_spec, dict.fromkeys(path for one in launches for path in (one.workdir, *one.mounts))
        )
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
        self._create_job(launch, manifest)
        return self._track(launch.name, [launch.name])[0]

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
        created = self._create_job(launches[0], manifest)
        uid = getattr(created.metadata, "uid", None)
        if uid:
            service["metadata"]["ownerReferences"] = [_owned_by_job(name, uid)]
        self._gang_jobs.add(name)
        try:
            self.core.create_namespaced_service(self.namespace, service)
        except self.ApiException as error:
            self._delete(name)
            raise BackendError(
                f"Kubernetes refused the Service of gang Job {name}: {_reason(error)}"
            ) from None
        return self._track(name, [f"{name}#{index}" for index in range(len(launches))])

    def _track(self, job: str, pods: list[str]) -> list[int]:
        """Handles for the attempts of a Job, one per pod key (the Job's name, or for
        an indexed Job NAME#INDEX)."""
        handles = []
        with self._lock:
            for key in pods:
                handle = self._next_handle
                self._next_handle += 1
                self._attempts[handle] = _Attempt(job)
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
        return None

    def close(self) -> None:
        self._closing.set()

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
            self._set_waiting(job, _waiting_note(pod))

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

    def _set_waiting(self, job: str, note: str) -> None:
        with self._lock:
            handle = self._by_job.get(job)
            if handle is not None:
                attempt = self._attempts[handle]
                attempt.waiting, attempt.pod_seen = note, True

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


def _owned_by_job(name: str, uid: str) -> dict[str, Any]:
    """An ownerReference to a Job: the cluster deletes what has it with the Job."""
    return {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}


def _mount_folders(pod_spec: dict[str, Any], folders: Iterable[str]) -> None:
    """Mounts the folders from the node at the same paths in the pod's container."""
    paths = list(folders)
    pod_spec["containers"][0]["volumeMounts"] = [
        {"name": f"folder-{i}", "mountPath": path} for i, path in enumerate(paths)
    ]
    pod_spec["volumes"] = [
        {"name": f"folder-{i}", "hostPath": {"path": path, "type": "Directory"}}
        for i, path in enumerate(paths)
    ]


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
