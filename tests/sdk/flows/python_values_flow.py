"""Python values R reads (issue 30: a pandas index and a Series' name were dropped; a
2-D ndarray, bytes and a set had "no R equivalent"; an index's name, a MultiIndex and
complex numbers had no R form; long arrays went over element by element)."""

import numpy as np
import pandas as pd
from ledgerflow import FlowSpec, step


class PythonValuesFlow(FlowSpec):
    @step
    def start(self):
        self.indexed = pd.DataFrame({"n": [1.5, 2.5]}, index=["ada", "bob"])
        self.plain = pd.DataFrame({"n": [1, 2]})
        self.series = pd.Series([1.0, 2.0], index=["x", "y"], name="weights")
        self.grid = np.arange(6).reshape(2, 3)
        self.cube = np.arange(24.0).reshape(2, 3, 4)
        self.holes = np.ma.MaskedArray([1.0, np.nan, 3.0], mask=[False, False, True])
        self.floats = [1.0, float("nan"), None]
        self.column = pd.Series(
            pd.arrays.FloatingArray(np.array([1.0, np.nan, 0.0]), np.array([False, False, True]))
        )
        self.blob = b"\x00\x01\xff"
        self.members = {3, 1, 2}
        self.mixed = {1, "a"}
        self.named_index = pd.DataFrame({"n": [1.5, 2.5]}, index=pd.Index(["a", "b"], name="who"))
        self.multi = pd.DataFrame(
            {"n": [1.5, 2.5]},
            index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", None]),
        )
        self.complex_one = 1 + 2j
        self.complex_list = [1 + 2j, None, complex(float("nan"), 1)]
        self.complex_array = np.ma.MaskedArray([1 + 2j, 3j, 4], mask=[False, True, False])
        long = np.arange(40000, dtype=float)  # over 256 KiB: R reads it from a file
        long[5] = np.nan
        self.long_floats = np.ma.MaskedArray(long, mask=np.arange(40000) == 7)
        self.long_ints = pd.DataFrame(
            {
                "k": pd.array([1, None] * 10000, dtype="Int64"),
                "b": pd.array([True, None] * 10000, dtype="boolean"),
            }
        )
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PythonValuesFlow()
