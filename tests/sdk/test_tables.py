"""ledgerflow.Table: versions written by steps and read back intact, from a local folder
and from moto's S3 server over HTTP, with every write and read in the ledger (embedded
and through the metadata service)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FLOWS, S3_CREDENTIALS, FlowEnv
from ledgerflow import Flow, LedgerflowNotFound, Table
from ledgerflow._table import TableException
from ledgerflow.cli.main import main as ledgerflow_cli

sys.path.insert(0, str(FLOWS))
from table_data import sample_frame


def _run_id(flow_env: FlowEnv, flow: str, *args: str, env: dict[str, str]) -> str:
    flow_env.run(flow, "run", *args, extra_env=env)
    return Flow({"table_writer": "TableWriter", "table_reader": "TableReader"}[flow]).latest_run.id


def _round_trip_with_lineage(flow_env: FlowEnv, env: dict[str, str]) -> None:
    writer = _run_id(flow_env, "table_writer", "--value", "1", env=env)
    table = Table("vtuulos", "input_table")
    pd.testing.assert_frame_equal(table.to_pandas(), sample_frame(50, 1))
    (first,) = table.history()
    assert (first.version, first.written_by) == (1, f"TableWriter/{writer}/start/1")
    assert first.run_pathspec == f"TableWriter/{writer}" and first.num_rows == 50
    assert len(first.files) == 5 and first.location.startswith(env["LEDGERFLOW_TABLE_ROOT"])
    assert "kind: dictionary<values=" in first.schema and "pandas" not in first.schema

    reader = _run_id(flow_env, "table_reader", env=env)
    data = Flow("TableReader")[reader].data
    assert (data.total, data.rows) == (50, 50)
    assert (data.filtered_rows, data.filtered_columns) == (10, ["id"])

    second_writer = _run_id(flow_env, "table_writer", "--value", "2", env=env)
    newest = _run_id(flow_env, "table_reader", env=env)
    older = _run_id(flow_env, "table_reader", "--version", "1", env=env)
    assert Flow("TableReader")[newest].data.total == 100
    assert Flow("TableReader")[older].data.total == 50

    one, two = table.history()
    assert two.written_by == f"TableWriter/{second_writer}/start/1"
    assert [r.run_pathspec for r in one.reads] == [f"TableReader/{reader}", f"TableReader/{older}"]
    assert [r.read_by for r in two.reads] == [f"TableReader/{newest}/b/2"]
    assert table.version().version == 2

    # The same lineage from the command line.
    listed = _cli("tables", "list")
    assert listed.splitlines()[1].split()[:3] == ["vtuulos", "input_table", "2"]
    shown = _cli("tables", "show", "vtuulos/input_table").splitlines()
    assert shown[0].startswith("version 1: 50 rows, ") and first.written_by in shown[0]
    assert [line.split()[2] for line in shown if line.startswith("  read by")] == [
        f"TableReader/{reader}/b/2", f"TableReader/{older}/b/2", f"TableReader/{newest}/b/2",
    ]  # fmt: skip
    versions = [json.loads(line) for line in _cli("tables", "show", "vtuulos/input_table",
                                                  "--json").splitlines()]  # fmt: skip
    assert [(v["version"], v["num_rows"]) for v in versions] == [(1, 50), (2, 50)]


def _cli(*args: str) -> str:
    """`ledgerflow ARGS` in this process (the fixture's ledger); its output."""
    result = CliRunner().invoke(ledgerflow_cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_tables_show_refuses_a_bad_name_and_names_the_tables(flow_env: FlowEnv) -> None:
    result = CliRunner().invoke(ledgerflow_cli, ["tables", "show", "no_slash"])
    assert result.exit_code != 0 and "name a table as NAMESPACE/TABLE" in result.output
    missing = CliRunner().invoke(ledgerflow_cli, ["tables", "show", "vtuulos/nothing"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "nothing" in missing.output


def test_a_table_in_a_folder_round_trips_with_its_lineage(
    flow_env: FlowEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"LEDGERFLOW_TABLE_ROOT": str(tmp_path / "tables")}
    monkeypatch.setenv("LEDGERFLOW_TABLE_ROOT", env["LEDGERFLOW_TABLE_ROOT"])
    _round_trip_with_lineage(flow_env, env)


def test_a_table_on_s3_round_trips_with_its_lineage(
    flow_env: FlowEnv, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"tables-{flow_env.mode}"
    env = {**S3_CREDENTIALS, "LEDGERFLOW_S3_ENDPOINT_URL": s3_endpoint,
           "LEDGERFLOW_TABLE_ROOT": f"s3://{bucket}/tables"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    _round_trip_with_lineage(flow_env, env)


def test_concurrent_writers_each_publish_a_version(
    flow_env: FlowEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "tables")
    monkeypatch.setenv("LEDGERFLOW_TABLE_ROOT", root)
    env = {**flow_env.env, "USERNAME": "tester", "LEDGERFLOW_TABLE_ROOT": root}
    writers = [
        subprocess.Popen(
            [sys.executable, str(FLOWS / "table_writer.py"), "run", "--value", str(value),
             "--rows", "2000", "--rows_per_file", "100"],
            env=env, cwd=flow_env.home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for value in (3, 4)
    ]  # fmt: skip
    for writer in writers:
        output = writer.communicate(timeout=120)[0].decode()
        assert writer.returncode == 0, output
    table = Table("vtuulos", "input_table")
    versions = table.history()
    assert [v.version for v in versions] == [1, 2]
    assert len({v.location for v in versions}) == 2
    totals = {int(table.to_pandas(v.version)["value"].sum()) for v in versions}
    assert totals == {3 * 2000, 4 * 2000}


def test_a_failed_step_publishes_no_version(
    flow_env: FlowEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tables"
    monkeypatch.setenv("LEDGERFLOW_TABLE_ROOT", str(root))
    failed = flow_env.run("table_writer", "run", "--fail", "true", check=False,
                          extra_env={"LEDGERFLOW_TABLE_ROOT": str(root)})  # fmt: skip
    assert failed.returncode != 0
    assert list(root.glob("vtuulos/input_table/*/part-*.parquet"))  # its files were written
    with pytest.raises(LedgerflowNotFound, match="namespace 'vtuulos' has no tables"):
        Table("vtuulos", "input_table").history()


def test_a_missing_table_names_the_tables_that_exist(
    flow_env: FlowEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "tables")
    monkeypatch.setenv("LEDGERFLOW_TABLE_ROOT", root)
    flow_env.run("table_writer", "run", extra_env={"LEDGERFLOW_TABLE_ROOT": root})
    with pytest.raises(LedgerflowNotFound, match="the tables of 'vtuulos': input_table"):
        Table("vtuulos", "input_tabel").to_pandas()
    with pytest.raises(LedgerflowNotFound, match=r"no version 9 \(newest: 1\)"):
        Table("vtuulos", "input_table").to_arrow(9)
    with pytest.raises(TableException, match="inside a flow's step"):
        Table("vtuulos", "input_table").write(sample_frame(3, 1))


@pytest.mark.parametrize("namespace, name", [("../etc", "t"), ("ok", ""), ("ok", "a/b"),
                                             ("-x", "t"), ("ok", "x" * 129)])  # fmt: skip
def test_a_name_the_ledger_would_refuse_is_refused_at_once(namespace: str, name: str) -> None:
    """The service's rule, checked before anything is read or written."""
    with pytest.raises(TableException, match="is not a valid table name"):
        Table(namespace, name)
