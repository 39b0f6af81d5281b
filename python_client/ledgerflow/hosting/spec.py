"""What the author of a hosted service writes, and how the server reads it.

    class MyWebService(WebServiceSpec):
        @endpoint
        def predict(self, request: Features):   # a pydantic model: 422 naming bad fields
            if request.age > 150:
                raise HTTPError(400, "age: over 150")
            return {"score": self.artifacts.flow.model.score(request)}

        def accept(self, run):                   # may a new run replace the served one?
            return not math.isnan(self.artifacts.flow.loss)

An endpoint takes ``(self)`` or ``(self, request)``; `request` is the request's fields as
a dict, or an instance of the pydantic model its annotation names. It may be ``async``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ledgerflow import client
from ledgerflow.exceptions import LedgerflowException
from ledgerflow.hosting.artifacts import ArtifactsView

_ENDPOINT = "_ledgerflow_endpoint"
# Paths the server answers itself; an endpoint cannot take them.
RESERVED = frozenset({"health", "ready", "docs", "accept"})


def endpoint(func: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a method of a WebServiceSpec as an endpoint served at ``/<its name>``."""
    setattr(func, _ENDPOINT, True)
    return func


class HTTPError(Exception):
    """Raised by an endpoint to answer `status` (400-599) with ``{"error": detail}``
    instead of its result: ``raise HTTPError(404, f"no customer {request.id}")``.
    `detail` is text or any JSON value; it defaults to the status's name."""

    def __init__(self, status: int, detail: Any = None) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError needs a status from 400 to 599, not {status!r}")
        self.status = status
        self.detail = HTTPStatus(status).phrase if detail is None else detail
        super().__init__(status, self.detail)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class WebServiceSpec:
    """Base class of a hosted service: subclass it and mark methods with @endpoint.
    Inside an endpoint, ``self.artifacts.flow`` is the bound run's artifacts and
    ``self.run`` the run itself."""

    artifacts: ArtifactsView
    run: client.Run

    def accept(self, run: client.Run) -> bool:
        """Whether the service may switch to `run`, a newer successful run. It is asked
        on a service already bound to `run` (``self.artifacts`` reads its artifacts, and
        what it reads stays read for the requests to come) before any request sees it.
        Return False, or raise (the message is the reason), to keep the served run: the
        refusal is logged and `run` is not asked about again. Every run is accepted by
        default; a pinned run (``--pin``) is never asked about."""
        return True

    @classmethod
    def endpoints(cls) -> dict[str, Callable[..., Any]]:
        return {
            name: member
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if getattr(member, _ENDPOINT, False)
        }


class ServiceError(LedgerflowException):
    """A service file or class the server cannot serve (said before it starts)."""


@dataclass(frozen=True)
class Endpoint:
    """One endpoint, as the server calls and describes it."""

    name: str
    function: Callable[..., Any]
    takes_request: bool
    is_async: bool
    # The pydantic model the request is validated into; None: the request is a dict.
    request_model: type | None
    # The pydantic model its answers are, when the return annotation names one (docs only).
    response_model: type | None
    summary: str
    description: str


def describe(service_class: type[WebServiceSpec]) -> list[Endpoint]:
    """The endpoints of `service_class`, sorted by name; a ServiceError for one the
    server cannot call (a reserved name, a signature other than (self[, request])) or
    an async accept()."""
    if inspect.iscoroutinefunction(service_class.accept):
        raise ServiceError(f"{service_class.__name__}.accept: a plain def, not async def")
    described = []
    for name, function in sorted(service_class.endpoints().items()):
        where = f"{service_class.__name__}.{name}"
        if name in RESERVED:
            raise ServiceError(f"{where}: /{name} is the server's own; name the endpoint otherwise")
        parameters = list(inspect.signature(function).parameters.values())[1:]
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if len(parameters) > 1 or any(p.kind not in positional for p in parameters):
            raise ServiceError(f"{where}: an endpoint takes (self) or (self, request)")
        hints, unresolved = _hints(function)
        request_model = None
        if parameters:
            annotation = parameters[0].annotation
            if isinstance(annotation, str):
                if hints is None:
                    raise ServiceError(
                        f"{where}: cannot resolve the type {annotation!r} of "
                        f"{parameters[0].name}: {unresolved}"
                    )
                annotation = hints.get(parameters[0].name)
            request_model = annotation if _is_model(annotation) else None
        returned = (hints or {}).get("return")
        doc = inspect.getdoc(function) or ""
        described.append(
            Endpoint(
                name=name,
                function=function,
                takes_request=bool(parameters),
                is_async=inspect.iscoroutinefunction(function),
                request_model=request_model,
                response_model=returned if _is_model(returned) else None,
                summary=doc.split("\n\n")[0].replace("\n", " ") or name,
                description=doc,
            )
        )
    return described


def _hints(function: Callable[..., Any]) -> tuple[dict[str, Any] | None, str]:
    try:
        return typing.get_type_hints(function), ""
    except Exception as error:  # a name only a TYPE_CHECKING block imports, a typo
        return None, f"{type(error).__name__}: {error}"


def _is_model(annotation: Any) -> bool:
    """Whether `annotation` is a pydantic model (pydantic is imported only by a service
    that uses it)."""
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(annotation, type)
        and issubclass(annotation, pydantic.BaseModel)
    )


def load_service(path: Path) -> type[WebServiceSpec]:
    """Imports the service file as ``python FILE`` would run it (its folder first on
    sys.path, and left there: a model's module beside it imports later too) and returns
    the WebServiceSpec subclass it defines."""
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"_ledgerflow_hosted_{path.stem}"
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None  # a loader was given
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for pickle and pydantic, which look classes up by module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, WebServiceSpec)
        and value is not WebServiceSpec and value.__module__ == name
    ]  # fmt: skip
    if len(found) != 1:
        raise ServiceError(
            f"{path} must define exactly one WebServiceSpec subclass, found {len(found)}"
        )
    if not found[0].endpoints():
        raise ServiceError(f"{found[0].__name__} has no @endpoint method")
    return found[0]
