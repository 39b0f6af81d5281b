"""Who is calling. With a token file the service proves identity with bearer tokens and
stamps the proven principal on every event; without one (local development) it takes
the caller's word and marks the event unauthenticated."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from ledgerflow_service.errors import InvalidArgument, Unauthenticated


@dataclass(frozen=True)
class Principal:
    name: str
    authenticated: bool


class TokenTable:
    """Bearer token -> principal, read from a file of ``TOKEN PRINCIPAL`` lines
    (``#`` starts a comment)."""

    def __init__(self, principals_by_token: dict[str, str]) -> None:
        if not principals_by_token:
            raise InvalidArgument("the token file lists no tokens")
        self._principals = principals_by_token

    @classmethod
    def from_file(cls, path: str | Path) -> TokenTable:
        table: dict[str, str] = {}
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise InvalidArgument(f"{path}:{number}: expected 'TOKEN PRINCIPAL', got {line!r}")
            table[parts[0]] = parts[1]
        return cls(table)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("this server requires 'authorization: Bearer <token>' metadata")
        offered = authorization[7:].strip().encode()
        for token, name in self._principals.items():
            if hmac.compare_digest(token.encode(), offered):
                return Principal(name, authenticated=True)
        raise Unauthenticated("the bearer token is not known to this server")


def unauthenticated(claimed_user: str) -> Principal:
    return Principal(claimed_user or "anonymous", authenticated=False)
