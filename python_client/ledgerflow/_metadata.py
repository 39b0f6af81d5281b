"""How the SDK reaches the ledger: one interface, two ways.

``EmbeddedMetadata`` calls the service's application layer in-process on a SQLite file
(no server); ``GrpcMetadata`` calls a running service through the generated stubs.
Both take and return the same ``ledgerflow.v1`` messages and raise the same
:class:`LedgerError` subclasses, so nothing above this module knows which is in use.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ledgerflow_service.errors import ERROR_BY_CODE_NAME, LedgerError, Unavailable

from ledgerflow.v1 import events_pb2, ledger_service_pb2, query_service_pb2, tag_service_pb2

# method -> (service, RPC)
_RPCS = {
    "append": ("ledger", "Append"),
    "get_flow": ("query", "GetFlow"),
    "list_flows": ("query", "ListFlows"),
    "get_run": ("query", "GetRun"),
    "list_runs": ("query", "ListRuns"),
    "list_steps": ("query", "ListSteps"),
    "list_tasks": ("query", "ListTasks"),
    "get_task": ("query", "GetTask"),
    "list_artifacts": ("query", "ListArtifacts"),
    "add_tags": ("tag", "AddTags"),
    "remove_tags": ("tag", "RemoveTags"),
    "list_events": ("audit", "ListEvents"),
    "get_run_as_of": ("audit", "GetRunAsOf"),
}
_WRITES = {"append", "add_tags", "remove_tags"}
# The SDK asks for the largest pages (the service also bounds them in bytes).
_PAGE_SIZE = 1000


class MetadataClient(abc.ABC):
    """Calls by method name of :class:`LedgerApplication` (``"list_runs"``, ...)."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.calls = 0  # how many requests were made: tests hold the client API to it

    @abc.abstractmethod
    def _call(self, method: str, request: Any) -> Any: ...

    def call(self, method: str, request: Any) -> Any:
        self.calls += 1
        return self._call(method, request)

    def append(self, events: Sequence[events_pb2.Event]) -> list[events_pb2.Event]:
        request = ledger_service_pb2.AppendRequest(events=list(events), claimed_user=self.username)
        return list(self.call("append", request).events)

    def _pages(self, method: str, request: Any, items: Callable[[Any], Any]) -> Iterator[Any]:
        """Every item of a paged list, page after page."""
        request.page.page_size = _PAGE_SIZE
        while True:
            response = self.call(method, request)
            yield from items(response)
            if not response.page.next_page_token:
                return
            request.page.page_token = response.page.next_page_token

    def get_run(self, flow: str, run_id: str) -> Any:
        return self.call(
            "get_run", query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id)
        ).run

    def list_steps(self, flow: str, run_id: str) -> list[Any]:
        request = query_service_pb2.ListStepsRequest(flow_name=flow, run_id=run_id)
        return list(self._pages("list_steps", request, lambda r: r.steps))

    def list_tasks(self, flow: str, run_id: str, step: str = "") -> list[Any]:
        request = query_service_pb2.ListTasksRequest(flow_name=flow, run_id=run_id, step_name=step)
        return list(self._pages("list_tasks", request, lambda r: r.tasks))

    def list_artifacts(
        self, flow: str, run_id: str, step: str = "", task_id: str = "", names: Sequence[str] = ()
    ) -> list[Any]:
        request = query_service_pb2.ListArtifactsRequest(
            flow_name=flow, run_id=run_id, step_name=step, task_id=task_id, names=list(names)
        )
        return list(self._pages("list_artifacts", request, lambda r: r.artifacts))

    def add_tags(self, flow: str, run_id: str, tags: Sequence[str]) -> list[str]:
        return list(
            self.call(
                "add_tags",
                tag_service_pb2.AddTagsRequest(
                    flow_name=flow,
                    run_id=run_id,
                    tags=list(tags),
                    claimed_user=self.username,
                    event_id=str(uuid.uuid4()),
                ),
            ).tags
        )

    def remove_tags(self, flow: str, run_id: str, tags: Sequence[str]) -> list[str]:
        return list(
            self.call(
                "remove_tags",
                tag_service_pb2.RemoveTagsRequest(
                    flow_name=flow,
                    run_id=run_id,
                    tags=list(tags),
                    claimed_user=self.username,
                    event_id=str(uuid.uuid4()),
                ),
            ).tags
        )

    def close(self) -> None:  # noqa: B027 - optional
        """Releases connections."""


class EmbeddedMetadata(MetadataClient):
    """The application layer in this process, on a SQLite ledger file."""

    def __init__(self, database_url: str, username: str) -> None:
        from ledgerflow_service import LedgerApplication, Principal, open_database

        super().__init__(username)
        self.app = LedgerApplication(open_database(database_url))
        self._principal = Principal(username, authenticated=False)

    def _call(self, method: str, request: Any) -> Any:
        handler = getattr(self.app, method)
        return handler(request, self._principal) if method in _WRITES else handler(request)

    def close(self) -> None:
        self.app.close()


class GrpcMetadata(MetadataClient):
    """A metadata service over gRPC."""

    def __init__(
        self, address: str, username: str, token: str | None = None, timeout: float = 60.0
    ) -> None:
        import grpc  # only service mode pays for importing grpc

        from ledgerflow.v1 import (
            audit_service_pb2_grpc,
            ledger_service_pb2_grpc,
            query_service_pb2_grpc,
            tag_service_pb2_grpc,
        )

        super().__init__(username)
        self.address = address
        self._rpc_error = grpc.RpcError
        self._unavailable = grpc.StatusCode.UNAVAILABLE
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self._stubs = {
            "ledger": ledger_service_pb2_grpc.LedgerServiceStub(self._channel),
            "query": query_service_pb2_grpc.QueryServiceStub(self._channel),
            "tag": tag_service_pb2_grpc.TagServiceStub(self._channel),
            "audit": audit_service_pb2_grpc.AuditServiceStub(self._channel),
        }
        self._metadata = [("ledgerflow-user", username)]
        if token:
            self._metadata.append(("authorization", f"Bearer {token}"))
        self._timeout = timeout

    def _call(self, method: str, request: Any) -> Any:
        service, rpc = _RPCS[method]
        try:
            return getattr(self._stubs[service], rpc)(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except self._rpc_error as error:
            code = error.code()
            if code == self._unavailable:
                raise Unavailable(
                    f"the metadata service at {self.address} is unavailable: "
                    "is `ledgerflow service` running there?"
                ) from None
            raise ERROR_BY_CODE_NAME.get(code.name, LedgerError)(
                error.details() or str(code)
            ) from None

    def close(self) -> None:
        self._channel.close()


def connect(config: Any) -> MetadataClient:
    if config.metadata == "service":
        return GrpcMetadata(config.service_address, config.username, config.token)
    return EmbeddedMetadata(config.ledger_url, config.username)
