"""Two cards with one id on a step: refused when the graph is checked."""

from ledgerflow import FlowSpec, card, step


class DuplicateCardFlow(FlowSpec):
    @card(type="blank", id="report")
    @card(id="report")
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DuplicateCardFlow()
