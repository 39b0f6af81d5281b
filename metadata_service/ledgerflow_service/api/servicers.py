"""The gRPC servicers: each RPC authenticates its caller, runs in a :class:`CallScope`
made from its deadline, hands its request message to the application layer and maps
a :class:`LedgerError` onto the call's status code."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc
from ledgerflow.v1 import (
    audit_service_pb2,
    deployment_service_pb2,
    executor_service_pb2,
    executor_service_pb2_grpc,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    query_service_pb2,
    tag_service_pb2,
    tag_service_pb2_grpc,
)

from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.watch_hub import WatchHub
from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.call_scope import CallScope
from ledgerflow_service.errors import LedgerError
from ledgerflow_service.principal import Principal, unauthenticated

log = logging.getLogger(__name__)
USER_METADATA_KEY = "ledgerflow-user"
Response = TypeVar("Response")


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
        except Exception as error:
            if not self.app.database.is_unreachable(error):
                raise
            log.warning("the database did not answer: %s", str(error).strip()[:500])
            context.abort(  # its address and user are the service's to know, not callers'
                grpc.StatusCode.UNAVAILABLE,
                "the ledger's database did not answer: try again (an append's events are "
                "recorded once, by their ids)",
            )
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
            start = transport.app.watch_start(request)
            batch = max(1, request.batch_events)
            transport.hub.open_stream(start, wants, send_response_callback, context, batch)
        except LedgerError as error:
            context.abort(error.code, error.message)

    WatchEvents.experimental_non_blocking = True  # type: ignore[attr-defined]


def add_ledger_service(servicer: LedgerServicer, server: grpc.Server) -> None:
    """Registers the LedgerService as its generated code would, except that WatchEvents
    sends responses the hub serialized already (once per event, for all its streams:
    with hundreds of streams, serializing per stream cost every writer)."""
    taken = _Registrations()
    ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(servicer, taken)  # type: ignore[arg-type]
    handlers = dict(taken.handlers)
    watch = handlers["WatchEvents"]
    handlers["WatchEvents"] = watch._replace(response_serializer=_as_serialized)  # type: ignore[attr-defined]
    generic = grpc.method_handlers_generic_handler(taken.service, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(taken.service, handlers)  # type: ignore[attr-defined]


class _Registrations:
    """What a generated add_*Servicer_to_server function registers, kept instead."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """(The generic handler is made again from the handlers, changed.)"""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service, self.handlers = service, handlers


def _as_serialized(response: bytes | ledger_service_pb2.WatchEventsResponse) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def _delegate(transport: Transport, method: str) -> Callable[..., Any]:
    """An RPC method that runs `app.<method>(request, scope)`."""

    def handler(_self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        work = getattr(transport.app, method)
        return transport.call(context, lambda _who, scope: work(request, scope))

    return handler


def _delegate_command(transport: Transport, method: str) -> Callable[..., Any]:
    """An RPC method that runs `app.<method>(request, principal)`: a command the caller
    is recorded as doing."""

    def handler(_self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        work = getattr(transport.app, method)
        return transport.call(context, lambda who, _scope: work(request, who))

    return handler


def delegating_servicer(
    base: type,
    transport: Transport,
    methods: dict[str, str],
    commands: frozenset[str] = frozenset(),
) -> Any:
    """A servicer of `base` whose RPCs (`methods`: RPC name -> application method) hand
    their request to the application: with the call's scope, or, for `commands`, with
    the caller."""
    handlers = {
        rpc: (_delegate_command if rpc in commands else _delegate)(transport, snake)
        for rpc, snake in methods.items()
    }
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


class ExecutorServicer(executor_service_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def LeaseTask(
        self, request: executor_service_pb2.LeaseTaskRequest, context: grpc.ServicerContext
    ) -> executor_service_pb2.LeaseTaskResponse:
        app = self.transport.app
        return self.transport.call(context, lambda who, _: app.lease_task(request, who))

    def LeaseTasks(
        self, request: executor_service_pb2.LeaseTasksRequest, context: grpc.ServicerContext
    ) -> executor_service_pb2.LeaseTasksResponse:
        app = self.transport.app
        return self.transport.call(context, lambda who, _: app.lease_tasks(request, who))

    def RenewLease(
        self, request: executor_service_pb2.RenewLeaseRequest, context: grpc.ServicerContext
    ) -> executor_service_pb2.RenewLeaseResponse:
        app = self.transport.app
        return self.transport.call(context, lambda who, _: app.renew_lease(request, who))

    def ListQueuedTasks(
        self, request: executor_service_pb2.ListQueuedTasksRequest, context: grpc.ServicerContext
    ) -> executor_service_pb2.ListQueuedTasksResponse:
        app = self.transport.app
        return self.transport.call(context, lambda _, scope: app.list_queued_tasks(request, scope))

    def ListExecutors(
        self, request: executor_service_pb2.ListExecutorsRequest, context: grpc.ServicerContext
    ) -> executor_service_pb2.ListExecutorsResponse:
        app = self.transport.app
        return self.transport.call(context, lambda _, scope: app.list_executors(request, scope))


SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in [
        (ledger_service_pb2, "LedgerService"),
        (query_service_pb2, "QueryService"),
        (tag_service_pb2, "TagService"),
        (audit_service_pb2, "AuditService"),
        (executor_service_pb2, "ExecutorService"),
        (deployment_service_pb2, "DeploymentService"),
    ]
)
