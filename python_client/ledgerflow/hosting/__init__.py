"""Hosting: a flow's results served over HTTP, as the talk's "Metaflow Hosting".

    class MyWebService(WebServiceSpec):
        @endpoint
        def show_data(self, request_dict):
            result = self.artifacts.flow.x
            return {'result': result}

``ledgerflow host serve service.py --flow MyFlow`` serves each endpoint at ``/NAME``.

    spec.py       what a service's author writes (WebServiceSpec, @endpoint, HTTPError,
                  accept(run)) and how the server reads it (load_service, describe)
    artifacts.py  self.artifacts.flow: the bound run's end-step artifacts
    binding.py    which run answers: the newest accepted one, followed on the ledger's
                  watch stream, or a pinned one
    code.py       the served run's code package on sys.path
    app.py        the HTTP side: requests in, answers and errors out
    encoding.py   results as JSON (numpy, pandas, models, ...)
    docs.py       /openapi.json and the /docs page
"""

from ledgerflow.hosting.spec import HTTPError, WebServiceSpec, endpoint

__all__ = ["HTTPError", "WebServiceSpec", "endpoint"]
