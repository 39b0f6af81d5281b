"""An endpoint's result as JSON: what json writes, plus what models and data frames
return. numpy scalars and arrays become numbers and lists; a pandas DataFrame a list of
records (one object per row; ``reset_index()`` first keeps its index), a Series or an
Index a list; datetimes ISO 8601 text; pydantic models and dataclasses objects; sets
lists; Decimal a number. NaN and the infinities, which JSON has no word for, are null
(as pandas writes them).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any


def to_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; TypeError for what has no JSON form."""
    try:
        text = _dumps(value)
    except ValueError as error:
        if "Circular reference" in str(error):
            raise TypeError("the answer refers to itself") from None
        text = _dumps(_finite(value))  # NaN or an infinity somewhere: null
    return text.encode()


def _dumps(value: Any) -> str:
    return json.dumps(
        value, default=_plain, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )


def _plain(value: Any) -> Any:
    """A value json can write in place of `value` (json calls this for what it cannot)."""
    library = type(value).__module__.partition(".")[0]
    if library == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # an array, or a scalar: a Python int, float, bool
    if library == "pandas":
        return _from_pandas(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):  # pydantic
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} has no JSON form")


def _from_pandas(value: Any) -> Any:
    name = type(value).__name__
    if name == "DataFrame":
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if name == "Series" or name.endswith("Index"):
        series = value if name == "Series" else value.to_series()
        return json.loads(series.to_json(orient="values", date_format="iso"))
    if name == "Timestamp":
        return value.isoformat()
    if name == "Timedelta":
        return value.total_seconds()
    if name in ("NaTType", "NAType"):
        return None
    raise TypeError(f"a pandas {name} has no JSON form")


def _finite(value: Any) -> Any:
    """`value` with NaN and the infinities as None, and what json cannot write as what
    it can (so that a NaN inside an array is seen)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return _finite(_plain(value))
