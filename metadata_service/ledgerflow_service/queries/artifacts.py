"""The artifacts of a run, a step or a task: current attempts only, or all."""

from __future__ import annotations

from typing import Any

from ledgerflow.v1 import records_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import check_id, check_identifier
from ledgerflow_service.queries.fields import require_run
from ledgerflow_service.queries.paging import BAD_TOKEN, decode_token, page_size, take_page
from ledgerflow_service.store.backend import Tx
from ledgerflow_service.validation import MAX_INT64, check_filter


def _artifact_token(token: str) -> tuple[str, int, str]:
    value = decode_token(token)
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, t) for v, t in zip(value, (str, int, str), strict=True))
        or not 0 <= value[1] <= MAX_INT64
        or any("\x00" in v for v in (value[0], value[2]))
    ):
        raise InvalidArgument(BAD_TOKEN)
    return value[0], value[1], value[2]


def list_artifacts(tx: Tx, request: Any) -> tuple[list[records_pb2.Artifact], str]:
    """A page of artifacts, ordered by task, attempt and name."""
    names = [check_identifier("artifact name", n) for n in check_filter("names", request.names)]
    path = require_run(tx, request.flow_name, request.run_id)
    size = page_size(request.page)
    where: list[str] = ["a.run_pathspec = ?"]
    params: list[Any] = [path]
    if request.step_name:
        where.append("a.step_name = ?")
        params.append(check_identifier("step_name", request.step_name))
    if request.task_id:
        if not request.step_name:
            raise InvalidArgument("task_id needs step_name too")
        if request.task_ids:
            raise InvalidArgument("give task_id or task_ids, not both")
        where.append("a.task_pathspec = ?")
        params.append(f"{path}/{request.step_name}/{check_id('task_id', request.task_id)}")
    if request.task_ids:
        if not request.step_name:
            raise InvalidArgument("task_ids needs step_name too")
        tasks = [
            f"{path}/{request.step_name}/{check_id('task_ids', task_id)}"
            for task_id in check_filter("task_ids", request.task_ids)
        ]
        condition, task_params = tx.dialect.one_of("a.task_pathspec", tasks)
        where.append(condition)
        params.extend(task_params)
    if names:
        condition, name_params = tx.dialect.one_of("a.name", names)
        where.append(condition)
        params.extend(name_params)
    if request.page.page_token:
        task, attempt, name = _artifact_token(request.page.page_token)
        where.append(
            "(a.task_pathspec > ? OR (a.task_pathspec = ? AND "
            "(a.attempt > ? OR (a.attempt = ? AND a.name > ?))))"
        )
        params.extend([task, task, attempt, attempt, name])
    join = ""
    if not request.all_attempts:
        join = "JOIN tasks t ON t.pathspec = a.task_pathspec AND t.current_attempt = a.attempt"
    rows = tx.query(
        "SELECT a.name, a.content_key, a.size, a.type_name, a.serializer, a.language, "
        f"a.task_pathspec, a.attempt FROM artifacts a {join} WHERE {' AND '.join(where)} "
        "ORDER BY a.task_pathspec, a.attempt, a.name LIMIT ?",
        [*params, size + 1],
    )
    records = [
        records_pb2.Artifact(
            name=n,
            content_key=k,
            size=s,
            type_name=t,
            serializer=ser,
            language=lang,
            task_pathspec=task,
            attempt=att,
        )
        for n, k, s, t, ser, lang, task, att in rows
    ]
    return take_page(records, [[r[6], r[7], r[0]] for r in rows], size)
