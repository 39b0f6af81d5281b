"""Errors the application layer raises. Each carries the gRPC status code that the
transport sends, so embedded and service mode report the same failure the same way."""

from __future__ import annotations

import grpc


class LedgerError(Exception):
    """Base class: a request was refused and nothing was written."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LedgerError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(LedgerError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(LedgerError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(LedgerError):
    """The request is well formed but the ledger's state forbids it (events out of
    order, after a terminal state, or a stale expected version)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(LedgerError):
    code = grpc.StatusCode.UNAUTHENTICATED


ERROR_BY_CODE: dict[grpc.StatusCode, type[LedgerError]] = {
    cls.code: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Unauthenticated)
}
