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

class Capacity(_message.Message):
    __slots__ = ("cpu", "gpu", "memory_mb")
    CPU_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    gpu: int
    memory_mb: int
    def __init__(self, cpu: _Optional[float] = ..., gpu: _Optional[int] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class LeaseTaskRequest(_message.Message):
    __slots__ = ("executor_id", "free", "total", "queues", "lease_seconds")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    free: Capacity
    total: Capacity
    queues: _containers.RepeatedScalarFieldContainer[str]
    lease_seconds: int
    def __init__(self, executor_id: _Optional[str] = ..., free: _Optional[_Union[Capacity, _Mapping]] = ..., total: _Optional[_Union[Capacity, _Mapping]] = ..., queues: _Optional[_Iterable[str]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class LeaseTaskResponse(_message.Message):
    __slots__ = ("task", "lease_id", "lease_expires_at", "run", "step")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    task: _records_pb2.QueuedTask
    lease_id: str
    lease_expires_at: _timestamp_pb2.Timestamp
    run: _records_pb2.Run
    step: _records_pb2.StepSpec
    def __init__(self, task: _Optional[_Union[_records_pb2.QueuedTask, _Mapping]] = ..., lease_id: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run: _Optional[_Union[_records_pb2.Run, _Mapping]] = ..., step: _Optional[_Union[_records_pb2.StepSpec, _Mapping]] = ...) -> None: ...

class LeaseTasksRequest(_message.Message):
    __slots__ = ("request", "max_tasks")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    request: LeaseTaskRequest
    max_tasks: int
    def __init__(self, request: _Optional[_Union[LeaseTaskRequest, _Mapping]] = ..., max_tasks: _Optional[int] = ...) -> None: ...

class LeaseTasksResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[LeaseTaskResponse]
    def __init__(self, leases: _Optional[_Iterable[_Union[LeaseTaskResponse, _Mapping]]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("executor_id", "flow_name", "run_id", "step_name", "task_id", "attempt", "lease_id", "note")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    attempt: int
    lease_id: str
    note: str
    def __init__(self, executor_id: _Optional[str] = ..., flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("keep_running", "reason", "lease_expires_at")
    KEEP_RUNNING_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    keep_running: bool
    reason: str
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, keep_running: _Optional[bool] = ..., reason: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListQueuedTasksRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListQueuedTasksResponse(_message.Message):
    __slots__ = ("tasks", "page")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_records_pb2.QueuedTask]
    page: _common_pb2.PageResponse
    def __init__(self, tasks: _Optional[_Iterable[_Union[_records_pb2.QueuedTask, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListExecutorsRequest(_message.Message):
    __slots__ = ("seen_within_seconds", "page")
    SEEN_WITHIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    seen_within_seconds: int
    page: _common_pb2.PageRequest
    def __init__(self, seen_within_seconds: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListExecutorsResponse(_message.Message):
    __slots__ = ("executors", "page", "seen_within_seconds")
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SEEN_WITHIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    executors: _containers.RepeatedCompositeFieldContainer[ExecutorStatus]
    page: _common_pb2.PageResponse
    seen_within_seconds: int
    def __init__(self, executors: _Optional[_Iterable[_Union[ExecutorStatus, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., seen_within_seconds: _Optional[int] = ...) -> None: ...

class ExecutorStatus(_message.Message):
    __slots__ = ("executor_id", "total", "free", "queues", "last_seen_at", "tasks")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    total: Capacity
    free: Capacity
    queues: _containers.RepeatedScalarFieldContainer[str]
    last_seen_at: _timestamp_pb2.Timestamp
    tasks: _containers.RepeatedCompositeFieldContainer[_records_pb2.QueuedTask]
    def __init__(self, executor_id: _Optional[str] = ..., total: _Optional[_Union[Capacity, _Mapping]] = ..., free: _Optional[_Union[Capacity, _Mapping]] = ..., queues: _Optional[_Iterable[str]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[_records_pb2.QueuedTask, _Mapping]]] = ...) -> None: ...
