"""How a read model's row type maps to its table: one dataclass field per column, in
table order."""

from __future__ import annotations

import dataclasses
import functools


@functools.cache  # asked on every append: dataclasses.fields() is not cheap
def columns(row_type: type) -> tuple[str, ...]:
    """The column names of a read-model row type, in table order."""
    return tuple(f.name for f in dataclasses.fields(row_type))


def upsert_clause(row_type: type, key: tuple[str, ...]) -> str:
    """The ON CONFLICT clause that replaces a row of `row_type` found by `key`."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns(row_type) if c not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
