"""A foreach as wide as --width."""

from ledgerflow import FlowSpec, Parameter, step


class WideFlow(FlowSpec):
    width = Parameter("width", default=10)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        print("squaring", self.input)
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideFlow()
