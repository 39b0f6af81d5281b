"""Hosting: a flow's results served over HTTP, as the talk's "Metaflow Hosting".

    class MyWebService(WebServiceSpec):
        @endpoint
        def show_data(self, request_dict):
            result = self.artifacts.flow.x
            return {'result': result}

``ledgerflow host serve service.py --flow MyFlow`` serves each endpoint at ``/NAME``
(GET: the query parameters are `request_dict`; POST: the JSON body). The artifacts are
those of the end step of the flow's latest successful run in the chosen namespace; a
newer successful run is picked up from the ledger's watch stream while requests go on.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ledgerflow import client
from ledgerflow.engine.deployments import production_namespace_of
from ledgerflow.exceptions import LedgerflowException
from ledgerflow.v1 import ledger_service_pb2

log = logging.getLogger("ledgerflow.hosting")
RUN_HEADER = "x-ledgerflow-run"
_ENDPOINT = "_ledgerflow_endpoint"


def endpoint(func: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a method of a WebServiceSpec as an endpoint served at ``/<its name>``."""
    setattr(func, _ENDPOINT, True)
    return func


class _Artifacts:
    """``self.artifacts.flow.NAME``: the bound run's end-step artifacts, each read on
    first use (the end task's DataArtifact keeps the value for the life of the binding;
    the lock makes concurrent first requests read it once)."""

    def __init__(self, run: client.Run) -> None:
        self._run = run
        self._task = run.end_task
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._task is None or name not in self._task:
                raise AttributeError(f"run {self._run.pathspec} has no artifact {name!r}")
            return self._task[name].data


class _ArtifactsView:
    def __init__(self, flow: _Artifacts) -> None:
        self.flow = flow


class WebServiceSpec:
    """Base class of a hosted service: subclass it and mark methods with @endpoint.
    Inside an endpoint, ``self.artifacts.flow`` is the bound run's artifacts and
    ``self.run`` the run itself."""

    artifacts: _ArtifactsView
    run: client.Run

    @classmethod
    def endpoints(cls) -> dict[str, Callable[..., Any]]:
        return {
            name: member
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if getattr(member, _ENDPOINT, False)
        }


class NoRunYet(LedgerflowException):
    """The bound flow has no successful run in the namespace."""


def serving_namespace(flow_name: str, requested: str | None) -> str:
    """The namespace a service reads: the one asked for; else the newest production
    namespace among the flow's runs (a ``production:...`` tag), else the user's."""
    if requested:
        return requested
    client.namespace(None)
    try:
        for run in client.Flow(flow_name).runs():
            production = production_namespace_of(run.tags)
            if production:
                return production
    except LedgerflowException:
        pass
    return f"user:{client._config().username}"


class Binding:
    """Which run a service answers from: the flow's latest successful run in the
    namespace, swapped atomically when a newer one succeeds (requests in flight keep
    the run they started with)."""

    def __init__(self, service_class: type[WebServiceSpec], flow_name: str, namespace: str):
        self.service_class, self.flow_name, self.namespace = service_class, flow_name, namespace
        self.current: WebServiceSpec | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def refresh(self) -> None:
        """Binds the latest successful run, when it is not the one bound already."""
        client.namespace(self.namespace)
        try:
            latest = client.Flow(self.flow_name).latest_successful_run
        except LedgerflowException:
            latest = None
        if latest is None:
            return
        with self._lock:
            if self.current is not None and self.current.run.pathspec == latest.pathspec:
                return
            service = self.service_class()
            service.run = latest
            service.artifacts = _ArtifactsView(_Artifacts(latest))
            self.current = service
        log.info("serving %s", latest.pathspec)

    def follow(self) -> None:
        """Re-binds whenever a run of the flow finishes (the ledger's watch stream),
        until stop(); reconnects when the stream breaks."""
        threading.Thread(target=self._follow, name="ledgerflow-hosting", daemon=True).start()

    def _follow(self) -> None:
        request = ledger_service_pb2.WatchEventsRequest(event_types=["RunFinished"], from_head=True)
        while not self._stop.is_set():
            try:
                metadata, _ = client._clients()
                self.refresh()  # what finished while no stream was open
                for event in metadata.watch_events(request):
                    if self._stop.is_set():
                        return
                    finished = event.run_finished
                    if finished.flow_name == self.flow_name and finished.succeeded:
                        self.refresh()
            except Exception:  # a broken stream or an unreachable service: try again
                log.exception("the watch stream broke; reconnecting")
                time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()


# The largest request body an endpoint reads: a client cannot make the server hold more.
MAX_BODY_BYTES = 16 * 1024 * 1024


async def _body_within(request: Any, limit: int) -> bytes | None:
    """The request's body, or None once it is over `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(binding: Binding) -> Any:
    """The Starlette application: one route per endpoint, /health, /ready and
    /openapi.json."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    endpoints = binding.service_class.endpoints()

    def answer(body: Any, status: int = 200, run: str = "") -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={RUN_HEADER: run} if run else None)

    def route(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def handle(request: Request) -> JSONResponse:
            service = binding.current
            if service is None:
                return answer(
                    {
                        "error": f"no successful run of {binding.flow_name} in namespace "
                        f"{binding.namespace} yet"
                    },
                    503,
                )
            if request.method == "POST":
                raw = await _body_within(request, MAX_BODY_BYTES)
                if raw is None:
                    return answer({"error": f"the body is over {MAX_BODY_BYTES:,} bytes"}, 413)
                try:
                    request_dict = json.loads(raw) if raw else {}
                except ValueError as error:
                    return answer({"error": f"the body is not JSON: {error}"}, 400)
                except RecursionError:
                    return answer({"error": "the body's JSON is nested too deeply"}, 400)
                if not isinstance(request_dict, dict):
                    return answer({"error": "the body must be a JSON object"}, 400)
            else:
                request_dict = dict(request.query_params)
            run = service.run.pathspec
            try:
                result = await run_in_threadpool(method, service, request_dict)
                return answer(result, 200, run)
            except Exception as error:
                log.exception("endpoint %s failed on run %s", name, run)
                return answer({"error": f"{type(error).__name__}: {error}"}, 500, run)

        return handle

    async def health(_: Request) -> JSONResponse:
        return answer({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        service = binding.current
        if service is None:
            return answer({"ready": False, "reason": "no successful run yet"}, 503)
        return answer({"ready": True, "run": service.run.pathspec}, 200, service.run.pathspec)

    async def openapi(_: Request) -> JSONResponse:
        return answer(openapi_document(binding.service_class))

    routes = [Route(f"/{name}", route(name, method), methods=["GET", "POST"])
              for name, method in endpoints.items()]  # fmt: skip
    routes += [
        Route("/health", health),
        Route("/ready", ready),
        Route("/openapi.json", openapi),
    ]
    return Starlette(routes=routes)


def openapi_document(service_class: type[WebServiceSpec]) -> dict[str, Any]:
    """An OpenAPI 3.1 description of the service's endpoints."""
    paths: dict[str, Any] = {}
    for name, method in service_class.endpoints().items():
        summary = (inspect.getdoc(method) or name).splitlines()[0]
        answers = {
            "200": {"description": "the endpoint's answer (JSON)"},
            "400": {"description": "the body is not a JSON object"},
            "500": {"description": "the endpoint raised"},
            "503": {"description": "no successful run to answer from yet"},
        }
        paths[f"/{name}"] = {
            "get": {"summary": summary, "description": "query parameters are request_dict",
                    "responses": answers},
            "post": {"summary": summary, "description": "the JSON body is request_dict",
                     "requestBody": {"content": {"application/json": {"schema":
                                     {"type": "object"}}}},
                     "responses": answers},
        }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": service_class.__name__, "version": "1"},
        "paths": paths,
    }
