"""``ledgerflow executor image build``: a task image made here, without a registry.

A Debian root filesystem from ``debootstrap`` (minbase, with python3), Ledgerflow and its
dependencies installed into a virtual environment at /opt/ledgerflow from wheels this
machine builds (with its own pip settings, so a local package index works), imported
into podman (or docker) under a tag. Executors then run tasks in it with ``--image``.

podman installs into the root filesystem in place (``podman run --rootfs``). docker has
no ``--rootfs``: it imports the root filesystem (wheels included) as a throwaway base
image, installs in a container of it (no network), then exports that container's
filesystem, without the wheels, and imports it as the image: one layer, as podman's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from ledgerflow_executor.backends.base import BackendError

VENV = "/opt/ledgerflow"
# The interpreter a task runs with inside an image built here.
IMAGE_PYTHON = f"{VENV}/bin/python"


def project_root() -> Path:
    """The source checkout Ledgerflow runs from (an image is built from it)."""
    import ledgerflow

    root = Path(ledgerflow.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise BackendError(
            "image build needs Ledgerflow's source checkout (pyproject.toml); this "
            f"installation at {root} has none"
        )
    return root


def debian_mirror() -> str:
    """The first Debian mirror apt uses here."""
    sources = Path("/etc/apt/sources.list.d")
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2:
                return next(w for w in words[1:] if "://" in w)
    raise BackendError("no Debian mirror in /etc/apt/sources.list*: pass --mirror URL")


def build_image(
    tag: str,
    *,
    engine: str = "podman",
    suite: str = "bookworm",
    mirror: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Builds the task image and imports it into `engine` as `tag`."""
    binary = shutil.which(engine)
    if binary is None:
        raise BackendError(f"`{engine}` is not installed here (scripts/setup installs podman)")
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise BackendError("image build runs debootstrap, which needs root and the debootstrap "
                           "package (scripts/setup installs it)")  # fmt: skip
    root = project_root()
    with tempfile.TemporaryDirectory(prefix="ledgerflow-image-") as scratch:
        rootfs, wheels = Path(scratch) / "rootfs", Path(scratch) / "rootfs" / "wheels"
        say(f"image: debootstrap {suite} (minbase, python3) from {mirror or debian_mirror()}")
        _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
              suite, str(rootfs), mirror or debian_mirror()])  # fmt: skip
        say("image: wheels of ledgerflow and its dependencies")
        # With the S3 extra: a Kubernetes pod reaches its task and the datastore by S3.
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
              f"{root}[s3]"])  # fmt: skip
        say(f"image: installing into {VENV}")
        tarball = Path(scratch) / "rootfs.tar"
        if engine == "docker":
            _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."])
            _install_in_docker(binary, tarball, tag, say)
        else:
            inside = [binary, "run", "--rm", "--network", "none", "--rootfs", str(rootfs)]
            _run([*inside, "python3", "-m", "venv", VENV])
            _run([*inside, f"{VENV}/bin/pip", "install", *PIP_INSTALL])
            shutil.rmtree(wheels)
            say(f"image: importing into {engine} as {tag}")
            _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."])
            _run([binary, "import", "--change", PATH_CHANGE, str(tarball), tag])
    say(f"image: {tag} is ready: ledgerflow executor --backend {engine} --image {tag}")


# Run inside the new root filesystem: the virtual environment, from the wheels at /wheels.
PIP_INSTALL = ("--quiet", "--no-index", "--find-links", "/wheels",
               "--disable-pip-version-check", "ledgerflow[s3]")  # fmt: skip
INSTALL = (
    f"python3 -m venv {VENV} && {VENV}/bin/pip install {' '.join(PIP_INSTALL)} && rm -rf /wheels"
)
PATH_CHANGE = f"ENV PATH={VENV}/bin:/usr/bin:/bin"


def _install_in_docker(docker: str, tarball: Path, tag: str, say: Callable[[str], None]) -> None:
    """docker's way (it cannot run a root filesystem in place): the tarball as a base
    image, the install in a container of it, that container's filesystem as `tag`."""
    scratch = f"ledgerflow-image-build-{uuid.uuid4().hex[:12]}"
    base = f"localhost/{scratch}:base"
    _run([docker, "import", str(tarball), base])
    try:
        _run([docker, "run", "--name", scratch, "--network", "none", base, "sh", "-c", INSTALL])
        say(f"image: importing into docker as {tag}")
        with subprocess.Popen([docker, "export", scratch], stdout=subprocess.PIPE) as exported:
            imported = subprocess.run(
                [docker, "import", "--change", PATH_CHANGE, "-", tag],
                stdin=exported.stdout, capture_output=True, text=True, check=False,
            )  # fmt: skip
        if exported.returncode != 0 or imported.returncode != 0:
            raise BackendError(
                f"docker export {scratch} | docker import failed "
                f"({exported.returncode}, {imported.returncode}):\n{imported.stderr[-2000:]}"
            )
    finally:
        subprocess.run([docker, "rm", "--force", scratch], capture_output=True, check=False)
        subprocess.run([docker, "rmi", base], capture_output=True, check=False)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackendError(
            f"{' '.join(command[:3])} ... failed ({done.returncode}):\n"
            f"{(done.stderr or done.stdout)[-2000:]}"
        )
