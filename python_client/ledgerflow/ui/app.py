"""``ledgerflow ui``: a web application over the ledger, rendered on the server (Starlette
and Jinja2; a few lines of script for live updates), with no database of its own.

Pages: the runs (filter by flow, user, tag, status; newest first; paged), a run (its
graph, steps, parameters, tags, timeline), a task (attempts, error, resources, logs,
artifacts with previews and downloads, its cards each in a sandboxed frame), a run's
audit (its events in order, and the run as it was at a chosen time), the deployments
(their schedules and last runs). The runs and run pages follow the ledger's watch
stream (server-sent events from /live) and redraw what changed without a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ledgerflow.engine.triggers import describe_notify, describe_triggers
from ledgerflow.exceptions import LedgerflowNotFound, RpcError
from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui import model
from ledgerflow.ui.dag import svg
from ledgerflow.ui.live import ANY_RUN, LiveFeed
from ledgerflow.v1 import audit_service_pb2

HERE = Path(__file__).parent


def build_app(connect: Callable[[], MetadataClient], store: Any, where: str) -> Starlette:
    """The UI over the ledger `connect` reaches (`where` names it on every page)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        status=model.STATUS,
        when=model.when,
        duration=model.duration,
        utc=model.utc,
        in_zone=model.in_zone,
        trigger_kind=model.trigger_kind,
        deployment_anchor=model.deployment_anchor,
        describe_triggers=describe_triggers,
        describe_notify=describe_notify,
        where=where,
        now=lambda: datetime.now(UTC),
    )
    metadata = connect()
    feed = LiveFeed(connect)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    async def call(request: Request, work: Callable[[], Response]) -> Response:
        """Runs a page's ledger reads off the event loop; ledger errors become pages."""
        try:
            return await asyncio.to_thread(work)
        except LedgerflowNotFound as error:
            return page(request, "error.html", 404, title="Not found", message=str(error))
        except RpcError as error:
            title = "The metadata service cannot be reached" if error.retryable else "Refused"
            status_code = 503 if error.retryable else 400
            return page(request, "error.html", status_code, title=title, message=error.message)

    async def runs(request: Request) -> Response:
        filters = {k: request.query_params.get(k, "").strip()
                   for k in ("flow", "user", "tag", "status")}  # fmt: skip
        token = request.query_params.get("page", "")

        def work() -> Response:
            found = model.list_runs(metadata, token=token, **filters)
            template = "runs_rows.html" if request.query_params.get("rows") else "runs.html"
            return page(request, template, runs=found.runs, next_token=found.next_token,
                        filters=filters, statuses=list(model.STATUS_VALUES))  # fmt: skip

        return await call(request, work)

    async def run(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]
        fragment = bool(request.query_params.get("fragment"))

        def work() -> Response:
            view = model.run_view(metadata, flow, run_id)
            graph = svg(view.steps, f"/runs/{flow}/{run_id}/{{step}}")
            if fragment:
                return page(request, "run_live.html", view=view, graph=graph)
            history = model.tag_history(metadata, flow, run_id)
            return page(request, "run.html", view=view, graph=graph, tag_history=history)

        return await call(request, work)

    async def step(request: Request) -> Response:
        flow, run_id, step_name = (request.path_params[k] for k in ("flow", "run_id", "step"))

        def work() -> Response:
            tasks = model.step_tasks(metadata, flow, run_id, step_name)
            if not tasks:
                raise LedgerflowNotFound(f"run {flow}/{run_id} has no step {step_name!r}")
            return page(request, "step.html", flow=flow, run_id=run_id, step=step_name,
                        tasks=tasks)  # fmt: skip

        return await call(request, work)

    async def task(request: Request) -> Response:
        keys = ("flow", "run_id", "step", "task_id")
        flow, run_id, step_name, task_id = (request.path_params[k] for k in keys)
        template = "task_live.html" if request.query_params.get("fragment") else "task.html"

        def work() -> Response:
            found = model.task_view(metadata, flow, run_id, step_name, task_id)
            artifacts = model.artifacts_of(metadata, flow, run_id, step_name, task_id)
            logs = {}
            if found.attempts:
                last = found.attempts[-1]
                for stream, key in (("stdout", last.stdout_key), ("stderr", last.stderr_key)):
                    logs[stream] = store.load(key, "raw").decode(errors="replace") if key else ""
            previews = {a.name: model.preview(store, a) for a in artifacts}
            return page(request, template, task=found, artifacts=artifacts, logs=logs,
                        previews=previews, flow=flow, run_id=run_id,
                        cards=model.cards_of(found))  # fmt: skip

        return await call(request, work)

    async def artifact(request: Request) -> Response:
        keys = ("flow", "run_id", "step", "task_id", "name")
        flow, run_id, step_name, task_id, name = (request.path_params[k] for k in keys)

        def work() -> Response:
            for found in model.artifacts_of(metadata, flow, run_id, step_name, task_id):
                if found.name == name:
                    blob = store.storage.get_bytes(found.content_key)
                    return Response(blob, media_type="application/octet-stream", headers={
                        "Content-Disposition": f'attachment; filename="{name}.{found.serializer}"'
                    })  # fmt: skip
            raise LedgerflowNotFound(f"task {flow}/{run_id}/{step_name}/{task_id} has no "
                                     f"artifact {name!r}")  # fmt: skip

        return await call(request, work)

    async def card(request: Request) -> Response:
        """A card's page, isolated: it is user content, so the response itself is a
        sandbox (scripts run, but in an opaque origin that reaches neither this site nor
        the network)."""
        keys = ("flow", "run_id", "step", "task_id")
        flow, run_id, step_name, task_id = (request.path_params[k] for k in keys)
        number = request.path_params["number"]

        def work() -> Response:
            found = model.task_view(metadata, flow, run_id, step_name, task_id)
            cards = model.cards_of(found)
            if not 0 <= number < len(cards):
                raise LedgerflowNotFound(f"task {found.pathspec} has no card {number}")
            html = store.storage.get_bytes(cards[number].content_key)
            return Response(html, media_type="text/html; charset=utf-8",
                            headers=model.CARD_HEADERS)  # fmt: skip

        return await call(request, work)

    async def audit(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]
        as_of_text = request.query_params.get("as_of", "").strip()

        def work() -> Response:
            as_of = _parse_time(as_of_text) if as_of_text else None
            events = model.events_of(metadata, flow, run_id)
            past = None
            if as_of is not None:
                asked = audit_service_pb2.GetRunAsOfRequest(flow_name=flow, run_id=run_id)
                asked.as_of.FromDatetime(as_of)
                asked.page.page_size = 1000
                past = metadata.get_run_as_of(asked)
            return page(request, "audit.html", flow=flow, run_id=run_id, events=events,
                        past=past, as_of=as_of_text)  # fmt: skip

        return await call(request, work)

    async def deployments(request: Request) -> Response:
        """The deployments, each with its schedule and its last runs (what fired them)."""

        def work() -> Response:
            views = model.deployment_views(metadata)
            return page(request, "deployments.html", deployments=views,
                        recent=model.RECENT_RUNS)  # fmt: skip

        return await call(request, work)

    async def live(request: Request) -> Response:
        """Server-sent events: one `changed` message a time something happens in the run
        (or in any run, for `*`), at most every 0.1 s."""
        target = request.query_params.get("run", ANY_RUN)

        async def stream() -> AsyncIterator[str]:
            queue = feed.listen(target)
            try:
                yield "retry: 1000\n\n"
                while True:
                    note = await queue.get()
                    await asyncio.sleep(0.1)  # events come in bursts: one redraw a burst
                    while not queue.empty():
                        note = queue.get_nowait()
                    yield f"data: {note}\n\n"
            finally:
                feed.forget(target, queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    async def not_found(request: Request, _: Exception) -> Response:
        return page(request, "error.html", 404, title="Not found",
                    message=f"nothing is at {request.url.path}")  # fmt: skip

    routes = [
        Route("/", runs),
        Route("/runs/{flow}/{run_id}", run),
        Route("/runs/{flow}/{run_id}/audit", audit),
        Route("/runs/{flow}/{run_id}/{step}", step),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}", task),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}/artifacts/{name}", artifact),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}/cards/{number:int}", card),
        Route("/deployments", deployments),
        Route("/live", live),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RpcError(
            "INVALID_ARGUMENT", f"{text!r} is not a time such as 2026-11-27T09:30:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
