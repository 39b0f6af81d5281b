"""A foreach of slow items, for leases, lost executors and cancels."""

import time

from ledgerflow import FlowSpec, Parameter, resources, step


class SlowItems(FlowSpec):
    count = Parameter("count", default=4, type=int)
    seconds = Parameter("seconds", default=0.0, type=float)
    gpus = Parameter("gpus", default=0, type=int)

    @step
    def start(self):
        self.items = list(range(self.count))
        self.next(self.work, foreach="items")

    @resources(memory=256, cpu=0.5)
    @step
    def work(self):
        time.sleep(self.seconds)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("values", self.values)


if __name__ == "__main__":
    SlowItems()
