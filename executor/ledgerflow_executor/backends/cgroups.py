"""Memory cgroups for the local backend's attempts: one cgroup per attempt, limited to
the step's memory, so the kernel bounds what the attempt keeps resident (threads, mapped
files and reserved address space cost nothing until touched), kills it when it goes
over, and says so afterwards.

Attempts' cgroups live under the executor's own memory cgroup, in
``ledgerflow/executor-PID.N/NAME`` (N: one per backend in the process): the executor
needs no cgroup of the machine's beyond the one it was started in, and an executor that
died without cleaning up is recognised by its process id (`sweep`). cgroup v2 and v1
share everything but the names of the files (`_Files`) and v2's rule that a cgroup that
hands the memory controller to its children holds no process itself.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PARENT = "ledgerflow"
_opened = itertools.count()


class NoMemoryCgroup(Exception):
    """No memory cgroup can be made here; the message says why."""


@dataclass(frozen=True)
class _Files:
    """What a cgroup version calls its memory files."""

    limit: str  # the bound on resident memory
    swap: str  # the bound on swap (v2) or on memory and swap together (v1)
    oom: str  # where the kernel counts its OOM kills, as an "oom_kill N" line
    failures: str  # v1 only: how often the limit was hit (kernels before 4.13 have no oom_kill)


_FILES = {
    1: _Files("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control",
              "memory.failcnt"),
    2: _Files("memory.max", "memory.swap.max", "memory.events", ""),
}  # fmt: skip


@dataclass(frozen=True)
class Mount:
    """A cgroup filesystem's mount, from a /proc/self/mountinfo line."""

    point: Path
    root: str  # which cgroup of the hierarchy is mounted at `point`
    version: int
    controllers: frozenset[str]  # v1: what the hierarchy controls; v2: read cgroup.controllers


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts in a /proc/self/mountinfo text (proc(5): ID PARENT MAJ:MIN ROOT
    POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS)."""
    mounts = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, kind = before.split(), after.split()
        if len(fields) < 5 or len(kind) < 3 or kind[0] not in ("cgroup", "cgroup2"):
            continue
        version = 2 if kind[0] == "cgroup2" else 1
        controllers = frozenset(kind[2].split(",")) if version == 1 else frozenset()
        mounts.append(Mount(Path(_unescape(fields[4])), _unescape(fields[3]), version, controllers))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as \\ooo (octal)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """A process's cgroup per controller, from /proc/PID/cgroup (`ID:CONTROLLERS:PATH`
    lines); the cgroup v2 hierarchy's (ID 0, no controllers) under the key ""."""
    cgroups = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and not parts[1]:
            cgroups[""] = parts[2]
        for controller in parts[1].split(",") if parts[1] else ():
            cgroups[controller] = parts[2]
    return cgroups


def folder_of(mount: Mount, cgroup: str) -> Path | None:
    """Where `cgroup` (a path in the hierarchy) is under the mount; None when the mount
    does not show it (a mount of another part of the hierarchy)."""
    root = mount.root.rstrip("/")
    if cgroup != root and not cgroup.startswith(root + "/"):
        return None
    return mount.point / cgroup[len(root) :].lstrip("/")


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as out:
        out.write(value)


def _counter(text: str, name: str) -> int:
    """The value of the `name N` line in a flat-keyed cgroup file (0 when absent)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class MemoryCgroups:
    """This executor's attempt cgroups: `root` (ledgerflow/executor-PID.N in the
    executor's own memory cgroup) holds one per attempt."""

    version: int
    root: Path

    @property
    def _files(self) -> _Files:
        return _FILES[self.version]

    def create(self, name: str, memory_mb: int) -> Path:
        """An attempt's cgroup, bounded to `memory_mb` of memory and none of swap (which
        would let an attempt go far past its memory, slowly); the attempt's process joins
        it itself, before user code runs (ledgerflow/runtime/task_server.py)."""
        cgroup = self.root / name
        cgroup.mkdir()
        try:
            limit = str(memory_mb * 1024 * 1024)
            _write(cgroup / self._files.limit, limit)
            if (cgroup / self._files.swap).exists():  # absent without swap accounting
                _write(cgroup / self._files.swap, "0" if self.version == 2 else limit)
        except OSError:
            self.remove(cgroup)
            raise
        return cgroup

    def oom_killed(self, cgroup: Path) -> bool:
        """Whether the kernel killed a process of the cgroup for its memory limit."""
        with contextlib.suppress(OSError):
            if _counter(_read(cgroup / self._files.oom), "oom_kill"):
                return True
            if self._files.failures and "oom_kill " not in _read(cgroup / self._files.oom):
                return int(_read(cgroup / self._files.failures)) > 0  # a kernel before 4.13
        return False

    def kill(self, cgroup: Path) -> None:
        """SIGKILLs every process in the cgroup (an attempt's children that left its
        process group as well)."""
        with contextlib.suppress(OSError):
            for pid in _read(cgroup / "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)

    def remove(self, cgroup: Path, patience: float = 2.0) -> bool:
        """Removes an ended attempt's cgroup, killing what is left in it (the processes
        its task started and left behind, as a container's end would); False when it
        still holds a process after `patience` seconds (try again later)."""
        deadline = time.monotonic() + patience
        while True:
            self.kill(cgroup)
            try:
                cgroup.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() >= deadline:
                    return False
            time.sleep(0.02)

    def close(self) -> bool:
        """Removes this executor's folder of cgroups (after its attempts' cgroups), and
        the shared ledgerflow one when no other executor uses it; False when some
        attempt's cgroup is still there."""
        with contextlib.suppress(FileNotFoundError):
            for cgroup in self.root.iterdir():
                if cgroup.is_dir():
                    self.remove(cgroup)
        done = self.remove(self.root)
        with contextlib.suppress(OSError):  # another executor's folder is in it
            self.root.parent.rmdir()
        return done


def sweep(parent: Path) -> None:
    """Removes what executors that are gone left in `parent` (killed with SIGKILL, they
    could not clean up): their empty cgroups. An attempt still running there keeps its
    own (rmdir refuses a cgroup with processes)."""
    for folder in parent.glob("executor-*"):
        pid = folder.name.removeprefix("executor-").split(".")[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        for cgroup in [*folder.iterdir(), folder]:
            if cgroup.is_dir():
                with contextlib.suppress(OSError):
                    cgroup.rmdir()


def oom_kills_of(pid: int) -> int | None:
    """How many processes the kernel killed for memory in the memory cgroup that holds
    process `pid` (a container's, say) since it was made; None when it cannot be read."""
    try:
        mounts = parse_mountinfo(_read(Path("/proc/self/mountinfo")))
        held = parse_proc_cgroup(_read(Path(f"/proc/{pid}/cgroup")))
    except OSError:
        return None
    for version in (2, 1):
        for folder in _memory_folders(version, mounts, held):
            oom = folder / _FILES[version].oom
            with contextlib.suppress(OSError):
                return _counter(_read(oom), "oom_kill")
    return None


def open_memory_cgroups() -> MemoryCgroups:
    """This executor's attempt cgroups, in the cgroup v2 hierarchy when its memory
    controller is there, else in cgroup v1's memory hierarchy; raises NoMemoryCgroup
    saying why neither can be used."""
    mounts = parse_mountinfo(_read(Path("/proc/self/mountinfo")))
    own = parse_proc_cgroup(_read(Path("/proc/self/cgroup")))
    reasons = []
    for version in (2, 1):
        try:
            return _open(version, mounts, own)
        except NoMemoryCgroup as error:
            reasons.append(str(error))
        except OSError as error:
            reasons.append(f"cgroup v{version}: {error}")
    raise NoMemoryCgroup("; ".join(reasons))


def _open(version: int, mounts: list[Mount], own: dict[str, str]) -> MemoryCgroups:
    key = "" if version == 2 else "memory"
    if key not in own:
        raise NoMemoryCgroup(f"cgroup v{version}: this process is in no memory cgroup")
    folders = _memory_folders(version, mounts, own)
    if not folders:
        raise NoMemoryCgroup(f"cgroup v{version}: no memory hierarchy mounted with {own[key]}")
    folder = folders[0]
    if not os.access(folder, os.W_OK):
        raise NoMemoryCgroup(f"cgroup v{version}: {folder} is not writable")
    parent = folder / PARENT
    if version == 2:
        if "memory" not in _read(folder / "cgroup.controllers").split():
            raise NoMemoryCgroup(f"cgroup v2: {folder} has no memory controller")
        parent.mkdir(exist_ok=True)
        _give_memory_to_children(folder, parent)
    parent.mkdir(exist_ok=True)
    sweep(parent)
    root = parent / f"executor-{os.getpid()}.{next(_opened)}"
    root.mkdir(exist_ok=True)
    if version == 2:
        for cgroup in (parent, root):
            _enable_memory(cgroup)
    files = _FILES[version]
    if not (root / files.limit).exists() or not os.access(root / "cgroup.procs", os.W_OK):
        with contextlib.suppress(OSError):
            root.rmdir()
        raise NoMemoryCgroup(f"cgroup v{version}: cannot bound memory in {root}")
    return MemoryCgroups(version, root)


def _memory_folders(version: int, mounts: list[Mount], held: dict[str, str]) -> list[Path]:
    """Where the memory cgroup of a process in the cgroups `held` (parse_proc_cgroup)
    is mounted, in cgroup v1's memory hierarchy or in v2's (its unified one)."""
    key = "" if version == 2 else "memory"
    if key not in held:
        return []
    candidates = [
        m for m in mounts if m.version == version and (version == 2 or key in m.controllers)
    ]
    return [f for f in (folder_of(m, held[key]) for m in candidates) if f is not None]


def _enable_memory(cgroup: Path) -> None:
    """cgroup v2: lets the cgroup's children bound their memory."""
    control = cgroup / "cgroup.subtree_control"
    if "memory" not in _read(control).split():
        _write(control, "+memory")


def _give_memory_to_children(folder: Path, parent: Path) -> None:
    """cgroup v2 hands the memory controller to a cgroup's children only when the cgroup
    holds no process itself. When this executor is the only process in its cgroup (a
    service with delegation, say systemd's Delegate=yes), it moves itself into a leaf,
    ledgerflow/executor-PID.self, to allow it (removed by `sweep` once it is gone: a
    cgroup cannot be removed by the process in it); with other processes there, it
    cannot."""
    try:
        _enable_memory(folder)
        return
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise NoMemoryCgroup(f"cgroup v2: {folder}: {error}") from None
    if _read(folder / "cgroup.procs").split() != [str(os.getpid())]:
        raise NoMemoryCgroup(
            f"cgroup v2: {folder} holds other processes than this executor, so its "
            "children cannot have the memory controller (start the executor in a cgroup "
            "of its own)"
        )
    leaf = parent / f"executor-{os.getpid()}.self"
    leaf.mkdir(exist_ok=True)
    _write(leaf / "cgroup.procs", str(os.getpid()))
    _enable_memory(folder)
