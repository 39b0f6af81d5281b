"""The gRPC transport: a thin layer that authenticates the caller, hands the request
message to the application layer and maps its errors onto gRPC status codes.

The server is grpc's asyncio server. Unary calls run the (blocking) application layer
in a bounded thread pool; watch streams are coroutines fed by the process's
:class:`WatchHub`, so an idle stream holds no thread and thousands of them cost little.
Every call gets a :class:`CallScope` from its deadline, and a caller that goes away
cancels the query running for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
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
# Threads running the application layer for unary calls (queries and appends).
DEFAULT_CALL_THREADS = 32
Response = TypeVar("Response")


class _Malformed:
    """Stands in for a request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Answers undecodable request bytes with INVALID_ARGUMENT, for every method of
    every service (ours, health, reflection) and every call shape. grpcio's own
    answer is INTERNAL or UNKNOWN, which tells the caller nothing about whose fault
    it is."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        method = details.method

        def tolerant_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as error:  # protobuf raises DecodeError and others
                return _Malformed(f"{method}: the request is not a valid message: {error}")

        return handler._replace(
            request_deserializer=tolerant_decode,
            unary_unary=_guard_unary(handler.unary_unary, _check_one),
            unary_stream=_guard_stream(handler.unary_stream, _check_one),
            stream_unary=_guard_unary(handler.stream_unary, _check_each),
            stream_stream=_guard_stream(handler.stream_stream, _check_each),
        )


async def _check_one(request: Any, context: grpc.aio.ServicerContext) -> Any:
    if isinstance(request, _Malformed):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
    return request


async def _check_each(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            yield await _check_one(request, context)

    return checked()


def _guard_unary(behaviour: Any, check: Callable[..., Any]) -> Any:
    if behaviour is None:
        return None

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(await check(request, context), context)

    return guarded


def _guard_stream(behaviour: Any, check: Callable[..., Any]) -> Any:
    if behaviour is None:
        return None

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        result = behaviour(await check(request, context), context)
        if inspect.isasyncgen(result):
            async for response in result:
                yield response
        else:  # a coroutine that writes its responses with context.write
            await result

    return guarded


class Transport:
    """What every servicer shares: the application, authentication, the thread pool
    that runs blocking work, and the mapping of errors onto status codes."""

    def __init__(
        self,
        app: LedgerApplication,
        tokens: TokenTable | None,
        executor: futures.ThreadPoolExecutor,
        statement_timeout: float,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.executor = executor
        self.statement_timeout = statement_timeout
        self.hub: WatchHub | None = None  # set once the event loop runs

    def principal(self, context: grpc.aio.ServicerContext, claimed_user: str = "") -> Principal:
        metadata = {key: value for key, value in (context.invocation_metadata() or ())}
        if self.tokens is not None:
            return self.tokens.authenticate(str(metadata.get("authorization") or ""))
        return unauthenticated(claimed_user or str(metadata.get(USER_METADATA_KEY, "")))

    def scope(self, context: grpc.aio.ServicerContext) -> CallScope:
        """The call's scope: its deadline, cancelled when the call ends early."""
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        scope = CallScope(deadline, cap_seconds=self.statement_timeout)
        loop = asyncio.get_running_loop()

        def on_done(call: Any) -> None:
            if call.cancelled():  # interrupting a query may block: not on the loop
                loop.run_in_executor(None, scope.cancel)

        context.add_done_callback(on_done)  # type: ignore[arg-type]
        return scope

    async def call(
        self,
        context: grpc.aio.ServicerContext,
        work: Callable[[Principal, CallScope], Response],
        claimed_user: str = "",
    ) -> Response:
        """Runs `work(principal, scope)` in the thread pool; a LedgerError becomes the
        call's status."""
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start"
                )
            principal = self.principal(context, claimed_user)
            scope = self.scope(context)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, work, principal, scope)
        except LedgerError as error:
            await context.abort(error.code, error.message)
        raise AssertionError("unreachable")  # context.abort raises


class LedgerServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def Append(
        self, request: ledger_service_pb2.AppendRequest, context: grpc.aio.ServicerContext
    ) -> ledger_service_pb2.AppendResponse:
        app = self.transport.app
        return await self.transport.call(
            context,
            lambda who, scope: app.append(request, who, scope.still_wanted),
            request.claimed_user,
        )

    async def WatchEvents(
        self, request: ledger_service_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ledger_service_pb2.WatchEventsResponse]:
        transport = self.transport
        assert transport.hub is not None
        try:
            transport.principal(context)
            wants = transport.app.watch_filter(request)
            stream = transport.hub.watch(
                request.after_position,
                wants,
                lambda: CallScope(None, cap_seconds=transport.statement_timeout),
            )
            async for event in stream:
                yield ledger_service_pb2.WatchEventsResponse(event=event)
        except LedgerError as error:
            await context.abort(error.code, error.message)


def _delegate(transport: Transport, method: str) -> Callable[..., Any]:
    """An async RPC method that runs `app.<method>(request, scope)` in the pool."""

    async def handler(_self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        work = getattr(transport.app, method)
        return await transport.call(context, lambda _who, scope: work(request, scope))

    return handler


def _servicer(base: type, transport: Transport, methods: dict[str, str]) -> Any:
    handlers = {rpc: _delegate(transport, snake) for rpc, snake in methods.items()}
    return type(base.__name__.removesuffix("Servicer") + "Handlers", (base,), handlers)()


class TagServicer(tag_service_pb2_grpc.TagServiceServicer):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def AddTags(
        self, request: tag_service_pb2.AddTagsRequest, context: grpc.aio.ServicerContext
    ) -> tag_service_pb2.AddTagsResponse:
        app = self.transport.app
        return await self.transport.call(
            context, lambda who, _: app.add_tags(request, who), request.claimed_user
        )

    async def RemoveTags(
        self, request: tag_service_pb2.RemoveTagsRequest, context: grpc.aio.ServicerContext
    ) -> tag_service_pb2.RemoveTagsResponse:
        app = self.transport.app
        return await self.transport.call(
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
    """An asyncio gRPC server on an event loop of its own thread, so that callers
    (the CLI, tests) need not be asynchronous themselves."""

    def __init__(self, app: LedgerApplication, transport: Transport, max_watchers: int) -> None:
        self.app = app
        self.transport = transport
        self.max_watchers = max_watchers
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledgerflow-grpc", daemon=True)

    @property
    def watcher_count(self) -> int:
        hub = self.transport.hub
        return hub.watcher_count if hub is not None else 0

    def start(self, build: Callable[[], Any]) -> None:
        """Runs the loop and `build()` (a coroutine making and starting the server) on
        it; returns once the server listens, raising what `build()` raised."""
        started: futures.Future[None] = futures.Future()

        def run_build() -> None:
            async def built() -> None:
                try:
                    self._server = await build()
                except BaseException as error:
                    started.set_exception(error)
                    raise
                started.set_result(None)

            self.loop.create_task(built())

        self.loop.call_soon(run_build)
        self._thread.start()
        started.result(timeout=60)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()
            self._stopped.set()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Ends the watch streams, lets unary calls finish for `grace` seconds, then
        cancels what is left (their queries are interrupted). Returns an event that
        is set once the server has stopped."""

        async def stopping() -> None:
            try:
                if self.transport.hub is not None:
                    await self.transport.hub.close()
                if self._server is not None:
                    await self._server.stop(grace)
            finally:
                self.transport.executor.shutdown(wait=False, cancel_futures=True)
                self.loop.stop()

        if not self._stopped.is_set() and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(stopping(), self.loop)
        return self._stopped


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
    executor = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="ledgerflow-rpc")
    transport = Transport(app, tokens, executor, statement_timeout)
    running = RunningServer(app, transport, max_watchers)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def build() -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[MalformedRequestInterceptor()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", int(reuse_port)),
            ],
        )
        transport.hub = WatchHub(
            app, asyncio.get_running_loop(), executor, max_watchers=max_watchers
        )
        ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(
            LedgerServicer(transport), server
        )
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
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            running.port = server.add_insecure_port(address)
        except RuntimeError:
            running.port = 0
        if running.port == 0:
            raise OSError(f"could not listen on {address}: is the port in use?")
        await server.start()
        return server

    try:
        running.start(build)
    except BaseException:
        running.stop(0).wait(10)
        raise
    app.start_listening()
    return running, running.port


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
