"""The gRPC transport: a thin layer that authenticates the caller, hands the request
message to the application layer and maps its errors onto gRPC status codes."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from ledgerflow.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2,
    query_service_pb2_grpc,
    tag_service_pb2,
    tag_service_pb2_grpc,
)

from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.auth import Principal, TokenTable, unauthenticated
from ledgerflow_service.errors import LedgerError

log = logging.getLogger("ledgerflow.service")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
USER_METADATA_KEY = "ledgerflow-user"
Response = TypeVar("Response")


class _Malformed:
    """Stands in for a request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answers undecodable request bytes with INVALID_ARGUMENT (grpcio's own answer is
    INTERNAL, which tells the caller nothing useful about whose fault it is)."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer

        def tolerant_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as error:  # protobuf raises DecodeError and others
                return _Malformed(f"{details.method}: the request is not a valid message: {error}")

        def guard(behaviour: Any) -> Any:
            if behaviour is None:
                return None

            def checked(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, _Malformed):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
                return behaviour(request, context)

            return checked

        return handler._replace(
            request_deserializer=tolerant_decode,
            unary_unary=guard(handler.unary_unary),
            unary_stream=guard(handler.unary_stream),
        )


class _Gate:
    """Authentication and error mapping shared by every servicer."""

    def __init__(self, app: LedgerApplication, tokens: TokenTable | None) -> None:
        self.app = app
        self.tokens = tokens

    def principal(self, context: grpc.ServicerContext, claimed_user: str = "") -> Principal:
        metadata = dict(context.invocation_metadata())
        if self.tokens is not None:
            return self.tokens.authenticate(str(metadata.get("authorization") or ""))
        return unauthenticated(claimed_user or str(metadata.get(USER_METADATA_KEY, "")))

    def call(
        self, context: grpc.ServicerContext, work: Callable[[Principal], Response]
    ) -> Response:
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
            return work(self.principal(context))
        except LedgerError as error:
            context.abort(error.code, error.message)
        raise AssertionError("unreachable")  # context.abort raises

    def call_with_claim(
        self,
        context: grpc.ServicerContext,
        claimed_user: str,
        work: Callable[[Principal], Response],
    ) -> Response:
        return self.call(context, lambda _: work(self.principal(context, claimed_user)))


class LedgerServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self, gate: _Gate) -> None:
        self.gate = gate

    def Append(
        self, request: ledger_service_pb2.AppendRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.AppendResponse:
        def still_wanted() -> bool:
            remaining = context.time_remaining()
            return context.is_active() and (remaining is None or remaining > 0)

        return self.gate.call_with_claim(
            context,
            request.claimed_user,
            lambda who: self.gate.app.append(request, who, still_wanted),
        )

    def WatchEvents(
        self, request: ledger_service_pb2.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[ledger_service_pb2.WatchEventsResponse]:
        stream = self.gate.call(
            context, lambda _: self.gate.app.watch_events(request, context.is_active)
        )
        try:
            yield from stream
        except LedgerError as error:
            context.abort(error.code, error.message)


def _delegate(gate: _Gate, method: str) -> Callable[[Any, Any, grpc.ServicerContext], Any]:
    def handler(_self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        return gate.call(context, lambda _: getattr(gate.app, method)(request))

    return handler


def _query_servicer(gate: _Gate) -> query_service_pb2_grpc.QueryServiceServicer:
    methods = {
        rpc: _delegate(gate, snake)
        for rpc, snake in [
            ("GetFlow", "get_flow"),
            ("ListFlows", "list_flows"),
            ("GetRun", "get_run"),
            ("ListRuns", "list_runs"),
            ("ListSteps", "list_steps"),
            ("ListTasks", "list_tasks"),
            ("GetTask", "get_task"),
            ("ListArtifacts", "list_artifacts"),
        ]
    }
    cls = type("QueryServicer", (query_service_pb2_grpc.QueryServiceServicer,), methods)
    return cls()


def _audit_servicer(gate: _Gate) -> audit_service_pb2_grpc.AuditServiceServicer:
    methods = {
        "ListEvents": _delegate(gate, "list_events"),
        "GetRunAsOf": _delegate(gate, "get_run_as_of"),
    }
    cls = type("AuditServicer", (audit_service_pb2_grpc.AuditServiceServicer,), methods)
    return cls()


class TagServicer(tag_service_pb2_grpc.TagServiceServicer):
    def __init__(self, gate: _Gate) -> None:
        self.gate = gate

    def AddTags(
        self, request: tag_service_pb2.AddTagsRequest, context: grpc.ServicerContext
    ) -> tag_service_pb2.AddTagsResponse:
        return self.gate.call_with_claim(
            context, request.claimed_user, lambda who: self.gate.app.add_tags(request, who)
        )

    def RemoveTags(
        self, request: tag_service_pb2.RemoveTagsRequest, context: grpc.ServicerContext
    ) -> tag_service_pb2.RemoveTagsResponse:
        return self.gate.call_with_claim(
            context, request.claimed_user, lambda who: self.gate.app.remove_tags(request, who)
        )


SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in [
        (ledger_service_pb2, "LedgerService"),
        (query_service_pb2, "QueryService"),
        (tag_service_pb2, "TagService"),
        (audit_service_pb2, "AuditService"),
    ]
)


def build_server(
    app: LedgerApplication,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    tokens: TokenTable | None = None,
    max_workers: int = 32,
    reuse_port: bool = False,
) -> tuple[grpc.Server, int]:
    """Builds and starts the server; returns it with the bound port (port 0 picks one).
    `reuse_port` lets several processes listen on the same port (see workers.py)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ledgerflow-rpc"),
        interceptors=[MalformedRequestInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    gate = _Gate(app, tokens)
    ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(gate), server)
    query_service_pb2_grpc.add_QueryServiceServicer_to_server(_query_servicer(gate), server)
    tag_service_pb2_grpc.add_TagServiceServicer_to_server(TagServicer(gate), server)
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(_audit_servicer(gate), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"could not listen on {address}: is the port in use?")
    app.start_listening()
    server.start()
    return server, bound


def serve_until_signalled(
    app: LedgerApplication, server: grpc.Server, *, grace_seconds: float = 5.0
) -> None:
    """Blocks until SIGTERM or SIGINT, then drains in-flight calls and closes."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):  # a timed wait: a signal handler can always end it
        pass
    log.info("shutting down: draining calls for up to %.0f s", grace_seconds)
    app.close_watchers()
    server.stop(grace_seconds).wait()
    app.close()
