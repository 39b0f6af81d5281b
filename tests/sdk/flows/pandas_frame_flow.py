"""A pandas frame with a missing value in every column, a categorical, dates and
time-zoned timestamps, for R to read."""

import datetime

import pandas as pd
from ledgerflow import FlowSpec, step


class PandasFrameFlow(FlowSpec):
    @step
    def start(self):
        self.frame = pd.DataFrame({
            "number": [1.5, None, 3.0],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "word": ["a", None, "c"],
            "kind": pd.Categorical(["low", None, "high"], categories=["low", "high"]),
            "day": [datetime.date(2026, 11, 27), None, datetime.date(2026, 1, 1)],
            "at": pd.to_datetime(["2026-11-27 09:30", None, "2026-01-01 00:00"]).tz_localize("UTC"),
        })  # fmt: skip
        self.numbers = [1, 2, 3]
        self.settings = {"alpha": 0.5, "name": "x"}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PandasFrameFlow()
