"""@environment sets variables for one step's tasks only."""

import os

from ledgerflow import FlowSpec, environment, step


class EnvironmentFlow(FlowSpec):
    @environment(vars={"GREETING": "hello", "LEVEL": "3"})
    @step
    def start(self):
        self.greeting = os.environ.get("GREETING")
        self.level = os.environ.get("LEVEL")
        self.next(self.end)

    @step
    def end(self):
        self.greeting_in_end = os.environ.get("GREETING")


EnvironmentFlow()
