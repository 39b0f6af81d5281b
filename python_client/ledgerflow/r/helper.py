"""The R client's long-lived helper: ``python -m ledgerflow.r.helper`` answers one JSON
request per line on stdin with one JSON answer per line on stdout, through Ledgerflow's
client API, so R reads many artifacts without starting Python for each.

Requests are ``{"op": NAME, ...arguments}``; answers ``{"ok": true, "value": ...}`` or
``{"ok": false, "error": MESSAGE}``. An artifact comes back as R's own serialization
inline (``{"rds": BASE64}``; a Python value is converted to R here, in embedded R
started on the first such read), or, when large, as where R reads it itself:
``{"file": {"path", "temporary", "kind", "names", "parts": [{"type", "offset",
"size"}]}}``, the parts being its serialization (kind "rds", type "raw") or its columns
(kind "vector" or "frame": ledgerflow/datastore/r_columns.py) in the datastore's own file, or in
a temporary file (which R deletes) where the datastore is not a local folder and for a
Python value converted here. R's client reads them with
readBin(): no base64, no JSON, no copy through this process.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from ledgerflow import client
from ledgerflow.datastore.content import (
    R_SERIALIZER,
    ContentStore,
    LocalStorage,
    _unframe_r,
    frame_offsets,
)
from ledgerflow.datastore.r_columns import COLUMNS
from ledgerflow.exceptions import LedgerflowException

# An R value's serialization up to this size comes inline (base64 in the JSON answer);
# a larger one, or one stored as columns, as where R reads it.
INLINE_UP_TO = 256 * 1024


def _time(stamp: Any) -> str | None:
    return stamp.isoformat() if stamp is not None else None


def _run_fields(run: client.Run) -> dict[str, Any]:
    return {
        "pathspec": run.pathspec, "id": run.id, "flow": run.pathspec.split("/")[0],
        "status": run.status, "successful": run.successful, "finished": run.finished,
        "user": run._record.user, "tags": sorted(run.tags), "user_tags": sorted(run.user_tags),
        "created_at": _time(run.created_at), "finished_at": _time(run.finished_at),
        "origin_run_id": run._record.origin_run_id or None,
    }  # fmt: skip


def _task_of(pathspec: str, reading: str, name: str = "") -> client.Task:
    """The task a pathspec names: Flow/run (its end task), Flow/run/step (the step's
    only task) or Flow/run/step/task. What R reads of it (`reading`: artifact `name`,
    logs, artifacts) shapes the advice when a step has several tasks."""
    parts = pathspec.strip("/").split("/")
    if len(parts) == 2:
        task = client.Run(pathspec).end_task
        if task is None:
            raise LedgerflowException(f"run {pathspec} has no end task (yet): name a step")
        return task
    if len(parts) == 3:
        tasks = client.Step(pathspec).tasks()
        if len(tasks) != 1:
            # A foreach's step: one of its values would be a silent guess.
            raise LedgerflowException(_several_tasks(pathspec, tasks, reading, name))
        return tasks[0]
    return client.Task(pathspec)


def _several_tasks(pathspec: str, tasks: list[client.Task], reading: str, name: str) -> str:
    shown = 10
    named = ", ".join(t.pathspec for t in tasks[:shown])
    if len(tasks) > shown:
        named += f", ... ({len(tasks) - shown} more)"
    every = f'list_tasks("{pathspec}")$pathspec'
    advice = {
        "artifact": f'get_artifact({every}, "{name}") reads it from each',
        "logs": f"lapply({every}, get_logs) reads each one's",
        "artifacts": "list_artifacts() takes one of them",
    }[reading]
    return f"step {pathspec} has {len(tasks)} tasks: name one ({named or 'none yet'}); {advice}"


def _step_fields(step: client.Step) -> dict[str, Any]:
    record = step._record
    return {
        "pathspec": step.pathspec, "step": step.id, "tasks": record.task_count,
        "succeeded": record.succeeded_count, "failed": record.failed_count,
        "running": record.running_count, "created_at": _time(step.created_at),
    }  # fmt: skip


def _task_fields(task: client.Task) -> dict[str, Any]:
    return {
        "pathspec": task.pathspec, "id": task.id, "step": task.pathspec.split("/")[2],
        "index": task.index, "status": task.status, "successful": task.successful,
        "retry_count": task.retry_count, "created_at": _time(task.created_at),
        "finished_at": _time(task.finished_at),
    }  # fmt: skip


class Helper:
    def __init__(self) -> None:
        self._r: Any = None
        self.ops: dict[str, Callable[..., Any]] = {
            "list_flows": lambda: sorted(flow.id for flow in client.Ledgerflow()),
            "list_runs": self.list_runs,
            "get_run": lambda pathspec: _run_fields(client.Run(pathspec)),
            "list_steps": lambda pathspec: [_step_fields(s) for s in client.Run(pathspec)],
            "list_tasks": lambda pathspec: [_task_fields(t) for t in client.Step(pathspec)],
            "list_artifacts": lambda pathspec: sorted(
                a.id for a in _task_of(pathspec, "artifacts")
            ),
            "get_artifact": self.get_artifact,
            "get_artifacts": self.get_artifacts,
            "add_tags": lambda pathspec, tags: client.Run(pathspec).add_tags(tags),
            "remove_tags": lambda pathspec, tags: client.Run(pathspec).remove_tags(tags),
            "set_namespace": lambda namespace: client.namespace(namespace),
            "get_namespace": client.get_namespace,
            "set_metadata": lambda where: client.metadata(where),
            "get_metadata": client.get_metadata,
            "logs": lambda pathspec, stream: getattr(_task_of(pathspec, "logs"), stream),
        }

    def list_runs(self, flow: str, tags: list[str], limit: int) -> list[dict[str, Any]]:
        runs = []
        for run in client.Flow(flow).runs(*tags):
            runs.append(_run_fields(run))
            if len(runs) >= limit:
                break
        return runs

    def get_artifact(self, pathspec: str, name: str) -> dict[str, Any]:
        return self._encoded(_task_of(pathspec, "artifact", name), name)

    def get_artifacts(self, pathspecs: list[str], name: str) -> list[dict[str, Any]]:
        """One artifact of many tasks; the tasks of one step are listed once (with all
        their artifacts' records), not once a task."""
        steps: dict[str, client.Step] = {}
        encoded = []
        for pathspec in pathspecs:
            parts = pathspec.strip("/").split("/")
            if len(parts) != 4:
                encoded.append(self.get_artifact(pathspec, name))
                continue
            step_path = "/".join(parts[:3])
            if step_path not in steps:
                steps[step_path] = client.Step(step_path)
            encoded.append(self._encoded(steps[step_path][parts[3]], name))
        return encoded

    def _encoded(self, task: client.Task, name: str) -> dict[str, Any]:
        try:
            artifact = task[name]
        except KeyError:
            names = ", ".join(sorted(a.id for a in task)) or "none"
            raise LedgerflowException(
                f"task {task.pathspec} has no artifact {name!r} (it has: {names})"
            ) from None
        record = artifact._record
        if record.serializer == R_SERIALIZER:
            store = artifact._store or client._clients()[1]
            return self._r_value(store, record.content_key)
        if self._r is None:
            self._r = _EmbeddedR()
        rds = self._r.serialize(artifact.data)
        if len(rds) <= INLINE_UP_TO:
            return _inline(rds)
        handle, path = tempfile.mkstemp(prefix="ledgerflow-r-", suffix=".rds")
        with os.fdopen(handle, "wb") as out:
            out.write(rds)
        part = {"type": "raw", "offset": 0, "size": len(rds)}
        located = {"path": path, "temporary": True, "kind": "rds", "names": None}
        return {"rds": None, "file": {**located, "parts": [part]}}

    def _r_value(self, store: ContentStore, key: str) -> dict[str, Any]:
        """An R artifact: its serialization inline, or where R reads it (the module's
        docstring)."""
        data = store.storage.get(key)
        rds, _, has_python, python = _unframe_r(data)
        places = frame_offsets(data)
        if has_python == COLUMNS:
            kind, names, columns = python
            parts = [
                {"type": r_type, "offset": offset, "size": size}
                for (r_type, _), (offset, size) in zip(columns, places[1:], strict=True)
            ]
        elif isinstance(rds, memoryview) and rds.nbytes > INLINE_UP_TO:  # out of band
            kind, names = "rds", None
            parts = [{"type": "raw", "offset": places[0][0], "size": places[0][1]}]
        else:
            return _inline(bytes(rds))
        if isinstance(store.storage, LocalStorage):
            path, temporary = str(store.storage._path(key)), False
        else:
            handle, path = tempfile.mkstemp(prefix="ledgerflow-r-", suffix=".bin")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            temporary = True
        located = {"path": path, "temporary": temporary, "kind": kind, "names": names}
        return {"rds": None, "file": {**located, "parts": parts}}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = self.ops.get(request.pop("op", None))
        if op is None:
            return {"ok": False, "error": f"unknown request; ask one of {sorted(self.ops)}"}
        try:
            return {"ok": True, "value": op(**request)}
        except (LedgerflowException, ValueError, KeyError) as error:
            return {"ok": False, "error": str(error).strip("'\"")}


class _EmbeddedR:
    """R, for turning Python values into R's serialization."""

    def __init__(self) -> None:
        import rpy2.rinterface as ri

        ri.initr_simple()
        self._ri = ri

    def serialize(self, value: Any) -> bytes:
        from ledgerflow.r.convert import NoEquivalent, raw_bytes, to_r

        try:
            converted = to_r(value)
        except NoEquivalent as error:
            raise LedgerflowException(f"this artifact has no R equivalent: {error}") from None
        xdr = self._ri.BoolSexpVector([False])  # native byte order: copied, not swapped
        return raw_bytes(self._ri.baseenv["serialize"](converted, self._ri.NULL, xdr=xdr))


def _inline(rds: bytes) -> dict[str, Any]:
    return {"rds": base64.b64encode(rds).decode(), "file": None}


def main() -> None:
    helper = Helper()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            answer = helper.answer(request) if isinstance(request, dict) else {
                "ok": False, "error": "a request is a JSON object"}  # fmt: skip
        except json.JSONDecodeError as error:
            answer = {"ok": False, "error": f"not JSON: {error}"}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
