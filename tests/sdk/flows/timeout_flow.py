"""A step that runs past its @timeout."""

import time

from ledgerflow import FlowSpec, step, timeout


class TimeoutFlow(FlowSpec):
    @timeout(seconds=1)
    @step
    def start(self):
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


TimeoutFlow()
