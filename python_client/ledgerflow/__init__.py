"""Ledgerflow: write a workflow as a Python class, run it, and find every run again.

    from ledgerflow import FlowSpec, step

    class MyFlow(FlowSpec):
        @step
        def start(self):
            self.x = 0
            self.next(self.end)

        @step
        def end(self):
            print(self.x)

    MyFlow()

``python myflow.py run`` records the run in an append-only ledger (embedded SQLite under
``.ledgerflow/`` by default, or a metadata service); ``Flow('MyFlow').latest_run`` reads
it back.
"""

from ledgerflow._current import current
from ledgerflow._decorators import catch, environment, resources, retry, step, timeout
from ledgerflow._flowspec import FlowSpec
from ledgerflow._hosting import WebServiceSpec, endpoint
from ledgerflow._parameters import IncludeFile, JSONType, Parameter
from ledgerflow._s3 import S3, S3GetObject, S3Object
from ledgerflow.client import (
    DataArtifact,
    Flow,
    Ledgerflow,
    Run,
    Step,
    Task,
    default_metadata,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
)
from ledgerflow.exceptions import (
    LedgerflowException,
    LedgerflowNamespaceMismatch,
    LedgerflowNotFound,
    MergeArtifactsException,
)

__all__ = [
    "S3",
    "DataArtifact",
    "Flow",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "Ledgerflow",
    "LedgerflowException",
    "LedgerflowNamespaceMismatch",
    "LedgerflowNotFound",
    "MergeArtifactsException",
    "Parameter",
    "Run",
    "S3GetObject",
    "S3Object",
    "Step",
    "Task",
    "WebServiceSpec",
    "catch",
    "current",
    "default_metadata",
    "default_namespace",
    "endpoint",
    "environment",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
    "resources",
    "retry",
    "step",
    "timeout",
]
