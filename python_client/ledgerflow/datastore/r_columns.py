"""Long R vectors and data.frames of numbers stored as columns: R's own memory.

An R step's plain numeric, integer or logical vector of COLUMNAR_FROM elements or more
(no attributes but names), and its data.frame of such columns (no attributes on them,
row names R's own 1..n), are stored as each column's memory as R holds it: doubles
(NA as R's NA, a NaN R tells from other NaNs), 32-bit integers (NA the smallest),
logicals as 32-bit integers (0, 1, NA). No R serialization and no element-by-element
conversion: the buffers are written as they are, R rebuilds the value from them with
one copy (rpy2's from_memoryview in a step; readBin() in the R client, which needs no
arrow package), and numpy reads them as they are: a float64 column is Arrow's layout
too (pyarrow.Array.from_buffers), NA marked in the values as R marks it.

Python readers get what r_client/README.md's table promises (a list with None for NA, a
dict where it has names; a pandas frame), made when Python reads it. No rpy2 here: the
datastore reads these without R.

The stored form (RValue.python where has_python is COLUMNS):
``(VECTOR | FRAME, names, [(R type, buffer), ...])``: a vector's names (or None) and its
one column; a frame's column names and columns.
"""

from __future__ import annotations

from typing import Any

COLUMNS = "columns"
VECTOR = "vector"
FRAME = "frame"
# Shorter values are stored as R's serialization (and converted for Python at once).
COLUMNAR_FROM = 10_000
# numpy's view of each R type's memory.
DTYPES = {"double": "<f8", "integer": "<i4", "logical": "<i4"}
# R's NA: for integers and logicals the smallest 32-bit integer; for doubles a NaN whose
# low word is 1954 (R_IsNA).
NA_INT = -(2**31)
_NA_LOW_WORD = 1954


def is_na_real(data: Any) -> Any:
    """Where float64 data holds R's NA rather than another NaN (R tells them apart)."""
    import numpy as np

    nan = np.isnan(data)
    if nan.any():
        nan &= (data.view(np.uint64) & np.uint64(0xFFFFFFFF)) == np.uint64(_NA_LOW_WORD)
    return nan


def numbers(r_type: str, buffer: Any) -> tuple[Any, Any]:
    """A column's values as numpy (float64, int32 or bool; a view where it can be) and
    where R has NA."""
    import numpy as np

    data = np.frombuffer(buffer, dtype=DTYPES[r_type])
    if r_type == "double":
        return data, is_na_real(data)
    missing = data == NA_INT
    if r_type == "logical":
        return data != 0, missing
    return data, missing


def float_column(data: Any, missing: Any) -> Any:
    """A data.frame's double column in pandas: float64 (NA as NaN, pandas' missing
    value) unless it holds a true NaN: then Float64, with NA as <NA> and NaN as NaN."""
    import numpy as np
    import pandas as pd

    if (np.isnan(data) & ~missing).any():
        return pd.arrays.FloatingArray(data.copy(), missing)
    return data.copy()


def pandas_column(r_type: str, data: Any, missing: Any) -> Any:
    """A data.frame's double, integer or logical column in pandas."""
    import numpy as np
    import pandas as pd

    if r_type == "double":
        return float_column(data, missing)
    if r_type == "integer":
        return pd.arrays.IntegerArray(np.where(missing, 0, data).astype(np.int64), missing)
    return pd.arrays.BooleanArray(data & ~missing, missing.copy())


def python_value(form: Any) -> Any:
    """What Python readers get for a value stored as columns."""
    kind, names, columns = form
    if kind == FRAME:
        import pandas as pd

        made = [pandas_column(r_type, *numbers(r_type, buffer)) for r_type, buffer in columns]
        frame = pd.DataFrame(dict(enumerate(made)))
        frame.columns = pd.Index(names)
        return frame
    if kind != VECTOR:
        raise ValueError(f"an R value stored as columns of unknown kind {kind!r}")
    ((r_type, buffer),) = columns
    data, missing = numbers(r_type, buffer)
    items = data.tolist()
    for i in missing.nonzero()[0].tolist():
        items[i] = None
    if not names:
        return items[0] if len(items) == 1 else items
    if len(set(names)) == len(names):
        return dict(zip(names, items, strict=True))
    return list(zip(names, items, strict=True))
