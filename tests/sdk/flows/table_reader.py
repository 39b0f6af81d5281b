"""Reads the table vtuulos/input_table as the talk does (a version: the newest unless
--version), whole and with a column and a row filter pushed down."""

from ledgerflow import FlowSpec, Parameter, Table, step


class TableReader(FlowSpec):
    version = Parameter("version", default=0, type=int)

    @step
    def start(self):
        self.next(self.b)

    @step
    def b(self):
        # Load data from S3 to a dataframe
        df = Table("vtuulos", "input_table")
        frame = df.to_pandas(self.version or None)
        self.total = int(frame["value"].sum())
        self.rows = len(frame)
        late = df.to_arrow(self.version or None, columns=["id"], filters=[("id", ">=", 40)])
        self.filtered_rows = late.num_rows
        self.filtered_columns = late.column_names
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TableReader()
