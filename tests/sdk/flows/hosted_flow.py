"""The flow behind the hosting tests: its end step's x is what the service answers."""

from ledgerflow import FlowSpec, Parameter, step


class HostedFlow(FlowSpec):
    x = Parameter("x", default=3)

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


HostedFlow()
