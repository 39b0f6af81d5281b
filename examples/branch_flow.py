"""The talk's branch example: start sets x, a adds 2, b adds 3, join takes the max.

python examples/branch_flow.py run
python examples/branch_flow.py resume b
"""

from ledgerflow import FlowSpec, step


class MyFlow(FlowSpec):
    @step
    def start(self):
        self.x = 0
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x += 2
        self.next(self.join)

    @step
    def b(self):
        self.x += 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.out = max(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("out is", self.out)


MyFlow()
