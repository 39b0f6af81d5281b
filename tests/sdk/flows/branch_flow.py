"""The talk's branch flow; COUNT_FILE counts how often each step body runs."""

import os

from ledgerflow import FlowSpec, step


def count(step_name):
    path = os.environ.get("COUNT_FILE")
    if path:
        with open(path, "a") as out:
            out.write(step_name + "\n")


class MyFlow(FlowSpec):
    @step
    def start(self):
        count("start")
        self.x = 0
        self.next(self.a, self.b)

    @step
    def a(self):
        count("a")
        self.x += 2
        self.next(self.join)

    @step
    def b(self):
        count("b")
        if os.environ.get("FAIL_B"):
            raise ValueError("b is broken today")
        self.x += 3
        self.next(self.join)

    @step
    def join(self, inputs):
        count("join")
        self.out = max(i.x for i in inputs)
        self.from_a = inputs.a.x
        self.next(self.end)

    @step
    def end(self):
        count("end")
        print("out is", self.out)


MyFlow()
