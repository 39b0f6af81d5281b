"""Checkouts of other commits for paired benchmarks: each side runs its own packages.

A commit (or any git ref) gets a ``git worktree add --detach`` in a temporary folder,
removed at the end (`remove_worktrees`), on error too; ``WORKTREE`` is this checkout as
it is, uncommitted changes included. A side's processes get ``PYTHONPATH=<checkout>/
python_client:<checkout>/metadata_service:<checkout>/executor``; `check_imports` proves,
before the first measurement, that each side imports its own ledgerflow,
ledgerflow_service and ledgerflow_executor (a package a commit does not have, such as
the executor before it was written, is replaced by a stand-in that fails to import, so
the side cannot fall back on the editable install).

Each side's packages are compiled to bytecode in place first (`compile_packages`), as
`pip install` compiles an installed package, so that no measured process pays for
compiling its imports, whatever PYTHONDONTWRITEBYTECODE says in the shell the benchmark
runs from (set there, it had every run, and every container that sees the host's files,
compile the SDK again: ~100 ms a process)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
WORKTREE = "WORKTREE"
PACKAGES = {
    "ledgerflow": "python_client",
    "ledgerflow_service": "metadata_service",
    "ledgerflow_executor": "executor",
}

CHECK_IMPORTS = """
import importlib, json
found = {}
for name in ("ledgerflow", "ledgerflow_service", "ledgerflow_executor"):
    try:
        found[name] = importlib.import_module(name).__file__
    except ImportError:
        found[name] = None
print(json.dumps(found))
"""

# Stands in for a package a checkout does not have (the executor before it was written),
# so that the side cannot fall back on the one installed (editable) from this checkout.
MISSING = """raise ImportError("{name} is not in the checkout {checkout}")
"""


class BenchError(RuntimeError):
    """Something failed to run: the benchmark stops with a non-zero status."""


@dataclass
class Checkout:
    role: str  # "old" or "new"
    ref: str
    label: str  # what the tables call it: the short commit, or WORKTREE
    path: Path
    stubs: Path  # stand-ins for the packages the checkout lacks
    missing: list[str] = field(default_factory=list)

    def python_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (this process's environment by default) for a process of this side:
        its packages first on the path (compiled in place), no LEDGERFLOW_*."""
        env = {
            k: v
            for k, v in (base if base is not None else os.environ).items()
            if not k.startswith("LEDGERFLOW_")
            # (a cache prefix would hide the bytecode compiled in place)
            and k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONPYCACHEPREFIX")
        }
        paths = [self.path / d for d in PACKAGES.values()] + [self.stubs]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
        return env


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def describe(ref: str) -> str:
    """The commit's short hash and subject, or the worktree's base and its changes."""
    if ref == WORKTREE:
        head = git("log", "-1", "--format=%h %s", "HEAD")
        changed = len(git("status", "--porcelain").splitlines())
        return f"this checkout, HEAD {head[:60]} + {changed} uncommitted file(s)"
    return git("log", "-1", "--format=%h %s", ref)[:90]


def make_checkout(role: str, ref: str, root: Path, worktrees: list[Path]) -> Checkout:
    """A side at `ref` (WORKTREE: this checkout), its scratch folders under `root`; a
    worktree made is listed in `worktrees` (before it is made: a half-made one goes too)."""
    if ref == WORKTREE:
        label, path = WORKTREE, REPO
    else:
        commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
        label = git("rev-parse", "--short", commit)
        path = root / f"checkout-{role}-{label}"
        worktrees.append(path)
        git("worktree", "add", "--detach", "--quiet", str(path), commit)
    side = Checkout(role, ref, label, path, root / f"stubs-{role}")
    for module, folder in PACKAGES.items():
        if not (path / folder / module / "__init__.py").exists():
            side.missing.append(module)
            stub = side.stubs / module / "__init__.py"
            stub.parent.mkdir(parents=True)
            stub.write_text(MISSING.format(name=module, checkout=path))
    side.stubs.mkdir(exist_ok=True)
    compile_packages(path)
    return side


def compile_packages(checkout: Path = REPO) -> None:
    """Compiles the checkout's packages to bytecode next to their sources, as `pip
    install` does for an installed package (and as a user's first run does for an
    editable one, unless PYTHONDONTWRITEBYTECODE is set)."""
    folders = [str(checkout / f) for f in PACKAGES.values() if (checkout / f).is_dir()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *folders],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"compiling {checkout}'s packages failed:\n{done.stdout[-2000:]}")


def remove_worktrees(worktrees: list[Path]) -> None:
    for path in worktrees:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)
    if worktrees:
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)


@contextlib.contextmanager
def paired_checkouts(
    old_ref: str, new_ref: str = WORKTREE, *, prefix: str = "paired-"
) -> Iterator[tuple[Path, tuple[Checkout, Checkout]]]:
    """A scratch folder and the two sides (old, new), each proved to import its own
    packages (check_imports); the worktrees and the folder go at the end, on error too."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    worktrees: list[Path] = []
    try:
        sides = (make_checkout("old", old_ref, root, worktrees),
                 make_checkout("new", new_ref, root, worktrees))  # fmt: skip
        for side in sides:
            check_imports(side, side.python_env(), root)
        yield root, sides
    finally:
        remove_worktrees(worktrees)
        shutil.rmtree(root, ignore_errors=True)


Side = TypeVar("Side")


def in_turn(pair: tuple[Side, Side], round_number: int) -> tuple[Side, Side]:
    """The order of a round: old then new in even rounds (from 0), new then old in odd
    ones, so that the machine's drift and the order within a pair fall on both alike."""
    return pair if round_number % 2 == 0 else (pair[1], pair[0])


def check_imports(side: Checkout, env: dict[str, str], cwd: Path) -> None:
    """The side's processes (`env`) must import its own packages, not the installed ones."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{side.label}: cannot import its packages:\n{done.stderr[-2000:]}")
    for module, path in json.loads(done.stdout).items():
        if path is None and module in side.missing:
            continue
        if path is None:
            raise BenchError(f"{side.label}: {module} does not import")
        wanted = (side.path / PACKAGES[module]).resolve()
        if not Path(path).resolve().is_relative_to(wanted):
            raise BenchError(f"{side.label}: {module} comes from {path}, not from {wanted}")
