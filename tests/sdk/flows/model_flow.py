"""A flow whose end step keeps an instance of a class from the module beside it."""

from hosted_model import Model
from ledgerflow import FlowSpec, Parameter, step


class ModelFlow(FlowSpec):
    factor = Parameter("factor", default=2)

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.model = Model(self.factor)


ModelFlow()
