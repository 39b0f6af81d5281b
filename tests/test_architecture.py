"""Arrows one way (docs/architecture.md), for the rules import-linter's contracts cannot say (they
name private modules by pattern): the run rules and the service see only the contract
messages and the rules, the executor only the SDK's public modules; and importing the
contract's stubs runs none of the SDK. scripts/test runs import-linter for the rest."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

GRAPH = grimp.build_graph(
    "ledgerflow", "ledgerflow_service", "ledgerflow_executor", exclude_type_checking_imports=True
)
CONTRACT_AND_RULES = ("ledgerflow.v1", "ledgerflow.engine")


def _sdk_imports(package: str) -> set[tuple[str, str]]:
    """(importer, imported) for every import of an SDK module by `package`'s modules."""
    found = set()
    for importer in GRAPH.find_children(package) | GRAPH.find_descendants(package) | {package}:
        for imported in GRAPH.find_modules_directly_imported_by(importer):
            if imported == "ledgerflow" or imported.startswith("ledgerflow."):
                found.add((importer, imported))
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_run_rules_depend_on_the_contract_messages_only() -> None:
    outside = {
        (a, b) for a, b in _sdk_imports("ledgerflow.engine") if not _within(b, CONTRACT_AND_RULES)
    }
    assert outside == set()


def test_the_service_sees_only_the_contract_messages_and_the_run_rules() -> None:
    outside = {
        (a, b) for a, b in _sdk_imports("ledgerflow_service") if not _within(b, CONTRACT_AND_RULES)
    }
    assert outside == set()


def test_the_executor_imports_only_public_sdk_modules() -> None:
    private = {
        (a, b)
        for a, b in _sdk_imports("ledgerflow_executor")
        if any(part.startswith("_") for part in b.split("."))
    }
    assert private == set()


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ("import ledgerflow.v1", CONTRACT_AND_RULES),
        ("import ledgerflow.engine", CONTRACT_AND_RULES),
        ("import ledgerflow_service.api.server", CONTRACT_AND_RULES),
    ],
)
def test_importing_the_contract_or_the_service_runs_none_of_the_sdk(
    statement: str, allowed: tuple[str, ...]
) -> None:
    probe = (
        f"{statement}; import sys; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('ledgerflow.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded and [m for m in loaded if not _within(m, allowed)] == []
