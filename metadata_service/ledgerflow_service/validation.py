"""Checks of request fields at the edge, before any statement is built.

The database is never the validator: a value it would refuse (a NUL character, a
number past 64 bits, a timestamp past year 9999, a filter list longer than its
parameter limit) is refused here with INVALID_ARGUMENT and a message that names the
field, the same way on SQLite and Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.names import check_identifier, check_tag

# Filter lists (tags, statuses, names, event types) hold at most this many values.
MAX_FILTER_VALUES = 100
# The largest value a signed 64-bit column holds (positions, sizes, microseconds).
MAX_INT64 = (1 << 63) - 1
# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def check_text(field: str, value: str) -> str:
    """Free text (a user name, an error message): anything but NUL characters, which
    Postgres cannot store in text."""
    if "\x00" in value:
        raise InvalidArgument(f"{field} contains a NUL character (\\x00); remove it")
    return value


def check_int64(field: str, value: int) -> int:
    if value > MAX_INT64:
        raise InvalidArgument(f"{field} is {value}; the largest accepted value is {MAX_INT64}")
    return value


def timestamp_us(field: str, value: Timestamp) -> int:
    """Microseconds since the epoch of a valid Timestamp."""
    if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 1_000_000_000:
        raise InvalidArgument(
            f"{field} is not a valid timestamp (seconds={value.seconds}, nanos={value.nanos}): "
            "use a time between years 1 and 9999"
        )
    return value.ToMicroseconds()


def check_filter(field: str, values: Sequence[Any]) -> list[Any]:
    """A filter list: at most MAX_FILTER_VALUES values, duplicates dropped."""
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidArgument(
            f"{field} holds {len(values)} values; a filter holds at most {MAX_FILTER_VALUES}"
        )
    return list(dict.fromkeys(values))


def check_run_settings(
    tags: Iterable[str], system_tags: Iterable[str], parameters: Mapping[str, str]
) -> None:
    """A run's tags and its parameters (JSON text by identifier), as a RunStarted carries
    them, or a deployment that starts runs with them."""
    for tag in [*tags, *system_tags]:
        check_tag(tag)
    for name, value in parameters.items():
        check_identifier("parameter name", name)
        try:
            json.loads(value)
        except ValueError:
            raise InvalidArgument(f"parameter {name!r} is not JSON text: {value[:60]!r}") from None
