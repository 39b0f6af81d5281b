"""A flow with an error pylint finds before anything runs (an undefined name)."""

from ledgerflow import FlowSpec, step


class LintErrorFlow(FlowSpec):
    @step
    def start(self):
        self.value = undefined_helper()  # noqa: F821 - the error pylint must report
        self.next(self.end)

    @step
    def end(self):
        pass


LintErrorFlow()
