"""Errors a flow author or client user can meet, each saying what to do."""

from __future__ import annotations

from dataclasses import dataclass


class LedgerflowException(Exception):
    """Base of Ledgerflow's user-facing errors."""


class InvalidNextCall(LedgerflowException):
    """self.next() was called wrongly in a step."""


class InvalidArtifact(LedgerflowException):
    """An artifact cannot be stored under that name or with that value."""


class MergeArtifactsException(LedgerflowException):
    """merge_artifacts() met an artifact whose value differs between inputs."""


class LedgerflowNotFound(LedgerflowException):
    """A flow, run, step, task or artifact does not exist."""


class LedgerflowNamespaceMismatch(LedgerflowException):
    """The object exists but is outside the current namespace."""


@dataclass(frozen=True)
class CaughtException:
    """What @catch(var=...) stores when a step fails for good."""

    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"
