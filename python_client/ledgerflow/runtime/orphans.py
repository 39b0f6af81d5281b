"""Nothing outlives the runtime: task processes die with it, and the scratch folder
of a runtime that was killed outright is removed by the next one."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """In a forked task process: have the kernel SIGKILL it when the runtime dies
    (even by kill -9, which no handler of the runtime sees). Linux only; elsewhere
    this does nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the runtime died before prctl took effect
        os._exit(1)


def remove_orphaned_workdirs(folder: Path, prefix: str) -> None:
    """Removes the ``<prefix><pid>-*`` folders whose runtime process no longer runs."""
    for entry in folder.glob(f"{prefix}*-*"):
        pid_text = entry.name.removeprefix(prefix).split("-", 1)[0]
        if not pid_text.isdigit() or _is_running(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
