"""A branch that fails until FLAKY_OK is set, after a foreach that must not run again
when the run is resumed."""

import os

from ledgerflow import FlowSpec, step


class FlakyBranch(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.check)

    @step
    def check(self):
        if not os.environ.get("FLAKY_OK"):
            raise RuntimeError("not yet")
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    FlakyBranch()
