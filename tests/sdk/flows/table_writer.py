"""Writes a version of the table vtuulos/input_table (table_data.sample_frame)."""

from ledgerflow import FlowSpec, Parameter, Table, step
from table_data import sample_frame


class TableWriter(FlowSpec):
    value = Parameter("value", default=1, type=int)
    rows = Parameter("rows", default=50, type=int)
    rows_per_file = Parameter("rows_per_file", default=10, type=int)
    fail = Parameter("fail", default=False, type=bool)

    @step
    def start(self):
        frame = sample_frame(self.rows, self.value)
        self.location = Table("vtuulos", "input_table").write(
            frame, rows_per_file=self.rows_per_file
        )
        if self.fail:
            raise RuntimeError("failed after writing its files")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TableWriter()
