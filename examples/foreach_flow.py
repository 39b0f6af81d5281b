"""The talk's foreach: one task per item of self.grid, joined by taking the max.

python examples/foreach_flow.py run
"""

from ledgerflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.grid = ["x", "y", "z"]
        self.next(self.a, foreach="grid")

    @step
    def a(self):
        self.x = ord(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.out = max(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("out is", self.out)


if __name__ == "__main__":
    ForeachFlow()
