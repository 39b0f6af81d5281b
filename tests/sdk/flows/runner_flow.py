"""What tests/sdk/test_runner.py drives through ledgerflow.Runner: a parameter of each
kind, and a step that fails while RUNNER_FAIL is set (so a resume without it succeeds)."""

import os

from ledgerflow import FlowSpec, JSONType, Parameter, step


class RunnerFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="A float")
    count = Parameter("count", default=1, help="An int")
    greeting = Parameter("greeting", default="hello")
    loud = Parameter("loud", default=False, help="A bool")
    config = Parameter("config", type=JSONType, default='{"k": 1}')

    @step
    def start(self):
        self.seen = {
            "alpha": self.alpha,
            "count": self.count,
            "greeting": self.greeting,
            "loud": self.loud,
            "config": self.config,
        }
        self.next(self.middle)

    @step
    def middle(self):
        if os.environ.get("RUNNER_FAIL"):
            raise ValueError("middle fails while RUNNER_FAIL is set")
        self.total = self.alpha * self.count
        self.next(self.end)

    @step
    def end(self):
        print(self.greeting.upper() if self.loud else self.greeting)


RunnerFlow()
