"""The ledger's schema: numbered SQL migrations per backend, shipped as package data
(``migrations/<backend>/NNNN_name.sql``), applied in order and recorded in
``schema_migrations``."""

from __future__ import annotations

from pathlib import Path


def migration_files(kind: str) -> list[tuple[int, str, str]]:
    folder = Path(__file__).parent / "migrations" / kind  # shipped as package data
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
