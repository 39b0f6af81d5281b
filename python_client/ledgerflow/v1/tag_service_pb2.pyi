from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AddTagsRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "tags", "claimed_user", "event_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_USER_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    claimed_user: str
    event_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., claimed_user: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class AddTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveTagsRequest(_message.Message):
    __slots__ = ("flow_name", "run_id", "tags", "claimed_user", "event_id")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_USER_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    claimed_user: str
    event_id: str
    def __init__(self, flow_name: _Optional[str] = ..., run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., claimed_user: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class RemoveTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...
