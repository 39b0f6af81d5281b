"""One step that prints --lines lines at once (bench/loud_step.py)."""

from ledgerflow import FlowSpec, Parameter, step


class LoudStep(FlowSpec):
    lines = Parameter("lines", default=100_000, type=int)

    @step
    def start(self):
        print("\n".join(f"line {i} of a step that says a lot" for i in range(self.lines)))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LoudStep()
