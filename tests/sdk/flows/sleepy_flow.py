"""A step that sleeps, for interrupting a run."""

import time

from ledgerflow import FlowSpec, step


class SleepyFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.nap)

    @step
    def nap(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass


SleepyFlow()
