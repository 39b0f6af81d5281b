"""A step that asks for more GPUs than any executor here offers."""

from ledgerflow import FlowSpec, resources, step


class NeedsGpus(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @resources(gpu=4, memory=256)
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NeedsGpus()
