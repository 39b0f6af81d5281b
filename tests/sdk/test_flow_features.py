"""Parameters, decorators, joins and failures, end to end in both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ledgerflow import Flow, Run
from ledgerflow.client import _clients
from ledgerflow.v1 import query_service_pb2
from waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("launcher", ["fork", "command"])
def test_features_flow(flow_env, tmp_path: Path, launcher: str) -> None:
    """Every feature, with tasks forked from the runtime and with each task run by the
    task entry point (`python FLOW_FILE task`) in a new interpreter, as a container
    would: the same results."""
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk")
    markers = tmp_path / "markers"
    markers.mkdir()
    result = flow_env.run(
        "features_flow",
        "run",
        "--rounds",
        "7",
        "--notes",
        str(notes),
        "--max-workers",
        "2",
        "--launcher",
        launcher,
        extra_env={"MARKER_DIR": str(markers)},
    )
    assert "caught CaughtException builtins.KeyError" in result.stdout
    run = Flow("FeaturesFlow").latest_run
    assert run.successful
    end = run["end"].task
    assert end.data.params == [0.5, 7, {"k": 1}, "remember the milk"]
    assert end.data.totals == [30, 120]  # rows [1, 2] and [3, 4, 5], times 10
    assert end.data.shared == "same everywhere"
    assert end.data.before_failure is True
    assert end.data.problem.type == "builtins.KeyError"  # module.Name, as Metaflow
    who = run["start"].task.data.who
    assert who == ["FeaturesFlow", run.id, "start", "tester"]

    inner = run["inner"].tasks()
    assert len(inner) == 5
    assert all(t.retry_count == 1 for t in inner)
    assert {t.data.attempt_seen for t in inner} == {1}
    assert all(
        t.exception is not None and "first attempt fails" in t.exception.message for t in inner
    )
    assert run["fragile"].task.successful


def test_a_missing_required_parameter_is_a_usage_error(flow_env) -> None:
    result = flow_env.run("features_flow", "run", check=False)
    assert result.returncode == 2
    assert "missing parameter --rounds" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(Exception, match="does not exist"):
        Flow("FeaturesFlow")  # nothing was recorded


def test_a_bad_parameter_value_is_a_usage_error(flow_env) -> None:
    result = flow_env.run("features_flow", "run", "--rounds", "seven", check=False)
    assert result.returncode == 2 and "--rounds" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unpicklable_artifact_fails_clearly_and_records_nothing(flow_env) -> None:
    result = flow_env.run("bad_artifact_flow", "run", check=False)
    assert result.returncode == 1
    assert "artifact 'lock' of step 'start' cannot be stored" in result.stdout
    run = Flow("BadArtifactFlow").latest_run
    task = run["start"].task
    assert task.status == "failed"
    assert list(task) == []  # no half-written artifacts in the ledger
    assert not run.successful and run.finished


def test_a_timeout_kills_the_attempt(flow_env) -> None:
    result = flow_env.run("timeout_flow", "run", check=False)
    assert result.returncode == 1
    assert "TimeoutException" in result.stdout
    task = Flow("TimeoutFlow").latest_run["start"].task
    assert task.exception is not None and task.exception.type == "TimeoutException"


def test_with_retry_on_the_command_line(flow_env, tmp_path: Path) -> None:
    result = flow_env.run(
        "branch_flow",
        "run",
        "--with",
        "retry:times=2,minutes_between_retries=0",
        check=False,
        extra_env={"FAIL_B": "1"},
    )
    assert result.returncode == 1
    assert result.stdout.count("retry") == 2
    task = Flow("MyFlow").latest_run["b"].task
    assert task.retry_count == 2


def test_with_retry_takes_the_defaults_of_the_decorator() -> None:
    from ledgerflow._decorators import Retry
    from ledgerflow.cli.flow_options import parse_with

    assert parse_with(("retry",)) == Retry() == Retry(times=3, minutes_between_retries=2)
    assert parse_with(("retry:times=1",)) == Retry(times=1, minutes_between_retries=2)


def test_catch_can_keep_the_traceback_off_stderr(flow_env) -> None:
    flow_env.run("quiet_catch_flow", "run")
    run = Flow("QuietCatchFlow").latest_run
    assert "ValueError" not in (run["quiet"].task.stderr or "")
    assert "ValueError" in (run["loud"].task.stderr or "")
    assert run["end"].task.data.caught == ["builtins.ValueError", "builtins.ValueError"]


def test_an_unusable_home_folder_is_a_one_line_error(flow_env) -> None:
    result = flow_env.run(
        "branch_flow", "run", check=False, extra_env={"LEDGERFLOW_HOME": "/etc/passwd"}
    )
    assert result.returncode == 1
    assert "/etc/passwd" in result.stderr and "Traceback" not in result.stderr


def test_an_invalid_graph_is_refused_before_anything_runs(flow_env) -> None:
    result = flow_env.run("invalid_flow", "run", check=False)
    assert result.returncode == 1
    assert "InvalidFlow is not a valid flow" in result.stderr
    assert "make it a join, def end(self, inputs)" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(Exception, match="does not exist"):
        Flow("InvalidFlow")


def test_cli_show_check_logs_tag_dump(flow_env) -> None:
    assert "a [linear] -> join" in flow_env.run("branch_flow", "show").stdout
    assert "graph is valid" in flow_env.run("branch_flow", "check").stdout
    for command in ([], ["run"], ["resume"], ["logs"], ["tag", "add"], ["dump"]):
        helped = flow_env.run("branch_flow", *command, "--help")
        assert "Usage:" in helped.stdout
    flow_env.run("branch_flow", "run")
    run_id = Flow("MyFlow").latest_run.id
    logs = flow_env.run("branch_flow", "logs", f"{run_id}/end")
    assert "out is 3" in logs.stdout
    assert flow_env.run("branch_flow", "tag", "add", "--run-id", run_id, "gold").stdout.split() == [
        "gold"
    ]
    listed = flow_env.run("branch_flow", "tag", "list", "--run-id", run_id).stdout
    assert "gold" in listed and "user:tester" in listed
    removed = flow_env.run(
        "branch_flow", "tag", "remove", "--run-id", run_id, "user:tester", check=False
    )
    assert removed.returncode == 1 and "system tag" in removed.stderr
    assert "Traceback" not in removed.stderr
    dumped = flow_env.run("branch_flow", "dump", f"{run_id}/join/4").stdout
    assert "out (int" in dumped and ": 3" in dumped
    missing = flow_env.run("branch_flow", "logs", "nope/end", check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_reading_one_artifact_per_task_is_a_constant_number_of_calls(flow_env) -> None:
    flow_env.run("wide_flow", "run", "--width", "40")
    metadata, _ = _clients()
    run = Run(f"WideFlow/{Flow('WideFlow').latest_run.id}")
    before = metadata.calls
    values = [task.data.value for task in run["square"]]
    assert sorted(values) == [i * i for i in range(40)]
    # ListSteps (run["square"] checks the step exists) + ListTasks + ListArtifacts,
    # whatever the width.
    assert metadata.calls - before == 3


def _shape(events: Any) -> dict[str, list[str]]:
    """A run's events, comparable across runs: per stream (without the run id), the
    event types in order, with artifact names."""
    shape: dict[str, list[str]] = {}
    for event in events:
        where = "/".join(event.stream.split("/")[2:]) or "run"
        what = event.event_type
        if event.HasField("artifacts_recorded"):
            what += ":" + ",".join(sorted(a.name for a in event.artifacts_recorded.artifacts))
        shape.setdefault(where, []).append(what)
    return shape


def test_service_and_embedded_record_the_same_events(flow_env, tmp_path: Path) -> None:
    """The same flow, run in this mode and in embedded mode, records the same events."""
    from ledgerflow.metadata_client import EmbeddedMetadata
    from ledgerflow.v1 import audit_service_pb2

    flow_env.run("branch_flow", "run")
    metadata, _ = _clients()
    run = Flow("MyFlow").latest_run
    events = metadata.list_events(
        audit_service_pb2.ListEventsRequest(run_pathspec=run.pathspec)
    ).events
    assert {e.actor for e in events} == {"tester"}
    embedded_home = tmp_path / "embedded"
    embedded_env = {"LEDGERFLOW_SERVICE": "", "LEDGERFLOW_HOME": str(embedded_home)}
    flow_env.run("branch_flow", "run", extra_env=embedded_env)
    embedded = EmbeddedMetadata(f"sqlite://{embedded_home / 'ledger.db'}", "tester")
    try:
        other_run = embedded.list_runs(query_service_pb2.ListRunsRequest()).runs[0]
        other = embedded.list_events(
            audit_service_pb2.ListEventsRequest(run_pathspec=other_run.pathspec)
        ).events
    finally:
        embedded.close()
    assert _shape(events) == _shape(other)
    assert _shape(events)["run"][0] == "RunStarted" and _shape(events)["run"][-1] == "RunFinished"


def test_a_flow_on_the_s3_datastore(flow_env, s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    credentials = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    bucket = f"flows-{flow_env.mode}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        **{
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "region_name": "us-east-1",
        },
    ).create_bucket(Bucket=bucket)
    s3_env = {
        **credentials,
        "LEDGERFLOW_DATASTORE": "s3",
        "LEDGERFLOW_DATASTORE_ROOT": f"s3://{bucket}/runs",
        "LEDGERFLOW_S3_ENDPOINT_URL": s3_endpoint,
    }
    flow_env.run("wide_flow", "run", "--width", "12", extra_env=s3_env)
    listed = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).list_objects_v2(Bucket=bucket, Prefix="runs/")
    assert listed["KeyCount"] > 12  # every artifact value went to S3
    assert not (flow_env.home / ".ledgerflow" / "data").exists()
    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as patch:
        for key, value in s3_env.items():
            patch.setenv(key, value)
        run = Flow("WideFlow").latest_run
        assert run.data.total == sum(i * i for i in range(12))


def test_an_interrupted_run_records_its_killed_tasks(flow_env) -> None:
    import signal
    import subprocess
    import sys

    flow_file = Path(__file__).parent / "flows" / "sleepy_flow.py"
    process = subprocess.Popen(
        [sys.executable, str(flow_file), "run"],
        cwd=flow_env.home,
        env={**flow_env.env, "USERNAME": "tester"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until the sleeping task has started
        if "nap/2" in line:
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 1
    run = Flow("SleepyFlow").latest_run
    assert run.status == "failed"
    nap = run["nap"].task
    assert nap.status == "failed" and nap.exception.type == "Interrupted"


def test_a_running_tasks_output_is_recorded_while_it_runs(flow_env) -> None:
    import signal
    import subprocess
    import sys

    flow_file = Path(__file__).parent / "flows" / "sleepy_flow.py"
    process = subprocess.Popen(
        [sys.executable, str(flow_file), "run", "--seconds", "60"],
        cwd=flow_env.home,
        env={**flow_env.env, "USERNAME": "tester", "LEDGERFLOW_LOG_SECONDS": "0.2"},
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "SleepyFlow" in _flow_names(), 30, "the run to start")
        run = Flow("SleepyFlow").latest_run
        assert run is not None

        def printed() -> bool:
            return "nap" in run and run["nap"].task.stdout == "napping for 60.0 s\n"

        wait_for(printed, 30, "the nap task's first line in its recorded stdout")
        assert process.poll() is None and run["nap"].task.status == "running"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _flow_names() -> set[str]:
    metadata, _ = _clients()
    return {f.flow_name for f in metadata.list_flows(query_service_pb2.ListFlowsRequest()).flows}


def test_a_local_run_records_the_graph_it_declared(flow_env) -> None:
    flow_env.run("branch_flow", "run", extra_env={"FAIL_B": "1"}, check=False)
    metadata, _ = _clients()
    run = Flow("MyFlow").latest_run
    asked = query_service_pb2.GetRunRequest(flow_name="MyFlow", run_id=run.id, include_graph=True)
    graph = metadata.get_run(asked).graph
    steps = {spec.name: spec for spec in graph.steps}
    assert list(steps) == ["start", "a", "b", "join", "end"]
    assert list(steps["start"].next_steps) == ["a", "b"]
    assert (list(steps["join"].in_steps), steps["join"].closes) == (["a", "b"], "start")
    # join and end never ran: only the declared graph knows them.
    assert sorted(step.id for step in run) == ["a", "b", "start"]


def test_a_long_task_keeps_sending_heartbeats(flow_env) -> None:
    from ledgerflow.v1 import audit_service_pb2

    flow_env.run(
        "sleepy_flow", "run", "--seconds", "1.5", extra_env={"LEDGERFLOW_HEARTBEAT_SECONDS": "0.3"}
    )
    run = Flow("SleepyFlow").latest_run
    metadata, _ = _clients()
    events = metadata.list_events(
        audit_service_pb2.ListEventsRequest(task_pathspec=run["nap"].task.pathspec)
    ).events
    beats = [e for e in events if e.event_type == "TaskHeartbeat"]
    assert len(beats) >= 3  # a 1.5 s task, a beat every 0.3 s: never silent long enough
    assert run.successful


def test_two_runs_at_once_share_one_embedded_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes writing one SQLite file: BEGIN IMMEDIATE serializes them."""
    import os
    import sqlite3
    import subprocess
    import sys

    flows = Path(__file__).parent / "flows"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(USERNAME="tester", LEDGERFLOW_HOME=str(tmp_path / ".ledgerflow"))
    processes = [
        subprocess.Popen(
            [sys.executable, str(flows / "wide_flow.py"), "run", "--width", "30"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    monkeypatch.delenv("LEDGERFLOW_SERVICE", raising=False)
    monkeypatch.setenv("LEDGERFLOW_HOME", env["LEDGERFLOW_HOME"])
    import ledgerflow.client

    ledgerflow.client.namespace(None)
    try:
        runs = list(Flow("WideFlow").runs())
        assert len(runs) == 2 and all(r.successful for r in runs)
        assert all(r.data.total == sum(i * i for i in range(30)) for r in runs)
    finally:
        ledgerflow.client.default_namespace()
        ledgerflow.client._connection.clear()
    with sqlite3.connect(tmp_path / ".ledgerflow" / "ledger.db") as db:
        positions = [
            row[0]
            for row in db.execute("SELECT global_position FROM events ORDER BY global_position")
        ]
    assert positions == list(range(1, len(positions) + 1))


def test_include_file_stores_a_key_and_resume_reads_the_files_back(
    flow_env, tmp_path: Path
) -> None:
    """100 MB files, text and binary, in a run and in its resume; the run records keys."""
    import json
    import os

    text, blob = tmp_path / "big.txt", tmp_path / "big.bin"
    line = "the quick brown fox jumps over the lazy dog 0123456789\n"
    text.write_text(line * (100 * 1024 * 1024 // len(line)))
    blob.write_bytes(os.urandom(100 * 1024 * 1024))
    failed = flow_env.run("include_flow", "run", "--text", str(text), "--blob", str(blob),
                          check=False, extra_env={"FAIL_END": "1"})  # fmt: skip
    assert failed.returncode == 1
    text.unlink()
    blob.unlink()  # resume needs the files no more
    flow_env.run("include_flow", "resume", "end")
    run = Flow("IncludeFlow").latest_run
    assert run.successful and run.origin_run_id
    seen = run["start"].task.data.seen
    assert run["end"].task.data.seen_again == seen
    assert [s[:2] for s in seen] == [["str", text_size := seen[0][1]], ["bytes", 100 * 1024 * 1024]]
    assert text_size > 100_000_000
    metadata, _ = _clients()
    recorded = metadata.run("IncludeFlow", run.id).parameters
    assert all(len(value) < 300 for value in recorded.values())  # keys, not content
    assert json.loads(recorded["blob"])["ledgerflow_include_file"]["size"] == 100 * 1024 * 1024


def test_resume_mistakes_are_one_line_errors(flow_env) -> None:
    first = flow_env.run("branch_flow", "resume", check=False)
    assert first.returncode == 1 and "has no run of yours to resume" in first.stderr
    flow_env.run("branch_flow", "run")
    unknown = flow_env.run("branch_flow", "resume", "nosuchstep", check=False)
    assert "'nosuchstep' is not a step of MyFlow" in unknown.stderr
    succeeded = flow_env.run("branch_flow", "resume", check=False)
    assert "succeeded: name the step to resume from" in succeeded.stderr
    for result in (first, unknown, succeeded):
        assert "Traceback" not in result.stderr
    again = flow_env.run("branch_flow", "resume", "join")
    assert "Resuming MyFlow/" in again.stdout and "from step 'join'" in again.stdout
