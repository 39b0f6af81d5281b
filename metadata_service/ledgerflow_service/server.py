"""The gRPC transport: a thin layer that authenticates the caller, hands the request
message to the application layer and maps its errors onto gRPC status codes.

Unary calls run on grpc's thread-pool server, the fastest path grpcio offers for
short blocking work. Watch streams do not pin a thread of that pool: their handler
registers the stream with the process's :class:`WatchHub` (an asyncio loop on a thread
of its own) and returns at once, and the hub sends events as they come, so thousands of
idle streams cost nothing. Every unary call gets a :class:`CallScope` from its
deadline, and a caller that goes away cancels the query running for it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
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
from ledgerflow_service.call_scope import DEFAULT_STATEMENT_TIMEOUT_SECONDS, CallScope
from ledgerflow_service.errors import LedgerError
from ledgerflow_service.watch_hub import DEFAULT_MAX_WATCHERS, WatchHub

log = logging.getLogger("ledgerflow.service")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
USER_METADATA_KEY = "ledgerflow-user"
# Threads running unary calls (queries and appends).
DEFAULT_CALL_THREADS = 32
Response = TypeVar("Response")
# The attributes by which grpcio's thread-pool server lets a streaming handler return
# at once and send its responses later through a callback (see WatchEvents).
_NON_BLOCKING_ATTRIBUTES = ("experimental_non_blocking", "experimental_thread_pool")


class _Malformed:
    """Stands in for a request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answers undecodable request bytes with INVALID_ARGUMENT, for every method of
    every service (ours, health, reflection) and every call shape. grpcio's own
    answer is INTERNAL or UNKNOWN, which tells the caller nothing about whose fault
    it is."""

    def __init__(self) -> None:
        # The guarded handler of each method, made once: handlers do not change.
        self._guarded: dict[str, Any] = {}

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        guarded = self._guarded.get(details.method)
        if guarded is None:
            guarded = _guard_handler(continuation(details), details.method)
            if guarded is not None:
                self._guarded[details.method] = guarded
        return guarded


def _guard_handler(handler: Any, method: str) -> Any:
    if handler is None or handler.request_deserializer is None:
        return handler
    decode = handler.request_deserializer

    def tolerant_decode(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as error:  # protobuf raises DecodeError and others
            return _Malformed(f"{method}: the request is not a valid message: {error}")

    return handler._replace(
        request_deserializer=tolerant_decode,
        unary_unary=_guard(handler.unary_unary, _check_one),
        unary_stream=_guard(handler.unary_stream, _check_one),
        stream_unary=_guard(handler.stream_unary, _check_each),
        stream_stream=_guard(handler.stream_stream, _check_each),
    )


def _check_one(request: Any, context: grpc.ServicerContext) -> Any:
    if isinstance(request, _Malformed):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
    return request


def _check_each(requests: Any, context: grpc.ServicerContext) -> Any:
    return (_check_one(request, context) for request in requests)


def _guard(behaviour: Any, check: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
    if behaviour is None:
        return None

    def guarded(request: Any, context: grpc.ServicerContext, *more: Any) -> Any:
        # `more`: the response callback of a non-blocking streaming handler
        return behaviour(check(request, context), context, *more)

    for name in _NON_BLOCKING_ATTRIBUTES:  # a non-blocking handler stays one
        if hasattr(behaviour, name):
            setattr(guarded, name, getattr(behaviour, name))
    return guarded


class Transport:
    """What every servicer shares: the application, authentication, the watch hub,
    and the mapping of errors onto status codes."""

    def __init__(
        self, app: LedgerApplication, tokens: TokenTable | None, statement_timeout: float
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.statement_timeout = statement_timeout
        # Interrupting a query can block (a cancel request to Postgres): never on
        # grpc's own threads.
        self.cancellers = futures.ThreadPoolExecutor(2, thread_name_prefix="ledgerflow-cancel")
        self.hub: WatchHub | None = None

    def principal(self, context: grpc.ServicerContext, claimed_user: str = "") -> Principal:
        metadata = dict(context.invocation_metadata())
        if self.tokens is not None:
            return self.tokens.authenticate(str(metadata.get("authorization") or ""))
        return unauthenticated(claimed_user or str(metadata.get(USER_METADATA_KEY, "")))

    def call(
        self,
        context: grpc.ServicerContext,
        work: Callable[[Principal, CallScope], Response],
        claimed_user: str = "",
    ) -> Response:
        """Runs `work(principal, scope)`; a LedgerError becomes the call's status. When
        the call ends before the work does (cancelled, deadline, shutdown), the scope
        is cancelled, which interrupts the statement running for it."""
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
            principal = self.principal(context, claimed_user)
            deadline = None if remaining is None else time.monotonic() + remaining
            scope = CallScope(deadline, cap_seconds=self.statement_timeout)
            working = [True]

            def on_call_end() -> None:
                if working[0]:
                    self.cancellers.submit(scope.cancel)

            context.add_callback(on_call_end)
            try:
                return work(principal, scope)
            finally:
                working[0] = False
        except LedgerError as error:
            context.abort(error.code, error.message)
        raise AssertionError("unreachable")  # context.abort raises


class LedgerServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def Append(
        self, request: ledger_service_pb2.AppendRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.AppendResponse:
        app = self.transport.app
        return self.transport.call(
            context,
            lambda who, scope: app.append(request, who, scope.still_wanted),
            request.claimed_user,
        )

    def WatchEvents(
        self,
        request: ledger_service_pb2.WatchEventsRequest,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[Any], None] | None = None,
    ) -> None:
        """Checks the request, hands the stream to the hub and returns: the hub sends
        its events through `send_response_callback` (None ends the stream)."""
        transport = self.transport
        assert transport.hub is not None and send_response_callback is not None
        try:
            transport.principal(context)
            wants = transport.app.watch_filter(request)
            transport.hub.open_stream(request.after_position, wants, send_response_callback,
                                      context)  # fmt: skip
        except LedgerError as error:
            context.abort(error.code, error.message)

    WatchEvents.experimental_non_blocking = True  # type: ignore[attr-defined]


def _delegate(transport: Transport, method: str) -> Callable[..., Any]:
    """An RPC method that runs `app.<method>(request, scope)`."""

    def handler(_self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        work = getattr(transport.app, method)
        return transport.call(context, lambda _who, scope: work(request, scope))

    return handler


def _servicer(base: type, transport: Transport, methods: dict[str, str]) -> Any:
    handlers = {rpc: _delegate(transport, snake) for rpc, snake in methods.items()}
    return type(base.__name__.removesuffix("Servicer") + "Handlers", (base,), handlers)()


class TagServicer(tag_service_pb2_grpc.TagServiceServicer):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def AddTags(
        self, request: tag_service_pb2.AddTagsRequest, context: grpc.ServicerContext
    ) -> tag_service_pb2.AddTagsResponse:
        app = self.transport.app
        return self.transport.call(
            context, lambda who, _: app.add_tags(request, who), request.claimed_user
        )

    def RemoveTags(
        self, request: tag_service_pb2.RemoveTagsRequest, context: grpc.ServicerContext
    ) -> tag_service_pb2.RemoveTagsResponse:
        app = self.transport.app
        return self.transport.call(
            context, lambda who, _: app.remove_tags(request, who), request.claimed_user
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


class RunningServer:
    """The gRPC server with the watch hub's event loop (on a thread of its own)."""

    def __init__(self, server: grpc.Server, transport: Transport, loop_thread: HubLoop) -> None:
        self.server = server
        self.transport = transport
        self.hub_loop = loop_thread

    @property
    def watcher_count(self) -> int:
        hub = self.transport.hub
        return hub.watcher_count if hub is not None else 0

    def stop(self, grace: float | None = None) -> threading.Event:
        """Ends the watch streams, lets unary calls finish for `grace` seconds, then
        cancels what is left (their queries are interrupted). Returns an event that is
        set once the server has stopped."""
        if self.transport.hub is not None:
            self.hub_loop.run(self.transport.hub.close(), timeout=10)
        stopped = self.server.stop(grace)
        done = threading.Event()

        def finish() -> None:
            stopped.wait()
            self.hub_loop.stop()
            self.transport.cancellers.shutdown(wait=True)
            done.set()

        threading.Thread(target=finish, name="ledgerflow-stop", daemon=True).start()
        return done


class HubLoop:
    """An asyncio event loop running on a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="ledgerflow-watch", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Runs `coroutine` on the loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


def build_server(
    app: LedgerApplication,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    tokens: TokenTable | None = None,
    max_workers: int = DEFAULT_CALL_THREADS,
    reuse_port: bool = False,
    max_watchers: int = DEFAULT_MAX_WATCHERS,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> tuple[RunningServer, int]:
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
    transport = Transport(app, tokens, statement_timeout)
    hub_loop = HubLoop()
    transport.hub = WatchHub(app, hub_loop.loop, max_watchers=max_watchers,
                             statement_timeout=statement_timeout)  # fmt: skip
    ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(transport), server)
    query_service_pb2_grpc.add_QueryServiceServicer_to_server(
        _servicer(query_service_pb2_grpc.QueryServiceServicer, transport, {
            "GetFlow": "get_flow", "ListFlows": "list_flows", "GetRun": "get_run",
            "ListRuns": "list_runs", "ListSteps": "list_steps", "ListTasks": "list_tasks",
            "GetTask": "get_task", "ListArtifacts": "list_artifacts",
        }),
        server,
    )  # fmt: skip
    tag_service_pb2_grpc.add_TagServiceServicer_to_server(TagServicer(transport), server)
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(
        _servicer(audit_service_pb2_grpc.AuditServiceServicer, transport,
                  {"ListEvents": "list_events", "GetRunAsOf": "get_run_as_of"}),
        server,
    )  # fmt: skip
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        hub_loop.stop()
        raise OSError(f"could not listen on {address}: is the port in use?")
    app.start_listening()
    server.start()
    return RunningServer(server, transport, hub_loop), bound


def serve_until_signalled(
    app: LedgerApplication, server: RunningServer, *, grace_seconds: float = 5.0
) -> None:
    """Blocks until SIGTERM or SIGINT, then drains in-flight calls and closes."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):  # a timed wait: a signal handler can always end it
        pass
    log.info("shutting down: draining calls for up to %.0f s", grace_seconds)
    server.stop(grace_seconds).wait(grace_seconds + 10)
    app.close()
