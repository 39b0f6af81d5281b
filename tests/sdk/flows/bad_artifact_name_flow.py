"""A step that keeps a value under a name the ledger cannot keep."""

from ledgerflow import FlowSpec, step


class BadArtifactNameFlow(FlowSpec):
    @step
    def start(self):
        setattr(self, "my-artifact", 1)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadArtifactNameFlow()
