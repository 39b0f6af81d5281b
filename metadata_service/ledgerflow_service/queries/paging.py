"""Pages of list answers: sizes, the opaque tokens that continue a list, and the byte
bound that keeps one answer within what other languages' gRPC clients accept."""

from __future__ import annotations

import base64
import json
from typing import Any

from ledgerflow.v1 import common_pb2

from ledgerflow_service.errors import InvalidArgument
from ledgerflow_service.validation import MAX_INT64

DEFAULT_PAGE = 100
MAX_PAGE = 1000
# A page's items encode to at most about this many bytes (one item may be larger):
# half the 4 MiB that gRPC clients in Go, Java and C++ accept by default.
MAX_PAGE_BYTES = 2 * 1024 * 1024


def page_size(page: common_pb2.PageRequest) -> int:
    if page.page_size > MAX_PAGE:
        raise InvalidArgument(f"page_size is at most {MAX_PAGE}, got {page.page_size}")
    return page.page_size or DEFAULT_PAGE


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


BAD_TOKEN = "page_token is not one this list gave out: pass back its next_page_token unchanged"


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeError):
        raise InvalidArgument(BAD_TOKEN) from None


def position_token(token: str) -> int:
    """A page token that holds a position (a whole number in 0..2^63-1)."""
    value = decode_token(token)
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        raise InvalidArgument(BAD_TOKEN)
    return value


def text_token(token: str) -> str:
    value = decode_token(token)
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidArgument(BAD_TOKEN)
    return value


def take_page(records: list[Any], cursors: list[Any], size: int) -> tuple[list[Any], str]:
    """The first items of `records` (up to `size + 1` were fetched) that fit a page:
    at most `size`, and at most MAX_PAGE_BYTES encoded (but at least one). Returns
    them with the token of the next page (the cursor of the last one kept)."""
    kept = 0
    total = 0
    for record in records[:size]:
        total += record.ByteSize()
        if kept and total > MAX_PAGE_BYTES:
            break
        kept += 1
    token = encode_token(cursors[kept - 1]) if kept < len(records) else ""
    return records[:kept], token
