"""The code package: the flow file and the files beside it, packed into one
deterministic tarball and stored content-addressed in the datastore, so that whoever
runs a task (an executor, a container) runs exactly the code the run was started with.

What goes in (Metaflow's rule, with its default suffixes): every file under the flow
file's folder whose name ends in one of the suffixes (``.py``, ``.R``, ``.RDS`` unless
``--package-suffixes`` says otherwise), skipping hidden folders and files (``.git``,
``.ledgerflow``, ``.venv``) and ``__pycache__``; and the flow file itself. Paths are
relative to that folder.

Deterministic: files in sorted order, every time stamp, owner and group zeroed, modes
reduced to 0644 or 0755, and the gzip header carries no time or name. The same files
give the same bytes, and so the same key.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a package is made or read: a local run makes none
    import tarfile

DEFAULT_SUFFIXES = (".py", ".R", ".RDS")
# Inside the tarball: what the package is (its flow file and include rule).
INFO_NAME = "LEDGERFLOW_PACKAGE.json"


class CodePackageError(Exception):
    """The code package cannot be made or unpacked."""


def package_files(flow_file: Path, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES) -> list[Path]:
    """The files a package of `flow_file` holds, relative to its folder, sorted."""
    root = flow_file.resolve().parent
    found = {flow_file.resolve().relative_to(root)}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".") and name != "__pycache__"
        )
        for name in files:
            if name.startswith(".") or not name.endswith(suffixes):
                continue
            path = Path(folder) / name
            if path.is_file():
                found.add(path.relative_to(root))
    return sorted(found)


def _tar_entry(name: str, size: int, mode: int) -> tarfile.TarInfo:
    import tarfile

    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = size, mode, 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    return entry


def pack(flow_file: Path, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES) -> bytes:
    """The package of `flow_file` (see the module docstring), as gzipped tar bytes."""
    root = flow_file.resolve().parent
    files = package_files(flow_file, suffixes)
    info = json.dumps(
        {"flow_file": flow_file.resolve().relative_to(root).as_posix(),
         "suffixes": list(suffixes), "files": [f.as_posix() for f in files]},
        sort_keys=True,
    ).encode()  # fmt: skip
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tar_entry(INFO_NAME, len(info), 0o644), io.BytesIO(info))
        for relative in files:
            data = (root / relative).read_bytes()
            executable = os.access(root / relative, os.X_OK)
            tar.addfile(
                _tar_entry(relative.as_posix(), len(data), 0o755 if executable else 0o644),
                io.BytesIO(data),
            )
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as zipped:
        zipped.write(raw.getvalue())
    return packed.getvalue()


def save_package(store: Any, flow_file: Path, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES) -> str:
    """Packs `flow_file` and stores the package; returns its content key."""
    return str(store.save_bytes(pack(flow_file, suffixes)))


@dataclass(frozen=True)
class CodePackage:
    """A run's code package, as Metaflow's ``run.code``: ``.path`` (the flow file's
    path inside the package), ``.info``, ``.flowspec`` (the flow file's text) and
    ``.tarball`` (a :class:`tarfile.TarFile` to read or extract)."""

    key: str
    data: bytes

    @property
    def tarball(self) -> tarfile.TarFile:
        import tarfile

        return tarfile.open(fileobj=io.BytesIO(self.data), mode="r:gz")

    @property
    def info(self) -> dict[str, Any]:
        return dict(json.loads(self._read(INFO_NAME)))

    @property
    def path(self) -> str:
        return str(self.info["flow_file"])

    @property
    def flowspec(self) -> str:
        return self._read(self.path).decode()

    def _read(self, name: str) -> bytes:
        with self.tarball as tar:
            member = tar.extractfile(name)
            if member is None:
                raise CodePackageError(f"the code package {self.key} has no file {name}")
            return member.read()

    def extract(self, folder: Path) -> Path:
        """Unpacks into `folder` (refusing any path that would land outside it);
        returns the flow file's path there."""
        target = folder.resolve()
        with self.tarball as tar:
            members = tar.getmembers()
            for member in members:
                inside = (target / member.name).resolve()
                if not member.isfile() or not inside.is_relative_to(target):
                    raise CodePackageError(
                        f"the code package {self.key} holds {member.name!r}, which is not a "
                        "file inside the package: refusing to unpack it"
                    )
            for member in members:
                tar.extract(member, target, set_attrs=False)
        return target / self.path


def load_package(store: Any, key: str) -> CodePackage:
    return CodePackage(key, bytes(store.load(key, "raw")))
