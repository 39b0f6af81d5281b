import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledgerflow.v1 import common_pb2 as _common_pb2
from ledgerflow.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetFlowRequest(_message.Message):
    __slots__ = ("flow_name",)
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    def __init__(self, flow_name: _Optional[str] = ...) -> None: ...

class GetFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: _records_pb2.Flow
    def __init__(self, flow: _Optional[_Union[_records_pb2.Flow, _Mapping]] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListFlowsResponse(_message.Message):
    __slots__ = ("flows", "page")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[_records_pb2.Flow]
    page: _common_pb2.PageResponse
    def __init__(self, flows: _Optional[_Iterable[_Union[_records_pb2.Flow, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "include_graph")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_GRAPH_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    include_graph: bool
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., include_graph: _Optional[bool] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run", "graph")
    RUN_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    run: _records_pb2.Run
    graph: _records_pb2.FlowGraph
    def __init__(self, run: _Optional[_Union[_records_pb2.Run, _Mapping]] = ..., graph: _Optional[_Union[_records_pb2.FlowGraph, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("flow_name", "tags", "statuses", "created_after", "created_before", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    statuses: _containers.RepeatedScalarFieldContainer[_common_pb2.Status]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., statuses: _Optional[_Iterable[_Union[_common_pb2.Status, str]]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "page")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_records_pb2.Run]
    page: _common_pb2.PageResponse
    def __init__(self, runs: _Optional[_Iterable[_Union[_records_pb2.Run, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListStepsRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListStepsResponse(_message.Message):
    __slots__ = ("steps", "page")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[_records_pb2.Step]
    page: _common_pb2.PageResponse
    def __init__(self, steps: _Optional[_Iterable[_Union[_records_pb2.Step, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "page")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_records_pb2.Task]
    page: _common_pb2.PageResponse
    def __init__(self, tasks: _Optional[_Iterable[_Union[_records_pb2.Task, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListTaskSpansRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListTaskSpansResponse(_message.Message):
    __slots__ = ("step_names", "step_index", "task_ids", "started_at_us", "finished_at_us", "status", "attempts", "cloned", "page")
    STEP_NAMES_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_US_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_US_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CLONED_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    step_names: _containers.RepeatedScalarFieldContainer[str]
    step_index: _containers.RepeatedScalarFieldContainer[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    started_at_us: _containers.RepeatedScalarFieldContainer[int]
    finished_at_us: _containers.RepeatedScalarFieldContainer[int]
    status: _containers.RepeatedScalarFieldContainer[_common_pb2.Status]
    attempts: _containers.RepeatedScalarFieldContainer[int]
    cloned: _containers.RepeatedScalarFieldContainer[bool]
    page: _common_pb2.PageResponse
    def __init__(self, step_names: _Optional[_Iterable[str]] = ..., step_index: _Optional[_Iterable[int]] = ..., task_ids: _Optional[_Iterable[str]] = ..., started_at_us: _Optional[_Iterable[int]] = ..., finished_at_us: _Optional[_Iterable[int]] = ..., status: _Optional[_Iterable[_Union[_common_pb2.Status, str]]] = ..., attempts: _Optional[_Iterable[int]] = ..., cloned: _Optional[_Iterable[bool]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "task_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _records_pb2.Task
    def __init__(self, task: _Optional[_Union[_records_pb2.Task, _Mapping]] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "task_id", "names", "all_attempts", "page", "task_ids")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    ALL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    all_attempts: bool
    page: _common_pb2.PageRequest
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., task_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., all_attempts: _Optional[bool] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts", "page")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[_records_pb2.Artifact]
    page: _common_pb2.PageResponse
    def __init__(self, artifacts: _Optional[_Iterable[_Union[_records_pb2.Artifact, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListTablesRequest(_message.Message):
    __slots__ = ("namespace", "page")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page: _common_pb2.PageRequest
    def __init__(self, namespace: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListTablesResponse(_message.Message):
    __slots__ = ("tables", "page")
    TABLES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[_records_pb2.TableSummary]
    page: _common_pb2.PageResponse
    def __init__(self, tables: _Optional[_Iterable[_Union[_records_pb2.TableSummary, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListTableVersionsRequest(_message.Message):
    __slots__ = ("namespace", "table", "version", "page", "latest")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    table: str
    version: int
    page: _common_pb2.PageRequest
    latest: bool
    def __init__(self, namespace: _Optional[str] = ..., table: _Optional[str] = ..., version: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., latest: _Optional[bool] = ...) -> None: ...

class ListTableVersionsResponse(_message.Message):
    __slots__ = ("versions", "page")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_records_pb2.TableVersion]
    page: _common_pb2.PageResponse
    def __init__(self, versions: _Optional[_Iterable[_Union[_records_pb2.TableVersion, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
