"""The code package: what goes in, the same bytes for the same files, safe unpacking,
and a run that records one and reads it back (embedded and service)."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from ledgerflow import Flow
from ledgerflow.runtime.code_package import (
    CodePackage,
    CodePackageError,
    pack,
    package_files,
)

FLOWS = Path(__file__).parent / "flows"


def _project(root: Path) -> Path:
    (root / "helpers").mkdir(parents=True)
    (root / "helpers" / "__init__.py").write_text("")
    (root / "helpers" / "maths.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "model.R").write_text("f <- function(x) x\n")
    (root / "notes.txt").write_text("not code\n")
    (root / ".git").mkdir()
    (root / ".git" / "config.py").write_text("hidden = True\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "flow.cpython-311.py").write_text("")
    (root / ".secret.py").write_text("")
    flow = root / "flow.py"
    flow.write_text("print('the flow')\n")
    return flow


def test_the_include_rule(tmp_path: Path) -> None:
    flow = _project(tmp_path)
    assert [p.as_posix() for p in package_files(flow)] == [
        "flow.py", "helpers/__init__.py", "helpers/maths.py", "model.R",
    ]  # fmt: skip
    assert [p.as_posix() for p in package_files(flow, (".txt",))] == ["flow.py", "notes.txt"]


def test_the_same_files_make_the_same_bytes(tmp_path: Path) -> None:
    flow = _project(tmp_path / "a")
    first = pack(flow)
    time.sleep(1.1)  # a later pack, after the files' times change, is the same
    for path in (tmp_path / "a").rglob("*.py"):
        os.utime(path)
    assert pack(flow) == first
    copy = _project(tmp_path / "b")  # the same content elsewhere
    assert pack(copy) == first
    (tmp_path / "b" / "helpers" / "maths.py").write_text("def double(x):\n    return x + x\n")
    assert pack(copy) != first


def test_a_package_reads_back_and_unpacks(tmp_path: Path) -> None:
    flow = _project(tmp_path / "src")
    package = CodePackage("key", pack(flow))
    assert package.path == "flow.py" and package.flowspec == "print('the flow')\n"
    assert package.info["files"] == ["flow.py", "helpers/__init__.py", "helpers/maths.py",
                                     "model.R"]  # fmt: skip
    unpacked = package.extract(tmp_path / "out")
    assert unpacked.read_text() == "print('the flow')\n"
    assert (tmp_path / "out" / "helpers" / "maths.py").exists()


def test_unpacking_refuses_paths_outside_the_folder(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        entry = tarfile.TarInfo("../escaped.py")
        entry.size = 2
        tar.addfile(entry, io.BytesIO(b"x\n"))
    with pytest.raises(CodePackageError, match="not a file inside the package"):
        CodePackage("key", raw.getvalue()).extract(tmp_path / "out")
    assert not (tmp_path / "escaped.py").exists()


@pytest.mark.slow
def test_a_run_records_its_code_package(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    assert Flow("MyFlow").latest_run.code is None  # none unless asked for
    flow_env.run("branch_flow", "run", "--code-package")
    run = Flow("MyFlow").latest_run
    code = run.code
    assert code is not None and code.path == "branch_flow.py"
    assert code.flowspec == (FLOWS / "branch_flow.py").read_text()
    assert "params_flow.py" in code.info["files"]  # the files beside it
    assert run["end"].task.code.key == code.key
    flow_env.run("branch_flow", "run", "--code-package")  # unchanged files: the same key
    assert Flow("MyFlow").latest_run.code.key == code.key
    flow_env.run("branch_flow", "--package-suffixes", ".nothing", "run", "--code-package")
    assert Flow("MyFlow").latest_run.code.info["files"] == ["branch_flow.py"]
