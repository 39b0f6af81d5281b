"""``ledgerflow ui``: a web application over the ledger, rendered on the server (Starlette
and Jinja2; a few lines of script for live updates), with no database of its own.

Pages: the runs (filters, search and sort in the URL: runs_filter.py; paged), a run (its
graph, steps, parameters, tags, timeline), a step (its tasks' foreach inputs, by status:
step_page.py; paged), a task (attempts, error, resources, logs,
artifacts with previews and downloads, its cards each in a sandboxed frame), a run's
audit (its events in order with their payloads: audit_view.py, and the run as it was
at a chosen time), the deployments (their schedules and last runs), the tables (their
versions and who wrote and read each: tables_page.py), the executors (their capacity and
what they run: executors_page.py). The runs and run pages follow
the ledger's watch stream (server-sent events from /live) and redraw what changed
without a reload.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ledgerflow.engine.triggers import describe_notify, describe_triggers
from ledgerflow.exceptions import LedgerflowNotFound, RpcError
from ledgerflow.metadata_client import EmbeddedMetadata, MetadataClient
from ledgerflow.ui import artifacts as shown
from ledgerflow.ui import audit_view, executors_page, model, runs_filter, step_page, tables_page
from ledgerflow.ui import logs as task_logs
from ledgerflow.ui.dag import svg
from ledgerflow.ui.foreach import SplitCounts, plan_counts
from ledgerflow.ui.live import ANY_RUN, LiveFeed
from ledgerflow.ui.timeline import Timelines
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
    )
    metadata = connect()
    feed = LiveFeed(connect)
    timelines = Timelines()
    splits = SplitCounts()
    previews = shown.Previews(store)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    async def call(request: Request, work: Callable[[], Response], data: bool = False) -> Response:
        """Runs a page's ledger reads off the event loop; ledger errors become pages (for
        `data`, a JSON answer: `{"error": "..."}`)."""
        try:
            return await asyncio.to_thread(work)
        except LedgerflowNotFound as error:
            if data:
                return JSONResponse({"error": str(error)}, 404, {"Cache-Control": "no-store"})
            return page(request, "error.html", 404, title="Not found", message=str(error))
        except RpcError as error:
            title = "The metadata service cannot be reached" if error.retryable else "Refused"
            status_code = 503 if error.retryable else 400
            if data:
                return JSONResponse({"error": f"{title}: {error.message}"}, status_code,
                                    {"Cache-Control": "no-store"})  # fmt: skip
            return page(request, "error.html", status_code, title=title, message=error.message)

    async def runs(request: Request) -> Response:
        query = runs_filter.RunsQuery.from_query(request.query_params)

        def work() -> Response:
            found = runs_filter.list_runs(metadata, query)
            template = "runs_rows.html" if request.query_params.get("rows") else "runs.html"
            return page(request, template, 400 if query.problems else 200, runs=found.runs,
                        next_page=found.next_page, notes=found.notes, query=query,
                        statuses=list(model.STATUS_VALUES))  # fmt: skip

        return await call(request, work)

    async def run(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]
        fragment = bool(request.query_params.get("fragment"))

        def work() -> Response:
            view = model.run_view(metadata, flow, run_id)
            plan_counts(metadata, flow, run_id, view.steps, splits)
            graph = svg(view.steps, f"/runs/{flow}/{run_id}/{{step}}")
            if fragment:
                return page(request, "run_live.html", view=view, graph=graph)
            tasks = timelines.json(metadata, flow, run_id)  # drawn at once: no second request
            return page(request, "run.html", view=view, graph=graph, timeline=tasks)

        return await call(request, work)

    async def tag_history(request: Request) -> Response:
        """The changes of a run's tags, as a list for its page (read when opened)."""
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]

        def work() -> Response:
            history = model.tag_history(metadata, flow, run_id)
            return page(request, "_tag_history.html", tag_history=history)

        return await call(request, work)

    async def timeline(request: Request) -> Response:
        """The run's tasks for its timeline, as compact JSON (ui/timeline.py)."""
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]

        def work() -> Response:
            return Response(timelines.json(metadata, flow, run_id), media_type="application/json",
                            headers={"Cache-Control": "no-store"})  # fmt: skip

        return await call(request, work, data=True)

    async def step(request: Request) -> Response:
        flow, run_id, step_name = (request.path_params[k] for k in ("flow", "run_id", "step"))

        wanted = request.query_params.get("status", "")
        wanted = wanted if wanted in step_page.STATUS_FILTERS else ""
        number = request.query_params.get("page", "1")
        asked = int(number) if number.isdigit() else 1

        def work() -> Response:
            found = step_page.step_rows(metadata, store, flow, run_id, step_name, wanted, asked)
            if not found.counts:
                raise LedgerflowNotFound(f"run {flow}/{run_id} has no step {step_name!r}")
            return page(request, "step.html", flow=flow, run_id=run_id, step=step_name,
                        rows=found.rows, counts=found.counts, wanted=wanted,
                        filters=step_page.STATUS_FILTERS, page_number=found.page,
                        pages=found.pages)  # fmt: skip

        return await call(request, work)

    async def task(request: Request) -> Response:
        keys = ("flow", "run_id", "step", "task_id")
        flow, run_id, step_name, task_id = (request.path_params[k] for k in keys)
        template = "task_live.html" if request.query_params.get("fragment") else "task.html"

        def work() -> Response:
            found = model.task_view(metadata, flow, run_id, step_name, task_id)
            artifacts = model.artifacts_of(metadata, flow, run_id, step_name, task_id)
            logs = task_logs.attempt_logs(store, found)
            shown_previews = {a.name: previews.of(a) for a in artifacts}
            return page(request, template, task=found, artifacts=artifacts, logs=logs,
                        previews=shown_previews, formats=shown.FORMATS, flow=flow, run_id=run_id,
                        cards=model.cards_of(found))  # fmt: skip

        return await call(request, work)

    async def log(request: Request) -> Response:
        """One attempt's stdout or stderr, as a plain text file."""
        keys = ("flow", "run_id", "step", "task_id")
        flow, run_id, step_name, task_id = (request.path_params[k] for k in keys)
        attempt, stream = request.path_params["attempt"], request.path_params["stream"]

        def work() -> Response:
            found = model.task_view(metadata, flow, run_id, step_name, task_id)
            text, name = task_logs.log_of(store, found, attempt, stream)
            return Response(text, media_type="text/plain; charset=utf-8", headers={
                "Content-Disposition": shown.attachment(name),
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
            })  # fmt: skip

        return await call(request, work)

    async def artifact(request: Request) -> Response:
        keys = ("flow", "run_id", "step", "task_id", "name")
        flow, run_id, step_name, task_id, name = (request.path_params[k] for k in keys)

        def work() -> Response:
            for found in model.artifacts_of(metadata, flow, run_id, step_name, task_id):
                if found.name == name:
                    form = request.query_params.get("format", "")
                    data, media, headers = shown.response(store, previews, found, form)
                    return Response(data, media_type=media, headers=headers)
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
                        past=past, as_of=as_of_text, payload=audit_view)  # fmt: skip

        return await call(request, work)

    async def tables(request: Request) -> Response:
        """The tables steps wrote, by name (in one namespace, or all)."""
        namespace = request.query_params.get("namespace", "").strip()

        def work() -> Response:
            found = tables_page.list_tables(metadata, namespace)
            return page(request, "tables.html", tables=found.tables, cut=found.cut,
                        namespace=namespace)  # fmt: skip

        return await call(request, work)

    async def table(request: Request) -> Response:
        """A table's versions, each with the task that wrote it and those that read it."""
        namespace, name = request.path_params["namespace"], request.path_params["table"]

        def work() -> Response:
            versions = tables_page.table_versions(metadata, namespace, name)
            return page(request, "table.html", namespace=namespace, table=name,
                        versions=versions)  # fmt: skip

        return await call(request, work)

    async def deployments(request: Request) -> Response:
        """The deployments, each with its schedule and its last runs (what fired them)."""

        def work() -> Response:
            views = model.deployment_views(metadata)
            return page(request, "deployments.html", deployments=views,
                        recent=model.RECENT_RUNS)  # fmt: skip

        return await call(request, work)

    async def executors(request: Request) -> Response:
        """The executors that asked the service for work recently, their capacity and
        the task attempts they run, and the queue: the open tasks of every remote run,
        oldest first, each with why it waits (ui/executors_page.py)."""

        def work() -> Response:
            if isinstance(metadata, EmbeddedMetadata):  # no executor asks an embedded ledger
                return page(request, "executors.html", embedded=True)
            found = metadata.executors()
            shown = executors_page
            limit = shown.QUEUE_SHOWN
            queue = list(itertools.islice(metadata.queued_tasks(), limit + 1))
            return page(request, "executors.html", embedded=False, executors=found.executors,
                        within=found.seen_within_seconds, free_of_total=shown.free_of_total,
                        queue_names=shown.queue_names, task_state=shown.task_state,
                        queue=queue[:limit], more_queued=len(queue) > limit,
                        queue_shown=limit)  # fmt: skip

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
        Route("/runs/{flow}/{run_id}/timeline.json", timeline),
        Route("/runs/{flow}/{run_id}/tag-history", tag_history),
        Route("/runs/{flow}/{run_id}/{step}", step),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}", task),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}/artifacts/{name}", artifact),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}/logs/{attempt:int}/{stream}", log),
        Route("/runs/{flow}/{run_id}/{step}/{task_id}/cards/{number:int}", card),
        Route("/deployments", deployments),
        Route("/tables", tables),
        Route("/executors", executors),
        Route("/tables/{namespace}/{table}", table),
        Route("/live", live),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def _parse_time(text: str) -> datetime:
    try:
        return runs_filter.parse_time(text)  # the runs page's rule: no zone is UTC
    except ValueError:
        raise RpcError(
            "INVALID_ARGUMENT", f"{text!r} is not a time such as 2026-11-27T09:30:00"
        ) from None
