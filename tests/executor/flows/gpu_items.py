"""A foreach of items that each take one GPU, each recording where it ran (placement.py)."""

from ledgerflow import FlowSpec, Parameter, resources, step
from placement import placement


class GpuItems(FlowSpec):
    count = Parameter("count", default=4, type=int)
    seconds = Parameter("seconds", default=0.0, type=float)

    @step
    def start(self):
        self.items = list(range(self.count))
        self.next(self.work, foreach="items")

    @resources(cpu=1, memory=512, gpu=1)
    @step
    def work(self):
        self.placed = placement(self.seconds)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.placements = [i.placed for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GpuItems()
