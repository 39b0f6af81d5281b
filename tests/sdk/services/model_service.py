"""Answers with the model the run keeps, whose class lives beside the flow file."""

from ledgerflow import WebServiceSpec, endpoint


class ModelService(WebServiceSpec):
    @endpoint
    def predict(self, request):
        return self.artifacts.flow.model.predict(int(request.get("x", 1)))
