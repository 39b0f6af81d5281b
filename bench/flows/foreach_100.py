"""bench/r_vs_python.py: a foreach of --count trivial Python tasks (the R twin:
foreach_100.R)."""

from ledgerflow import FlowSpec, Parameter, step


class ForeachPy(FlowSpec):
    count = Parameter("count", default=100, type=int)

    @step
    def start(self):
        self.items = list(range(1, self.count + 1))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.y = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ForeachPy()
