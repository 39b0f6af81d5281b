"""Writes the benchmark's table: --rows rows of 4 random float64 columns (8 MB per
million rows, barely compressible), in --files Parquet files."""

import math

import numpy as np
import pyarrow as pa
from ledgerflow import FlowSpec, Parameter, Table, step


class WideTable(FlowSpec):
    table = Parameter("table", default="wide")
    rows = Parameter("rows", default=8_000_000, type=int)
    files = Parameter("files", default=16, type=int)

    @step
    def start(self):
        generator = np.random.default_rng(20261127)
        data = pa.table({f"c{i}": generator.random(self.rows) for i in range(4)})
        Table("bench", self.table).write(data, rows_per_file=math.ceil(self.rows / self.files))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideTable()
