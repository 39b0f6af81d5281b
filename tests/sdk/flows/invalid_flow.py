"""A branch that is never joined."""

from ledgerflow import FlowSpec, step


class InvalidFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


InvalidFlow()
