"""A foreach inside a foreach, each item keeping its foreach_stack()."""

from ledgerflow import FlowSpec, step


class NestedItems(FlowSpec):
    @step
    def start(self):
        self.outer = ["x", "y"]
        self.next(self.middle, foreach="outer")

    @step
    def middle(self):
        self.inner = [1, 2, 3]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.stack = self.foreach_stack()
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.stacks = [i.stack for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.stacks = [s for i in inputs for s in i.stacks]
        self.next(self.end)

    @step
    def end(self):
        print(len(self.stacks), "items")


NestedItems()
