"""A step that sleeps, for interrupting a run."""

import time

from ledgerflow import FlowSpec, Parameter, step


class SleepyFlow(FlowSpec):
    seconds = Parameter("seconds", default=30.0)

    @step
    def start(self):
        self.x = 1
        self.next(self.nap)

    @step
    def nap(self):
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


SleepyFlow()
