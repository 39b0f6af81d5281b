"""``--pylint``: Metaflow's habit of checking a flow file with pylint's error checks
before running it, when pylint is installed. Flows set attributes on ``self`` that
pylint cannot see, so the checks that would flag them are off.

A clean report is remembered (``$XDG_CACHE_HOME/ledgerflow/pylint``, by default
``~/.cache/ledgerflow/pylint``, or ``LEDGERFLOW_PYLINT_CACHE``) under a digest of
everything the answer depends on (see _clean_marker): a flow run again unchanged is not
checked again (the check costs seconds; a run of a small flow, a fraction of one)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# no-member (artifacts set in another step), not-callable (self.next's targets),
# import-error (a step's imports may exist only where it runs).
_DISABLED = "no-member,not-callable,import-error"


def pylint_available() -> bool:
    return importlib.util.find_spec("pylint") is not None


class PylintFailed(Exception):
    """pylint could not check the file (it crashed, or could not start): that is not a
    clean report."""


def pylint_errors(flow_file: str) -> str | None:
    """pylint's error report of `flow_file`, or None when it found no error (a clean
    report of the same files is remembered); PylintFailed when it could not check it."""
    remembered = _clean_marker(flow_file)
    if remembered is not None and remembered.exists():
        return None
    report = _run_pylint(flow_file)
    if report is None and remembered is not None:
        try:
            remembered.parent.mkdir(parents=True, exist_ok=True)
            remembered.touch()
        except OSError:
            pass  # a cache that cannot be written only costs the next check
    return report


def _run_pylint(flow_file: str) -> str | None:
    checked = subprocess.run(
        [sys.executable, "-m", "pylint", "--errors-only", f"--disable={_DISABLED}",
         "--output-format=text", "--score=n", flow_file],
        capture_output=True,
        text=True,
    )  # fmt: skip
    report = checked.stdout.strip()
    # pylint's exit status is a bit field: 1 a fatal message, 32 a usage error.
    if checked.returncode & (1 | 32) or (checked.returncode and not report):
        reason = (checked.stderr.strip() or report).splitlines()[-1:] or ["no output"]
        raise PylintFailed(f"pylint could not check {flow_file}: {reason[0]}")
    return report if checked.returncode != 0 and report else None


# Files a pylint run reads its settings from, beside the flow and where it runs.
_CONFIGS = ("pylintrc", ".pylintrc", "pyproject.toml", "setup.cfg", "tox.ini")
# Past this many Python files under the flow's folder, nothing is remembered (hashing
# them would cost what the check costs).
_MOST_SOURCES = 2000


def _clean_marker(flow_file: str) -> Path | None:
    """Where a clean report of `flow_file` as it is now would be remembered (None: it
    cannot be told whether anything changed, so nothing is remembered). The key holds
    what pylint's answer depends on: the flow file, every Python file under its folder
    (what it may import), pylint's settings files, the version of Python, where
    pylint, astroid and ledgerflow are installed and when (see _installed), and
    PYTHONPATH."""
    caches = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = Path(os.environ.get("LEDGERFLOW_PYLINT_CACHE") or caches / "ledgerflow" / "pylint")
    path = Path(flow_file).resolve()
    digest = hashlib.sha256()
    installed = [_installed(name) for name in ("pylint", "astroid", "ledgerflow")]
    if None in installed:
        return None
    digest.update(f"{installed}|{_DISABLED}|{sys.version}|{sys.executable}".encode())
    digest.update(os.environ.get("PYTHONPATH", "").encode() + b"\0")
    sources = _sources_under(path.parent)
    if sources is None:
        return None
    configs = [d / name for d in {path.parent, Path.cwd()} for name in _CONFIGS]
    if os.environ.get("PYLINTRC"):
        configs.append(Path(os.environ["PYLINTRC"]))
    try:
        digest.update(b"flow\0" + path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        for source in sorted(sources) + sorted(c for c in configs if c.is_file()):
            digest.update(str(source).encode() + b"\0" + source.read_bytes() + b"\0")
    except OSError:
        return None
    return folder / digest.hexdigest()


def _installed(package: str) -> str | None:
    """Where `package` is installed and when its entry file was written there: what
    installing another version changes. (Asking importlib.metadata for the version
    instead cost every run with pylint installed ~18 ms of imports.)"""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    try:
        return f"{spec.origin}@{os.stat(spec.origin).st_mtime_ns}"
    except OSError:
        return None


def _sources_under(folder: Path) -> list[Path] | None:
    """The Python files under `folder` (not in hidden folders, caches or virtual
    environments); None when there are more than _MOST_SOURCES."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in
                   ("__pycache__", "node_modules", "venv", "site-packages")]  # fmt: skip
        found += [Path(root) / f for f in files if f.endswith(".py")]
        if len(found) > _MOST_SOURCES:
            return None
    return found
