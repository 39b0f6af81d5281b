"""Switches (conditional branches), as Metaflow writes them: one on a Parameter whose
"quick" case skips straight to where the cases meet, and one inside a foreach where
each item picks its own case before the foreach is joined."""

from ledgerflow import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    mode = Parameter("mode", default="deep", help="deep: prepare first; quick: skip it")

    @step
    def start(self):
        self.items = [3, 12, 5]
        self.next({"deep": self.prepare, "quick": self.fanout}, condition="mode")

    @step
    def prepare(self):
        self.prepared = True
        self.next(self.fanout)

    @step
    def fanout(self):
        self.path = "prepared" if getattr(self, "prepared", False) else "skipped"
        self.next(self.grade, foreach="items")

    @step
    def grade(self):
        self.size = "big" if self.input > 10 else "small"
        self.next({"big": self.big, "small": self.small}, condition="size")

    @step
    def big(self):
        self.label = f"{self.input} is big"
        self.next(self.graded)

    @step
    def small(self):
        self.label = f"{self.input} is small"
        self.next(self.graded)

    @step
    def graded(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = [i.label for i in inputs]
        self.path = inputs[0].path
        self.next(self.end)

    @step
    def end(self):
        print("; ".join(self.labels), "|", self.path)


if __name__ == "__main__":
    SwitchFlow()
