"""The second chained flow: it starts when a run of ChainIngest's deployment succeeds,
and reads that run's data through `current.trigger.run`."""

from ledgerflow import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="ChainIngest")
class ChainTrain(FlowSpec):
    @step
    def start(self):
        upstream = current.trigger.run
        self.upstream = upstream.pathspec
        self.rows = upstream.data.rows * 10
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChainTrain()
