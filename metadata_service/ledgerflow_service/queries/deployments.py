"""Deployments as they stand, and which of them are due."""

from __future__ import annotations

from ledgerflow.v1 import deployment_service_pb2 as deployment_api
from ledgerflow.v1 import records_pb2

from ledgerflow_service.errors import NotFound
from ledgerflow_service.names import check_deployment_name, check_identifier
from ledgerflow_service.queries.paging import encode_token, page_size, text_token
from ledgerflow_service.read_models.deployments import DeploymentRow, to_message
from ledgerflow_service.read_models.table import columns
from ledgerflow_service.store.backend import Tx

_SELECT = f"SELECT {', '.join(columns(DeploymentRow))} FROM deployments WHERE "


def find(tx: Tx, name: str, *, include_deleted: bool = False) -> DeploymentRow:
    """The deployment `name`; NotFound when it never was (or was deleted)."""
    row = tx.query_one(_SELECT + "name = ?", (check_deployment_name(name),))
    found = DeploymentRow(*row) if row is not None else None
    if found is None:
        raise NotFound(f"deployment {name!r} does not exist (see `ledgerflow deployments list`)")
    if found.deleted and not include_deleted:
        raise NotFound(f"deployment {name!r} was deleted (deploy it again to revive it)")
    return found


def get(tx: Tx, name: str) -> records_pb2.Deployment:
    return to_message(find(tx, name, include_deleted=True))


def list_deployments(
    tx: Tx, request: deployment_api.ListDeploymentsRequest
) -> tuple[list[records_pb2.Deployment], str]:
    size = page_size(request.page)
    where, params = ["name > ?"], [text_token(request.page.page_token) if request.page.page_token
                                    else ""]  # fmt: skip
    if request.flow_name:
        where.append("flow_name = ?")
        params.append(check_identifier("flow_name", request.flow_name))
    if request.project:
        where.append("project = ?")
        params.append(request.project)
    if not request.include_deleted:
        where.append("deleted = 0")
    rows = tx.query(_SELECT + " AND ".join(where) + " ORDER BY name LIMIT ?", [*params, size + 1])
    found = [DeploymentRow(*row) for row in rows[:size]]
    token = encode_token(found[-1].name) if len(rows) > size else ""
    return [to_message(row) for row in found], token


def due(tx: Tx, now_us: int, limit: int) -> list[DeploymentRow]:
    """The deployments whose next due time has come, earliest first."""
    rows = tx.query(
        _SELECT + "next_due_us <= ? AND paused = 0 AND deleted = 0 ORDER BY next_due_us LIMIT ?",
        (now_us, limit),
    )
    return [DeploymentRow(*row) for row in rows]


def earliest_due(tx: Tx) -> int | None:
    """The next due time of any deployment (None: nothing scheduled)."""
    row = tx.query_one("SELECT MIN(next_due_us) FROM deployments", ())
    return None if row is None or row[0] is None else int(row[0])


def existing_runs(tx: Tx, run_pathspecs: list[str]) -> set[str]:
    """Which of `run_pathspecs` have started."""
    found: set[str] = set()
    for start in range(0, len(run_pathspecs), 500):
        chunk = run_pathspecs[start : start + 500]
        condition, params = tx.dialect.one_of("pathspec", chunk)
        found.update(row[0] for row in tx.query(f"SELECT pathspec FROM runs WHERE {condition}",
                                                 params))  # fmt: skip
    return found


def listening(tx: Tx, cause: str) -> list[DeploymentRow]:
    """The live (not paused, not deleted) deployments that `cause` starts
    (read_models.deployments.finish_cause / event_cause), by name."""
    rows = tx.query(
        _SELECT + "listens_to LIKE ? AND paused = 0 AND deleted = 0 ORDER BY name",
        (f"% {cause} %",),
    )
    # LIKE reads '_' as any one character: keep the exact matches only.
    found = [DeploymentRow(*row) for row in rows]
    return [row for row in found if f" {cause} " in row.listens_to]


def upstreams(tx: Tx) -> dict[str, list[str]]:
    """Each deployment that waits for others' runs, with the deployments it waits for
    (deleted ones left out): the graph a new @trigger_on_finish must not close a cycle
    in. Read from `listens_to` (no spec is parsed under the append lock)."""
    rows = tx.query(
        "SELECT name, listens_to FROM deployments WHERE listens_to LIKE ? AND deleted = 0",
        ("% finish:%",),
    )
    prefix = "finish:"
    return {name: [cause.removeprefix(prefix) for cause in listens.split()
                   if cause.startswith(prefix)] for name, listens in rows}  # fmt: skip


def every_name(tx: Tx) -> list[tuple[str, str]]:
    """(name, flow name) of every deployment there ever was, deleted ones included."""
    return [(row[0], row[1]) for row in tx.query("SELECT name, flow_name FROM deployments", ())]


def live_names(tx: Tx, names: list[str]) -> set[str]:
    """Which of `names` are deployments that exist (not deleted)."""
    if not names:
        return set()
    condition, params = tx.dialect.one_of("name", names)
    rows = tx.query(f"SELECT name FROM deployments WHERE deleted = 0 AND {condition}", params)
    return {row[0] for row in rows}
