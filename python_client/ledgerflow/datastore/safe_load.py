"""Loading a stored value without running code from it, for readers that serve other
people's data (the web UI's previews).

Unpickling calls whatever the pickle names: a crafted artifact can run a command in the
process that loads it. A flow's own steps and the client API load values as Metaflow
does (the data is the user's own); a shared server must not. This loader lets a pickle
name only the classes and functions below, which build plain data (containers,
numbers, text, dates, numpy arrays, pandas frames, Arrow arrays) and nothing else;
anything else raises :class:`NotSafeToLoad` before any of it runs.
"""

from __future__ import annotations

import io
import pickle
import zlib
from typing import Any

from ledgerflow.datastore.content import (
    R_SERIALIZER,
    ContentStore,
    frame_parts,
    r_meta,
    r_python,
)

# (module, name) of everything a previewed value may be built from.
_ALLOWED = frozenset({
    *(("builtins", name) for name in (
        "list", "dict", "set", "frozenset", "tuple", "str", "int", "float", "complex",
        "bool", "bytes", "bytearray", "slice", "range",
    )),
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "deque"),
    ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("decimal", "Decimal"),
    ("zoneinfo", "ZoneInfo"), ("uuid", "UUID"), ("fractions", "Fraction"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("pandas", "DataFrame"), ("pandas", "Series"), ("pandas", "Index"),
    ("pandas", "RangeIndex"), ("pandas", "StringDtype"), ("pandas", "CategoricalDtype"),
    ("pandas", "Categorical"), ("pandas", "Timestamp"), ("pandas", "Timedelta"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.managers", "SingleBlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    ("pandas.arrays", "ArrowStringArray"), ("pandas.arrays", "StringArray"),
    ("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "py_buffer"),
    ("pyarrow.lib", "type_for_alias"),
    # A config's value: built from the plain data above, read-only (_flow_config.py).
    ("ledgerflow._flow_config", "ConfigValue"),
})  # fmt: skip


class NotSafeToLoad(Exception):
    """The value names code that is not known to build plain data."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise NotSafeToLoad(f"{module}.{name}")
        return super().find_class(module, name)


def _unpickle(meta: Any, buffers: list[memoryview]) -> Any:
    return _DataOnlyUnpickler(io.BytesIO(meta), buffers=buffers).load()


def load_data_only(store: ContentStore, key: str, serializer: str) -> Any:
    """The stored value, if it is plain data; NotSafeToLoad (naming what it would have
    to run) otherwise. The bytes of a `raw` value; an R value's Python form."""
    data = store.storage.get(key)
    if serializer == "raw":
        return bytes(data)
    if serializer not in ("pickle5", "pickle5+zlib", R_SERIALIZER):
        raise NotSafeToLoad(f"values stored as {serializer!r}")
    meta, buffers = frame_parts(data)
    if serializer == "pickle5+zlib":
        meta = memoryview(zlib.decompress(meta))
    elif serializer == R_SERIALIZER:
        meta = r_meta(meta)
    value = _unpickle(meta, buffers)
    if serializer != R_SERIALIZER:
        return value
    return r_python(*value)
