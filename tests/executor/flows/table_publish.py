"""A step that writes a version of the table team/published, run remotely: its
executor publishes the version with the attempt's outcome."""

import pyarrow as pa
from ledgerflow import FlowSpec, Table, step


class TablePublish(FlowSpec):
    @step
    def start(self):
        Table("team", "published").write(pa.table({"x": [1, 2, 3]}))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TablePublish()
