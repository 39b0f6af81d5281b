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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledgerflow._current import current
    from ledgerflow._decorators import (
        catch,
        environment,
        parallel,
        resources,
        retry,
        step,
        timeout,
    )
    from ledgerflow._flow_config import Config, config_expr
    from ledgerflow._flow_decorators import (
        notify,
        project,
        schedule,
        trigger,
        trigger_on_finish,
    )
    from ledgerflow._flow_entry import FlowSpec
    from ledgerflow._parameters import IncludeFile, JSONType, Parameter
    from ledgerflow._s3 import S3, S3GetObject, S3Object
    from ledgerflow._secrets import secrets
    from ledgerflow._table import Table, TableVersion
    from ledgerflow.cards import card
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
    from ledgerflow.deployer import Deployer
    from ledgerflow.events import publish_event
    from ledgerflow.exceptions import (
        LedgerflowException,
        LedgerflowNamespaceMismatch,
        LedgerflowNotFound,
        LedgerflowTaggingError,
        MergeArtifactsException,
    )
    from ledgerflow.hosting import HTTPError, WebServiceSpec, endpoint
    from ledgerflow.runner import Runner

# Every public name is imported when first used, so that importing a submodule alone
# (the contract's stubs, ``ledgerflow.v1``, or the run rules, ``ledgerflow.engine``, as
# the metadata service does) loads none of the SDK; and a task process loads only what
# its flow uses (the client API, hosting and S3 together cost ~60 ms of a task's start).
_LAZY = {
    "ledgerflow._current": ("current",),
    "ledgerflow._decorators": (
        "catch", "environment", "parallel", "resources", "retry", "step", "timeout",
    ),
    "ledgerflow._flow_config": ("Config", "config_expr"),
    "ledgerflow._flow_decorators": (
        "notify", "project", "schedule", "trigger", "trigger_on_finish",
    ),
    "ledgerflow.events": ("publish_event",),
    "ledgerflow._flow_entry": ("FlowSpec",),
    "ledgerflow._parameters": ("IncludeFile", "JSONType", "Parameter"),
    "ledgerflow.exceptions": (
        "LedgerflowException", "LedgerflowNamespaceMismatch", "LedgerflowNotFound",
        "LedgerflowTaggingError", "MergeArtifactsException",
    ),
    "ledgerflow.hosting": ("HTTPError", "WebServiceSpec", "endpoint"),
    "ledgerflow._s3": ("S3", "S3GetObject", "S3Object"),
    "ledgerflow._secrets": ("secrets",),
    "ledgerflow._table": ("Table", "TableVersion"),
    "ledgerflow.runner": ("Runner",),
    "ledgerflow.cards": ("card",),
    "ledgerflow.deployer": ("Deployer",),
    "ledgerflow.client": (
        "DataArtifact", "Flow", "Ledgerflow", "Run", "Step", "Task", "default_metadata",
        "default_namespace", "get_metadata", "get_namespace", "metadata", "namespace",
    ),
}  # fmt: skip
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'ledgerflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "S3",
    "Config",
    "DataArtifact",
    "Deployer",
    "Flow",
    "FlowSpec",
    "HTTPError",
    "IncludeFile",
    "JSONType",
    "Ledgerflow",
    "LedgerflowException",
    "LedgerflowNamespaceMismatch",
    "LedgerflowNotFound",
    "LedgerflowTaggingError",
    "MergeArtifactsException",
    "Parameter",
    "Run",
    "Runner",
    "S3GetObject",
    "S3Object",
    "Step",
    "Table",
    "TableVersion",
    "Task",
    "WebServiceSpec",
    "card",
    "catch",
    "config_expr",
    "current",
    "default_metadata",
    "default_namespace",
    "endpoint",
    "environment",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
    "notify",
    "parallel",
    "project",
    "publish_event",
    "resources",
    "retry",
    "schedule",
    "secrets",
    "step",
    "timeout",
    "trigger",
    "trigger_on_finish",
]
