"""``--pylint``: Metaflow's habit of checking a flow file with pylint's error checks
before running it, when pylint is installed. Flows set attributes on ``self`` that
pylint cannot see, so the checks that would flag them are off."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

# no-member (artifacts set in another step), not-callable (self.next's targets),
# import-error (a step's imports may exist only where it runs).
_DISABLED = "no-member,not-callable,import-error"


def pylint_available() -> bool:
    return importlib.util.find_spec("pylint") is not None


class PylintFailed(Exception):
    """pylint could not check the file (it crashed, or could not start): that is not a
    clean report."""


def pylint_errors(flow_file: str) -> str | None:
    """pylint's error report of `flow_file`, or None when it found no error;
    PylintFailed when it could not check it."""
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
