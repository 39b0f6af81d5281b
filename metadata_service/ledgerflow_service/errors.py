"""Errors the application layer raises. Each names the gRPC status code the transport
sends, so embedded and service mode report the same failure the same way. (Codes are
named, not imported, so the embedded mode does not pay for importing grpc.)"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base class: a request was refused and nothing was written."""

    code_name = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> Any:
        """The ``grpc.StatusCode`` for this error."""
        import grpc

        return grpc.StatusCode[self.code_name]


class InvalidArgument(LedgerError):
    code_name = "INVALID_ARGUMENT"


class NotFound(LedgerError):
    code_name = "NOT_FOUND"


class AlreadyExists(LedgerError):
    code_name = "ALREADY_EXISTS"


class FailedPrecondition(LedgerError):
    """The request is well formed but the ledger's state forbids it (events out of
    order, after a terminal state, or a stale expected version)."""

    code_name = "FAILED_PRECONDITION"


class Unauthenticated(LedgerError):
    code_name = "UNAUTHENTICATED"


class PermissionDenied(LedgerError):
    """The caller is known but may not do this (e.g. act for another user)."""

    code_name = "PERMISSION_DENIED"


class ResourceExhausted(LedgerError):
    """A limit of the service was reached (e.g. its number of watch streams)."""

    code_name = "RESOURCE_EXHAUSTED"


class Cancelled(LedgerError):
    """The caller went away; the work was stopped and nothing was written."""

    code_name = "CANCELLED"


class Unavailable(LedgerError):
    """The service could not be reached; the same request may be retried (appends are
    idempotent by event id)."""

    code_name = "UNAVAILABLE"


class DeadlineExceeded(LedgerError):
    """The caller stopped waiting before the work could commit; it was rolled back."""

    code_name = "DEADLINE_EXCEEDED"
