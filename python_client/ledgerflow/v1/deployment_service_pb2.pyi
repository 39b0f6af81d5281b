import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledgerflow.v1 import common_pb2 as _common_pb2
from ledgerflow.v1 import events_pb2 as _events_pb2
from ledgerflow.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeployRequest(_message.Message):
    __slots__ = ("deployment", "event_id")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    deployment: _events_pb2.DeploymentCreated
    event_id: str
    def __init__(self, deployment: _Optional[_Union[_events_pb2.DeploymentCreated, _Mapping]] = ..., event_id: _Optional[str] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_records_pb2.Deployment, _Mapping]] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_records_pb2.Deployment, _Mapping]] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("flow_name", "project", "include_deleted", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    project: str
    include_deleted: bool
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., project: _Optional[str] = ..., include_deleted: _Optional[bool] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "page")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[_records_pb2.Deployment]
    page: _common_pb2.PageResponse
    def __init__(self, deployments: _Optional[_Iterable[_Union[_records_pb2.Deployment, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class PauseDeploymentRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_records_pb2.Deployment, _Mapping]] = ...) -> None: ...

class ResumeDeploymentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResumeDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_records_pb2.Deployment, _Mapping]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_records_pb2.Deployment, _Mapping]] = ...) -> None: ...

class TriggerDeploymentRequest(_message.Message):
    __slots__ = ("name", "parameters", "event_id")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    parameters: _containers.ScalarMap[str, str]
    event_id: str
    def __init__(self, name: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., event_id: _Optional[str] = ...) -> None: ...

class TriggerDeploymentResponse(_message.Message):
    __slots__ = ("flow_name", "run_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class BackfillDeploymentRequest(_message.Message):
    __slots__ = ("name", "since", "until", "limit", "allow_large", "dry_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LARGE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    limit: int
    allow_large: bool
    dry_run: bool
    def __init__(self, name: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., allow_large: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class BackfillDeploymentResponse(_message.Message):
    __slots__ = ("flow_name", "run_ids", "already_run", "remaining", "due_times")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RUN_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    DUE_TIMES_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    already_run: int
    remaining: int
    due_times: int
    def __init__(self, flow_name: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ..., already_run: _Optional[int] = ..., remaining: _Optional[int] = ..., due_times: _Optional[int] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("name", "payload", "event_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: str
    event_id: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event_id", "runs")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    runs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[str] = ..., runs: _Optional[_Iterable[str]] = ...) -> None: ...
