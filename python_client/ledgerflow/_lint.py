"""``--pylint``: Metaflow's habit of checking a flow file with pylint's error checks
before running it, when pylint is installed. Flows set attributes on ``self`` that
pylint cannot see, so the checks that would flag them are off.

A clean report is remembered (``~/.cache/ledgerflow/pylint``, or
``LEDGERFLOW_PYLINT_CACHE``) under a digest of the flow file, the Python files beside
it, pylint's version and these settings: a flow run again unchanged is not checked
again (the check costs seconds; a run of a small flow, a fraction of one)."""

from __future__ import annotations

import hashlib
import importlib.metadata
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


def _clean_marker(flow_file: str) -> Path | None:
    """Where a clean report of `flow_file` as it is now would be remembered (None: the
    files cannot be read, so nothing is remembered)."""
    folder = Path(os.environ.get("LEDGERFLOW_PYLINT_CACHE") or
                  Path.home() / ".cache" / "ledgerflow" / "pylint")  # fmt: skip
    path = Path(flow_file).resolve()
    digest = hashlib.sha256()
    try:
        version = importlib.metadata.version("pylint")
    except importlib.metadata.PackageNotFoundError:
        return None
    digest.update(f"{version}|{_DISABLED}|{sys.version}|{sys.executable}".encode())
    try:
        # The flow file, then the modules beside it, which it may import.
        digest.update(b"flow\0" + path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        for source in sorted(path.parent.glob("*.py")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    except OSError:
        return None
    return folder / digest.hexdigest()
