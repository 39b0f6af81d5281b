"""A branch, a join and a foreach, for remote runs."""

from ledgerflow import FlowSpec, Parameter, step


class RemoteBranches(FlowSpec):
    width = Parameter("width", default=3, type=int)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.next(self.join)

    @step
    def b(self):
        print("hello from b")
        self.x = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.items = inputs[0].items
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.y = self.input * 10
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.ys = [i.y for i in inputs]
        self.total = inputs[0].total
        self.next(self.end)

    @step
    def end(self):
        print("ys", self.ys, "total", self.total)


if __name__ == "__main__":
    RemoteBranches()
