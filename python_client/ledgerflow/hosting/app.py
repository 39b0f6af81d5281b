"""The HTTP side of a service (Starlette): one route per endpoint, /health, /ready,
/openapi.json and /docs.

A request to ``/NAME`` becomes the endpoint's `request`: GET's query parameters or
POST's JSON object, validated into the endpoint's request model when it names one. What
goes wrong is answered, never left to the framework: 503 before any run is bound, 413
for a body over the limit (read no further), 400 for a body that is not a JSON object,
422 naming each missing or invalid field (the endpoint is not called), the status of an
HTTPError the endpoint raises, and 500 for any other exception (its traceback in the
log). Every answer after the first check names its run in the ``x-ledgerflow-run``
header.
"""

from __future__ import annotations

import contextlib
import json
import logging
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ledgerflow.hosting.binding import Binding
from ledgerflow.hosting.docs import docs_page, openapi_document
from ledgerflow.hosting.encoding import to_json
from ledgerflow.hosting.spec import Endpoint, HTTPError, describe

log = logging.getLogger("ledgerflow.hosting")
RUN_HEADER = "x-ledgerflow-run"
# The largest request body an endpoint reads by default: a client cannot make the
# server hold more (``--max-body`` sets it).
MAX_BODY_BYTES = 16 * 1024 * 1024


class RequestRefused(Exception):
    """A request answered with `status` before its endpoint runs."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


def build_app(binding: Binding, *, max_body_bytes: int = MAX_BODY_BYTES) -> Any:
    """The Starlette application serving `binding`'s service."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    endpoints = describe(binding.service_class)
    document = openapi_document(binding.service_class.__name__, endpoints)
    page = docs_page(document)

    def answer(body: Any, status: int = 200, run: str = "") -> Response:
        return Response(
            to_json(body), status, {RUN_HEADER: run} if run else None, "application/json"
        )

    async def health(_: Request) -> Response:
        return answer({"status": "ok"})

    async def ready(_: Request) -> Response:
        service = binding.current
        if service is None:
            return answer({"ready": False, "reason": binding.waiting_for()}, 503)
        run = service.run.pathspec
        return answer({"ready": True, "run": run, **({"pinned": True} if binding.pinned else {})},
                      200, run)  # fmt: skip

    async def openapi(_: Request) -> Response:
        return answer(document)

    async def docs(_: Request) -> HTMLResponse:
        return HTMLResponse(page)

    routes = [
        Route(f"/{each.name}", _handler(binding, each, max_body_bytes, answer),
              methods=["GET", "POST"])
        for each in endpoints
    ]  # fmt: skip
    routes += [
        Route("/health", health),
        Route("/ready", ready),
        Route("/openapi.json", openapi),
        Route("/docs", docs),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        binding.stop()  # uvicorn ends the process by the signal it caught, after this

    return Starlette(routes=routes, lifespan=lifespan)


def _handler(
    binding: Binding, each: Endpoint, limit: int, answer: Callable[..., Any]
) -> Callable[[Any], Awaitable[Any]]:
    from starlette.concurrency import run_in_threadpool

    validate = _validator(each.request_model)
    lists = _list_fields(each.request_model)

    async def handle(request: Any) -> Any:
        service = binding.current
        if service is None:
            return answer({"error": binding.waiting_for()}, 503)
        run = service.run.pathspec
        try:
            if request.method == "POST":
                given = await _json_object(request, limit)
            else:
                query = request.query_params
                given = {key: query.getlist(key) if key in lists else query[key] for key in query}
            argument = validate(given)
        except RequestRefused as refused:
            return answer(refused.body, refused.status, run)
        arguments = (service, argument) if each.takes_request else (service,)
        try:
            if each.is_async:
                result = await each.function(*arguments)
            else:
                result = await run_in_threadpool(each.function, *arguments)
        except HTTPError as error:
            result, status = {"error": error.detail}, error.status
        except Exception as error:
            log.exception("endpoint %s failed on run %s", each.name, run)
            return answer({"error": f"{type(error).__name__}: {error}"}, 500, run)
        else:
            status = 200
        try:
            return answer(result, status, run)
        except (TypeError, ValueError, RecursionError) as error:
            log.error("the answer of endpoint %s on run %s has no JSON form: %s", each.name,
                      run, error)  # fmt: skip
            return answer({"error": f"the answer has no JSON form: {error}"}, 500, run)

    return handle


async def _json_object(request: Any, limit: int) -> dict[str, Any]:
    """The request's JSON body, an object ({} when empty); refused when over `limit`
    bytes (read no further), not JSON, or not an object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRefused(413, {"error": f"the body is over {limit:,} bytes"})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, {"error": f"the body is over {limit:,} bytes"})
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise RequestRefused(400, {"error": f"the body is not JSON: {error}"}) from None
    except RecursionError:
        raise RequestRefused(400, {"error": "the body's JSON is nested too deeply"}) from None
    if not isinstance(parsed, dict):
        raise RequestRefused(400, {"error": "the body must be a JSON object"})
    return parsed


def _list_fields(model: type | None) -> frozenset[str]:
    """The request model's fields that hold several values: in a query, each is given
    as often as it has values (``?tags=a&tags=b``)."""
    if model is None:
        return frozenset()
    several = (list, set, frozenset, tuple)
    found = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        options = typing.get_args(field.annotation) if _is_union(field.annotation) else ()
        for option in (field.annotation, *options):
            if option in several or typing.get_origin(option) in several:
                found.add(field.alias or name)
    return frozenset(found)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _validator(model: type | None) -> Callable[[dict[str, Any]], Any]:
    """What turns the request's fields into the endpoint's `request`: the dict itself,
    or an instance of `model` (422 naming each field that is missing or invalid)."""
    if model is None:
        return lambda given: given
    from pydantic import ValidationError

    def validate(given: dict[str, Any]) -> Any:
        try:
            return model.model_validate(given)  # type: ignore[attr-defined]
        except ValidationError as error:
            fields = [
                {
                    "field": ".".join(str(part) for part in problem["loc"]) or "(request)",
                    "message": problem["msg"],
                    "type": problem["type"],
                }
                for problem in error.errors(include_url=False, include_input=False)
            ]
            said = "; ".join(f"{field['field']}: {field['message']}" for field in fields)
            refused = {"error": f"invalid request: {said}", "fields": fields}
            raise RequestRefused(422, refused) from None

    return validate
