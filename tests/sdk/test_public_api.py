"""The names `from ledgerflow import ...` offers: changing them is a decision, not an accident."""

import ledgerflow

EXPECTED = {
    "DataArtifact",
    "Flow",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "LedgerflowException",
    "LedgerflowNamespaceMismatch",
    "LedgerflowNotFound",
    "MergeArtifactsException",
    "Parameter",
    "Run",
    "Step",
    "Task",
    "catch",
    "current",
    "default_namespace",
    "get_namespace",
    "namespace",
    "resources",
    "retry",
    "step",
    "timeout",
}


def test_the_exported_names_are_pinned() -> None:
    assert set(ledgerflow.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(ledgerflow, name) is not None
