"""The Ledgerflow metadata service: an append-only event ledger with projections,
served over gRPC (see docs/architecture.md).

Layers, outermost first: ``server`` (gRPC transport) -> ``application`` (commands and
queries taking and returning ``ledgerflow.v1`` messages) -> ``ledger`` / ``projection`` /
``queries`` -> ``database`` (SQLite or Postgres).
"""

from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.auth import Principal
from ledgerflow_service.database import Database, open_database
from ledgerflow_service.errors import LedgerError

__all__ = ["Database", "LedgerApplication", "LedgerError", "Principal", "open_database"]
