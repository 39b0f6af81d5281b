"""The third chained flow: it starts when ChainTrain succeeds; deployed with a webhook
(`deploy --notify-webhook URL --notify-on success`) told of each run."""

from ledgerflow import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="ChainTrain")
class ChainReport(FlowSpec):
    @step
    def start(self):
        self.upstream = current.trigger.run.pathspec
        self.rows = current.trigger.run.data.rows
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChainReport()
