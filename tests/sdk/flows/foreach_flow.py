"""The talk's foreach over ['x', 'y', 'z'], with ord()."""

from ledgerflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.grid = ["x", "y", "z"]
        self.next(self.a, foreach="grid")

    @step
    def a(self):
        self.x = ord(self.input)
        self.position = self.index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.out = max(i.x for i in inputs)
        self.positions = [i.position for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


ForeachFlow()
