"""The talk's hosting example, as written (plus endpoints for the error cases)."""

from ledgerflow import WebServiceSpec, endpoint


class MyWebService(WebServiceSpec):
    @endpoint
    def show_data(self, request_dict):
        result = self.artifacts.flow.x
        return {"result": result}

    @endpoint
    def echo(self, request_dict):
        """Answers with what it was given."""
        return {"got": request_dict}

    @endpoint
    def broken(self, request_dict):
        raise ValueError("this endpoint always fails")
