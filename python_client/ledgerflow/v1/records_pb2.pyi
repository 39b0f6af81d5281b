import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledgerflow.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_KIND_UNSPECIFIED: _ClassVar[StepKind]
    STEP_KIND_LINEAR: _ClassVar[StepKind]
    STEP_KIND_SPLIT: _ClassVar[StepKind]
    STEP_KIND_FOREACH: _ClassVar[StepKind]
    STEP_KIND_JOIN: _ClassVar[StepKind]
    STEP_KIND_END: _ClassVar[StepKind]
    STEP_KIND_SWITCH: _ClassVar[StepKind]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    FAILURE_KIND_EXCEPTION: _ClassVar[FailureKind]
    FAILURE_KIND_TIMEOUT: _ClassVar[FailureKind]
    FAILURE_KIND_OUT_OF_MEMORY: _ClassVar[FailureKind]
    FAILURE_KIND_KILLED: _ClassVar[FailureKind]
    FAILURE_KIND_CANCELLED: _ClassVar[FailureKind]
    FAILURE_KIND_INFRASTRUCTURE: _ClassVar[FailureKind]

class QueueState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_STATE_UNSPECIFIED: _ClassVar[QueueState]
    QUEUE_STATE_QUEUED: _ClassVar[QueueState]
    QUEUE_STATE_LEASED: _ClassVar[QueueState]
    QUEUE_STATE_RUNNING: _ClassVar[QueueState]

class TriggerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_KIND_UNSPECIFIED: _ClassVar[TriggerKind]
    TRIGGER_KIND_SCHEDULE: _ClassVar[TriggerKind]
    TRIGGER_KIND_MANUAL: _ClassVar[TriggerKind]
    TRIGGER_KIND_BACKFILL: _ClassVar[TriggerKind]
    TRIGGER_KIND_RUN_FINISHED: _ClassVar[TriggerKind]
    TRIGGER_KIND_EVENT: _ClassVar[TriggerKind]
STEP_KIND_UNSPECIFIED: StepKind
STEP_KIND_LINEAR: StepKind
STEP_KIND_SPLIT: StepKind
STEP_KIND_FOREACH: StepKind
STEP_KIND_JOIN: StepKind
STEP_KIND_END: StepKind
STEP_KIND_SWITCH: StepKind
FAILURE_KIND_UNSPECIFIED: FailureKind
FAILURE_KIND_EXCEPTION: FailureKind
FAILURE_KIND_TIMEOUT: FailureKind
FAILURE_KIND_OUT_OF_MEMORY: FailureKind
FAILURE_KIND_KILLED: FailureKind
FAILURE_KIND_CANCELLED: FailureKind
FAILURE_KIND_INFRASTRUCTURE: FailureKind
QUEUE_STATE_UNSPECIFIED: QueueState
QUEUE_STATE_QUEUED: QueueState
QUEUE_STATE_LEASED: QueueState
QUEUE_STATE_RUNNING: QueueState
TRIGGER_KIND_UNSPECIFIED: TriggerKind
TRIGGER_KIND_SCHEDULE: TriggerKind
TRIGGER_KIND_MANUAL: TriggerKind
TRIGGER_KIND_BACKFILL: TriggerKind
TRIGGER_KIND_RUN_FINISHED: TriggerKind
TRIGGER_KIND_EVENT: TriggerKind

class Flow(_message.Message):
    __slots__ = ("flow_name", "created_at", "created_by")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, flow_name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("flow_name", "run_id", "pathspec", "user", "tags", "system_tags", "parameters", "origin_run_id", "status", "created_at", "finished_at", "last_heartbeat_at", "code_package_key", "trigger")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_TAGS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    CODE_PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    pathspec: str
    user: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    system_tags: _containers.RepeatedScalarFieldContainer[str]
    parameters: _containers.ScalarMap[str, str]
    origin_run_id: str
    status: _common_pb2.Status
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    last_heartbeat_at: _timestamp_pb2.Timestamp
    code_package_key: str
    trigger: Trigger
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., pathspec: _Optional[str] = ..., user: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., system_tags: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Mapping[str, str]] = ..., origin_run_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., code_package_key: _Optional[str] = ..., trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "pathspec", "created_at", "task_count", "running_count", "succeeded_count", "failed_count", "lost_count", "in_steps")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOST_COUNT_FIELD_NUMBER: _ClassVar[int]
    IN_STEPS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    pathspec: str
    created_at: _timestamp_pb2.Timestamp
    task_count: int
    running_count: int
    succeeded_count: int
    failed_count: int
    lost_count: int
    in_steps: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., pathspec: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_count: _Optional[int] = ..., running_count: _Optional[int] = ..., succeeded_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., lost_count: _Optional[int] = ..., in_steps: _Optional[_Iterable[str]] = ...) -> None: ...

class ForeachFrame(_message.Message):
    __slots__ = ("step_name", "index", "num_splits")
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NUM_SPLITS_FIELD_NUMBER: _ClassVar[int]
    step_name: str
    index: int
    num_splits: int
    def __init__(self, step_name: _Optional[str] = ..., index: _Optional[int] = ..., num_splits: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpu", "gpu", "memory_mb")
    CPU_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    gpu: int
    memory_mb: int
    def __init__(self, cpu: _Optional[float] = ..., gpu: _Optional[int] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class QueuePolicy(_message.Message):
    __slots__ = ("priority", "max_workers", "queue_timeout_seconds")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    priority: int
    max_workers: int
    queue_timeout_seconds: int
    def __init__(self, priority: _Optional[int] = ..., max_workers: _Optional[int] = ..., queue_timeout_seconds: _Optional[int] = ...) -> None: ...

class FlowGraph(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[StepSpec]
    def __init__(self, steps: _Optional[_Iterable[_Union[StepSpec, _Mapping]]] = ...) -> None: ...

class SwitchCase(_message.Message):
    __slots__ = ("value", "step")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    value: str
    step: str
    def __init__(self, value: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class StepSpec(_message.Message):
    __slots__ = ("name", "kind", "next_steps", "in_steps", "closes", "resources", "retries", "minutes_between_retries", "catch", "catch_var", "catch_print", "timeout_seconds", "queue", "image", "max_num_splits", "condition", "switch_cases", "parallel")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEPS_FIELD_NUMBER: _ClassVar[int]
    IN_STEPS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    MINUTES_BETWEEN_RETRIES_FIELD_NUMBER: _ClassVar[int]
    CATCH_FIELD_NUMBER: _ClassVar[int]
    CATCH_VAR_FIELD_NUMBER: _ClassVar[int]
    CATCH_PRINT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_SPLITS_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    SWITCH_CASES_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: StepKind
    next_steps: _containers.RepeatedScalarFieldContainer[str]
    in_steps: _containers.RepeatedScalarFieldContainer[str]
    closes: str
    resources: Resources
    retries: int
    minutes_between_retries: float
    catch: bool
    catch_var: str
    catch_print: bool
    timeout_seconds: float
    queue: str
    image: str
    max_num_splits: int
    condition: str
    switch_cases: _containers.RepeatedCompositeFieldContainer[SwitchCase]
    parallel: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[StepKind, str]] = ..., next_steps: _Optional[_Iterable[str]] = ..., in_steps: _Optional[_Iterable[str]] = ..., closes: _Optional[str] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., retries: _Optional[int] = ..., minutes_between_retries: _Optional[float] = ..., catch: _Optional[bool] = ..., catch_var: _Optional[str] = ..., catch_print: _Optional[bool] = ..., timeout_seconds: _Optional[float] = ..., queue: _Optional[str] = ..., image: _Optional[str] = ..., max_num_splits: _Optional[int] = ..., condition: _Optional[str] = ..., switch_cases: _Optional[_Iterable[_Union[SwitchCase, _Mapping]]] = ..., parallel: _Optional[bool] = ...) -> None: ...

class ResumePlan(_message.Message):
    __slots__ = ("clones", "first_task_id")
    CLONES_FIELD_NUMBER: _ClassVar[int]
    FIRST_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    clones: _containers.RepeatedCompositeFieldContainer[ClonedTask]
    first_task_id: int
    def __init__(self, clones: _Optional[_Iterable[_Union[ClonedTask, _Mapping]]] = ..., first_task_id: _Optional[int] = ...) -> None: ...

class ClonedTask(_message.Message):
    __slots__ = ("step_name", "foreach_indices", "origin_task_id", "num_splits", "switch_step")
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    FOREACH_INDICES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SPLITS_FIELD_NUMBER: _ClassVar[int]
    SWITCH_STEP_FIELD_NUMBER: _ClassVar[int]
    step_name: str
    foreach_indices: _containers.RepeatedScalarFieldContainer[int]
    origin_task_id: str
    num_splits: int
    switch_step: str
    def __init__(self, step_name: _Optional[str] = ..., foreach_indices: _Optional[_Iterable[int]] = ..., origin_task_id: _Optional[str] = ..., num_splits: _Optional[int] = ..., switch_step: _Optional[str] = ...) -> None: ...

class QueuedTask(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "task_id", "pathspec", "attempt", "state", "input_pathspecs", "foreach_stack", "resources", "queue", "queued_at", "executor_id", "lease_expires_at", "waiting_reason", "failures", "lease_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATHSPECS_FIELD_NUMBER: _ClassVar[int]
    FOREACH_STACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    pathspec: str
    attempt: int
    state: QueueState
    input_pathspecs: _containers.RepeatedScalarFieldContainer[str]
    foreach_stack: _containers.RepeatedCompositeFieldContainer[ForeachFrame]
    resources: Resources
    queue: str
    queued_at: _timestamp_pb2.Timestamp
    executor_id: str
    lease_expires_at: _timestamp_pb2.Timestamp
    waiting_reason: str
    failures: int
    lease_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., task_id: _Optional[str] = ..., pathspec: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[QueueState, str]] = ..., input_pathspecs: _Optional[_Iterable[str]] = ..., foreach_stack: _Optional[_Iterable[_Union[ForeachFrame, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., queue: _Optional[str] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., executor_id: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting_reason: _Optional[str] = ..., failures: _Optional[int] = ..., lease_id: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("attempt", "status", "started_at", "finished_at", "error_type", "error_message", "traceback", "stdout_key", "stderr_key")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    STDOUT_KEY_FIELD_NUMBER: _ClassVar[int]
    STDERR_KEY_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    status: _common_pb2.Status
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error_type: str
    error_message: str
    traceback: str
    stdout_key: str
    stderr_key: str
    def __init__(self, attempt: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.Status, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ..., stdout_key: _Optional[str] = ..., stderr_key: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("flow_name", "run_id", "step_name", "task_id", "pathspec", "status", "created_at", "finished_at", "last_heartbeat_at", "attempts", "input_pathspecs", "foreach_stack", "resources", "origin_pathspec", "cards")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATHSPECS_FIELD_NUMBER: _ClassVar[int]
    FOREACH_STACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    CARDS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    pathspec: str
    status: _common_pb2.Status
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    last_heartbeat_at: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    input_pathspecs: _containers.RepeatedScalarFieldContainer[str]
    foreach_stack: _containers.RepeatedCompositeFieldContainer[ForeachFrame]
    resources: Resources
    origin_pathspec: str
    cards: _containers.RepeatedCompositeFieldContainer[Card]
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., step_name: _Optional[str] = ..., task_id: _Optional[str] = ..., pathspec: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., input_pathspecs: _Optional[_Iterable[str]] = ..., foreach_stack: _Optional[_Iterable[_Union[ForeachFrame, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., origin_pathspec: _Optional[str] = ..., cards: _Optional[_Iterable[_Union[Card, _Mapping]]] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("id", "type", "content_key", "size", "error", "attempt", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    content_key: str
    size: int
    error: str
    attempt: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., content_key: _Optional[str] = ..., size: _Optional[int] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "content_key", "size", "type_name", "serializer", "language", "task_pathspec", "attempt")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    SERIALIZER_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content_key: str
    size: int
    type_name: str
    serializer: str
    language: str
    task_pathspec: str
    attempt: int
    def __init__(self, name: _Optional[str] = ..., content_key: _Optional[str] = ..., size: _Optional[int] = ..., type_name: _Optional[str] = ..., serializer: _Optional[str] = ..., language: _Optional[str] = ..., task_pathspec: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class TableVersion(_message.Message):
    __slots__ = ("namespace", "table", "version", "location", "files", "num_rows", "num_bytes", "schema", "written_by", "attempt", "run_pathspec", "written_at", "reads")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    table: str
    version: int
    location: str
    files: _containers.RepeatedScalarFieldContainer[str]
    num_rows: int
    num_bytes: int
    schema: str
    written_by: str
    attempt: int
    run_pathspec: str
    written_at: _timestamp_pb2.Timestamp
    reads: _containers.RepeatedCompositeFieldContainer[TableRead]
    def __init__(self, namespace: _Optional[str] = ..., table: _Optional[str] = ..., version: _Optional[int] = ..., location: _Optional[str] = ..., files: _Optional[_Iterable[str]] = ..., num_rows: _Optional[int] = ..., num_bytes: _Optional[int] = ..., schema: _Optional[str] = ..., written_by: _Optional[str] = ..., attempt: _Optional[int] = ..., run_pathspec: _Optional[str] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reads: _Optional[_Iterable[_Union[TableRead, _Mapping]]] = ...) -> None: ...

class TableRead(_message.Message):
    __slots__ = ("read_by", "attempt", "run_pathspec", "read_at")
    READ_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    read_by: str
    attempt: int
    run_pathspec: str
    read_at: _timestamp_pb2.Timestamp
    def __init__(self, read_by: _Optional[str] = ..., attempt: _Optional[int] = ..., run_pathspec: _Optional[str] = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TableSummary(_message.Message):
    __slots__ = ("namespace", "table", "latest_version", "written_at")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    table: str
    latest_version: int
    written_at: _timestamp_pb2.Timestamp
    def __init__(self, namespace: _Optional[str] = ..., table: _Optional[str] = ..., latest_version: _Optional[int] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("cron", "timezone", "catchup")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    catchup: bool
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., catchup: _Optional[bool] = ...) -> None: ...

class PublishedEvent(_message.Message):
    __slots__ = ("name", "payload", "id", "published_at", "published_by")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: str
    id: str
    published_at: _timestamp_pb2.Timestamp
    published_by: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[str] = ..., id: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_by: _Optional[str] = ...) -> None: ...

class Notify(_message.Message):
    __slots__ = ("on", "command", "webhook")
    ON_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    on: _containers.RepeatedScalarFieldContainer[str]
    command: str
    webhook: str
    def __init__(self, on: _Optional[_Iterable[str]] = ..., command: _Optional[str] = ..., webhook: _Optional[str] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("deployment", "deployment_version", "kind", "scheduled_at", "timezone", "upstream_run", "event")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_RUN_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    deployment_version: int
    kind: TriggerKind
    scheduled_at: _timestamp_pb2.Timestamp
    timezone: str
    upstream_run: str
    event: PublishedEvent
    def __init__(self, deployment: _Optional[str] = ..., deployment_version: _Optional[int] = ..., kind: _Optional[_Union[TriggerKind, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ..., upstream_run: _Optional[str] = ..., event: _Optional[_Union[PublishedEvent, _Mapping]] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("name", "version", "flow_name", "project", "branch", "production", "schedule", "paused", "deployed_by", "deployed_at", "next_run_at", "parameters", "tags", "code_package_key", "deleted", "trigger_on_finish", "trigger_on_events", "notify", "queue_policy")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    DEPLOYED_BY_FIELD_NUMBER: _ClassVar[int]
    DEPLOYED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CODE_PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ON_FINISH_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ON_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    flow_name: str
    project: str
    branch: str
    production: bool
    schedule: Schedule
    paused: bool
    deployed_by: str
    deployed_at: _timestamp_pb2.Timestamp
    next_run_at: _timestamp_pb2.Timestamp
    parameters: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    code_package_key: str
    deleted: bool
    trigger_on_finish: _containers.RepeatedScalarFieldContainer[str]
    trigger_on_events: _containers.RepeatedScalarFieldContainer[str]
    notify: _containers.RepeatedCompositeFieldContainer[Notify]
    queue_policy: QueuePolicy
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., flow_name: _Optional[str] = ..., project: _Optional[str] = ..., branch: _Optional[str] = ..., production: _Optional[bool] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., paused: _Optional[bool] = ..., deployed_by: _Optional[str] = ..., deployed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parameters: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., code_package_key: _Optional[str] = ..., deleted: _Optional[bool] = ..., trigger_on_finish: _Optional[_Iterable[str]] = ..., trigger_on_events: _Optional[_Iterable[str]] = ..., notify: _Optional[_Iterable[_Union[Notify, _Mapping]]] = ..., queue_policy: _Optional[_Union[QueuePolicy, _Mapping]] = ...) -> None: ...
