"""Errors a flow author or client user can meet, each saying what to do."""

from __future__ import annotations

from dataclasses import dataclass


class LedgerflowException(Exception):
    """Base of Ledgerflow's user-facing errors."""


class TooManySplits(LedgerflowException):
    """A foreach split into more items than --max-num-splits allows."""


class InvalidNextCall(LedgerflowException):
    """self.next() was called wrongly in a step."""


class InvalidArtifact(LedgerflowException):
    """An artifact cannot be stored under that name or with that value."""


class MergeArtifactsException(LedgerflowException):
    """merge_artifacts() met an artifact whose value differs between inputs."""


class LedgerflowNotFound(LedgerflowException, KeyError):
    """A flow, run, step, task or artifact does not exist. Also a KeyError, since
    ``Flow('F')['no-such-run']`` is a look-up that notebooks guard with KeyError."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LedgerflowTaggingError(LedgerflowException):
    """A tag call that cannot do anything (as Metaflow's MetaflowTaggingError)."""


class LedgerflowNamespaceMismatch(LedgerflowException):
    """The object exists but is outside the current namespace."""


class RpcError(LedgerflowException):
    """The metadata service (or the embedded ledger, which obeys the same rules)
    refused or failed a call. `code` is the gRPC status name ("INVALID_ARGUMENT",
    "FAILED_PRECONDITION", ...); the message says what to do. Nothing was written."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later: the service was out of reach or
        too slow to answer (appends are idempotent by event id, so a retry is safe)."""
        return self.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


class RpcNotFound(RpcError, LedgerflowNotFound):
    """NOT_FOUND: both an RpcError and a LedgerflowNotFound."""


def rpc_error(code: str, message: str) -> RpcError:
    """The SDK's error for a status code and message from the service."""
    return (RpcNotFound if code == "NOT_FOUND" else RpcError)(code, message)


@dataclass(frozen=True)
class CaughtException:
    """What @catch(var=...) stores when a step fails for good."""

    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"
