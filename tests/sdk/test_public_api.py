"""The names `from ledgerflow import ...` offers: changing them is a decision, not an accident."""

import ledgerflow

EXPECTED = {
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
    "S3",
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
    "parallel",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
    "notify",
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
}


def test_the_exported_names_are_pinned() -> None:
    assert set(ledgerflow.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(ledgerflow, name) is not None


def test_importing_the_sdk_loads_no_service_code() -> None:
    """`import ledgerflow` loads neither the service, nor a database driver, nor grpc:
    embedded mode imports the service when a ledger is opened, service mode grpc."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ledgerflow; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert [m for m in loaded if m.startswith(("ledgerflow_service", "psycopg", "grpc"))] == []


def test_service_errors_reach_users_as_sdk_exceptions(tmp_path) -> None:
    from ledgerflow.exceptions import LedgerflowException, LedgerflowNotFound, RpcError
    from ledgerflow.metadata_client import EmbeddedMetadata

    client = EmbeddedMetadata(f"sqlite://{tmp_path / 'ledger.db'}", "alice")
    try:
        try:
            client.run("MyFlow", "1")
        except LedgerflowNotFound as error:
            assert isinstance(error, RpcError) and error.code == "NOT_FOUND"
        else:
            raise AssertionError("no error")
        try:
            client.remove_run_tags("MyFlow", "1", ["user:x"])
        except LedgerflowException as error:
            assert type(error).__module__ == "ledgerflow.exceptions"
        else:
            raise AssertionError("no error")
    finally:
        client.close()


LEAN_FLOW = """
import sys

from ledgerflow import FlowSpec, step


class Lean(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):  # a fork of the runtime: it holds what the runtime imported
        print("loaded:", *sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY}))


if __name__ == "__main__":
    Lean()
"""
# Modules a local run has no use for unless a flow asks: a schedule (croniter), a TOML
# config (tomllib), a code package (tarfile), a card opened in a browser (webbrowser),
# a time zone (zoneinfo), Postgres (psycopg), rich's emoji table, grpc, the service's
# leases and notifications (with logging and concurrent.futures), and the installed
# packages' metadata (pylint's check is on: the run asks whether pylint is installed).
# Each is milliseconds to tens of milliseconds of a flow's start, paid on every run.
HEAVY = {"croniter", "tomllib", "tarfile", "webbrowser", "zoneinfo", "psycopg", "grpc",
         "rich._emoji_codes", "ledgerflow_service.orchestration.leases",
         "ledgerflow_service.orchestration.notifications", "logging", "concurrent.futures",
         "importlib.metadata"}  # fmt: skip


def _run_flow_as_a_user(tmp_path, flow, *python_flags: str, **env_vars: str):
    """`python [python_flags] FLOW run` with no LEDGERFLOW_* setting but a home of its
    own (and `env_vars`), which must succeed; its CompletedProcess (text)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["LEDGERFLOW_HOME"] = str(tmp_path / "home")
    env.update(env_vars)
    out = subprocess.run([sys.executable, *python_flags, str(flow), "run"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_a_local_run_loads_only_what_it_uses(tmp_path) -> None:
    flow = tmp_path / "lean.py"
    flow.write_text(LEAN_FLOW.replace("{HEAVY}", repr({m.split(".")[0] for m in HEAVY})))
    # -X importtime: every import of the runtime, to its end, on its stderr (a task's
    # stderr goes to the task's log); the end step shows what a task held.
    out = _run_flow_as_a_user(tmp_path, flow, "-X", "importtime")
    line = next(line for line in out.stdout.splitlines() if "loaded:" in line)
    in_a_task = set(line.split("loaded:", 1)[1].split())
    in_the_runtime = {
        row.rsplit("|", 1)[1].strip()
        for row in out.stderr.splitlines()
        if row.startswith("import time:") and row.count("|") == 2
    }
    assert "ledgerflow.runtime.scheduler" in in_the_runtime  # the rows were read
    assert in_a_task & HEAVY == set(), line
    assert in_the_runtime & HEAVY == set()


FROZEN_FLOW = """
import gc

from ledgerflow import FlowSpec, step


class Frozen(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):  # a fork of the runtime: the collector's state is the runtime's
        print("frozen objects:", gc.get_freeze_count())


if __name__ == "__main__":
    Frozen()
"""


def test_a_flow_run_freezes_its_imports_for_the_collector_unless_interactive(
    tmp_path,
) -> None:
    """The command line hands what its imports made to the collector's permanent
    generation (ledgerflow/cli/startup.py), except in an interactive session, which
    goes on after the command."""
    flow = tmp_path / "frozen.py"
    flow.write_text(FROZEN_FLOW)

    def frozen(*python_flags: str) -> int:
        # (no pylint check: not what this test is about, and it saves one a run)
        out = _run_flow_as_a_user(tmp_path, flow, *python_flags, LEDGERFLOW_PYLINT="0")
        line = next(line for line in out.stdout.splitlines() if "frozen objects:" in line)
        return int(line.rsplit(":", 1)[1])

    assert frozen() > 10_000  # every module, class and function imported
    assert frozen("-i") == 0
