"""The first of three chained production flows: it starts when someone publishes
`data_ready`, and reads the event's payload (its `date` field sets the parameter)."""

import os

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
        # The executor's token is its own, never its tasks' (they get its address).
        self.executor_token = os.environ.get("LEDGERFLOW_TOKEN")
        self.service = os.environ.get("LEDGERFLOW_SERVICE")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChainIngest()
