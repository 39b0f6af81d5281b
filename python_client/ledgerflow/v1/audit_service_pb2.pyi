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

class ListEventsRequest(_message.Message):
    __slots__ = ("run_pathspec", "task_pathspec", "actor", "recorded_after", "recorded_before", "page")
    RUN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    TASK_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AFTER_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    run_pathspec: str
    task_pathspec: str
    actor: str
    recorded_after: _timestamp_pb2.Timestamp
    recorded_before: _timestamp_pb2.Timestamp
    page: _common_pb2.PageRequest
    def __init__(self, run_pathspec: _Optional[str] = ..., task_pathspec: _Optional[str] = ..., actor: _Optional[str] = ..., recorded_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "page")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    page: _common_pb2.PageResponse
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetRunAsOfRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "as_of", "page")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    as_of: _timestamp_pb2.Timestamp
    page: _common_pb2.PageRequest
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class GetRunAsOfResponse(_message.Message):
    __slots__ = ("run", "tasks", "page")
    RUN_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    run: _records_pb2.Run
    tasks: _containers.RepeatedCompositeFieldContainer[_records_pb2.Task]
    page: _common_pb2.PageResponse
    def __init__(self, run: _Optional[_Union[_records_pb2.Run, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[_records_pb2.Task, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
