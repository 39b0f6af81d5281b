"""A query stops when its caller does: when the client cancels, when the deadline
passes, and when the server shuts down past its grace period; nothing is left running
in the database. (A query the public API cannot make slow on purpose stands in: the
application's GetFlow is replaced by one endless statement.)"""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from ledgerflow.v1 import query_service_pb2, query_service_pb2_grpc
from ledgerflow_service import LedgerApplication, open_database
from ledgerflow_service.api.server import build_server
from ledgerflow_service.call_scope import CallScope

pytestmark = pytest.mark.slow

ENDLESS = {
    "postgres": "SELECT pg_sleep(60)",
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 10000000000) SELECT COUNT(*) FROM n",
}


class EndlessGetFlow(LedgerApplication):
    """GetFlow runs a statement that never ends on its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = threading.Event()
        self.finished = threading.Event()

    def get_flow(self, request: Any, scope: CallScope | None = None) -> Any:
        try:
            with self.database.read(scope) as tx:
                self.running.set()
                tx.query(ENDLESS[self.database.kind])
        finally:
            self.finished.set()
        raise AssertionError("the endless statement ended")


@pytest.fixture
def endless(database_url: str) -> Any:
    app = EndlessGetFlow(open_database(database_url))
    yield app
    app.close()


def get_flow(port: int, **kwargs: Any) -> grpc.Future:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = query_service_pb2_grpc.QueryServiceStub(channel)
    return stub.GetFlow.future(query_service_pb2.GetFlowRequest(flow_name="F"), **kwargs)


def test_a_cancelled_call_stops_its_query(endless: EndlessGetFlow) -> None:
    server, port = build_server(endless, port=0)
    try:
        call = get_flow(port)
        assert endless.running.wait(10)
        call.cancel()
        assert endless.finished.wait(10), "the query went on after the caller cancelled"
    finally:
        server.stop(0).wait()


def test_a_passed_deadline_stops_the_query(endless: EndlessGetFlow) -> None:
    server, port = build_server(endless, port=0)
    try:
        call = get_flow(port, timeout=0.5)
        with pytest.raises(grpc.RpcError) as caught:
            call.result()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert endless.finished.wait(10), "the query outlived the caller's deadline"
    finally:
        server.stop(0).wait()


def test_the_server_cap_stops_a_query_without_a_deadline(endless: EndlessGetFlow) -> None:
    server, port = build_server(endless, port=0, statement_timeout=0.5)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            get_flow(port).result(timeout=20)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "statement timeout" in (caught.value.details() or "")
    finally:
        server.stop(0).wait()


def test_shutdown_waits_no_longer_than_its_grace(endless: EndlessGetFlow) -> None:
    server, port = build_server(endless, port=0)
    call = get_flow(port)
    assert endless.running.wait(10)
    started = time.monotonic()
    assert server.stop(grace=0.5).wait(20)
    assert time.monotonic() - started < 10
    assert endless.finished.wait(10), "the query outlived the server"
    with pytest.raises(grpc.RpcError):
        call.result(timeout=10)
