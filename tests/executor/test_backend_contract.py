"""One contract for every backend: start an attempt of the task entry point with its
resources, report its exit, kill it, and say why it ended when the engine knows more
than the exit code (Backend.why_ended). Leases, retries and events are the executor's;
these tests drive a backend alone, the way the executor does, over local processes,
podman, docker, a Slurm cluster and the Kubernetes emulator."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FLOWS, exit_of, moto_s3, s3_datastore_env
from kube_emulator import kubernetes_for_tests
from ledgerflow.engine import TaskOutcome, died_outcome
from ledgerflow.runtime.task import TaskRequest, TaskSpec
from ledgerflow.v1 import records_pb2
from ledgerflow_executor.backends import Backend, Launch
from slurm_cluster import slurm_cluster
from waiting import wait_for

pytestmark = pytest.mark.slow

FLOW_FILE = FLOWS / "contract_task.py"


class BackendContract:
    """The assertions; each subclass gives its backend (the `backend` fixture) and may
    set an image. An attempt here is what the executor starts: `python FLOW task
    --spec SPEC --result RESULT` with the step's resources."""

    image = ""

    def launch(self, folder: Path, mode: str, *, memory_mb: int = 512) -> Launch:
        folder.mkdir(parents=True, exist_ok=True)
        request = TaskRequest(
            TaskSpec("start", "1", [], []),
            facts=dict(flow_name="ContractTask", run_id="1", step_name="start", task_id="1",
                       retry_count=0),
            parameters_json={"mode": f'"{mode}"'},
        )  # fmt: skip
        spec = folder / "spec.json"
        spec.write_text(request.to_json())
        data = folder.parent / "data"
        data.mkdir(exist_ok=True)
        result = folder / "result"
        return Launch(
            name=f"ledgerflow-contract-{folder.name}-{os.getpid()}",
            command=[sys.executable, str(FLOW_FILE), "task", "--spec", str(spec),
                     "--result", str(result)],
            workdir=str(folder), stdout_path=str(folder / "stdout"),
            stderr_path=str(folder / "stderr"), cpu=1, memory_mb=memory_mb, gpu=0,
            env={"LEDGERFLOW_DATASTORE": "local", "LEDGERFLOW_DATASTORE_ROOT": str(data),
                 "LEDGERFLOW_PYLINT": "0"},
            mounts=(str(FLOW_FILE.parent), str(data)), image=self.image, task=f"C/1/start/{mode}",
            flow_file=str(FLOW_FILE), spec_path=str(spec), result_path=str(result),
        )  # fmt: skip

    def outcome(self, backend: Backend, launch: Launch, handle: int, code: int) -> TaskOutcome:
        """The outcome as the executor reads it (its report, else the backend's word,
        else the exit code)."""
        result = Path(launch.result_path)
        if result.exists():
            return TaskOutcome.from_bytes(result.read_bytes())
        return backend.why_ended(handle, code, launch.memory_mb) or died_outcome(code)

    def test_an_attempt_that_succeeds_reports_it_and_its_output(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        launch = self.launch(tmp_path / "ok", "ok")
        handle = backend.start(launch)
        code = exit_of(backend, handle)
        outcome = self.outcome(backend, launch, handle, code)
        assert (code, outcome.ok, outcome.next_steps) == (0, True, ["end"])
        assert "hello from the task" in Path(launch.stdout_path).read_text()

    def test_an_exception_is_the_tasks_own_failure(self, backend: Backend, tmp_path: Path) -> None:
        launch = self.launch(tmp_path / "raise", "raise")
        handle = backend.start(launch)
        outcome = self.outcome(backend, launch, handle, exit_of(backend, handle))
        assert (outcome.ok, outcome.error_type) == (False, "ValueError")
        assert outcome.kind == records_pb2.FAILURE_KIND_EXCEPTION

    def test_sys_exit_in_a_step_is_the_steps_own_failure(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        """Even with the exit code a container engine uses for its own failures."""
        launch = self.launch(tmp_path / "sys-exit", "sys.exit")
        handle = backend.start(launch)
        outcome = self.outcome(backend, launch, handle, exit_of(backend, handle))
        assert (outcome.ok, outcome.error_type) == (False, "SystemExit")
        assert outcome.kind == records_pb2.FAILURE_KIND_EXCEPTION

    def test_an_exit_before_reporting_is_a_killed_attempt(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        launch = self.launch(tmp_path / "exit", "exit")
        handle = backend.start(launch)
        code = exit_of(backend, handle)
        outcome = self.outcome(backend, launch, handle, code)
        assert code == 3 and not Path(launch.result_path).exists()
        assert (outcome.error_type, outcome.kind) == (
            "TaskProcessDied", records_pb2.FAILURE_KIND_KILLED
        )  # fmt: skip

    def test_kill_ends_a_running_attempt(self, backend: Backend, tmp_path: Path) -> None:
        launch = self.launch(tmp_path / "sleep", "sleep")
        handle = backend.start(launch)
        stdout = Path(launch.stdout_path)
        wait_for(lambda: stdout.exists() and "hello" in stdout.read_text(), 120,
                 f"the attempt to run on {backend.name}")  # fmt: skip
        killed_at = time.monotonic()
        backend.kill(handle)
        code = exit_of(backend, handle, seconds=60)
        assert code != 0 and time.monotonic() - killed_at < 60
        assert not Path(launch.result_path).exists()


class TestLocal(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        from ledgerflow_executor.backends import LocalBackend

        backend = LocalBackend()
        yield backend
        backend.close()


class ImageContract(BackendContract):
    """What container engines add: an attempt whose image the engine cannot get never
    began."""

    def test_an_image_the_engine_cannot_get_never_began(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        launch = self.launch(tmp_path / "no-image", "ok")
        launch = Launch(**{**vars(launch), "image": "localhost/no-such-image:never"})
        handle = backend.start(launch)
        assert not backend.begun(handle)
        assert "getting the image" in backend.waiting(handle)
        code = exit_of(backend, handle)
        never = backend.never_began(handle, code)
        assert code == 125 and never is not None
        assert never.kind == records_pb2.FAILURE_KIND_INFRASTRUCTURE
        assert never.error_type == "ImagePullError", never.error_message
        # the engine's own words, in the failure itself (not only at the end of stderr)
        assert "no-such-image" in never.error_message, never.error_message


class ContainerContract(ImageContract):
    """A container an attempt: it begins once its container exists."""

    def test_an_attempt_whose_container_ran_has_begun(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        """Even one that exits with the engine's own exit code: its container existed."""
        launch = self.launch(tmp_path / "exit-125", "exit-125")
        handle = backend.start(launch)
        wait_for(lambda: backend.begun(handle), 120, f"the attempt to begin on {backend.name}")
        code = exit_of(backend, handle)
        assert code == 125 and backend.never_began(handle, code) is None
        outcome = self.outcome(backend, launch, handle, code)
        assert outcome.kind == records_pb2.FAILURE_KIND_INFRASTRUCTURE


class TestPodman(ContainerContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        from ledgerflow_executor.backends import ContainerBackend

        backend = ContainerBackend("podman")
        yield backend
        backend.close()


class TestPodmanWarm(ImageContract):
    """Warm containers (--warm-containers): the contract holds, and an attempt runs in
    the container an earlier one of the same kind left, but never one of another user's."""

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        from ledgerflow_executor.backends import WarmContainerBackend

        backend = WarmContainerBackend("podman")
        yield backend
        backend.close()

    def run_mark(self, backend: Backend, launch: Launch) -> list[str]:
        handle = backend.start(launch)
        assert exit_of(backend, handle) == 0
        return Path(launch.stdout_path).read_text().splitlines()

    def test_the_next_attempt_of_the_same_kind_runs_in_the_same_container(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        first = self.run_mark(backend, self.launch(tmp_path / "first", "mark"))
        second = self.run_mark(backend, self.launch(tmp_path / "second", "mark"))
        assert "no mark before" in first and "marked before" in second
        # each attempt's temporary files in its own folder, which goes with it
        assert f"temporary files in {tmp_path / 'second' / 'tmp'}" in second

    def test_what_an_attempt_left_running_is_gone_before_the_next_one(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        """Even a process in a session of its own (out of the attempt's group)."""
        handle = backend.start(self.launch(tmp_path / "orphan", "orphan"))
        assert exit_of(backend, handle) == 0
        # (said only in the container where the orphan was left)
        after = self.run_mark(backend, self.launch(tmp_path / "after", "mark"))
        assert "orphan gone" in after, after

    def test_a_flow_that_cannot_be_imported_fails_its_attempt_with_its_words(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        """The container ran, so the attempt began: it died, and what the server said
        as it failed is in the attempt's stderr (not an engine failure)."""
        broken = tmp_path / "code" / "broken_flow.py"
        broken.parent.mkdir()
        broken.write_text("raise ImportError('this flow cannot be imported')\n")
        launch = self.launch(tmp_path / "broken", "ok")
        launch = dataclasses.replace(launch, flow_file=str(broken),
                                     mounts=(str(broken.parent), *launch.mounts[1:]))  # fmt: skip
        handle = backend.start(launch)
        code = exit_of(backend, handle)
        assert backend.begun(handle) and backend.never_began(handle, code) is None
        outcome = self.outcome(backend, launch, handle, code)
        assert (outcome.error_type, outcome.kind) == (
            "TaskProcessDied", records_pb2.FAILURE_KIND_KILLED
        ), outcome  # fmt: skip
        assert "this flow cannot be imported" in Path(launch.stderr_path).read_text()

    def test_folders_a_killed_executor_left_go_when_the_next_one_starts(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Only folders no executor holds, no container uses and made a while ago:
        never a live executor's, however old (its container may still be starting), nor
        one just made. In a temporary folder of the test's own: other tests' and
        sessions' warm folders are not touched."""
        import tempfile

        from ledgerflow_executor.backends import WarmContainerBackend
        from ledgerflow_executor.backends.container import hold_folder
        from ledgerflow_executor.backends.warm_containers import FOLDER_PREFIX

        scratch = tmp_path / "tmp"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        hour_ago = time.time() - 3600

        def folder() -> Path:
            made = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
            (made / "stderr").write_text("a server's words")
            os.utime(made, (hour_ago, hour_ago))
            return made

        live = WarmContainerBackend("podman")
        try:
            self.run_mark(live, self.launch(tmp_path / "first", "mark"))  # now idle
            (running,) = scratch.glob(f"{FOLDER_PREFIX}*")
            os.utime(running, (hour_ago, hour_ago))
            left = folder()  # a killed executor's: nobody holds it
            starting = folder()  # a live executor's, its container not made yet
            holder = hold_folder(starting)
            assert holder is not None
            just_made = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
            WarmContainerBackend("podman").close()
            assert not left.exists()
            assert running.exists() and starting.exists() and just_made.exists()
            os.close(holder)  # its executor died: the next start removes it
            WarmContainerBackend("podman").close()
            assert not starting.exists() and running.exists()
            # and the idle container still takes the next attempt, its folder intact
            after = self.run_mark(live, self.launch(tmp_path / "after", "mark"))
            assert "marked before" in after
        finally:
            live.close()

    def test_attempts_of_different_users_or_resources_never_share_a_container(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        mine = dataclasses.replace(self.launch(tmp_path / "alice", "mark"), owner="alice")
        self.run_mark(backend, mine)
        theirs = dataclasses.replace(self.launch(tmp_path / "bob", "mark"), owner="bob")
        bigger = dataclasses.replace(self.launch(tmp_path / "big", "mark", memory_mb=640),
                                     owner="alice")  # fmt: skip
        assert "no mark before" in self.run_mark(backend, theirs)
        assert "no mark before" in self.run_mark(backend, bigger)

    def test_in_an_image_an_attempt_sees_its_users_attempt_folders_and_no_one_elses(
        self, backend: Backend, tmp_path: Path, task_image: str
    ) -> None:
        """The executor keeps each user's attempt folders apart; a warm container mounts
        its user's, where a later attempt of the same user runs too. (In the host's root
        filesystem, the default without an image, a container sees the host's files.)"""
        bobs = dataclasses.replace(self.launch(tmp_path / "bob" / "b1", "ok"), owner="bob",
                                   image=task_image)  # fmt: skip
        assert exit_of(backend, backend.start(bobs)) == 0
        for owner, saw in (("alice", "cannot see it"), ("bob", "can see it")):
            peek = self.launch(tmp_path / owner / "peek", "peek")
            env = {**peek.env, "CONTRACT_PEEK": bobs.spec_path}
            peek = dataclasses.replace(peek, owner=owner, env=env, image=task_image)
            assert saw in self.run_mark(backend, peek), owner

    def test_an_attempt_over_its_memory_is_out_of_memory_and_the_next_one_runs(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        launch = self.launch(tmp_path / "hog", "hog", memory_mb=256)
        handle = backend.start(launch)
        code = exit_of(backend, handle)
        outcome = self.outcome(backend, launch, handle, code)
        assert outcome.kind == records_pb2.FAILURE_KIND_OUT_OF_MEMORY, outcome
        after = self.launch(tmp_path / "after", "ok", memory_mb=256)
        handle = backend.start(after)
        assert exit_of(backend, handle) == 0
        assert self.outcome(backend, after, handle, 0).ok


class TestDocker(ContainerContract):
    @pytest.fixture
    def backend(
        self, task_image: str, dockerd: str, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Backend]:
        from ledgerflow_executor.backends import ContainerBackend

        loaded = subprocess.run(["docker", "-H", dockerd, "image", "inspect", task_image],
                                capture_output=True, check=False)  # fmt: skip
        if loaded.returncode != 0:
            with subprocess.Popen(["podman", "save", "--format", "docker-archive", task_image],
                                  stdout=subprocess.PIPE) as saved:  # fmt: skip
                subprocess.run(["docker", "-H", dockerd, "load"], stdin=saved.stdout,
                               capture_output=True, check=True)  # fmt: skip
        monkeypatch.setenv("DOCKER_HOST", dockerd)
        self.image = task_image
        backend = ContainerBackend("docker", image=task_image)
        yield backend
        backend.close()


class TestSlurm(BackendContract):
    @pytest.fixture(scope="class")
    def slurm(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster

    @pytest.fixture
    def backend(self, slurm: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
        from ledgerflow_executor.backends import SlurmBackend

        monkeypatch.setenv("SLURM_CONF", str(slurm.conf))  # type: ignore[attr-defined]
        backend = SlurmBackend()
        yield backend
        backend.close()


class TestKubernetes(BackendContract):
    """Its pods mount nothing of this machine: the datastore is S3 (moto's server)."""

    image = "localhost/ledgerflow-contract:any"  # the emulator's kubelet runs it locally

    @pytest.fixture
    def backend(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
        from ledgerflow_executor.backends.kubernetes import KubernetesBackend

        (tmp_path / "kube").mkdir()
        with kubernetes_for_tests(tmp_path / "kube") as emulator, moto_s3() as endpoint:
            if emulator.live:
                pytest.skip("the contract runs tasks by hand: the emulator's kubelet only")
            monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig))
            self.s3_env = s3_datastore_env(endpoint)
            for name, value in self.s3_env.items():
                monkeypatch.setenv(name, value)
            kubelet = emulator.kubelet()
            backend = KubernetesBackend(image=self.image, datastore="s3")
            try:
                yield backend
            finally:
                backend.close()
                kubelet.close()

    def launch(self, folder: Path, mode: str, *, memory_mb: int = 512) -> Launch:
        launch = super().launch(folder, mode, memory_mb=memory_mb)
        return dataclasses.replace(launch, env={**launch.env, **self.s3_env}, mounts=())
