"""The frame the table flows write: one column of each kind a table must keep intact
(integers, nullable integers, floats with NaN, strings with None, a categorical, dates,
timestamps with a time zone, booleans)."""

import datetime

import pandas as pd


def sample_frame(rows: int, value: int) -> pd.DataFrame:
    return pd.DataFrame({
        "id": pd.array(range(rows), dtype="int64"),
        "value": pd.array([value] * rows, dtype="int64"),
        "count": pd.array([None if i % 7 == 0 else i for i in range(rows)], dtype="Int64"),
        "score": [float("nan") if i % 5 == 0 else i / 2 for i in range(rows)],
        "name": [None if i % 3 == 0 else f"name-{i}" for i in range(rows)],
        "kind": pd.Categorical([("a", "b", "c")[i % 3] for i in range(rows)]),
        "day": [datetime.date(2026, 1, 1) + datetime.timedelta(days=i) for i in range(rows)],
        "at": pd.date_range("2026-11-27 09:00", periods=rows, freq="min", tz="UTC"),
        "flag": [i % 2 == 0 for i in range(rows)],
    })  # fmt: skip
