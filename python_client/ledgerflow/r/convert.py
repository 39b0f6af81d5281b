"""R values to Python and back, column by column, so nothing is lost on the way.

Numbers, strings, logicals, vectors, named lists, matrices, arrays, raw vectors and
data.frames have Python equivalents: a length-one vector is a scalar, a longer one a
list (NA as None, NaN as NaN), a named vector or list a dict (a list of (name, value)
pairs where names repeat), a matrix or array a numpy array (a masked one where it holds
NA; a matrix with dimnames a pandas frame), raw bytes, a data.frame a pandas frame (row
names as its index, NA kept in every column, factors as categoricals, Date as dates,
POSIXct as time-zoned timestamps). Other R values (functions, environments, models)
have none: :func:`to_python` raises NoEquivalent and they live on as R's own
serialization. rpy2's pandas2ri is not used: it loses NA in character columns and turns
Dates into numbers. r_client/README.md has the table of both directions.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import rpy2.rinterface as ri

from ledgerflow.datastore.r_columns import float_column, is_na_real, pandas_column
from ledgerflow.exceptions import CaughtException

# numpy and pandas are imported where a value needs them: a task that moves numbers and
# strings does not pay for their import (~0.1 s).

# The R class of @catch's error (a CaughtException) in R.
CAUGHT_CLASS = "ledgerflow_caught_exception"
# R's NA for integers and logicals.
_NA_INT = -(2**31)
_EPOCH = datetime.date(1970, 1, 1)


class NoEquivalent(Exception):
    """An R value without a Python equivalent (or a Python value without an R one)."""


def _attr_names(value: Any) -> list[str]:
    """The names of a value's attributes. rpy2's list_attrs() fails on NULL and on
    pairlists (it asks its C API for R_NamesSymbol, which API mode lacks): R answers."""
    if value.typeof == ri.RTYPES.NILSXP:
        return []
    if value.typeof == ri.RTYPES.LISTSXP:
        return list(ri.baseenv["names"](ri.baseenv["attributes"](value)) or [])
    return list(value.list_attrs())


def _attr(value: Any, name: str) -> list[str]:
    if value.typeof == ri.RTYPES.LISTSXP:
        found = ri.baseenv["attr"](value, ri.StrSexpVector([name]), ri.BoolSexpVector([True]))
        return [] if found is ri.NULL else list(found)
    found = value.do_slot(name) if name in _attr_names(value) else None
    return list(found) if found is not None else []


def _r_class(value: Any) -> list[str]:
    return _attr(value, "class")


def raw_bytes(vector: Any) -> bytes:
    """The bytes of an R raw vector, copied at memory speed (bytes(vector) goes one
    element at a time)."""
    from rpy2.rinterface_lib import openrlib

    pointer = openrlib.rlib.RAW(vector.__sexp__._cdata)
    return bytes(openrlib.ffi.buffer(pointer, len(vector)))


def r_class_name(value: Any) -> str:
    """The R class R's class() would print first (for the ledger's type name)."""
    classes = _r_class(value)
    if classes:
        return classes[0]
    # Never R's class() through rpy2: a call (quote(x + 1)) passed to it is evaluated.
    kind = value.typeof
    return {
        ri.RTYPES.REALSXP: "numeric", ri.RTYPES.INTSXP: "integer", ri.RTYPES.LGLSXP: "logical",
        ri.RTYPES.STRSXP: "character", ri.RTYPES.VECSXP: "list", ri.RTYPES.NILSXP: "NULL",
        ri.RTYPES.CLOSXP: "function", ri.RTYPES.ENVSXP: "environment",
        ri.RTYPES.LISTSXP: "pairlist", ri.RTYPES.LANGSXP: "call", ri.RTYPES.SYMSXP: "name",
        ri.RTYPES.RAWSXP: "raw", ri.RTYPES.CPLXSXP: "complex",
        ri.RTYPES.EXTPTRSXP: "externalptr", ri.RTYPES.EXPRSXP: "expression",
        ri.RTYPES.BUILTINSXP: "function", ri.RTYPES.SPECIALSXP: "function",
    }.get(kind) or str(getattr(kind, "name", kind))  # fmt: skip


# ---- R to Python -------------------------------------------------------------------------


def python_form(value: Any, rds: Any) -> tuple[bytes, bool | str, Any]:
    """What an R step's value stores beside its R class: (its serialization, has_python,
    its Python form). `rds` is NULL where R left the value to be stored as columns
    (columns.py; embedded.R's columnar()): then no serialization and its columns, read
    from R's memory without a copy (the caller keeps the R value alive until they are
    stored: rpy2's memoryview does not)."""
    if rds is ri.NULL:
        from ledgerflow.datastore import r_columns as columns

        names: list[str] | None
        if "data.frame" in _r_class(value):
            parts = list(value)
            kind, names = columns.FRAME, _attr(value, "names")
        else:
            parts = [value]
            kind, names = columns.VECTOR, _attr(value, "names") or None
        buffers = [(_R_TYPES[part.typeof], _r_buffer(part)) for part in parts]
        return b"", columns.COLUMNS, (kind, names, buffers)
    serialized = raw_bytes(rds)
    if value.typeof in _PLAIN and not _attr_names(value):  # most values: asked once
        items = _vector_items(value, [])
        return serialized, True, items[0] if len(items) == 1 else items
    try:
        return serialized, True, to_python(value)
    except NoEquivalent:
        return serialized, False, None


_R_TYPES = {ri.RTYPES.REALSXP: "double", ri.RTYPES.INTSXP: "integer", ri.RTYPES.LGLSXP: "logical"}
_FORMATS = {"double": "d", "integer": "i", "logical": "i"}
# Vectors without attributes that to_python() lists (or gives as a scalar) as they are.
_PLAIN = (ri.RTYPES.REALSXP, ri.RTYPES.INTSXP, ri.RTYPES.LGLSXP, ri.RTYPES.STRSXP)


def _r_buffer(vector: Any) -> Any:
    """A vector's memory, to be stored out of band (as it is, not copied into the
    pickle; an empty one too, so that the stored buffers are the columns in order)."""
    import pickle

    return pickle.PickleBuffer(vector.memoryview().cast("B") if len(vector) else b"")


def columns_to_r(form: Any) -> Any:
    """The R value stored as columns (columns.py), rebuilt from them: one copy each."""
    from ledgerflow.datastore import r_columns as columns

    kind, names, parts = form
    made = {"double": ri.FloatSexpVector, "integer": ri.IntSexpVector,
            "logical": ri.BoolSexpVector}  # fmt: skip
    vectors = []
    for r_type, buffer in parts:
        view: Any = memoryview(buffer)
        if not view.nbytes:
            vectors.append(made[r_type]([]))
            continue
        vectors.append(made[r_type].from_memoryview(view.cast("B").cast(_FORMATS[r_type])))
    if kind == columns.VECTOR:
        (vector,) = vectors
        if names:
            vector.do_slot_assign("names", ri.StrSexpVector(names))
        return vector
    frame = ri.ListSexpVector(vectors)
    frame.do_slot_assign("names", ri.StrSexpVector(names))
    rows = len(vectors[0]) if vectors else 0
    frame = ri.baseenv["attr<-"](
        frame, ri.StrSexpVector(["row.names"]), ri.IntSexpVector([ri.NA_Integer, -rows])
    )
    return _with_class(frame, ["data.frame"])


def to_python(value: Any) -> Any:
    """The Python equivalent of an R value; NoEquivalent when there is none."""
    if value is ri.NULL or value.typeof == ri.RTYPES.NILSXP:
        return None
    classes = _r_class(value)
    if "dim" in _attr_names(value):
        if classes:
            raise NoEquivalent(f"an array of class {classes[0]}")
        return _array_to_python(value)
    if value.typeof == ri.RTYPES.RAWSXP and not classes:
        return raw_bytes(value)
    if "data.frame" in classes:
        return _frame_to_pandas(value)
    if CAUGHT_CLASS in classes:  # @catch's error, stored again by an R step
        fields = dict(zip(_attr(value, "names"), value, strict=True))
        text = {key: str(fields[key][0]) for key in ("type", "message", "traceback")}
        return CaughtException(text["type"], text["message"], text["traceback"])
    if value.typeof == ri.RTYPES.VECSXP and not (set(classes) - {"list"}):
        items = [to_python(item) for item in value]
        names = _attr(value, "names")
        return _named(names, items) if names else items
    items = _vector_items(value, classes)
    names = _attr(value, "names")
    if names:
        return _named(names, items)
    return items[0] if len(items) == 1 else items


def _named(names: list[str], items: list[Any]) -> Any:
    """A dict, or where a name repeats (`list(a = 1, a = 2)`, two unnamed items) the
    (name, value) pairs in order, which a dict would collapse."""
    if len(set(names)) == len(names):
        return dict(zip(names, items, strict=True))
    return list(zip(names, items, strict=True))


def _true_nan(value: Any) -> list[bool]:
    """Which elements of a double vector are NaN rather than NA (R tells them apart)."""
    return [bool(x) for x in ri.baseenv["is.nan"](value)]


def _r_memory(value: Any, dtype: str) -> Any:
    """An atomic vector's elements in R's order as a numpy array over R's memory (no
    copy; valid only while the R value lives: the array does not keep it alive)."""
    import numpy as np

    if not len(value):
        return np.zeros(0, dtype=dtype)
    return np.asarray(value.memoryview()).view(dtype).ravel(order="F")


def _complex_memory(value: Any) -> Any:
    """A complex vector's elements (a copy: rpy2 gives complex vectors no memoryview)."""
    import numpy as np
    from rpy2.rinterface_lib import openrlib

    pointer = openrlib.rlib.COMPLEX(value.__sexp__._cdata)
    raw = openrlib.ffi.buffer(pointer, 16 * len(value))
    return np.frombuffer(raw, dtype=np.complex128).copy()


def _array_to_python(value: Any) -> Any:
    """A matrix or array: a numpy array of its shape (a masked array where it holds
    NA); a matrix with dimnames a pandas frame (rownames its index, colnames its
    columns)."""
    import numpy as np
    import pandas as pd

    dims = tuple(int(d) for d in _attr(value, "dim"))
    data, missing = _flat_numpy(value, copy=True)
    if len(dims) == 2 and "dimnames" in _attr_names(value):
        dimnames = [
            None if d is ri.NULL else [str(x) for x in d] for d in value.do_slot("dimnames")
        ]
        rows, cols = dims
        columns = [
            _frame_column(data[j * rows : (j + 1) * rows], missing[j * rows : (j + 1) * rows])
            for j in range(cols)
        ]
        frame = pd.DataFrame(dict(enumerate(columns)), index=dimnames[0])
        frame.columns = pd.Index(dimnames[1]) if dimnames[1] is not None else pd.RangeIndex(cols)
        return frame
    shaped = data.reshape(dims, order="F")
    if missing.any():
        return np.ma.MaskedArray(shaped, mask=missing.reshape(dims, order="F"))
    return shaped


def _flat_numpy(value: Any, copy: bool) -> tuple[Any, Any]:
    """An atomic vector's elements in R's order as a numpy array (doubles, int32, bool,
    complex or str), and where it holds NA; numbers read from R's memory, a view on it
    unless `copy`."""
    import numpy as np

    kind = value.typeof
    if kind == ri.RTYPES.REALSXP:
        data = _r_memory(value, "float64")
        return (data.copy() if copy else data), is_na_real(data)
    if kind in (ri.RTYPES.INTSXP, ri.RTYPES.LGLSXP):
        codes = _r_memory(value, "int32")
        missing = codes == _NA_INT
        if kind == ri.RTYPES.LGLSXP:
            return codes != 0, missing  # NA as True, masked
        if copy or missing.any():
            codes = codes.copy()
            codes[missing] = 0
        return codes, missing
    if kind == ri.RTYPES.CPLXSXP:
        data = _complex_memory(value)
        return data, is_na_real(data.real) | is_na_real(data.imag)
    if kind == ri.RTYPES.STRSXP:
        data = np.array([None if x is ri.NA_Character else str(x) for x in value], dtype=object)
        return data, np.zeros(len(data), dtype=bool)
    raise NoEquivalent(f"an R {str(kind).rsplit('.', 1)[-1]} array")


def _frame_column(data: Any, missing: Any) -> Any:
    """A column of a matrix's frame, NA kept as a data.frame's columns keep it."""
    import numpy as np
    import pandas as pd

    if data.dtype.kind == "f":
        return float_column(data, missing)
    if data.dtype.kind == "i":
        return pd.arrays.IntegerArray(data, missing)
    if data.dtype.kind == "b":
        return pd.arrays.BooleanArray(data, missing)
    return np.asarray(data, dtype=object)


def _vector_items(value: Any, classes: list[str]) -> list[Any]:
    kind = value.typeof
    if "factor" in classes:
        levels = _attr(value, "levels")
        return [None if code == _NA_INT else levels[code - 1] for code in value]
    if kind == ri.RTYPES.REALSXP:
        numbers = list(value)
        if "Date" in classes:
            return [
                None if math.isnan(d) else _EPOCH + datetime.timedelta(days=int(d)) for d in numbers
            ]
        if "POSIXct" in classes:
            import pandas as pd

            stamps = pd.to_datetime(numbers, unit="s", utc=True)
            zone = (_attr(value, "tzone") or [""])[0]
            stamps = stamps.tz_convert(zone) if zone else stamps
            return [None if pd.isna(s) else s for s in stamps]
        if classes:
            raise NoEquivalent(f"a numeric vector of class {classes[0]}")
        if not any(math.isnan(x) for x in numbers):
            return [float(x) for x in numbers]
        nan = _true_nan(value)
        return [
            None if math.isnan(x) and not n else float(x) for x, n in zip(numbers, nan, strict=True)
        ]
    if classes:
        raise NoEquivalent(f"a vector of class {classes[0]}")
    if kind == ri.RTYPES.INTSXP:
        return [None if x == _NA_INT else int(x) for x in value]
    if kind == ri.RTYPES.LGLSXP:
        return [None if x == _NA_INT else bool(x) for x in value]
    if kind == ri.RTYPES.STRSXP:
        return [None if x is ri.NA_Character else str(x) for x in value]
    if kind == ri.RTYPES.CPLXSXP:  # NA (either part R's NA) None; NaN parts stay NaN
        data, missing = _flat_numpy(value, copy=False)
        return [None if m else v for v, m in zip(data.tolist(), missing.tolist(), strict=True)]
    raise NoEquivalent(f"an R {str(kind).rsplit('.', 1)[-1]}")


def _frame_to_pandas(frame: Any) -> Any:
    import pandas as pd

    names = _attr(frame, "names")
    columns = {name: _column_to_pandas(column) for name, column in zip(names, frame, strict=True)}
    # Row names R made itself (1..n, "automatic") are a RangeIndex; any others the index.
    automatic = ri.baseenv[".row_names_info"](frame, ri.IntSexpVector([1]))[0] < 0
    rows = ri.baseenv["attr"](frame, ri.StrSexpVector(["row.names"]))
    index = None if automatic else pd.Index(list(rows))
    return pd.DataFrame(columns, index=index) if columns else pd.DataFrame(index=index)


def _column_to_pandas(column: Any) -> Any:
    import numpy as np
    import pandas as pd

    classes = _r_class(column)
    kind = column.typeof
    if "factor" in classes:
        levels = _attr(column, "levels")
        codes = np.asarray(column, dtype=np.int64) - 1
        codes[codes < 0] = -1  # NA
        return pd.Categorical.from_codes(codes, categories=levels, ordered="ordered" in classes)
    if kind == ri.RTYPES.REALSXP:
        numbers = np.asarray(column)
        if "Date" in classes:
            return np.array(_vector_items(column, classes), dtype=object)
        if "POSIXct" in classes:
            stamps = pd.to_datetime(numbers, unit="s", utc=True)
            zone = (_attr(column, "tzone") or [""])[0]
            return stamps.tz_convert(zone) if zone else stamps
    if kind in _R_TYPES:
        return pandas_column(_R_TYPES[kind], *_flat_numpy(column, copy=False))
    if kind == ri.RTYPES.CPLXSXP:
        data, missing = _flat_numpy(column, copy=True)
        return np.array([None if m else v for v, m in zip(data.tolist(), missing, strict=True)],
                        dtype=object) if missing.any() else data  # fmt: skip
    if kind == ri.RTYPES.STRSXP:
        return np.array([None if x is ri.NA_Character else str(x) for x in column], dtype=object)
    raise NoEquivalent(f"a data.frame column of type {str(kind).rsplit('.', 1)[-1]}")


# ---- Python to R -------------------------------------------------------------------------


def to_r(value: Any) -> Any:
    """The R equivalent of a Python value; NoEquivalent when there is none."""
    if value is None:
        return ri.NULL
    kind = _scalar_kind(value)
    if kind is not None:
        return _list_to_r([value])
    if isinstance(value, datetime.datetime):
        import pandas as pd

        return _column_to_r(pd.Series([value]))
    if isinstance(value, datetime.date):
        return _dates([value])
    if isinstance(value, dict):
        items = ri.ListSexpVector([to_r(v) for v in value.values()])
        items.do_slot_assign("names", ri.StrSexpVector([str(k) for k in value]))
        return items
    if isinstance(value, list | tuple):
        return _list_to_r(list(value))
    if isinstance(value, CaughtException):
        return _caught_to_r(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ri.ByteSexpVector(bytes(value))
    if isinstance(value, set | frozenset):
        return _list_to_r(_sorted(value))
    if type(value).__module__.split(".")[0] in ("pandas", "numpy"):
        import numpy as np
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return _pandas_to_frame(value)
        if isinstance(value, pd.Series):
            return _series_to_r(value)
        if isinstance(value, np.ndarray):
            array = _ndarray_to_r(value)
            if array is not None:
                return array
            if value.ndim == 1:
                return _column_to_r(pd.Series(value))
        elif getattr(value, "ndim", None) == 1:
            return _column_to_r(pd.Series(value))
        if isinstance(value, pd.Timestamp):
            return _column_to_r(pd.Series([value]))
    raise NoEquivalent(f"Python {type(value).__name__}")


def _sorted(items: Any) -> list[Any]:
    """A set's members in a stable order: sorted, or by type and repr where they do not
    compare."""
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda item: (type(item).__name__, repr(item)))


def _is_default_index(index: Any) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def _series_to_r(series: Any) -> Any:
    """A Series as a vector: its index (unless 0..n-1) as names, its name as the
    attribute "name"."""
    vector = _column_to_r(series)
    if not _is_default_index(series.index):
        names = ri.StrSexpVector([str(label) for label in series.index])
        vector = ri.baseenv["names<-"](vector, names)
    if series.name is not None:
        vector = ri.baseenv["attr<-"](
            vector, ri.StrSexpVector(["name"]), ri.StrSexpVector([str(series.name)])
        )
    return vector


def _ndarray_to_r(array: Any) -> Any:
    """A numpy array of booleans, numbers or strings as an R vector (1-D), matrix (2-D)
    or array: NaN stays NaN, a masked array's masked elements are NA. None for other
    element types."""
    import numpy as np

    if array.ndim == 0:
        return to_r(array.item())
    data = np.ma.getdata(array)
    flat = data.ravel(order="F")
    missing = np.ma.getmaskarray(array).ravel(order="F")
    kind = data.dtype.kind
    if kind in "biufc":
        vector = _numbers_to_r(flat, missing)
    elif kind in "UO":
        values = [None if m else v for v, m in zip(flat.tolist(), missing.tolist(), strict=True)]
        if not all(v is None or isinstance(v, str) for v in values):
            return None
        vector = ri.StrSexpVector([ri.NA_Character if v is None else v for v in values])
    else:
        return None
    if array.ndim == 1:
        return vector
    return ri.baseenv["dim<-"](vector, ri.IntSexpVector(list(array.shape)))


# R's NA: a NaN whose low word is 1954 (R_IsNA), and NA for integers and logicals.
_NA_REAL_BITS = 0x7FF00000000007A2


def _numbers_to_r(values: Any, missing: Any) -> Any:
    """A 1-D numpy array of booleans, integers, floats or complex numbers as an R vector
    made from its memory (one copy, no Python loop); `missing` (booleans) marks NA.
    Integers that do not fit R's 32 bits become doubles."""
    import numpy as np

    kind = values.dtype.kind
    if kind == "b" or (kind in "iu" and _fits_r_int(values, missing)):
        codes = np.array(values, dtype=np.int32)  # a copy, C-contiguous
        codes[missing] = _NA_INT
        make = ri.BoolSexpVector if kind == "b" else ri.IntSexpVector
        return make.from_memoryview(codes.data)
    if kind == "c":
        numbers = np.array(values, dtype=np.complex128)
        parts = numbers.view(np.uint64)  # real, imaginary, real, ...
        parts[np.repeat(missing, 2)] = _NA_REAL_BITS  # NA_complex_: both parts NA
        return ri.ComplexSexpVector.from_memoryview(numbers.data)
    numbers = np.array(values, dtype=np.float64)
    numbers.view(np.uint64)[missing] = _NA_REAL_BITS
    return ri.FloatSexpVector.from_memoryview(numbers.data)


def _fits_r_int(values: Any, missing: Any) -> bool:
    """Whether integers fit R's (32 bits, less R's NA, the smallest)."""
    present = values[~missing] if missing.any() else values
    return not present.size or (int(present.min()) > _NA_INT and int(present.max()) < 2**31)


def _caught_to_r(caught: CaughtException) -> Any:
    """@catch's error as an R error condition (conditionMessage(), stop() work) that
    also holds its type and traceback: ``err$type``, ``err$message``, ``err$traceback``."""
    fields = {"message": caught.message, "call": None, "type": caught.type,
              "traceback": caught.traceback}  # fmt: skip
    condition = ri.ListSexpVector(
        [ri.NULL if v is None else ri.StrSexpVector([v]) for v in fields.values()]
    )
    condition.do_slot_assign("names", ri.StrSexpVector(list(fields)))
    return _with_class(condition, [CAUGHT_CLASS, "error", "condition"])


def _list_to_r(items: list[Any]) -> Any:
    """A list of scalars of one kind becomes an R vector; anything else an R list."""
    present = [item for item in items if item is not None]
    kinds = {_scalar_kind(item) for item in present}
    if present and len(kinds) == 1 and None not in kinds:
        kind = kinds.pop()
        if kind == "bool":
            return ri.BoolSexpVector([ri.NA_Logical if i is None else bool(i) for i in items])
        if kind == "int":
            return _ints(items)
        if kind == "float":
            return ri.FloatSexpVector([ri.NA_Real if i is None else float(i) for i in items])
        if kind == "str":
            return ri.StrSexpVector([ri.NA_Character if i is None else i for i in items])
        if kind == "complex":
            return ri.ComplexSexpVector([ri.NA_Complex if i is None else complex(i) for i in items])
    return ri.ListSexpVector([to_r(item) for item in items])


def _scalar_kind(item: Any) -> str | None:
    """bool, int, float, complex or str (numpy's scalars too), else None."""
    if isinstance(item, bool):
        return "bool"
    if isinstance(item, int):
        return "int"
    if isinstance(item, float):
        return "float"
    if isinstance(item, complex):
        return "complex"
    if isinstance(item, str):
        return "str"
    if type(item).__module__ == "numpy":
        import numpy as np

        for kind, types in (("bool", np.bool_), ("int", np.integer), ("float", np.floating),
                            ("complex", np.complexfloating)):  # fmt: skip
            if isinstance(item, types):
                return kind
    return None


def _ints(items: list[Any]) -> Any:
    """Integers as R integers, or as doubles where one does not fit R's 32 bits."""
    if all(i is None or -(2**31) < int(i) < 2**31 for i in items):
        return ri.IntSexpVector([ri.NA_Integer if i is None else int(i) for i in items])
    return ri.FloatSexpVector([ri.NA_Real if i is None else float(i) for i in items])


def _dates(items: list[Any]) -> Any:
    days = ri.FloatSexpVector(
        [ri.NA_Real if d is None else float((d - _EPOCH).days) for d in items]
    )
    return _with_class(days, ["Date"])


def _with_class(value: Any, classes: list[str]) -> Any:
    """`value` with R's class attribute set as class<- sets it (marking it an object, so
    internal generics such as is.na dispatch on it)."""
    return ri.baseenv["class<-"](value, ri.StrSexpVector(classes))


def _pandas_to_frame(frame: Any) -> Any:
    """A pandas frame as a data.frame. An index of unique labels without a name is its
    row names (see _row_names); a named index and a MultiIndex, which row names cannot
    hold, become its first columns (as reset_index() makes them: a level without a name
    is level_0, level_1, ...), the rows then numbered 1..n."""
    import pandas as pd

    index = frame.index
    if isinstance(index, pd.MultiIndex) or index.name is not None:
        frame = frame.reset_index(allow_duplicates=True)
    columns = ri.ListSexpVector([_column_to_r(frame[name]) for name in frame.columns])
    columns.do_slot_assign("names", ri.StrSexpVector([str(name) for name in frame.columns]))
    columns = ri.baseenv["attr<-"](columns, ri.StrSexpVector(["row.names"]), _row_names(frame))
    return _with_class(columns, ["data.frame"])


def _row_names(frame: Any) -> Any:
    """A frame's index as row names: integers or strings where its labels are unique
    (R's row names are); else (0..n-1, a MultiIndex, repeated labels) R's own 1..n,
    stored compact as R itself does (R's attr<- does; a plain slot does not)."""
    import pandas as pd

    index = frame.index
    if _is_default_index(index) or isinstance(index, pd.MultiIndex) or not index.is_unique:
        return ri.IntSexpVector([ri.NA_Integer, -len(frame)])
    labels = index.tolist()
    if pd.api.types.is_integer_dtype(index.dtype) and all(-(2**31) < i < 2**31 for i in labels):
        return ri.IntSexpVector([int(i) for i in labels])
    return ri.StrSexpVector([str(label) for label in labels])


def _column_to_r(series: Any) -> Any:
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    missing = series.isna().to_numpy()
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        factor = _numbers_to_r(codes.astype(np.int64) + 1, codes < 0)
        factor.do_slot_assign("levels", ri.StrSexpVector([str(c) for c in dtype.categories]))
        classes = ["ordered", "factor"] if dtype.ordered else ["factor"]
        return _with_class(factor, classes)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = series if isinstance(dtype, pd.DatetimeTZDtype) else series.dt.tz_localize("UTC")
        epoch = pd.Timestamp(0, tz="UTC")
        seconds = (stamps.dt.tz_convert("UTC") - epoch).dt.total_seconds()
        vector = _numbers_to_r(seconds.to_numpy(dtype=float, na_value=np.nan), missing)
        vector.do_slot_assign("tzone", ri.StrSexpVector([str(stamps.dt.tz)]))
        return _with_class(vector, ["POSIXct", "POSIXt"])
    if pd.api.types.is_bool_dtype(dtype):
        return _numbers_to_r(series.to_numpy(dtype=bool, na_value=False), missing)
    if pd.api.types.is_integer_dtype(dtype):
        numpy_type = getattr(dtype, "numpy_dtype", dtype)  # Int64's int64
        return _numbers_to_r(series.to_numpy(dtype=numpy_type, na_value=0), missing)
    if pd.api.types.is_float_dtype(dtype):  # missing values as R's NA, not NaN
        return _numbers_to_r(series.to_numpy(dtype=float, na_value=np.nan), missing)
    if pd.api.types.is_complex_dtype(dtype):
        return _numbers_to_r(series.to_numpy(dtype=complex), missing)
    values = [None if m else v for v, m in zip(series.tolist(), missing, strict=True)]
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, datetime.date) and not isinstance(v, datetime.datetime)
                       for v in present):  # fmt: skip
        return _dates(values)
    if all(isinstance(v, str) for v in present):
        return ri.StrSexpVector([ri.NA_Character if v is None else v for v in values])
    if present and all(isinstance(v, complex) for v in present):
        return _numbers_to_r(np.array([0j if v is None else v for v in values]), missing)
    raise NoEquivalent(f"a pandas column of {dtype} holding {type(present[0]).__name__}")
