"""A small cluster of real processes for the executor's tests: a metadata service
(`ledgerflow service`, on SQLite or on the session's Postgres), executors
(`ledgerflow executor`) and flows submitted with `run --remote`, all on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ledgerflow.metadata_client import GrpcMetadata
from ledgerflow.v1 import audit_service_pb2, events_pb2, executor_service_pb2, records_pb2
from postgres_server import create_database
from waiting import wait_for

FLOWS = Path(__file__).parent / "flows"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    home: Path
    database_url: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    service: subprocess.Popen[bytes] | None = None
    executors: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    # Where the service listens: loopback, unless tasks on a live cluster must reach it.
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start_service(self) -> None:
        log = self.home / f"service-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.service = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledgerflow.cli",
                    "service",
                    "--database-url",
                    self.database_url,
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._service_answers, 30, f"the service on {self.address}")

    def _service_answers(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def stop_service(self) -> None:
        assert self.service is not None
        self.service.send_signal(signal.SIGTERM)
        self.service.wait(timeout=30)

    def executor(
        self,
        *args: str,
        backend: str = "local",
        lease_seconds: int = 5,
        cpus: float | None = 2,
        memory: int | None = 4096,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """An executor; cpus or memory None: its own default (a Slurm cluster's); `env`
        adds to its environment."""
        capacity = [
            *(["--cpus", str(cpus)] if cpus is not None else []),
            *(["--memory", str(memory)] if memory is not None else []),
        ]
        log = self.home / f"executor-{len(self.executors)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledgerflow.cli",
                    "executor",
                    "--service",
                    self.address,
                    "--backend",
                    backend,
                    *capacity,
                    "--lease-seconds",
                    str(lease_seconds),
                    "--poll-seconds",
                    "0.2",
                    *args,
                ],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        self.executors.append(process)
        return process

    def flow(
        self, flow: str, *args: str, check: bool = True, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """``python FLOW.py ARGS`` against the service."""
        result = subprocess.run(
            [sys.executable, str(FLOWS / f"{flow}.py"), *args],
            env={**self.env, "LEDGERFLOW_SERVICE": self.address},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{flow} {args} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}\n{self.log_text()}"
            )
        return result

    def submit(self, flow: str, *args: str) -> str:
        """Submits a remote run (--detach); returns its id."""
        return self.flow(flow, "run", "--remote", "--detach", *args).stdout.strip()

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "LEDGERFLOW_SERVICE": self.address}
        if args[:1] == ("executor",):
            env.pop("LEDGERFLOW_SERVICE")  # the executor is told where with --service
        result = subprocess.run(
            [sys.executable, "-m", "ledgerflow.cli", *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"ledgerflow {args}: {result.stdout}{result.stderr}")
        return result

    def metadata(self) -> GrpcMetadata:
        return GrpcMetadata(self.address, "tester")

    def artifact(self, step_pathspec: str, name: str) -> Any:
        """An artifact of a step's (only) task, read through the client API in a
        process of its own (JSON-able values)."""
        code = (
            "import json, sys; from ledgerflow import Step; "
            "print(json.dumps(getattr(Step(sys.argv[1]).task.data, sys.argv[2])))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, step_pathspec, name],
            env={**self.env, "LEDGERFLOW_SERVICE": self.address},
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(result.stdout)

    def client_says(self, expression: str) -> Any:
        """What a client API expression gives (JSON-able), in any namespace, in a
        process of its own (a production run is not in its deployer's namespace: the
        client refuses it by default, as Metaflow's does)."""
        code = (
            "import json; from ledgerflow import Run, Step, namespace; namespace(None); "
            f"print(json.dumps({expression}))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], env={**self.env, "LEDGERFLOW_SERVICE": self.address},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def events(self, flow: str, run_id: str) -> list[events_pb2.Event]:
        client = self.metadata()
        found: list[events_pb2.Event] = []
        request = audit_service_pb2.ListEventsRequest(run_pathspec=f"{flow}/{run_id}")
        request.page.page_size = 1000
        while True:
            response = client.list_events(request)
            found.extend(response.events)
            if not response.page.next_page_token:
                client.close()
                return found
            request.page.page_token = response.page.next_page_token

    def queued(self, flow: str, run_id: str) -> list[records_pb2.QueuedTask]:
        """The run's queued, leased and running tasks, as the service lists them."""
        client = self.metadata()
        try:
            request = executor_service_pb2.ListQueuedTasksRequest(flow_name=flow, run_id=run_id)
            return list(client.list_queued_tasks(request).tasks)
        finally:
            client.close()

    def running(self, flow: str, run_id: str, step_name: str) -> bool:
        """Whether a task of the step runs (its attempt began)."""
        running = records_pb2.QUEUE_STATE_RUNNING
        return any(t.step_name == step_name and t.state == running
                   for t in self.queued(flow, run_id))  # fmt: skip

    def wait_finished(self, flow: str, run_id: str, seconds: float = 180) -> bool:
        """Waits for the run's RunFinished; returns whether it succeeded."""
        outcome: list[bool] = []

        def finished() -> bool:
            for event in self.events(flow, run_id):
                if event.HasField("run_finished"):
                    outcome.append(event.run_finished.succeeded)
                    return True
            return False

        wait_for(finished, seconds, f"{flow}/{run_id} to finish\n{self.log_text()}")
        return outcome[0]

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in self.logs
            if p.exists()
        )

    def close(self) -> None:
        for process in [*self.executors, self.service]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def make_cluster(tmp_path: Path, database_url: str, host: str = "127.0.0.1") -> Iterator[Cluster]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(
        LEDGERFLOW_HOME=str(home / ".ledgerflow"),
        USERNAME="tester",
        PYTHONUNBUFFERED="1",
    )
    cluster = Cluster(home, database_url, env, host=host)
    cluster.start_service()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A service on SQLite."""
    yield from make_cluster(tmp_path, f"sqlite://{tmp_path / 'ledger.db'}")


@pytest.fixture
def pg_cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    """A service on Postgres."""
    url = create_database(postgres_url, f"executor_{abs(hash(str(tmp_path)))}")
    yield from make_cluster(tmp_path, url)


def run_over_memory(cluster: Cluster, error_type: str = "OutOfMemory") -> str:
    """Runs flows/resource_limits.py remotely: its hog step must fail for memory with
    the message that names its limit while its modest sibling succeeds. Its run id."""
    result = cluster.flow("resource_limits", "run", "--remote", check=False)
    assert result.returncode == 1, result.stdout + result.stderr + cluster.log_text()
    assert "exceeded memory=256 MB" in result.stdout
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    events = cluster.events("ResourceLimits", run_id)
    failed = [e.task_failed for e in events if e.HasField("task_failed")]
    assert [(f.task.step_name, f.error_type) for f in failed] == [("hog", error_type)]
    assert failed[0].error_message.startswith("exceeded memory=256 MB")
    assert any(e.HasField("task_succeeded") and "/modest/" in e.stream for e in events)
    return run_id


def attempts_of(events: list[events_pb2.Event], kind: str) -> list[tuple[str, int]]:
    """(task pathspec, attempt) of each event of `kind`."""
    found = []
    for event in events:
        if event.WhichOneof("payload") == kind:
            payload = getattr(event, kind)
            found.append((event.stream, payload.attempt))
    return found


TASK_IMAGE = "localhost/ledgerflow-test-task:latest"


@pytest.fixture(scope="session")
def task_image() -> str:
    """A task image built here by `ledgerflow executor image build` (into podman); its
    build output is the fixture's `build_output` attribute."""
    built = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "executor", "image", "build", "--tag",
         TASK_IMAGE],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"{TASK_IMAGE} is ready" in built.stderr
    # The build before this one's image, now nameless: gone, so runs don't fill the disk.
    subprocess.run(["podman", "image", "prune", "--force"], capture_output=True, check=False)
    return TASK_IMAGE


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker daemon of the tests' own on a private socket (Debian's docker.io;
    flags from MACHINE-NOTES): its DOCKER_HOST."""
    root = tmp_path_factory.mktemp("docker")
    socket_path = root / "docker.sock"
    with open(root / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(
            ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "-H", f"unix://{socket_path}", "--pidfile", str(root / "pid"), "--bridge=none",
             "--iptables=false", "--ip-masq=false",
             "--exec-opt", "native.cgroupdriver=cgroupfs",
             "--default-ulimit", "nofile=20000:20000"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host = f"unix://{socket_path}"
    try:
        wait_for(
            lambda: subprocess.run(["docker", "-H", host, "info"], capture_output=True,
                                   check=False).returncode == 0,
            60, "dockerd to answer",
        )  # fmt: skip
        yield host
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        # dockerd leaves its network namespace mounted; unmounted, pytest can remove it.
        for netns in (root / "exec" / "netns").glob("*"):
            subprocess.run(["umount", str(netns)], capture_output=True, check=False)


@pytest.fixture(scope="session")
def docker_task_image(task_image: str, dockerd: str) -> str:
    """The task image, loaded into the tests' Docker daemon (once a session)."""
    with subprocess.Popen(["podman", "save", "--format", "docker-archive", task_image],
                          stdout=subprocess.PIPE) as saved:  # fmt: skip
        loaded = subprocess.run(["docker", "-H", dockerd, "load"], stdin=saved.stdout,
                                capture_output=True, text=True, check=False)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    return task_image


def exit_of(backend: Any, handle: int, seconds: float = 120) -> int:
    """Waits for a backend's attempt to exit; its exit code."""
    codes: dict[int, int] = {}

    def exited() -> bool:
        codes.update(backend.poll())
        return handle in codes

    wait_for(exited, seconds, f"attempt {handle} to exit on {backend.name}")
    return codes[handle]


S3_BUCKET = "ledgerflow-tests"


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on loopback, with S3_BUCKET: its endpoint."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1").create_bucket(
            Bucket=S3_BUCKET
        )  # fmt: skip
        yield endpoint
    finally:
        server.stop()


def s3_datastore_env(endpoint: str) -> dict[str, str]:
    """An S3 datastore on moto's server at `endpoint`, under a fresh prefix, with the
    credentials moto takes (boto3 reads them from the environment)."""
    return {
        "LEDGERFLOW_DATASTORE": "s3",
        "LEDGERFLOW_DATASTORE_ROOT": f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}",
        "LEDGERFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
