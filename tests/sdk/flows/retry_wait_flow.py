"""A step that fails once under @retry's default pause of two minutes."""

from ledgerflow import FlowSpec, current, retry, step


class RetryWaitFlow(FlowSpec):
    @retry(times=1)
    @step
    def start(self):
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails")
        self.next(self.end)

    @step
    def end(self):
        pass


RetryWaitFlow()
