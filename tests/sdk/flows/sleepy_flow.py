"""A step that says it sleeps, then sleeps: for interrupting a run, and following its output."""

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
        print(f"napping for {self.seconds} s")
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


SleepyFlow()
