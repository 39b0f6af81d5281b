"""The Ledgerflow metadata service: an append-only event ledger with read models,
served over gRPC (see docs/architecture.md).

Layers, outermost first: ``api`` (gRPC transport) -> ``application`` (commands and
queries taking and returning ``ledgerflow.v1`` messages) -> ``store`` (events, streams,
backends) with ``read_models`` (the fold the store applies) and ``queries`` (reads of
the read models).
"""

from ledgerflow_service.application import LedgerApplication
from ledgerflow_service.errors import LedgerError
from ledgerflow_service.principal import Principal
from ledgerflow_service.store import Database, open_database

__all__ = ["Database", "LedgerApplication", "LedgerError", "Principal", "open_database"]
