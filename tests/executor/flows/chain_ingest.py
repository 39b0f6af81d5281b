"""The first of three chained production flows: it starts when someone publishes
`data_ready`, and reads the event's payload (its `date` field sets the parameter)."""

from ledgerflow import FlowSpec, Parameter, current, step, trigger


@trigger(event="data_ready")
class ChainIngest(FlowSpec):
    date = Parameter("date", default="unknown", help="The partition to ingest.")

    @step
    def start(self):
        started_by = current.trigger
        self.started_by = dict(
            kind=started_by.kind,
            event=started_by.event.name,
            payload=started_by.event.payload,
        )
        self.rows = 3
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChainIngest()
