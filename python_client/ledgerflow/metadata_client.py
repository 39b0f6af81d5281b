"""How the SDK reaches the ledger: one typed interface, two implementations.

:class:`MetadataClient` has one method per RPC of the metadata service, taking its
request message and returning its response message. ``GrpcMetadata`` calls a running
service through the generated stubs; ``EmbeddedMetadata`` calls the service's
application layer in-process on a SQLite file (no server), importing the service
package only then. Both raise the SDK's own :class:`RpcError` (with the status code),
so nothing above this module knows which is in use, and no service type leaks out.

Above the RPCs sit a few helpers the runtime, CLI and client API share
(:meth:`MetadataClient.run`, :meth:`~MetadataClient.tasks`, ...): they fill the request,
follow pages, and unwrap the response.
"""

from __future__ import annotations

import abc
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ledgerflow.exceptions import RpcError, rpc_error
from ledgerflow.v1 import audit_service_pb2 as audit
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow.v1 import executor_service_pb2 as executor
from ledgerflow.v1 import ledger_service_pb2 as ledger
from ledgerflow.v1 import query_service_pb2 as query
from ledgerflow.v1 import tag_service_pb2 as tags

Response = TypeVar("Response")
# The SDK asks for the largest pages (the service also bounds them in bytes).
_PAGE_SIZE = 1000
# The SDK's watch streams take events in batches of up to this many (the service's most).
WATCH_BATCH_EVENTS = 64


# The most tasks one ListArtifacts call may name (task_ids): the service's bound on
# every filter list.
MAX_TASK_IDS = 100


class MetadataClient(abc.ABC):
    """Every RPC of the metadata service (see proto/ledgerflow/v1/), and helpers."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.calls = 0  # how many requests were made: tests hold the client API to it

    # ---- the RPCs -------------------------------------------------------------------

    @abc.abstractmethod
    def append(self, request: ledger.AppendRequest) -> ledger.AppendResponse: ...

    @abc.abstractmethod
    def get_flow(self, request: query.GetFlowRequest) -> query.GetFlowResponse: ...

    @abc.abstractmethod
    def list_flows(self, request: query.ListFlowsRequest) -> query.ListFlowsResponse: ...

    @abc.abstractmethod
    def get_run(self, request: query.GetRunRequest) -> query.GetRunResponse: ...

    @abc.abstractmethod
    def list_runs(self, request: query.ListRunsRequest) -> query.ListRunsResponse: ...

    @abc.abstractmethod
    def list_steps(self, request: query.ListStepsRequest) -> query.ListStepsResponse: ...

    @abc.abstractmethod
    def list_tasks(self, request: query.ListTasksRequest) -> query.ListTasksResponse: ...

    @abc.abstractmethod
    def list_task_spans(
        self, request: query.ListTaskSpansRequest
    ) -> query.ListTaskSpansResponse: ...

    @abc.abstractmethod
    def get_task(self, request: query.GetTaskRequest) -> query.GetTaskResponse: ...

    @abc.abstractmethod
    def list_artifacts(
        self, request: query.ListArtifactsRequest
    ) -> query.ListArtifactsResponse: ...

    @abc.abstractmethod
    def list_tables(self, request: query.ListTablesRequest) -> query.ListTablesResponse: ...

    @abc.abstractmethod
    def list_table_versions(
        self, request: query.ListTableVersionsRequest
    ) -> query.ListTableVersionsResponse: ...

    @abc.abstractmethod
    def add_tags(self, request: tags.AddTagsRequest) -> tags.AddTagsResponse: ...

    @abc.abstractmethod
    def remove_tags(self, request: tags.RemoveTagsRequest) -> tags.RemoveTagsResponse: ...

    @abc.abstractmethod
    def list_events(self, request: audit.ListEventsRequest) -> audit.ListEventsResponse: ...

    @abc.abstractmethod
    def get_run_as_of(self, request: audit.GetRunAsOfRequest) -> audit.GetRunAsOfResponse: ...

    @abc.abstractmethod
    def watch_events(self, request: ledger.WatchEventsRequest) -> Iterator[events_pb2.Event]:
        """The events the request asks for, as they are appended, until closed."""

    @abc.abstractmethod
    def list_queued_tasks(
        self, request: executor.ListQueuedTasksRequest
    ) -> executor.ListQueuedTasksResponse: ...

    @abc.abstractmethod
    def list_executors(
        self, request: executor.ListExecutorsRequest
    ) -> executor.ListExecutorsResponse: ...

    @abc.abstractmethod
    def call_deployments(self, rpc: str, request: Any) -> Any:
        """One RPC of DeploymentService, by name ("Deploy"); the typed helpers below
        are how the SDK calls it."""

    def close(self) -> None:  # noqa: B027 - optional
        """Releases connections."""

    # ---- helpers ----------------------------------------------------------------------

    def append_events(self, events: Sequence[events_pb2.Event]) -> list[events_pb2.Event]:
        """Appends a batch as this client's user; returns the recorded envelopes."""
        request = ledger.AppendRequest(events=list(events), claimed_user=self.username)
        return list(self.append(request).events)

    def run(self, flow: str, run_id: str) -> records_pb2.Run:
        return self.get_run(query.GetRunRequest(flow_name=flow, run_id=run_id)).run

    def runs(self, flow: str, tags: Sequence[str] = ()) -> Iterator[records_pb2.Run]:
        """The flow's runs with all of `tags`, newest first, page after page."""
        request = query.ListRunsRequest(flow_name=flow, tags=list(tags))
        return _pages(self.list_runs, request, lambda r: r.runs)

    def steps(self, flow: str, run_id: str) -> list[records_pb2.Step]:
        request = query.ListStepsRequest(flow_name=flow, run_id=run_id)
        return list(_pages(self.list_steps, request, lambda r: r.steps))

    def task_span_pages(self, flow: str, run_id: str) -> Iterator[query.ListTaskSpansResponse]:
        """The run's tasks as spans (ListTaskSpans), page after page, in the order they
        began, each page as big as the service gives (its default: 10,000 spans)."""
        request = query.ListTaskSpansRequest(flow_name=flow, run_id=run_id)
        return _responses(self.list_task_spans, request, page_size=0)

    def tasks(self, flow: str, run_id: str, step: str = "") -> list[records_pb2.Task]:
        request = query.ListTasksRequest(flow_name=flow, run_id=run_id, step_name=step)
        return list(_pages(self.list_tasks, request, lambda r: r.tasks))

    def artifacts(
        self,
        flow: str,
        run_id: str,
        step: str = "",
        task_id: str = "",
        names: Sequence[str] = (),
        task_ids: Sequence[str] = (),
    ) -> list[records_pb2.Artifact]:
        """The artifacts of a run, a step, a task (`task_id`) or some tasks of a step
        (`task_ids`, at most MAX_TASK_IDS), current attempts only, page after page."""
        request = query.ListArtifactsRequest(
            flow_name=flow, run_id=run_id, step_name=step, task_id=task_id, names=list(names),
            task_ids=list(task_ids),
        )  # fmt: skip
        return list(_pages(self.list_artifacts, request, lambda r: r.artifacts))

    def tables(self, namespace: str = "") -> Iterator[records_pb2.TableSummary]:
        """The tables of `namespace` ("": every namespace) by name, page after page."""
        return _pages(self.list_tables, query.ListTablesRequest(namespace=namespace),
                      lambda r: r.tables)  # fmt: skip

    def queued_tasks(
        self, flow_name: str = "", run_id: str = ""
    ) -> Iterator[records_pb2.QueuedTask]:
        """A run's queued, leased and running tasks (both empty: every run's), oldest
        first, page after page."""
        request = executor.ListQueuedTasksRequest(flow_name=flow_name, run_id=run_id)
        return _pages(self.list_queued_tasks, request, lambda r: r.tasks)

    def executors(self, seen_within_seconds: int = 0) -> executor.ListExecutorsResponse:
        """The executors that asked the service for work in the last
        `seen_within_seconds` (0: the service's default), every page in one answer."""
        request = executor.ListExecutorsRequest(seen_within_seconds=seen_within_seconds)
        whole = executor.ListExecutorsResponse()
        for response in _responses(self.list_executors, request):
            whole.executors.extend(response.executors)
            whole.seen_within_seconds = response.seen_within_seconds
        return whole

    def table_versions(
        self, namespace: str, table: str, version: int = 0, *, latest: bool = False
    ) -> list[records_pb2.TableVersion]:
        """A table's versions, oldest first (`version` or the `latest` alone when
        asked), each with its writer and readers."""
        request = query.ListTableVersionsRequest(
            namespace=namespace, table=table, version=version, latest=latest
        )
        return list(_pages(self.list_table_versions, request, lambda r: r.versions))

    def add_run_tags(self, flow: str, run_id: str, new: Sequence[str]) -> list[str]:
        """Adds user tags; returns the run's user tags. The request carries its own
        event id, so that a retry records the change once."""
        request = tags.AddTagsRequest(
            flow_name=flow, run_id=run_id, tags=list(new), claimed_user=self.username
        )
        request.event_id = str(uuid.uuid4())
        return list(self.add_tags(request).tags)

    def remove_run_tags(self, flow: str, run_id: str, old: Sequence[str]) -> list[str]:
        request = tags.RemoveTagsRequest(
            flow_name=flow, run_id=run_id, tags=list(old), claimed_user=self.username
        )
        request.event_id = str(uuid.uuid4())
        return list(self.remove_tags(request).tags)

    def replace_run_tags(
        self, flow: str, run_id: str, old: Sequence[str], new: Sequence[str]
    ) -> None:
        """Removes `old` and adds `new` user tags in one append (atomic: both or none)."""
        removed = events_pb2.Event(event_id=str(uuid.uuid4()))
        removed.tags_removed.flow_name, removed.tags_removed.run_id = flow, run_id
        removed.tags_removed.tags.extend(old)
        added = events_pb2.Event(event_id=str(uuid.uuid4()))
        added.tags_added.flow_name, added.tags_added.run_id = flow, run_id
        added.tags_added.tags.extend(new)
        self.append_events([removed, added])

    # ---- deployments ------------------------------------------------------------------

    def deploy(self, spec: events_pb2.DeploymentCreated) -> records_pb2.Deployment:
        request = deploy_api.DeployRequest(deployment=spec, event_id=str(uuid.uuid4()))
        return self.call_deployments("Deploy", request).deployment

    def deployment(self, name: str) -> records_pb2.Deployment:
        request = deploy_api.GetDeploymentRequest(name=name)
        return self.call_deployments("GetDeployment", request).deployment

    def deployments(
        self, flow_name: str = "", project: str = "", include_deleted: bool = False
    ) -> list[records_pb2.Deployment]:
        request = deploy_api.ListDeploymentsRequest(
            flow_name=flow_name, project=project, include_deleted=include_deleted
        )
        request.page.page_size = _PAGE_SIZE
        return list(_pages(lambda r: self.call_deployments("ListDeployments", r), request,
                           lambda r: r.deployments))  # fmt: skip

    def pause_deployment(self, name: str, reason: str = "") -> records_pb2.Deployment:
        request = deploy_api.PauseDeploymentRequest(name=name, reason=reason)
        return self.call_deployments("PauseDeployment", request).deployment

    def resume_deployment(self, name: str) -> records_pb2.Deployment:
        request = deploy_api.ResumeDeploymentRequest(name=name)
        return self.call_deployments("ResumeDeployment", request).deployment

    def delete_deployment(self, name: str) -> records_pb2.Deployment:
        request = deploy_api.DeleteDeploymentRequest(name=name)
        return self.call_deployments("DeleteDeployment", request).deployment

    def trigger_deployment(
        self, name: str, parameters: dict[str, str] | None = None
    ) -> deploy_api.TriggerDeploymentResponse:
        """Starts a run of the deployment now; a retried call starts one run."""
        request = deploy_api.TriggerDeploymentRequest(
            name=name, parameters=parameters or {}, event_id=str(uuid.uuid4())
        )
        return self.call_deployments("TriggerDeployment", request)

    def backfill_deployment(
        self, request: deploy_api.BackfillDeploymentRequest
    ) -> deploy_api.BackfillDeploymentResponse:
        return self.call_deployments("BackfillDeployment", request)

    def publish_event(
        self, name: str, payload: str = "", event_id: str = ""
    ) -> deploy_api.PublishEventResponse:
        """Publishes an event; the deployments waiting for it start a run each. A
        retried call (the same `event_id`) publishes it once."""
        request = deploy_api.PublishEventRequest(
            name=name, payload=payload, event_id=event_id or str(uuid.uuid4())
        )
        return self.call_deployments("PublishEvent", request)


def _pages(rpc: Callable[[Any], Any], request: Any, items: Callable[[Any], Any]) -> Iterator[Any]:
    """Every item of a paged list, page after page."""
    for response in _responses(rpc, request):
        yield from items(response)


def _responses(
    rpc: Callable[[Any], Any], request: Any, page_size: int = _PAGE_SIZE
) -> Iterator[Any]:
    """Each page's response of a paged list (page_size 0: the service's default)."""
    request.page.page_size = page_size
    while True:
        response = rpc(request)
        yield response
        if not response.page.next_page_token:
            return
        request.page.page_token = response.page.next_page_token


class EmbeddedMetadata(MetadataClient):
    """The application layer in this process, on a SQLite ledger file. The service
    package is imported here, and only here, when an embedded ledger is opened."""

    def __init__(self, database_url: str, username: str, *, app: Any = None) -> None:
        """Opens the ledger at `database_url`, or uses `app` (a LedgerApplication
        already open in this process) when given."""
        from ledgerflow_service import LedgerApplication, Principal, open_database
        from ledgerflow_service.errors import LedgerError

        super().__init__(username)
        self._ledger_error = LedgerError
        self.app = app if app is not None else LedgerApplication(open_database(database_url))
        self._principal = Principal(username, authenticated=False)

    def _invoke(self, method: Callable[..., Response], *args: Any) -> Response:
        self.calls += 1
        try:
            return method(*args)
        except self._ledger_error as error:
            raise rpc_error(error.code_name, error.message) from None

    def append(self, request: ledger.AppendRequest) -> ledger.AppendResponse:
        return self._invoke(self.app.append, request, self._principal)

    def call_deployments(self, rpc: str, request: Any) -> Any:
        # The application method of an RPC is its name in snake case; queries (Get...,
        # List...) take no caller.
        method = getattr(self.app, re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower())
        if rpc.startswith(("Get", "List")):
            return self._invoke(method, request)
        return self._invoke(method, request, self._principal)

    def get_flow(self, request: query.GetFlowRequest) -> query.GetFlowResponse:
        return self._invoke(self.app.get_flow, request)

    def list_flows(self, request: query.ListFlowsRequest) -> query.ListFlowsResponse:
        return self._invoke(self.app.list_flows, request)

    def get_run(self, request: query.GetRunRequest) -> query.GetRunResponse:
        return self._invoke(self.app.get_run, request)

    def list_runs(self, request: query.ListRunsRequest) -> query.ListRunsResponse:
        return self._invoke(self.app.list_runs, request)

    def list_steps(self, request: query.ListStepsRequest) -> query.ListStepsResponse:
        return self._invoke(self.app.list_steps, request)

    def list_tasks(self, request: query.ListTasksRequest) -> query.ListTasksResponse:
        return self._invoke(self.app.list_tasks, request)

    def list_task_spans(self, request: query.ListTaskSpansRequest) -> query.ListTaskSpansResponse:
        return self._invoke(self.app.list_task_spans, request)

    def get_task(self, request: query.GetTaskRequest) -> query.GetTaskResponse:
        return self._invoke(self.app.get_task, request)

    def list_artifacts(self, request: query.ListArtifactsRequest) -> query.ListArtifactsResponse:
        return self._invoke(self.app.list_artifacts, request)

    def list_tables(self, request: query.ListTablesRequest) -> query.ListTablesResponse:
        return self._invoke(self.app.list_tables, request)

    def list_table_versions(
        self, request: query.ListTableVersionsRequest
    ) -> query.ListTableVersionsResponse:
        return self._invoke(self.app.list_table_versions, request)

    def add_tags(self, request: tags.AddTagsRequest) -> tags.AddTagsResponse:
        return self._invoke(self.app.add_tags, request, self._principal)

    def remove_tags(self, request: tags.RemoveTagsRequest) -> tags.RemoveTagsResponse:
        return self._invoke(self.app.remove_tags, request, self._principal)

    def list_events(self, request: audit.ListEventsRequest) -> audit.ListEventsResponse:
        return self._invoke(self.app.list_events, request)

    def get_run_as_of(self, request: audit.GetRunAsOfRequest) -> audit.GetRunAsOfResponse:
        return self._invoke(self.app.get_run_as_of, request)

    def list_queued_tasks(
        self, request: executor.ListQueuedTasksRequest
    ) -> executor.ListQueuedTasksResponse:
        return self._invoke(self.app.list_queued_tasks, request)

    def list_executors(
        self, request: executor.ListExecutorsRequest
    ) -> executor.ListExecutorsResponse:
        return self._invoke(self.app.list_executors, request)

    def watch_events(self, request: ledger.WatchEventsRequest) -> Iterator[events_pb2.Event]:
        """Polls the ledger (SQLite tells no other process of its appends): reads it
        again once its files changed, or every watch_poll_seconds. The start is fixed
        now, not when the first event is asked for."""
        wants = self._invoke(self.app.watch_filter, request)
        after = self._invoke(self.app.watch_start, request)
        return self._poll(after, wants)

    def _poll(self, after: int, wants: Any) -> Iterator[events_pb2.Event]:
        while True:
            stamp = self.app.change_stamp()  # before the read: no append slips between
            found, head, _ = self._invoke(self.app.read_watch_chunk, after, wants, 1000)
            for event, _run in found:
                yield event
            after = found[-1][0].global_position if found else head
            if not found:
                self.app.wait_for_appends(self.app.watch_poll_seconds, stamp)

    def close(self) -> None:
        self.app.close()


class GrpcMetadata(MetadataClient):
    """A metadata service over gRPC, through the generated stubs."""

    def __init__(
        self, address: str, username: str, token: str | None = None, timeout: float = 60.0
    ) -> None:
        import grpc  # only service mode pays for importing grpc

        from ledgerflow.v1 import (
            audit_service_pb2_grpc,
            deployment_service_pb2_grpc,
            executor_service_pb2_grpc,
            ledger_service_pb2_grpc,
            query_service_pb2_grpc,
            tag_service_pb2_grpc,
        )

        super().__init__(username)
        self.address = address
        self._rpc_error = grpc.RpcError
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # Back within 2 s of a restarted service (gRPC's own backoff grows to
                # 2 minutes): an executor must renew its leases within their grace.
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._ledger = ledger_service_pb2_grpc.LedgerServiceStub(self._channel)
        self._query = query_service_pb2_grpc.QueryServiceStub(self._channel)
        self._tags = tag_service_pb2_grpc.TagServiceStub(self._channel)
        self._audit = audit_service_pb2_grpc.AuditServiceStub(self._channel)
        self._executor = executor_service_pb2_grpc.ExecutorServiceStub(self._channel)
        self._deployments = deployment_service_pb2_grpc.DeploymentServiceStub(self._channel)
        self._metadata = [("ledgerflow-user", username)]
        if token:
            self._metadata.append(("authorization", f"Bearer {token}"))
        self._timeout = timeout

    def _invoke(self, stub_method: Callable[..., Response], request: Any) -> Response:
        """Calls one RPC; a gRPC error becomes the SDK's RpcError with its code."""
        self.calls += 1
        try:
            return stub_method(request, metadata=self._metadata, timeout=self._timeout)
        except self._rpc_error as error:
            raise self._sdk_error(error) from None

    def _sdk_error(self, error: Any) -> RpcError:
        """The SDK's RpcError for a gRPC error, with its code."""
        code = error.code()
        message = error.details() or str(code)
        if code.name == "UNAVAILABLE":
            message = (
                f"the metadata service at {self.address} is unavailable: "
                "is `ledgerflow service` running there?"
            )
        return rpc_error(code.name, message)

    def append(self, request: ledger.AppendRequest) -> ledger.AppendResponse:
        return self._invoke(self._ledger.Append, request)

    def call_deployments(self, rpc: str, request: Any) -> Any:
        return self._invoke(getattr(self._deployments, rpc), request)

    def get_flow(self, request: query.GetFlowRequest) -> query.GetFlowResponse:
        return self._invoke(self._query.GetFlow, request)

    def list_flows(self, request: query.ListFlowsRequest) -> query.ListFlowsResponse:
        return self._invoke(self._query.ListFlows, request)

    def get_run(self, request: query.GetRunRequest) -> query.GetRunResponse:
        return self._invoke(self._query.GetRun, request)

    def list_runs(self, request: query.ListRunsRequest) -> query.ListRunsResponse:
        return self._invoke(self._query.ListRuns, request)

    def list_steps(self, request: query.ListStepsRequest) -> query.ListStepsResponse:
        return self._invoke(self._query.ListSteps, request)

    def list_tasks(self, request: query.ListTasksRequest) -> query.ListTasksResponse:
        return self._invoke(self._query.ListTasks, request)

    def list_task_spans(self, request: query.ListTaskSpansRequest) -> query.ListTaskSpansResponse:
        return self._invoke(self._query.ListTaskSpans, request)

    def get_task(self, request: query.GetTaskRequest) -> query.GetTaskResponse:
        return self._invoke(self._query.GetTask, request)

    def list_artifacts(self, request: query.ListArtifactsRequest) -> query.ListArtifactsResponse:
        return self._invoke(self._query.ListArtifacts, request)

    def list_tables(self, request: query.ListTablesRequest) -> query.ListTablesResponse:
        return self._invoke(self._query.ListTables, request)

    def list_table_versions(
        self, request: query.ListTableVersionsRequest
    ) -> query.ListTableVersionsResponse:
        return self._invoke(self._query.ListTableVersions, request)

    def add_tags(self, request: tags.AddTagsRequest) -> tags.AddTagsResponse:
        return self._invoke(self._tags.AddTags, request)

    def remove_tags(self, request: tags.RemoveTagsRequest) -> tags.RemoveTagsResponse:
        return self._invoke(self._tags.RemoveTags, request)

    def list_events(self, request: audit.ListEventsRequest) -> audit.ListEventsResponse:
        return self._invoke(self._audit.ListEvents, request)

    def get_run_as_of(self, request: audit.GetRunAsOfRequest) -> audit.GetRunAsOfResponse:
        return self._invoke(self._audit.GetRunAsOf, request)

    def list_queued_tasks(
        self, request: executor.ListQueuedTasksRequest
    ) -> executor.ListQueuedTasksResponse:
        return self._invoke(self._executor.ListQueuedTasks, request)

    def list_executors(
        self, request: executor.ListExecutorsRequest
    ) -> executor.ListExecutorsResponse:
        return self._invoke(self._executor.ListExecutors, request)

    def lease_task(self, request: executor.LeaseTaskRequest) -> executor.LeaseTaskResponse:
        return self._invoke(self._executor.LeaseTask, request)

    def lease_tasks(self, request: executor.LeaseTasksRequest) -> executor.LeaseTasksResponse:
        return self._invoke(self._executor.LeaseTasks, request)

    def renew_lease(self, request: executor.RenewLeaseRequest) -> executor.RenewLeaseResponse:
        return self._invoke(self._executor.RenewLease, request)

    def watch_events(self, request: ledger.WatchEventsRequest) -> Iterator[events_pb2.Event]:
        """The call starts now, not when the first event is asked for. Events come in
        batches when several wait (unless the request says otherwise): a watcher that
        falls behind catches up in fewer messages, which costs the service less."""
        if not request.batch_events:
            batched = ledger.WatchEventsRequest()
            batched.CopyFrom(request)
            batched.batch_events = WATCH_BATCH_EVENTS
            request = batched
        return self._follow(self._ledger.WatchEvents(request, metadata=self._metadata))

    def _follow(self, stream: Any) -> Iterator[events_pb2.Event]:
        try:
            for response in stream:
                if response.events:
                    yield from response.events
                else:
                    yield response.event
        except self._rpc_error as error:
            raise self._sdk_error(error) from None
        finally:
            stream.cancel()

    def close(self) -> None:
        self._channel.close()


def connect(config: Any) -> MetadataClient:
    if config.metadata == "service":
        return GrpcMetadata(config.service_address, config.username, config.token)
    return EmbeddedMetadata(config.ledger_url, config.username)


__all__ = ["EmbeddedMetadata", "GrpcMetadata", "MetadataClient", "RpcError", "connect"]
