"""The served run's code package on sys.path, as it is in the run's tasks: a model class
kept in a module beside the flow file unpickles (and imports) while serving.

Each package is unpacked once into a scratch folder of the server's own. Switching to a
run with another package puts that folder first on sys.path in place of the last one and
forgets the modules either package provides (its top-level modules and packages, and
what was imported from its folder), so the new run's artifacts find the new run's
classes. A run with no package (a local run without ``--code-package``) leaves the
service file's own folder to import from.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ledgerflow import client


class RunCode:
    """Which code package is on sys.path: the one of the run being bound or served."""

    def __init__(self) -> None:
        self._scratch: Path | None = None  # made for the first package
        self._active: Path | None = None
        self._lock = threading.Lock()

    def switch(self, run: client.Run) -> Callable[[], None]:
        """Puts `run`'s code package on sys.path in place of the one there; returns what
        puts the one before back (when the run is not served after all)."""
        key = run._record.code_package_key
        folder = self._unpacked(run, key) if key else None
        with self._lock:
            before = self._active
            if folder == before:
                return lambda: None
            forgotten = _forget(before, folder)
            self._activate(folder)

        def undo() -> None:
            with self._lock:
                _forget(before, folder)
                self._activate(before)
                sys.modules.update(forgotten)

        return undo

    def close(self) -> None:
        """Removes the unpacked packages (at the server's shutdown)."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _unpacked(self, run: client.Run, key: str) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="ledgerflow-hosting-"))
        folder = self._scratch / key
        if not folder.is_dir():
            package = run.code
            assert package is not None  # the run names it
            partial = Path(tempfile.mkdtemp(dir=self._scratch, prefix=".unpacking-"))
            package.extract(partial)
            partial.rename(folder)  # whole or not at all
        return folder

    def _activate(self, folder: Path | None) -> None:
        """`folder` first on sys.path, in place of the active one."""
        if self._active is not None:
            while str(self._active) in sys.path:
                sys.path.remove(str(self._active))
        if folder is not None:
            sys.path.insert(0, str(folder))
        self._active = folder
        importlib.invalidate_caches()


def _forget(*folders: Path | None) -> dict[str, ModuleType]:
    """Takes out of sys.modules (and returns) the modules the packages unpacked in
    `folders` provide, wherever they were imported from, and those imported from them."""
    present = [folder for folder in folders if folder is not None]
    names = {
        entry.stem if entry.suffix == ".py" else entry.name
        for folder in present
        for entry in folder.iterdir()
        if entry.suffix == ".py" or (entry.is_dir() and not entry.name.startswith("."))
    }
    names -= _NEVER_FORGOTTEN  # a package's json.py shadows nothing the server runs on
    forgotten = {}
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top in _NEVER_FORGOTTEN:
            continue
        if top in names or any(_is_within(module, f) for f in present):
            forgotten[name] = sys.modules.pop(name)
    return forgotten


# What the server itself runs on: taken out of sys.modules, its next import would make a
# second copy beside the first (the standard library, and this platform's packages).
_NEVER_FORGOTTEN = frozenset(sys.stdlib_module_names) | {"ledgerflow", "ledgerflow_service"}


def _is_within(module: ModuleType, folder: Path) -> bool:
    """Whether `module` was imported from `folder` (a namespace package by its path)."""
    try:
        origin = getattr(module, "__file__", None) or next(iter(module.__path__), None)
    except Exception:  # no __path__, or a lazy module that raises on any attribute
        return False
    return isinstance(origin, str) and Path(origin).is_relative_to(folder)
