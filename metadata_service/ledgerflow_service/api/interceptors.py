"""Interceptors of every call: undecodable request bytes answered as INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

# The attributes by which grpcio's thread-pool server lets a streaming handler return
# at once and send its responses later through a callback (see WatchEvents).
_NON_BLOCKING_ATTRIBUTES = ("experimental_non_blocking", "experimental_thread_pool")


class _Malformed:
    """Stands in for a request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answers undecodable request bytes with INVALID_ARGUMENT, for every method of
    every service (ours, health, reflection) and every call shape. grpcio's own
    answer is INTERNAL or UNKNOWN, which tells the caller nothing about whose fault
    it is."""

    def __init__(self) -> None:
        # The guarded handler of each method, made once: handlers do not change.
        self._guarded: dict[str, Any] = {}

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        guarded = self._guarded.get(details.method)
        if guarded is None:
            guarded = _guard_handler(continuation(details), details.method)
            if guarded is not None:
                self._guarded[details.method] = guarded
        return guarded


def _guard_handler(handler: Any, method: str) -> Any:
    if handler is None or handler.request_deserializer is None:
        return handler
    decode = handler.request_deserializer

    def tolerant_decode(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as error:  # protobuf raises DecodeError and others
            return _Malformed(f"{method}: the request is not a valid message: {error}")

    return handler._replace(
        request_deserializer=tolerant_decode,
        unary_unary=_guard(handler.unary_unary, _check_one),
        unary_stream=_guard(handler.unary_stream, _check_one),
        stream_unary=_guard(handler.stream_unary, _check_each),
        stream_stream=_guard(handler.stream_stream, _check_each),
    )


def _check_one(request: Any, context: grpc.ServicerContext) -> Any:
    if isinstance(request, _Malformed):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
    return request


def _check_each(requests: Any, context: grpc.ServicerContext) -> Any:
    return (_check_one(request, context) for request in requests)


def _guard(behaviour: Any, check: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
    if behaviour is None:
        return None

    def guarded(request: Any, context: grpc.ServicerContext, *more: Any) -> Any:
        # `more`: the response callback of a non-blocking streaming handler
        return behaviour(check(request, context), context, *more)

    for name in _NON_BLOCKING_ATTRIBUTES:  # a non-blocking handler stays one
        if hasattr(behaviour, name):
            setattr(guarded, name, getattr(behaviour, name))
    return guarded
