import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledgerflow.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("event_id", "stream", "expected_version", "stream_version", "global_position", "event_type", "actor", "actor_authenticated", "recorded_at", "run_started", "run_heartbeat", "run_finished", "task_started", "task_heartbeat", "artifacts_recorded", "task_succeeded", "task_failed", "task_cloned", "tags_added", "tags_removed", "logs_recorded", "task_queued", "task_leased", "lease_expired", "task_cancelled", "run_cancel_requested", "table_version_written", "table_version_read", "deployment_created", "deployment_paused", "deployment_resumed", "deployment_deleted", "cards_recorded", "event_published", "notification_requested", "notification_sending", "notification_result", "task_queue_timed_out", "task_not_started")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_POSITION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_AUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_STARTED_FIELD_NUMBER: _ClassVar[int]
    RUN_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RUN_FINISHED_FIELD_NUMBER: _ClassVar[int]
    TASK_STARTED_FIELD_NUMBER: _ClassVar[int]
    TASK_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    TASK_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASK_FAILED_FIELD_NUMBER: _ClassVar[int]
    TASK_CLONED_FIELD_NUMBER: _ClassVar[int]
    TAGS_ADDED_FIELD_NUMBER: _ClassVar[int]
    TAGS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    LOGS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUED_FIELD_NUMBER: _ClassVar[int]
    TASK_LEASED_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    TASK_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RUN_CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    TABLE_VERSION_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    TABLE_VERSION_READ_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_CREATED_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_PAUSED_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_RESUMED_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_DELETED_FIELD_NUMBER: _ClassVar[int]
    CARDS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    EVENT_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_SENDING_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_RESULT_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    TASK_NOT_STARTED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    stream: str
    expected_version: int
    stream_version: int
    global_position: int
    event_type: str
    actor: str
    actor_authenticated: bool
    recorded_at: _timestamp_pb2.Timestamp
    run_started: RunStarted
    run_heartbeat: RunHeartbeat
    run_finished: RunFinished
    task_started: TaskStarted
    task_heartbeat: TaskHeartbeat
    artifacts_recorded: ArtifactsRecorded
    task_succeeded: TaskSucceeded
    task_failed: TaskFailed
    task_cloned: TaskCloned
    tags_added: TagsAdded
    tags_removed: TagsRemoved
    logs_recorded: LogsRecorded
    task_queued: TaskQueued
    task_leased: TaskLeased
    lease_expired: LeaseExpired
    task_cancelled: TaskCancelled
    run_cancel_requested: RunCancelRequested
    table_version_written: TableVersionWritten
    table_version_read: TableVersionRead
    deployment_created: DeploymentCreated
    deployment_paused: DeploymentPaused
    deployment_resumed: DeploymentResumed
    deployment_deleted: DeploymentDeleted
    cards_recorded: CardsRecorded
    event_published: EventPublished
    notification_requested: NotificationRequested
    notification_sending: NotificationSending
    notification_result: NotificationResult
    task_queue_timed_out: TaskQueueTimedOut
    task_not_started: TaskNotStarted
    def __init__(self, event_id: _Optional[str] = ..., stream: _Optional[str] = ..., expected_version: _Optional[int] = ..., stream_version: _Optional[int] = ..., global_position: _Optional[int] = ..., event_type: _Optional[str] = ..., actor: _Optional[str] = ..., actor_authenticated: _Optional[bool] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_started: _Optional[_Union[RunStarted, _Mapping]] = ..., run_heartbeat: _Optional[_Union[RunHeartbeat, _Mapping]] = ..., run_finished: _Optional[_Union[RunFinished, _Mapping]] = ..., task_started: _Optional[_Union[TaskStarted, _Mapping]] = ..., task_heartbeat: _Optional[_Union[TaskHeartbeat, _Mapping]] = ..., artifacts_recorded: _Optional[_Union[ArtifactsRecorded, _Mapping]] = ..., task_succeeded: _Optional[_Union[TaskSucceeded, _Mapping]] = ..., task_failed: _Optional[_Union[TaskFailed, _Mapping]] = ..., task_cloned: _Optional[_Union[TaskCloned, _Mapping]] = ..., tags_added: _Optional[_Union[TagsAdded, _Mapping]] = ..., tags_removed: _Optional[_Union[TagsRemoved, _Mapping]] = ..., logs_recorded: _Optional[_Union[LogsRecorded, _Mapping]] = ..., task_queued: _Optional[_Union[TaskQueued, _Mapping]] = ..., task_leased: _Optional[_Union[TaskLeased, _Mapping]] = ..., lease_expired: _Optional[_Union[LeaseExpired, _Mapping]] = ..., task_cancelled: _Optional[_Union[TaskCancelled, _Mapping]] = ..., run_cancel_requested: _Optional[_Union[RunCancelRequested, _Mapping]] = ..., table_version_written: _Optional[_Union[TableVersionWritten, _Mapping]] = ..., table_version_read: _Optional[_Union[TableVersionRead, _Mapping]] = ..., deployment_created: _Optional[_Union[DeploymentCreated, _Mapping]] = ..., deployment_paused: _Optional[_Union[DeploymentPaused, _Mapping]] = ..., deployment_resumed: _Optional[_Union[DeploymentResumed, _Mapping]] = ..., deployment_deleted: _Optional[_Union[DeploymentDeleted, _Mapping]] = ..., cards_recorded: _Optional[_Union[CardsRecorded, _Mapping]] = ..., event_published: _Optional[_Union[EventPublished, _Mapping]] = ..., notification_requested: _Optional[_Union[NotificationRequested, _Mapping]] = ..., notification_sending: _Optional[_Union[NotificationSending, _Mapping]] = ..., notification_result: _Optional[_Union[NotificationResult, _Mapping]] = ..., task_queue_timed_out: _Optional[_Union[TaskQueueTimedOut, _Mapping]] = ..., task_not_started: _Optional[_Union[TaskNotStarted, _Mapping]] = ...) -> None: ...

class TaskRef(_message.Message):
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

class RunStarted(_message.Message):
    __slots__ = ("flow_name", "run_id", "user", "tags", "system_tags", "parameters", "origin_run_id", "code_package_key", "graph", "resume", "declared_graph", "trigger", "queue_policy")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_TAGS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    DECLARED_GRAPH_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POLICY_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    user: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    system_tags: _containers.RepeatedScalarFieldContainer[str]
    parameters: _containers.ScalarMap[str, str]
    origin_run_id: str
    code_package_key: str
    graph: _records_pb2.FlowGraph
    resume: _records_pb2.ResumePlan
    declared_graph: _records_pb2.FlowGraph
    trigger: _records_pb2.Trigger
    queue_policy: _records_pb2.QueuePolicy
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., user: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., system_tags: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Mapping[str, str]] = ..., origin_run_id: _Optional[str] = ..., code_package_key: _Optional[str] = ..., graph: _Optional[_Union[_records_pb2.FlowGraph, _Mapping]] = ..., resume: _Optional[_Union[_records_pb2.ResumePlan, _Mapping]] = ..., declared_graph: _Optional[_Union[_records_pb2.FlowGraph, _Mapping]] = ..., trigger: _Optional[_Union[_records_pb2.Trigger, _Mapping]] = ..., queue_policy: _Optional[_Union[_records_pb2.QueuePolicy, _Mapping]] = ...) -> None: ...

class RunHeartbeat(_message.Message):
    __slots__ = ("flow_name", "run_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class RunFinished(_message.Message):
    __slots__ = ("flow_name", "run_id", "succeeded")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    succeeded: bool
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., succeeded: _Optional[bool] = ...) -> None: ...

class TaskStarted(_message.Message):
    __slots__ = ("task", "attempt", "input_pathspecs", "foreach_stack", "resources", "lease_id", "backend", "backend_handle")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATHSPECS_FIELD_NUMBER: _ClassVar[int]
    FOREACH_STACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_HANDLE_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    input_pathspecs: _containers.RepeatedScalarFieldContainer[str]
    foreach_stack: _containers.RepeatedCompositeFieldContainer[_records_pb2.ForeachFrame]
    resources: _records_pb2.Resources
    lease_id: str
    backend: str
    backend_handle: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., input_pathspecs: _Optional[_Iterable[str]] = ..., foreach_stack: _Optional[_Iterable[_Union[_records_pb2.ForeachFrame, _Mapping]]] = ..., resources: _Optional[_Union[_records_pb2.Resources, _Mapping]] = ..., lease_id: _Optional[str] = ..., backend: _Optional[str] = ..., backend_handle: _Optional[str] = ...) -> None: ...

class TaskHeartbeat(_message.Message):
    __slots__ = ("task", "attempt", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ArtifactsRecorded(_message.Message):
    __slots__ = ("task", "attempt", "artifacts", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    artifacts: _containers.RepeatedCompositeFieldContainer[_records_pb2.Artifact]
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., artifacts: _Optional[_Iterable[_Union[_records_pb2.Artifact, _Mapping]]] = ..., lease_id: _Optional[str] = ...) -> None: ...

class CardsRecorded(_message.Message):
    __slots__ = ("task", "attempt", "cards", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CARDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    cards: _containers.RepeatedCompositeFieldContainer[_records_pb2.Card]
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., cards: _Optional[_Iterable[_Union[_records_pb2.Card, _Mapping]]] = ..., lease_id: _Optional[str] = ...) -> None: ...

class TaskSucceeded(_message.Message):
    __slots__ = ("task", "attempt", "lease_id", "num_splits", "switch_step")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SPLITS_FIELD_NUMBER: _ClassVar[int]
    SWITCH_STEP_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    lease_id: str
    num_splits: int
    switch_step: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ..., num_splits: _Optional[int] = ..., switch_step: _Optional[str] = ...) -> None: ...

class TaskFailed(_message.Message):
    __slots__ = ("task", "attempt", "error_type", "error_message", "traceback", "lease_id", "kind")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    error_type: str
    error_message: str
    traceback: str
    lease_id: str
    kind: _records_pb2.FailureKind
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ..., lease_id: _Optional[str] = ..., kind: _Optional[_Union[_records_pb2.FailureKind, str]] = ...) -> None: ...

class TaskCloned(_message.Message):
    __slots__ = ("task", "origin_pathspec", "input_pathspecs", "foreach_stack")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATHSPECS_FIELD_NUMBER: _ClassVar[int]
    FOREACH_STACK_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    origin_pathspec: str
    input_pathspecs: _containers.RepeatedScalarFieldContainer[str]
    foreach_stack: _containers.RepeatedCompositeFieldContainer[_records_pb2.ForeachFrame]
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., origin_pathspec: _Optional[str] = ..., input_pathspecs: _Optional[_Iterable[str]] = ..., foreach_stack: _Optional[_Iterable[_Union[_records_pb2.ForeachFrame, _Mapping]]] = ...) -> None: ...

class TagsAdded(_message.Message):
    __slots__ = ("flow_name", "run_id", "tags")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class TagsRemoved(_message.Message):
    __slots__ = ("flow_name", "run_id", "tags")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class LogsRecorded(_message.Message):
    __slots__ = ("task", "attempt", "stdout_key", "stderr_key", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_KEY_FIELD_NUMBER: _ClassVar[int]
    STDERR_KEY_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    stdout_key: str
    stderr_key: str
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., stdout_key: _Optional[str] = ..., stderr_key: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class TaskQueued(_message.Message):
    __slots__ = ("task", "attempt", "input_pathspecs", "foreach_stack", "resources", "queue", "delay_seconds", "reason")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATHSPECS_FIELD_NUMBER: _ClassVar[int]
    FOREACH_STACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    input_pathspecs: _containers.RepeatedScalarFieldContainer[str]
    foreach_stack: _containers.RepeatedCompositeFieldContainer[_records_pb2.ForeachFrame]
    resources: _records_pb2.Resources
    queue: str
    delay_seconds: float
    reason: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., input_pathspecs: _Optional[_Iterable[str]] = ..., foreach_stack: _Optional[_Iterable[_Union[_records_pb2.ForeachFrame, _Mapping]]] = ..., resources: _Optional[_Union[_records_pb2.Resources, _Mapping]] = ..., queue: _Optional[str] = ..., delay_seconds: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskLeased(_message.Message):
    __slots__ = ("task", "attempt", "lease_id", "executor_id", "lease_seconds")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    lease_id: str
    executor_id: str
    lease_seconds: int
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ..., executor_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class LeaseExpired(_message.Message):
    __slots__ = ("task", "attempt", "lease_id", "executor_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    lease_id: str
    executor_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ..., executor_id: _Optional[str] = ...) -> None: ...

class TaskCancelled(_message.Message):
    __slots__ = ("task", "attempt", "reason")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    reason: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskQueueTimedOut(_message.Message):
    __slots__ = ("task", "attempt", "queue_timeout_seconds", "reason")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    queue_timeout_seconds: int
    reason: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., queue_timeout_seconds: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskNotStarted(_message.Message):
    __slots__ = ("task", "attempt", "lease_id", "kind", "error_type", "error_message")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    lease_id: str
    kind: _records_pb2.FailureKind
    error_type: str
    error_message: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_id: _Optional[str] = ..., kind: _Optional[_Union[_records_pb2.FailureKind, str]] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class RunCancelRequested(_message.Message):
    __slots__ = ("flow_name", "run_id", "reason")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    reason: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TableVersionWritten(_message.Message):
    __slots__ = ("task", "attempt", "namespace", "table", "location", "files", "num_rows", "num_bytes", "schema", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    namespace: str
    table: str
    location: str
    files: _containers.RepeatedScalarFieldContainer[str]
    num_rows: int
    num_bytes: int
    schema: str
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., namespace: _Optional[str] = ..., table: _Optional[str] = ..., location: _Optional[str] = ..., files: _Optional[_Iterable[str]] = ..., num_rows: _Optional[int] = ..., num_bytes: _Optional[int] = ..., schema: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class TableVersionRead(_message.Message):
    __slots__ = ("task", "attempt", "namespace", "table", "version", "lease_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task: TaskRef
    attempt: int
    namespace: str
    table: str
    version: int
    lease_id: str
    def __init__(self, task: _Optional[_Union[TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., namespace: _Optional[str] = ..., table: _Optional[str] = ..., version: _Optional[int] = ..., lease_id: _Optional[str] = ...) -> None: ...

class DeploymentCreated(_message.Message):
    __slots__ = ("name", "flow_name", "project", "branch", "production", "code_package_key", "graph", "parameters", "schedule", "tags", "system_tags", "user", "trigger_on_finish", "trigger_on_events", "notify", "queue_policy")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CODE_PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_TAGS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ON_FINISH_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ON_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    flow_name: str
    project: str
    branch: str
    production: bool
    code_package_key: str
    graph: _records_pb2.FlowGraph
    parameters: _containers.ScalarMap[str, str]
    schedule: _records_pb2.Schedule
    tags: _containers.RepeatedScalarFieldContainer[str]
    system_tags: _containers.RepeatedScalarFieldContainer[str]
    user: str
    trigger_on_finish: _containers.RepeatedScalarFieldContainer[str]
    trigger_on_events: _containers.RepeatedScalarFieldContainer[str]
    notify: _containers.RepeatedCompositeFieldContainer[_records_pb2.Notify]
    queue_policy: _records_pb2.QueuePolicy
    def __init__(self, name: _Optional[str] = ..., flow_name: _Optional[str] = ..., project: _Optional[str] = ..., branch: _Optional[str] = ..., production: _Optional[bool] = ..., code_package_key: _Optional[str] = ..., graph: _Optional[_Union[_records_pb2.FlowGraph, _Mapping]] = ..., parameters: _Optional[_Mapping[str, str]] = ..., schedule: _Optional[_Union[_records_pb2.Schedule, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., system_tags: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., trigger_on_finish: _Optional[_Iterable[str]] = ..., trigger_on_events: _Optional[_Iterable[str]] = ..., notify: _Optional[_Iterable[_Union[_records_pb2.Notify, _Mapping]]] = ..., queue_policy: _Optional[_Union[_records_pb2.QueuePolicy, _Mapping]] = ...) -> None: ...

class DeploymentPaused(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeploymentResumed(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeploymentDeleted(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EventPublished(_message.Message):
    __slots__ = ("name", "payload")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class NotificationRequested(_message.Message):
    __slots__ = ("flow_name", "run_id", "notification", "notify", "outcome")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    notification: int
    notify: _records_pb2.Notify
    outcome: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., notification: _Optional[int] = ..., notify: _Optional[_Union[_records_pb2.Notify, _Mapping]] = ..., outcome: _Optional[str] = ...) -> None: ...

class NotificationSending(_message.Message):
    __slots__ = ("flow_name", "run_id", "notification", "attempt", "claim_seconds")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CLAIM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    notification: int
    attempt: int
    claim_seconds: int
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., notification: _Optional[int] = ..., attempt: _Optional[int] = ..., claim_seconds: _Optional[int] = ...) -> None: ...

class NotificationResult(_message.Message):
    __slots__ = ("flow_name", "run_id", "notification", "attempt", "delivered", "detail")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    notification: int
    attempt: int
    delivered: bool
    detail: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., notification: _Optional[int] = ..., attempt: _Optional[int] = ..., delivered: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...
