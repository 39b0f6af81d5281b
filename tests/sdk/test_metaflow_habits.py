"""What Metaflow users type every day, with `metaflow` renamed: metadata and namespace
functions, the root object, the complete client object model, finding the ledger from a
subfolder, and audit from the command line and the client. Each runs on the embedded
ledger and against the real service (see conftest.flow_env)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ledgerflow.client
import pytest
from click.testing import CliRunner
from conftest import FLOWS
from ledgerflow import (
    DataArtifact,
    Flow,
    Ledgerflow,
    LedgerflowException,
    LedgerflowNotFound,
    LedgerflowTaggingError,
    Run,
    Step,
    Task,
    default_metadata,
    get_metadata,
    metadata,
)
from ledgerflow.cli.main import main as ledgerflow_cli
from ledgerflow.v1 import ledger_service_pb2
from waiting import wait_for

pytestmark = pytest.mark.slow


def cli(*args: str) -> tuple[int, str]:
    """`ledgerflow ARGS` in this process (the fixture's settings), exit code and output."""
    result = CliRunner().invoke(ledgerflow_cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_a_flow_that_prints_its_metadata_runs(flow_env) -> None:
    done = flow_env.run("metadata_flow", "run")
    expected = (
        f"service@{flow_env.env['LEDGERFLOW_SERVICE']}"
        if flow_env.mode == "service"
        else f"local@{flow_env.env['LEDGERFLOW_HOME']}"
    )
    assert f"module sees {expected}" in done.stdout
    task = Flow("MetadataFlow").latest_run["start"].task
    assert task.data.where == expected
    assert task.data.namespace == "user:tester"
    assert get_metadata() == expected


def test_metadata_switches_where_the_client_reads(flow_env, tmp_path: Path) -> None:
    flow_env.run("branch_flow", "run")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / ".ledgerflow").mkdir()
    assert metadata(str(other)) == f"local@{other / '.ledgerflow'}"
    with pytest.raises(LedgerflowNotFound):
        Flow("MyFlow")  # nothing was run there
    assert metadata(f"local@{flow_env.env['LEDGERFLOW_HOME']}").startswith("local@")
    if flow_env.mode == "embedded":
        assert Flow("MyFlow").latest_run.successful
    assert default_metadata() == get_metadata()
    assert Flow("MyFlow").latest_run.successful
    with pytest.raises(LedgerflowException, match="is not one of"):
        metadata("nowhere-at-all")
    assert default_metadata() == get_metadata()


def test_the_root_object_and_the_flows_and_runs_commands(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    flow_env.run("metadata_flow", "run")
    assert sorted(f.id for f in Ledgerflow()) == ["MetadataFlow", "MyFlow"]
    assert [f.id for f in Ledgerflow().flows] == sorted(f.id for f in Ledgerflow().flows)
    code, listed = cli("flows")
    assert code == 0 and "MyFlow" in listed and "MetadataFlow" in listed
    run = Flow("MyFlow").latest_run
    run.add_tag("gold")
    code, listed = cli("runs", "MyFlow", "--json")
    assert code == 0
    (row,) = [json.loads(line) for line in listed.splitlines()]
    assert row["pathspec"] == run.pathspec and row["status"] == "succeeded"
    assert row["tags"] == ["gold"] and "user:tester" in row["system_tags"]
    assert cli("runs", "MyFlow", "--tag", "silver")[1].startswith("no runs of MyFlow")
    assert run.id in cli("runs", "MyFlow", "--namespace", "user:tester")[1]
    assert run.id not in cli("runs", "MyFlow", "--namespace", "user:someone-else")[1]
    assert run.id in cli("runs", "MyFlow", "--all-namespaces")[1]
    code, missing = cli("runs", "NoSuchFlow")
    assert code == 1 and "does not exist" in missing and "Traceback" not in missing


def test_the_client_object_model_is_complete(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    flow = Flow("MyFlow")
    run = flow.latest_run
    assert flow.parent is None and flow.path_components == ["MyFlow"]
    assert isinstance(flow.created_at, datetime)
    assert flow.finished_at == run.finished_at
    assert isinstance(run.parent, Flow) and run.parent.id == "MyFlow"
    assert run.path_components == ["MyFlow", run.id]
    assert run.finished and run.successful and run.code is None
    assert run.created_at <= run.finished_at
    assert run.end_task.pathspec == run["end"].task.pathspec
    step = run["a"]
    assert isinstance(step.parent, Run) and step.parent.pathspec == run.pathspec
    assert step.path_components == ["MyFlow", run.id, "a"]
    assert step.finished and step.successful
    assert step.created_at <= step.finished_at <= run.finished_at
    task = step.task
    assert isinstance(task.parent, Step) and task.parent.pathspec == step.pathspec
    assert task.path_components == ["MyFlow", run.id, "a", task.id]
    assert task.finished and task.successful and task.exception is None and task.code is None
    assert isinstance(task.artifacts.x, DataArtifact) and task.artifacts.x.data == 2
    assert "x" in task and "x" in task.artifacts and "nope" not in task.artifacts
    assert [a.id for a in task.artifacts] == ["x"]
    with pytest.raises(AttributeError, match="no artifact 'nope'"):
        _ = task.artifacts.nope
    for missing in (lambda: flow["123456"], lambda: run["no-such-step"],
                    lambda: step["999999"], lambda: Flow("NoSuchFlow")):  # fmt: skip
        with pytest.raises(KeyError) as caught:
            missing()
        assert isinstance(caught.value, LedgerflowNotFound)
        assert not str(caught.value).startswith("'")  # a message, not a quoted key
    assert isinstance(Task(task.pathspec), Task) and Step(step.pathspec).id == "a"


def test_replace_tag_swaps_in_one_append(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    run = Flow("MyFlow").latest_run
    run.add_tags(["draft", "keep"])
    run.replace_tag("draft", "final")
    assert run.user_tags == {"final", "keep"}
    assert Run(run.pathspec).user_tags == {"final", "keep"}
    changes = [e for e in run.history() if e.event_type in ("TagsAdded", "TagsRemoved")]
    removed, added = changes[-2:]
    assert list(removed.tags_removed.tags) == ["draft"] and list(added.tags_added.tags) == ["final"]
    assert removed.recorded_at == added.recorded_at  # one append
    with pytest.raises(LedgerflowException, match="system tag"):
        run.replace_tag("user:tester", "user:mallory")
    assert Run(run.pathspec).system_tags >= {"user:tester"}
    assert "user:mallory" not in Run(run.pathspec).tags


def test_history_and_as_of_in_the_client(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    run = Flow("MyFlow").latest_run
    history = run.history()
    assert history[0].event_type == "RunStarted" and history[-1].event_type == "RunFinished"
    assert [e.global_position for e in history] == sorted(e.global_position for e in history)
    assert {e.actor for e in history} == {"tester"}
    started_at = history[0].recorded_at.ToDatetime(tzinfo=UTC)
    first_task = next(e for e in history if e.event_type == "TaskSucceeded")
    early, early_tasks = run.as_of(first_task.recorded_at.ToDatetime(tzinfo=UTC))
    assert early.status != run._record.status  # still running then
    assert [t.step_name for t in early_tasks] == ["start"]
    final, final_tasks = run.as_of(datetime.now(UTC))
    assert len(final_tasks) == 5 and final.run_id == run.id
    with pytest.raises(LedgerflowNotFound):
        run.as_of(started_at - timedelta(seconds=5))


def test_audit_from_the_command_line(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    run = Flow("MyFlow").latest_run
    code, printed = cli("audit", run.pathspec)
    lines = printed.splitlines()
    assert code == 0 and "RunStarted" in lines[0] and "RunFinished" in lines[-1]
    assert all("tester (claimed)" in line for line in lines)  # no tokens: the caller's word
    end = run["end"].task
    code, printed = cli("audit", run.pathspec, "--task", f"end/{end.id}", "--json")
    events = [json.loads(line) for line in printed.splitlines()]
    assert {e["stream"] for e in events} == {end.pathspec}
    assert events[0]["event_type"] == "TaskStarted"
    assert cli("audit", run.pathspec, "--actor", "nobody")[1].startswith("no events")
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert cli("audit", run.pathspec, "--since", later)[1].startswith("no events")
    assert len(cli("audit", run.pathspec, "--until", later)[1].splitlines()) == len(lines)
    code, printed = cli("audit", run.pathspec, "--as-of", datetime.now(UTC).isoformat())
    assert code == 0 and "succeeded" in printed.splitlines()[0] and "join/" in printed
    code, printed = cli("audit", run.pathspec, "--as-of", "2001-01-01T00:00:00Z")
    assert code == 1 and "had not started" in printed
    code, printed = cli("audit", "MyFlow/999", "--since", "yesterday")
    assert code == 2 and "ISO 8601" in printed
    code, printed = cli("audit", "MyFlow/999")
    assert code == 1 and "does not exist" in printed and "Traceback" not in printed


def test_events_tail_follows_new_events(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    metadata_client, _ = ledgerflow.client._clients()
    run = Flow("MyFlow").latest_run
    stream = metadata_client.watch_events(ledger_service_pb2.WatchEventsRequest(from_head=True))
    # A service registers the stream a moment after the call: tag until one is seen.
    stop = threading.Event()

    def keep_tagging() -> None:
        while not stop.wait(0.2):
            run.add_tag(f"live-{time.monotonic_ns()}")

    tagger = threading.Thread(target=keep_tagging)
    tagger.start()
    try:
        event = next(stream)
    finally:
        stop.set()
        tagger.join()
    assert event.event_type == "TagsAdded"  # not the run's first event: from the head
    assert event.tags_added.tags[0].startswith("live-")
    stream.close()
    everything = metadata_client.watch_events(ledger_service_pb2.WatchEventsRequest())
    assert next(everything).event_type == "RunStarted"
    everything.close()
    code, printed = cli("events", "tail", "--help")
    assert code == 0 and "--from-start" in printed
    code, printed = cli("events", "tail", "--type", "NoSuchEvent")
    assert code == 1 and "unknown event type 'NoSuchEvent'" in printed
    assert "Traceback" not in printed


def test_events_tail_of_a_run_ends_with_the_run(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    run = Flow("MyFlow").latest_run
    code, printed = cli("events", "tail", "--run", run.pathspec)
    assert code == 0 and printed.startswith(f"{run.pathspec} has finished")
    code, printed = cli("events", "tail", "--run", run.pathspec, "--from-start")
    lines = printed.splitlines()
    assert code == 0 and "RunStarted" in lines[0] and "RunFinished" in lines[-1]
    code, printed = cli("events", "tail", "--run", run.pathspec, "--from-start",
                        "--type", "TaskStarted")  # fmt: skip
    assert code == 0 and len(printed.splitlines()) == 5  # start, a, b, join, end
    assert all("TaskStarted" in line for line in printed.splitlines())
    code, printed = cli("events", "tail", "--run", "MyFlow/no-such-run")
    assert code == 1 and "does not exist" in printed and "Traceback" not in printed
    code, printed = cli("events", "tail", "--run", "MyFlow")
    assert code == 2 and "FLOW/RUN_ID" in printed


def test_runs_follow_reattaches_the_progress_of_a_run(flow_env, tmp_path: Path) -> None:
    """A run going on elsewhere is followed to its end, its exit status the run's; a
    finished one is shown as it went; `runs FLOW` still lists."""
    id_file = tmp_path / "run-id"
    env = {**flow_env.env, "USERNAME": "tester"}
    sleepy = subprocess.Popen(
        [sys.executable, str(FLOWS / "sleepy_flow.py"), "run", "--seconds", "3",
         "--run-id-file", str(id_file)],
        env=env, cwd=flow_env.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: id_file.exists() and id_file.read_text(), 60, "the run's id")
        run = f"SleepyFlow/{id_file.read_text().strip()}"
        followed = subprocess.run(
            [sys.executable, "-m", "ledgerflow.cli", "runs", "follow", run],
            env=env, cwd=flow_env.home, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sleepy.wait(timeout=60) == 0
    finally:
        sleepy.kill()
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "nap" in followed.stdout + followed.stderr
    code, printed = cli("runs", "follow", run)  # finished: shown as it went, at once
    assert code == 0 and "nap" in printed and "succeeded" in printed
    code, printed = cli("runs", "SleepyFlow")
    assert code == 0 and run.split("/")[1] in printed
    code, printed = cli("runs", "--limit", "1", "SleepyFlow")
    assert code == 0 and run.split("/")[1] in printed
    code, printed = cli("runs", "follow", "SleepyFlow")
    assert code == 2 and "FLOW/RUN_ID" in printed
    code, printed = cli("runs", "follow", "SleepyFlow/no-such-run")
    assert code == 1 and "does not exist" in printed and "Traceback" not in printed


def test_options_of_a_local_run_given_with_remote_say_they_are_local(flow_env) -> None:
    """(Embedded, the run is then refused for want of a service; with one, it is
    submitted and left queued: no executor runs here.) --max-workers is not one of
    them: with --remote it caps the run on the executors (docs/executor.md, "Queues")."""
    given = flow_env.run("branch_flow", "run", "--remote", "--detach", "--max-workers", "2",
                         "--launcher", "command", check=False)  # fmt: skip
    assert "--max-workers" not in given.stderr
    assert "--launcher applies to local runs" in given.stderr
    assert "Traceback" not in given.stderr
    plain = flow_env.run("branch_flow", "run", "--remote", "--detach", check=False)
    assert plain.returncode == given.returncode and "warning" not in plain.stderr


def test_reading_from_a_subfolder_finds_the_ledger_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded only: the ledger's folder is found as Metaflow finds .metaflow."""
    project = tmp_path / "project"
    notebooks = project / "notebooks"
    notebooks.mkdir(parents=True)
    for key in [k for k in os.environ if k.startswith("LEDGERFLOW_") and k != "LEDGERFLOW_PYLINT"]:
        monkeypatch.delenv(key)
    flow_file = Path(__file__).parent / "flows" / "branch_flow.py"
    subprocess.run([sys.executable, str(flow_file), "run"], cwd=project, check=True,
                   capture_output=True)  # fmt: skip
    monkeypatch.chdir(notebooks)
    ledgerflow.client.namespace(None)
    try:
        assert get_metadata() == f"local@{project / '.ledgerflow'}"
        assert Flow("MyFlow").latest_run.data.out == 3
        assert not (notebooks / ".ledgerflow").exists()
        elsewhere = tmp_path / "unrelated"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        with pytest.raises(LedgerflowNotFound):
            Flow("MyFlow")
        assert list(Ledgerflow()) == []
        assert not (elsewhere / ".ledgerflow").exists()  # reading created nothing
        # Once a run makes the ledger there, the same process reads it.
        subprocess.run([sys.executable, str(flow_file), "run"], cwd=elsewhere, check=True,
                       capture_output=True)  # fmt: skip
        assert Flow("MyFlow").latest_run.successful
    finally:
        ledgerflow.client._connection.clear()
        ledgerflow.client.default_namespace()


def test_parameters_are_spelled_as_given_and_show_says_what_is_accepted(flow_env) -> None:
    flow_env.run("params_flow", "run", "--movie_data", "m.csv", "--max_genres", "7")
    assert Flow("ParamsFlow").latest_run["start"].task.data.seen == ("m.csv", 7)
    flow_env.run("params_flow", "run", "--movie-data", "n.csv")  # the dashed alias
    assert Flow("ParamsFlow").latest_run["start"].task.data.seen == ("n.csv", 5)
    helped = flow_env.run("params_flow", "run", "--help").stdout
    assert "--movie_data, --movie-data TEXT" in helped
    assert "--max_genres, --max-genres INTEGER" in helped
    group_help = flow_env.run("params_flow", "--help").stdout
    assert "Counts the genres" in group_help and "The second paragraph" in group_help
    shown = flow_env.run("params_flow", "show").stdout
    assert "The second paragraph of the flow's docstring." in shown
    assert "Reads the data.\n\n      A second paragraph about the start step." in shown
    assert "--max_genres INTEGER = 5: How many genres" in shown
    bad = flow_env.run("params_flow", "run", "--max_genres", "seven", check=False)
    assert bad.returncode == 2 and "not a valid integer" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_dump_and_logs_of_a_whole_step(flow_env) -> None:
    flow_env.run("wide_flow", "run", "--width", "12")
    run_id = Flow("WideFlow").latest_run.id
    dumped = flow_env.run("wide_flow", "dump", f"{run_id}/square").stdout
    headers = [line for line in dumped.splitlines() if line.startswith("--- WideFlow/")]
    assert len(headers) == 12
    assert dumped.count("value (int") == 12
    logs = flow_env.run("wide_flow", "logs", f"{run_id}/square", "--stdout")
    assert logs.stderr.count(" attempt 0 stdout") == 12
    assert sorted(logs.stdout.split("\n")[:-1]) == sorted(f"squaring {i}" for i in range(12))
    bad = flow_env.run("wide_flow", "dump", "justonepart", check=False)
    assert bad.returncode == 2 and "RUN_ID/STEP" in bad.stderr


def test_environment_reaches_only_its_step(flow_env) -> None:
    flow_env.run("environment_flow", "run")
    run = Flow("EnvironmentFlow").latest_run
    assert run["start"].task.data.greeting == "hello"
    assert run["start"].task.data.level == "3"
    assert run["end"].task.data.greeting_in_end is None


def test_environment_refuses_values_that_are_not_texts() -> None:
    from ledgerflow import environment

    with pytest.raises(ValueError, match="must be a str"):
        environment(vars={"LEVEL": 3})
    with pytest.raises(ValueError, match="not an environment variable name"):
        environment(vars={"A=B": "x"})


def test_pylint_checks_the_flow_file_before_it_runs(flow_env) -> None:
    linted = flow_env.run(
        "lint_error_flow", "run", check=False, extra_env={"LEDGERFLOW_PYLINT": "1"}
    )
    assert linted.returncode == 1
    assert "pylint found errors" in linted.stderr and "undefined_helper" in linted.stderr
    assert "--no-pylint" in linted.stderr and "Traceback" not in linted.stderr
    with pytest.raises(LedgerflowNotFound):
        Flow("LintErrorFlow")  # refused before anything ran
    skipped = flow_env.run(
        "lint_error_flow", "--no-pylint", "run", check=False, extra_env={"LEDGERFLOW_PYLINT": "1"}
    )
    assert "pylint" not in skipped.stderr  # not linted: it ran, and failed with a NameError
    assert skipped.returncode == 1 and "undefined_helper" in skipped.stdout
    cache = flow_env.home / "fresh-pylint-cache"  # checked for real, not remembered
    clean = flow_env.run("branch_flow", "--pylint", "run",
                         extra_env={"LEDGERFLOW_PYLINT_CACHE": str(cache)})  # fmt: skip
    assert clean.returncode == 0 and list(cache.iterdir())


_MANAGED_CHECK = (
    "import os, sys, sysconfig; "
    "sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path('stdlib'), "
    "'EXTERNALLY-MANAGED')) else 1)"
)


def _externally_managed_python() -> str | None:
    """Debian's system Python, when this machine has one that refuses pip (PEP 668)."""
    candidate = Path("/usr/bin/python3")
    if candidate.exists() and subprocess.run([candidate, "-c", _MANAGED_CHECK]).returncode == 0:
        return str(candidate)
    return None


def _python_env(scripts: Path, python: str, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(scripts / "python-env")],
        env={**os.environ, "PYTHON": python, "VENV": str(venv)},
        capture_output=True,
        text=True,
        check=True,
    )


def test_the_first_command_makes_a_venv_for_an_externally_managed_python(tmp_path: Path) -> None:
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    # A Python that accepts pip (this test's own) is used as it is.
    chosen = _python_env(scripts, sys.executable, tmp_path / "unused").stdout.strip()
    assert Path(chosen).resolve() == Path(sys.executable).resolve()
    assert not (tmp_path / "unused").exists()
    system_python = _externally_managed_python()
    if system_python is None:
        pytest.skip("no externally managed system Python on this machine")
    venv = tmp_path / "venv"
    made = _python_env(scripts, system_python, venv)
    assert made.stdout.strip() == f"{venv}/bin/python"
    assert "externally managed" in made.stderr
    pip_works = subprocess.run([f"{venv}/bin/python", "-m", "pip", "--version"])
    assert pip_works.returncode == 0  # pip may install there
    again = _python_env(scripts, system_python, venv)
    assert again.stdout.strip() == f"{venv}/bin/python" and not again.stderr  # made once


def test_steps_follow_metaflows_rules(flow_env) -> None:
    flow_env.run("habits_flow", "run", "--alpha", "3")
    run = Flow("HabitsFlow").latest_run
    start = run["start"].task
    assert start.data.opened == start.pathspec  # TaskStarted is recorded before it runs
    refusals = start.data.refusals
    assert len(refusals) == 2
    assert "self.alpha" in refusals[0] and "a Parameter" in refusals[0]
    assert "self.LIMIT" in refusals[1] and "a constant of the flow class" in refusals[1]
    assert "only in a join step" in start.data.outside_join
    join = run["join"].task.data
    assert "differs between inputs" in join.merge_error
    assert join.merged_anything is False  # 'same' and 'items' agree, but nothing was merged
    assert join.stacks == [[(0, 2, "p")], [(1, 2, "q")]]
    assert join.errs == [None, None]  # @catch's variable when nothing failed


def test_replace_tags_needs_a_tag(flow_env) -> None:
    flow_env.run("branch_flow", "run")
    run = Flow("MyFlow").latest_run
    before = len(run.history())
    with pytest.raises(LedgerflowTaggingError, match="at least one tag"):
        run.replace_tags([], [])
    assert len(Run(run.pathspec).history()) == before  # nothing was written


def test_a_segfault_is_in_the_tasks_stderr(flow_env) -> None:
    result = flow_env.run("segfault_flow", "run", check=False)
    assert result.returncode == 1
    task = Flow("SegfaultFlow").latest_run["start"].task
    assert "Segmentation fault" in task.stderr  # Python's own report (faulthandler)
    assert "killed by signal 11 (SIGSEGV)" in task.stderr
    assert task.exception is not None and task.exception.type == "TaskProcessDied"


def test_local_retries_do_not_wait(flow_env) -> None:
    """minutes_between_retries is for executors: a local run retries at once, as
    Metaflow's local runtime does (tests/engine pins the remote delay)."""
    flow_env.run("retry_wait_flow", "run")
    task = Flow("RetryWaitFlow").latest_run["start"].task
    assert task.retry_count == 1 and task.successful
    first, second = task._record.attempts
    pause = second.started_at.ToDatetime() - first.finished_at.ToDatetime()
    assert pause.total_seconds() < 10  # not @retry's two minutes


def test_a_pylint_that_cannot_run_is_not_a_clean_report(tmp_path) -> None:
    """A pylint that could not check the file (here: the file is gone) must not pass
    the check silently, as one that cannot start did in an R flow's process."""
    from ledgerflow._lint import PylintFailed, pylint_errors

    with pytest.raises(PylintFailed, match="pylint could not check"):
        pylint_errors(str(tmp_path / "missing_flow.py"))


def test_a_parameter_comes_from_the_option_the_environment_or_its_default(flow_env) -> None:
    def seen() -> dict:
        return Flow("ParamSourcesFlow").latest_run["start"].task.data.seen

    flow_env.run("param_sources_flow", "run")
    assert seen() == {"region": "eu", "labels": ["a", "b"], "sizes": [1, 2],
                      "owner": "tester runs ParamSourcesFlow (owner)"}  # fmt: skip
    from_env = {"LEDGERFLOW_RUN_REGION": "us", "LEDGERFLOW_RUN_SIZES": "5,6,7"}
    flow_env.run("param_sources_flow", "run", extra_env=from_env)
    assert (seen()["region"], seen()["sizes"]) == ("us", [5, 6, 7])
    flow_env.run("param_sources_flow", "run", "--region", "ap", "--labels", "x",
                 extra_env=from_env)  # fmt: skip
    assert (seen()["region"], seen()["labels"]) == ("ap", ["x"])  # the option comes first
    # A resumed run keeps the values its origin computed (the default is not called again).
    origin = Flow("ParamSourcesFlow").latest_run.id
    flow_env.run("param_sources_flow", "resume", "start", "--origin-run-id", origin,
                 user="someone_else")  # fmt: skip
    assert seen()["owner"] == "tester runs ParamSourcesFlow (owner)"
    helped = flow_env.run("param_sources_flow", "run", "--help").stdout
    assert "--sizes VALUE[,VALUE...]" in helped
    assert "[default: computed when the run starts]" in " ".join(helped.split())
    bad = flow_env.run("param_sources_flow", "run", "--sizes", "1,two", check=False)
    assert bad.returncode == 2 and "invalid literal for int() with base 10: 'two'" in bad.stderr
    broken = flow_env.run("param_sources_flow", "run", extra_env={"BREAK_THE_DEFAULT": "1"},
                          check=False)  # fmt: skip
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "the default of --owner failed: RuntimeError: the directory is down" in broken.stderr


def test_the_client_walks_a_run_as_metaflows_does(flow_env) -> None:
    flow_env.run("foreach_flow", "run", "--tag", "nightly")
    run = Flow("ForeachFlow").latest_run
    start = run["start"].task
    items = sorted(run["a"].tasks(), key=lambda t: t.index)
    join = run["join"].task
    # Parents and children, across the foreach and its join.
    assert [t.pathspec for t in join.parent_tasks] == [t.pathspec for t in items]
    assert sorted(t.pathspec for t in start.child_tasks) == [t.pathspec for t in items]
    assert [t.pathspec for t in items[1].child_tasks] == [join.pathspec]
    assert items[0].parent_tasks[0].pathspec == start.pathspec and start.parent_tasks == []
    # Every object below the run has the run's tags; a flow has none of its own.
    assert "nightly" in join.user_tags and "user:tester" in join.system_tags
    assert join.tags == run.tags == run["join"].tags == join["out"].tags
    assert Flow("ForeachFlow").tags == frozenset()
    assert [s.id for s in run.steps("nightly")] and list(run.steps("weekly")) == []
    assert run["a"].tasks("weekly") == [] and len(run["a"].tasks("nightly")) == 3
    # Metadata: the attempts and how they ended, the foreach position.
    assert items[2].metadata_dict == {"attempt": "0", "attempt_ok": "True",
                                      "foreach-indices": "2"}  # fmt: skip
    entry = items[2].metadata[0]
    assert (entry.name, entry.type, entry.task) == ("attempt", "attempt", items[2].pathspec)
    assert list(start.loglines("stdout")) == []
    with pytest.raises(ValueError, match="'stdout' or 'stderr'"):
        next(start.loglines("stdlog"))
    assert run.origin_pathspec is None and run["a"].origin_pathspec is None
    # A task opened by its pathspec reads its own record; its step's other tasks, once
    # listed, read their artifacts as a listed step's do.
    alone = Task(items[1].pathspec)
    assert alone.data.x == ord("y")
    assert sorted(t.data.x for t in alone.parent.tasks()) == [ord("x"), ord("y"), ord("z")]
    with pytest.raises(LedgerflowNotFound, match="does not exist"):
        Task(f"ForeachFlow/{run.id}/no-such-step!/1")


def test_loglines_and_a_resumed_runs_origin(flow_env) -> None:
    flow_env.run("branch_flow", "run", extra_env={"FAIL_B": "1"}, check=False)
    failed = Flow("MyFlow").latest_run
    flow_env.run("branch_flow", "resume", "--origin-run-id", failed.id)
    resumed = Flow("MyFlow").latest_run
    assert resumed.origin_pathspec == failed.pathspec
    assert resumed["a"].origin_pathspec == f"{failed.pathspec}/a"
    cloned = resumed["start"].task
    assert cloned.metadata_dict["origin-pathspec"] == failed["start"].task.pathspec
    lines = [line for _, line in failed["b"].task.loglines("stderr")]
    assert any("b is broken today" in line for line in lines)


def test_a_foreach_splits_into_at_most_max_num_splits_items(flow_env) -> None:
    failed = flow_env.run("wide_flow", "run", "--width", "101", check=False)
    assert failed.returncode == 1
    assert "yielded 101 child steps which is more than the current maximum of 100" in (
        failed.stdout + failed.stderr
    )
    flow_env.run("wide_flow", "run", "--width", "101", "--max-num-splits", "101")
    assert Flow("WideFlow").latest_run.data.total == sum(i * i for i in range(101))
    flow_env.run("wide_flow", "run", "--width", "120",
                 extra_env={"LEDGERFLOW_RUN_MAX_NUM_SPLITS": "150"})  # fmt: skip
    assert Flow("WideFlow").latest_run.successful
    over = flow_env.run("wide_flow", "run", "--max-num-splits", "10001", check=False)
    assert over.returncode == 2 and "10001 is not in the range 1<=x<=10000" in over.stderr


def test_a_clean_pylint_report_is_remembered_until_the_files_change(tmp_path, monkeypatch) -> None:
    """A flow run again unchanged is not checked again; a change to it, or to a module
    beside it, is; a report with errors is never remembered."""
    from ledgerflow import _lint

    monkeypatch.setenv("LEDGERFLOW_PYLINT_CACHE", str(tmp_path / "cache"))
    flow = tmp_path / "clean_flow.py"
    flow.write_text("from helper import VALUE\n\nprint(VALUE)\n")
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    checks: list[str] = []
    real = _lint._run_pylint

    def counted(path: str) -> str | None:
        checks.append(path)
        return real(path)

    monkeypatch.setattr(_lint, "_run_pylint", counted)
    assert _lint.pylint_errors(str(flow)) is None
    assert _lint.pylint_errors(str(flow)) is None
    assert len(checks) == 1  # remembered
    (tmp_path / "helper.py").write_text("OTHER = 1\n")  # the flow's import breaks
    report = _lint.pylint_errors(str(flow))
    assert report is not None and "VALUE" in report and len(checks) == 2
    assert _lint.pylint_errors(str(flow)) is not None and len(checks) == 3  # never remembered
    # Each file of a folder is remembered on its own: a clean file beside a broken one.
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    beside = tmp_path / "broken_flow.py"
    beside.write_text("print(undefined_name)\n")
    assert _lint.pylint_errors(str(flow)) is None
    assert _lint.pylint_errors(str(beside)) is not None


def test_a_default_keeps_its_kind() -> None:
    from ledgerflow._parameters import Parameter, ParameterContext

    context = ParameterContext("F", "tester", "p")
    labels = Parameter("labels", default=["a", "b"], separator=",")
    assert labels.convert("x,y") == ["x", "y"] and labels.default_value(context) == ["a", "b"]
    sizes = Parameter("sizes", default=[1, 2], separator=",")
    assert sizes.convert("3,4") == [3, 4]  # the items' type, from the default's
    assert Parameter("n", default=lambda c: 5).default_value(context) == 5
    assert Parameter("n", default=lambda c: {"a": 1}).default_value(context) == {"a": 1}
    assert Parameter("n", type=int, default=lambda c: "7").default_value(context) == 7
    with pytest.raises(ValueError, match=r"the default of --n gave \[1\], not int"):
        Parameter("n", type=int, default=lambda c: [1]).default_value(context)


def test_a_parameter_may_not_take_the_name_of_an_option() -> None:
    """`Parameter('max_num_splits')` would share --max-num-splits and its variable."""
    from ledgerflow import FlowSpec, Parameter
    from ledgerflow._graph import InvalidGraph
    from ledgerflow.cli.flow_options import flow_parameters

    class Clashing(FlowSpec):
        max_num_splits = Parameter("max_num_splits", default=1)

    with pytest.raises(InvalidGraph, match="the name of an option of run, resume or deploy"):
        flow_parameters(Clashing)
