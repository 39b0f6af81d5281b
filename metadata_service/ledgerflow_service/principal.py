"""Who appends an event: a principal and the roles that let it act for other users.

The transport decides who the caller is (``api/auth.py``); the read models check what
it may do (see docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow_service.validation import check_text

# What a role in the token file lets a principal do beyond acting for itself.
ROLES = {
    # Anything, for any user: maintenance and the people who run the service.
    "admin": "act for any user in every event and tag any run",
    # Executors run other users' tasks: the events of existing runs, not new runs or tags.
    "executor": "write the task and run events of any user's runs",
}
# Executors run others' tasks; they do not start, tag or cancel others' runs.
_EXECUTOR_MAY_NOT = frozenset({"run_started", "tags_added", "tags_removed", "run_cancel_requested"})


@dataclass(frozen=True)
class Principal:
    name: str
    authenticated: bool
    roles: frozenset[str] = frozenset()
    # The service itself (its process manager and lease sweeper), never a caller.
    is_service: bool = False

    def may_act_for_others(self, event_kind: str) -> bool:
        """Whether an event of this kind may concern another user's run."""
        if "admin" in self.roles:
            return True
        return "executor" in self.roles and event_kind not in _EXECUTOR_MAY_NOT


# Who the service's own decisions (queued tasks, finished runs) are recorded as.
SERVICE = Principal("ledgerflow-service", authenticated=True, roles=frozenset({"admin"}),
                    is_service=True)  # fmt: skip


def unauthenticated(claimed_user: str) -> Principal:
    """The caller's word, taken when the service has no token file (local development)."""
    check_text("claimed_user", claimed_user)
    return Principal(claimed_user or "anonymous", authenticated=False)
