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
import re
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from ledgerflow.v1 import (
    audit_service_pb2_grpc,
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    executor_service_pb2_grpc,
    query_service_pb2_grpc,
    tag_service_pb2_grpc,
)

from ledgerflow_service.api.auth import TokenTable
from ledgerflow_service.api.interceptors import MalformedRequestInterceptor
from ledgerflow_service.api.native_memory import bound_native_heap
from ledgerflow_service.api.servicers import (
    SERVICE_NAMES,
    ExecutorServicer,
    LedgerServicer,
    TagServicer,
    Transport,
    add_ledger_service,
    delegating_servicer,
)
from ledgerflow_service.api.watch_hub import DEFAULT_MAX_WATCHERS, WatchHub
from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.call_scope import DEFAULT_STATEMENT_TIMEOUT_SECONDS

log = logging.getLogger("ledgerflow.service")
# DeploymentService's RPCs, each served by the application method of its name in
# snake case; those that change a deployment or start runs are commands.
DEPLOYMENT_RPCS = {
    method.name: re.sub(r"(?<!^)(?=[A-Z])", "_", method.name).lower()
    for method in deployment_service_pb2.DESCRIPTOR.services_by_name["DeploymentService"].methods
}
DEPLOYMENT_COMMANDS = frozenset(
    rpc for rpc in DEPLOYMENT_RPCS if not rpc.startswith(("Get", "List"))
)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# How often a thread waiting for the GIL gets it (Python's default: 5 ms); see build_server.
GIL_SWITCH_SECONDS = 0.0002
# Threads running unary calls (queries and appends).
DEFAULT_CALL_THREADS = 32


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
    schedules: bool = True,
) -> tuple[RunningServer, int]:
    """Builds and starts the server; returns it with the bound port (port 0 picks one).
    `reuse_port` lets several processes listen on the same port (see workers.py);
    `schedules` fires the deployments' due times from this process."""
    bound_native_heap()  # before the server's threads allocate (see native_memory.py)
    # An append's thread waits for the GIL while sender threads write an event to
    # hundreds of watch streams; Python hands it over every 5 ms by default, which made
    # an append's p99 with 200 watchers of everything 30 ms here, 9-16 ms with 0.2 ms
    # (docs/performance.md). Batched ingest did not change.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
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
    add_ledger_service(LedgerServicer(transport), server)
    query_service_pb2_grpc.add_QueryServiceServicer_to_server(
        delegating_servicer(query_service_pb2_grpc.QueryServiceServicer, transport, {
            "GetFlow": "get_flow", "ListFlows": "list_flows", "GetRun": "get_run",
            "ListRuns": "list_runs", "ListSteps": "list_steps", "ListTasks": "list_tasks",
            "ListTaskSpans": "list_task_spans", "GetTask": "get_task",
            "ListArtifacts": "list_artifacts",
            "ListTables": "list_tables", "ListTableVersions": "list_table_versions",
        }),
        server,
    )  # fmt: skip
    tag_service_pb2_grpc.add_TagServiceServicer_to_server(TagServicer(transport), server)
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(
        ExecutorServicer(transport), server
    )
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(
        delegating_servicer(audit_service_pb2_grpc.AuditServiceServicer, transport,
                  {"ListEvents": "list_events", "GetRunAsOf": "get_run_as_of"}),
        server,
    )  # fmt: skip
    deployment_service_pb2_grpc.add_DeploymentServiceServicer_to_server(
        delegating_servicer(deployment_service_pb2_grpc.DeploymentServiceServicer, transport,
                            DEPLOYMENT_RPCS, DEPLOYMENT_COMMANDS),
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
    app.start_sweeping_leases()
    if schedules:
        app.start_scheduling()
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
