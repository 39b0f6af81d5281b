from ledgerflow.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppendRequest(_message.Message):
    __slots__ = ("events", "claimed_user")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_USER_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    claimed_user: str
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., claimed_user: _Optional[str] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after_position", "run_pathspec", "event_types", "from_head", "batch_events")
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    RUN_PATHSPEC_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    FROM_HEAD_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    after_position: int
    run_pathspec: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    from_head: bool
    batch_events: int
    def __init__(self, after_position: _Optional[int] = ..., run_pathspec: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., from_head: _Optional[bool] = ..., batch_events: _Optional[int] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ...) -> None: ...
