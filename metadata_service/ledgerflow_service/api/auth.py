"""Who is calling. With a token file the service proves identity with bearer tokens and
stamps the proven principal on every event; without one (local development) it takes
the caller's word and marks the event unauthenticated."""

from __future__ import annotations

import hmac
from pathlib import Path

from ledgerflow_service.errors import InvalidArgument, Unauthenticated
from ledgerflow_service.principal import ROLES, Principal


class TokenTable:
    """Bearer token -> principal, read from a file of ``TOKEN PRINCIPAL [ROLE,...]``
    lines (``#`` starts a comment; roles: see ROLES)."""

    def __init__(self, principals_by_token: dict[str, Principal | str]) -> None:
        if not principals_by_token:
            raise InvalidArgument("the token file lists no tokens")
        self._principals = {
            token: who if isinstance(who, Principal) else Principal(who, authenticated=True)
            for token, who in principals_by_token.items()
        }

    @classmethod
    def from_file(cls, path: str | Path) -> TokenTable:
        table: dict[str, Principal | str] = {}
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise InvalidArgument(
                    f"{path}:{number}: expected 'TOKEN PRINCIPAL [ROLE,...]', got {line!r}"
                )
            roles = frozenset(parts[2].split(",")) if len(parts) == 3 else frozenset()
            unknown = sorted(roles - ROLES.keys())
            if unknown:
                raise InvalidArgument(
                    f"{path}:{number}: unknown role {unknown[0]!r}; roles are "
                    + ", ".join(sorted(ROLES))
                )
            table[parts[0]] = Principal(parts[1], authenticated=True, roles=roles)
        return cls(table)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("this server requires 'authorization: Bearer <token>' metadata")
        offered = authorization[7:].strip().encode()
        for token, principal in self._principals.items():
            if hmac.compare_digest(token.encode(), offered):
                return principal
        raise Unauthenticated("the bearer token is not known to this server")
