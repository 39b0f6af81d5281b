"""What the SDK does so that no code runs from data in a shared reader, and a bad
artifact name fails its task instead of leaving a run without an end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FlowEnv
from ledgerflow.datastore.content import ContentStore, LocalStorage
from ledgerflow.datastore.safe_load import NotSafeToLoad, load_data_only
from ledgerflow.ui.model import preview
from ledgerflow.v1 import records_pb2


class Exploit:
    """A value whose pickle runs a command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def stored(store: ContentStore, value: object) -> records_pb2.Artifact:
    saved = store.save(value)
    return records_pb2.Artifact(name="x", content_key=saved.key, size=saved.size,
                                type_name=saved.type_name, serializer=saved.serializer)  # fmt: skip


def test_a_preview_never_runs_code_from_the_value(tmp_path: Path) -> None:
    store = ContentStore(LocalStorage(tmp_path / "data"))
    marker = tmp_path / "pwned"
    crafted = stored(store, Exploit(marker))
    with pytest.raises(NotSafeToLoad, match="system"):
        load_data_only(store, crafted.content_key, crafted.serializer)
    shown = preview(store, crafted)
    assert shown is not None and "preview not available" in shown
    assert not marker.exists()
    # Plain data still previews: containers, numbers, dates, arrays, frames, bytes.
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for value in [{"a": [1, 2.5, None], "b": {"c"}}, np.arange(4), frame, b"raw bytes",
                  pd.Timestamp("2026-12-06"), 10**40]:  # fmt: skip
        artifact = stored(store, value)
        assert preview(store, artifact) == repr(value)


def test_a_datastore_key_that_is_a_path_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cr3t")
    storage = LocalStorage(tmp_path / "data")
    for key in ["../secret", "/etc/passwd", "ab/../../secret"]:
        with pytest.raises(ValueError, match="is not a datastore key"):
            storage.get(key)


def test_a_bad_artifact_name_fails_its_task_and_the_run(flow_env: FlowEnv) -> None:
    result = flow_env.run("bad_artifact_name_flow", "run", check=False)
    assert result.returncode == 1
    assert "artifact 'my-artifact' of step 'start' has a name the ledger cannot keep" in (
        result.stdout + result.stderr
    )
    code = (
        "from ledgerflow import Flow; run = Flow('BadArtifactNameFlow').latest_run; "
        "print(run.finished, run.successful, run['start'].task.exception)"
    )
    import subprocess
    import sys

    checked = subprocess.run([sys.executable, "-c", code], cwd=flow_env.home,
                             env={**flow_env.env, "USERNAME": "tester"},
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    finished, successful, _ = checked.stdout.split(" ", 2)
    assert (finished, successful) == ("True", "False")
