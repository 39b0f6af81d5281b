"""The credentials an executor passes on to its tasks (AWS_*, with the rest of the task's
environment) reach the task but never a command line: with podman and docker they travel
in a private env file, gone once the attempt ends. Whoever runs `ps` or inspects the
container while the task runs must not see them. (Kubernetes: test_kubernetes.py; Slurm:
test_slurm.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Cluster
from ledgerflow_executor.backends import Launch
from ledgerflow_executor.backends.container import (
    ContainerBackend,
    remove_env_file,
    write_env_file,
)

pytestmark = pytest.mark.slow

SECRET = "AKIA-ledgerflow-test-5e1f0c7d"
DOCKER_IMAGE = "localhost/ledgerflow-docker-task:test"


@dataclass
class Sightings:
    """What a watch saw while a task ran."""

    leaks: list[str] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)
    env_files: dict[str, str] = field(default_factory=dict)  # path: "file mode, folder mode"


@contextmanager
def watching(engine: list[str], secret: str) -> Iterator[Sightings]:
    """Samples, until the block ends, what any local user sees (`ps -ww -eo args`) and what
    the engine says of each ledgerflow container's command (podman's create command,
    docker's arguments): `secret` must be in none of them."""
    seen = Sightings()
    stop = threading.Event()
    inspected = "{{json .Config.CreateCommand}}" if engine[0] == "podman" else "{{json .Args}}"

    def look() -> None:
        while not stop.is_set():
            args = subprocess.run(
                ["ps", "-ww", "-eo", "args"], capture_output=True, text=True
            ).stdout
            for line in args.splitlines():
                if secret in line:
                    seen.leaks.append(f"ps: {line}")
                words = line.split()
                if "--env-file" in words[:-1]:
                    path = Path(words[words.index("--env-file") + 1])
                    seen.env_files.setdefault(str(path), _modes(path))
            names = subprocess.run(
                [*engine, "ps", "--all", "--format", "{{.Names}}", "--filter", "name=ledgerflow-"],
                capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            for name in names:
                said = subprocess.run([*engine, "inspect", "--format", inspected, name],
                                      capture_output=True, text=True)  # fmt: skip
                if said.returncode == 0:
                    seen.containers.add(name)
                    if secret in said.stdout:
                        seen.leaks.append(f"{engine[0]} inspect {name}: {said.stdout}")
            stop.wait(0.2)

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(30)


def _modes(path: Path) -> str:
    """A file's mode and its folder's (octal), or "gone"."""
    try:
        return f"{path.stat().st_mode & 0o777:o} {path.parent.stat().st_mode & 0o777:o}"
    except OSError:
        return "gone"


def test_an_env_file_is_private_and_holds_what_it_can() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "a b=c '$x'", "MULTI": "one\nsecond-line", "EMPTY": ""}
    path = write_env_file(env)
    try:
        assert _modes(path) == "600 700"
        # NAME=VALUE, taken literally by podman and docker; a value with a line break
        # cannot be held (the backend passes it by name from the engine's environment).
        assert path.read_text() == "AWS_SECRET_ACCESS_KEY=a b=c '$x'\nEMPTY=\n"
    finally:
        remove_env_file(path)
    assert not path.parent.exists()
    launch = Launch(name="ledgerflow-x", command=["python", "flow.py"], workdir="/w",
                    stdout_path="/w/o", stderr_path="/w/e", cpu=1, memory_mb=64, gpu=0,
                    env=env)  # fmt: skip
    args = ContainerBackend("podman").command(launch, path)
    assert args[args.index("--env-file") + 1] == str(path)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--env"] == ["MULTI"]
    assert not [arg for arg in args if "a b=c" in arg or "second-line" in arg]


def test_env_files_a_killed_executor_left_go_when_the_next_one_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An executor killed with -9 cannot remove the env file of a container it had not
    started: the next container backend on the host does, but never one a live process
    holds, nor one just made. In a temporary folder of the test's own."""
    import tempfile
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    writes = "from ledgerflow_executor.backends.container import write_env_file as w; " \
             f"print(w({{'AWS_SECRET_ACCESS_KEY': {SECRET!r}}}))"  # fmt: skip
    dead = Path(subprocess.run([sys.executable, "-c", writes], env={**os.environ,
                               "TMPDIR": str(scratch)}, capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip
    live = write_env_file({"AWS_SECRET_ACCESS_KEY": SECRET})  # this process holds it
    just_made = Path(tempfile.mkdtemp(prefix="ledgerflow-env-"))
    hour_ago = time.time() - 3600
    for path in (dead, live):
        os.utime(path.parent, (hour_ago, hour_ago))
    try:
        assert dead.read_text().startswith("AWS_SECRET_ACCESS_KEY=")
        ContainerBackend("podman")
        assert not dead.parent.exists()
        assert live.exists() and just_made.exists()
    finally:
        remove_env_file(live)
    assert not live.parent.exists()


def _secret_run(cluster: Cluster, engine: list[str]) -> Sightings:
    """Runs flows/secret_env.py remotely while watching: the task got the secret."""
    with watching(engine, SECRET) as seen:
        result = cluster.flow("secret_env", "run", "--remote", "--seconds", "3")
    assert "succeeded" in result.stdout, result.stdout + cluster.log_text()
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    digest = cluster.artifact(f"SecretEnv/{run_id}/start", "key_digest")
    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()
    assert seen.containers, "the watch saw no container"
    assert not seen.leaks, seen.leaks
    assert seen.env_files, "no engine was given an --env-file"
    # Only this user could read them (when seen before they went), and they are gone.
    assert set(seen.env_files.values()) <= {"600 700", "gone"}, seen.env_files
    assert not [path for path in seen.env_files if Path(path).exists()]
    return seen


def test_podman_gets_the_task_environment_from_a_private_env_file(cluster: Cluster) -> None:
    cluster.executor(backend="podman", memory=8192, env={"AWS_ACCESS_KEY_ID": SECRET})
    _secret_run(cluster, ["podman"])


def test_an_image_built_for_docker_runs_tasks_given_their_env_file(
    cluster: Cluster, dockerd: str
) -> None:
    """`ledgerflow executor image build --engine docker` (docker has no --rootfs), then
    tasks in that image, their environment read from an env file by docker too."""
    built = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "executor", "image", "build", "--engine",
         "docker", "--tag", DOCKER_IMAGE],
        env={**os.environ, "DOCKER_HOST": dockerd}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"{DOCKER_IMAGE} is ready" in built.stderr
    listed = subprocess.run(["docker", "-H", dockerd, "images", "--format", "{{json .}}"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    images = [json.loads(line) for line in listed.splitlines()]
    # The build's base image and container are gone.
    assert not [i for i in images if "ledgerflow-image-build" in i["Repository"]], images
    containers = subprocess.run(["docker", "-H", dockerd, "ps", "--all", "--format",
                                 "{{.Names}}"], capture_output=True, text=True).stdout  # fmt: skip
    assert "ledgerflow-image-build" not in containers
    cluster.env["DOCKER_HOST"] = dockerd
    cluster.executor("--image", DOCKER_IMAGE, backend="docker", memory=8192,
                     env={"AWS_ACCESS_KEY_ID": SECRET})  # fmt: skip
    _secret_run(cluster, ["docker", "-H", dockerd])
