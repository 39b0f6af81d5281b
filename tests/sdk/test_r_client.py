"""R flows end to end: `Rscript FLOW.R run` (the R package in r_client/, installed by
scripts/setup) runs each step in R embedded in the Python runtime through rpy2; the runs
are read back from Python and from R (the R client's helper), on the embedded ledger
and through the metadata service."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import FlowEnv
from ledgerflow import Flow, Run

pytestmark = pytest.mark.slow

R_FLOWS = Path(__file__).parent / "r_flows"
R_PACKAGE = Path(__file__).parents[2] / "r_client" / "ledgerflow"


def rscript(
    flow_env: FlowEnv, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["Rscript", *args],
        env={**flow_env.env, "USERNAME": "tester", "LEDGERFLOW_PYTHON": sys.executable,
             **(env or {})},
        cwd=flow_env.home, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"Rscript {args} exited {result.returncode}\n{result.stdout}\n"
                             f"{result.stderr}")  # fmt: skip
    return result


def r_flow(flow_env: FlowEnv, name: str, *args: str, **kwargs: object) -> str:
    """Runs r_flows/NAME.R with ARGS (default: run); returns the run's pathspec."""
    result = rscript(flow_env, str(R_FLOWS / f"{name}.R"), *(args or ("run",)), **kwargs)  # type: ignore[arg-type]
    line = next(line for line in result.stdout.splitlines() if " run " in line and " by " in line)
    flow, _, run_id = line.split()[:3]
    return f"{flow}/{run_id}"


def r_eval(flow_env: FlowEnv, code: str) -> str:
    """The output of R code run with the ledgerflow package loaded."""
    result = rscript(flow_env, "-e", f"suppressPackageStartupMessages(library(ledgerflow)); {code}")
    return result.stdout


def test_the_talks_flow_gives_3_read_from_python_and_from_r(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "talk_flow")
    run = Run(pathspec)
    assert run.successful and run.data.out == 3
    assert run["join"].task["out"]._record.language == "r"
    assert run["join"].task["out"]._record.type_name == "R numeric"
    assert r_eval(flow_env, f'cat(get_artifact("{pathspec}", "out"))') == "3"
    listed = r_eval(flow_env, 'cat(list_flows(), list_runs("MyFlow")$status)')
    assert listed == "MyFlow succeeded"


def test_a_foreach_over_a_character_vector_binds_the_branches_frames(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "foreach_frames", "run", "--scale", "10", "--max-workers", "2")
    run = Run(pathspec)
    frame = run["bind"].task.data.frame
    assert list(frame["name"]) == ["ada", "grace", "edsger"]
    assert list(frame["n"]) == [30.0, 50.0, 60.0] and run["bind"].task.data.total == 140
    tasks = list(run["count"])
    assert len(tasks) == 3
    assert {t.stdout.strip() for t in tasks} == {
        '[1] "counting ada"', '[1] "counting grace"', '[1] "counting edsger"'
    }  # fmt: skip
    stderr = {t.index: t.stderr for t in tasks}
    assert stderr[0] == "to stderr: ada\nWarning in count: a short name\n"
    assert stderr[1] == "to stderr: grace\n"
    shown = rscript(flow_env, str(R_FLOWS / "foreach_frames.R"), "show").stdout
    assert "count" in shown and "bind" in shown and "join" in shown.lower()
    # A foreach's step has three values: asking for "the" one is an error, not a guess.
    for call in (f'get_artifact("{pathspec}/count", "frame")', f'get_logs("{pathspec}/count")'):
        refused = rscript(flow_env, "-e", f"library(ledgerflow); {call}", check=False)
        assert refused.returncode != 0
        assert f"step {pathspec}/count has 3 tasks: name one" in refused.stderr


def test_an_r_frame_reads_intact_in_python_and_r_values_round_trip(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "typed_frame")
    data = Run(pathspec)["start"].task.data
    frame = data.frame
    assert list(frame["number"][[0, 2]]) == [1.5, 3.0] and pd.isna(frame["number"][1])
    assert str(frame["count"].dtype) == "Int64" and frame["count"].isna().tolist() == [
        False, True, False
    ]  # fmt: skip
    assert frame["flag"].tolist()[0] is True and pd.isna(frame["flag"][1])
    assert frame["word"][0] == "a" and pd.isna(frame["word"][1]) and frame["word"][2] == "c"
    assert isinstance(frame["kind"].dtype, pd.CategoricalDtype)
    assert list(frame["kind"].cat.categories) == ["low", "high"] and pd.isna(frame["kind"][1])
    assert frame["day"].tolist() == [datetime.date(2026, 11, 27), None, datetime.date(2026, 1, 1)]
    assert frame["at"][0] == pd.Timestamp("2026-11-27 09:30", tz="UTC") and pd.isna(frame["at"][1])
    assert data.named == {"a": 1.0, "b": "two", "c": [True, False]}
    assert "R value of class 'lm'" in repr(data.model)  # no Python equivalent: R's own
    assert Run(pathspec)["end"].task.data.same_model is True  # restored exactly in R
    read_back = r_eval(flow_env, f'f <- get_artifact("{pathspec}/start", "frame"); '
                                 "cat(class(f$kind), class(f$day), class(f$at)[1], "
                                 "sum(is.na(f)), levels(f$kind))")  # fmt: skip
    assert read_back == "factor Date POSIXct 7 low high"


def test_a_pandas_frame_reads_intact_in_r(flow_env: FlowEnv) -> None:
    flow_env.run("pandas_frame_flow", "run")
    run = Flow("PandasFrameFlow").latest_run
    code = (
        f'f <- get_artifact("{run.pathspec}/start", "frame"); '
        "cat(sapply(f, function(c) class(c)[1]), sep = ','); cat('\\n'); "
        "cat(colSums(is.na(f)), sep = ','); cat('\\n'); "
        "cat(format(f$day[1]), format(f$at[1], tz = 'UTC', usetz = TRUE), levels(f$kind), "
        "f$count[3], f$word[3], sep = '|'); cat('\\n'); "
        f'cat(get_artifact("{run.pathspec}/start", "numbers"), '
        f'get_artifact("{run.pathspec}/start", "settings")$name)'
    )
    classes, missing, values, others = r_eval(flow_env, code).splitlines()
    assert classes == "numeric,integer,logical,character,factor,Date,POSIXct"
    assert missing == "1,1,1,1,1,1,1"
    assert values == "2026-11-27|2026-11-27 09:30:00 UTC|low|high|3|c"
    assert others == "1 2 3 x"


def test_retry_then_resume_after_a_failing_r_step(flow_env: FlowEnv, tmp_path: Path) -> None:
    env = {"FLAKY_DIR": str(tmp_path), "FAIL_B": "1"}
    failed = rscript(flow_env, str(R_FLOWS / "flaky.R"), "run", check=False, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    run = Flow("Flaky").latest_run
    shaky = run["shaky"].task
    assert shaky.data.attempts_needed == 2  # the retry succeeded
    first = shaky._record.attempts[0]
    assert first.error_type == "RStepError"
    assert first.error_message == "the first attempt fails (in shaky(self))"
    b = run["b"].task
    assert not b.successful and b.exception is not None
    assert b.exception.message == 'b cannot go on (in deeper_helper("b cannot go on"))'
    stack = b.exception.traceback
    assert stack.startswith("R call stack (most recent call first):")
    assert stack.index("deeper_helper") < stack.index("helper_that_fails") < stack.index("b(self)")
    logs = rscript(flow_env, str(R_FLOWS / "flaky.R"), "logs", f"{run.id}/b", "--stderr")
    assert "b cannot go on" in logs.stdout and "R call stack" in logs.stdout

    script = R_FLOWS / "flaky.R"
    r_eval(flow_env, f'Sys.setenv(FLAKY_DIR = "{tmp_path}"); resume("{script}", "b")')
    again = Flow("Flaky").latest_run
    assert again.successful and again.data.done == "yes and done"
    assert again._record.origin_run_id == run.id


def test_bad_flows_and_bad_requests_say_what_to_fix(flow_env: FlowEnv) -> None:
    bad = rscript(flow_env, str(R_FLOWS / "bad_next.R"), "run", check=False)
    assert bad.returncode == 1
    assert "step 'start': next_step 'joni' is not a step of BadNext (its steps: start, end)" in (
        bad.stderr
    )
    assert "Traceback" not in bad.stderr
    missing = rscript(flow_env, "-e", 'library(ledgerflow); get_artifact("NoSuchFlow/1", "x")',
                      check=False)  # fmt: skip
    assert missing.returncode == 1 and "NoSuchFlow" in missing.stderr, missing.stderr


def test_namespaces_and_tags_from_r(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "talk_flow")
    code = (
        f'add_tags("{pathspec}", c("good", "v1")); remove_tags("{pathspec}", "v1"); '
        f'cat(get_run("{pathspec}")$user_tags, "|"); '
        'set_namespace("user:nobody"); cat(nrow(list_runs("MyFlow")), "|"); '
        'set_namespace(NULL); cat(nrow(list_runs("MyFlow")), is.null(get_namespace()))'
    )
    assert r_eval(flow_env, code) == "good |0 |1 TRUE"
    assert "good" in Run(pathspec).user_tags


def test_the_r_packages_own_tests_pass() -> None:
    result = subprocess.run(
        ["Rscript", "-e", "testthat::test_local(commandArgs(TRUE), reporter = 'check')",
         str(R_PACKAGE)],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_r_cmd_check_as_cran_passes_offline(tmp_path: Path) -> None:
    repository = tmp_path / "repo" / "src" / "contrib"
    repository.mkdir(parents=True)
    (repository / "PACKAGES").touch()  # CRAN is out of reach: an empty repository
    profile = tmp_path / "Rprofile"
    profile.write_text(f'options(repos = c(CRAN = "file://{tmp_path / "repo"}"))\n')
    # --as-cran without what needs the network (CRAN's incoming checks; file times are
    # checked against this machine's clock, not a time server's); the vignette is built
    # and the examples run.
    env = {**os.environ, "R_PROFILE_USER": str(profile), "_R_CHECK_CRAN_INCOMING_": "false",
           "_R_CHECK_CRAN_INCOMING_REMOTE_": "false",
           "_R_CHECK_SYSTEM_CLOCK_": "false"}  # fmt: skip
    subprocess.run(["R", "CMD", "build", "--no-manual", str(R_PACKAGE)], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    (tarball,) = tmp_path.glob("ledgerflow_*.tar.gz")
    check = subprocess.run(["R", "CMD", "check", "--as-cran", "--no-manual", tarball.name],
                           cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert check.returncode == 0 and "Status: OK" in check.stdout, check.stdout + check.stderr


def test_the_committed_man_pages_match_the_roxygen_comments(tmp_path: Path) -> None:
    copy = tmp_path / "ledgerflow"
    shutil.copytree(R_PACKAGE, copy)
    subprocess.run(["Rscript", "-e", "roxygen2::roxygenise(commandArgs(TRUE))", str(copy)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    for generated in ["NAMESPACE", *(f"man/{p.name}" for p in (copy / "man").iterdir())]:
        committed = R_PACKAGE / generated
        assert committed.exists() and committed.read_text() == (copy / generated).read_text(), (
            f"{generated} drifted from the roxygen comments: run "
            "Rscript -e 'roxygen2::roxygenise(\"r_client/ledgerflow\")' and commit"
        )


def test_big_r_values_that_compress_well_round_trip(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "big_values")
    run = Run(pathspec)
    assert run.successful
    assert (run.data.total, run.data.zero_count, run.data.word_count) == (5000050000, 100000, 20000)
    assert list(run["start"].task.data.ints[:3]) == [1, 2, 3]
    counted = r_eval(flow_env, f'cat(length(get_artifact("{pathspec}/start", "zeros")))')
    assert counted == "100000"


def test_a_crashing_helper_is_reported_not_waited_on_for_ever(
    flow_env: FlowEnv, tmp_path: Path
) -> None:
    """A helper that writes more than a pipe holds to stderr and dies: R drains its
    stderr as it waits, so the helper can exit and R reports it (it used to spin)."""
    crashing = tmp_path / "crashing-python"
    crashing.write_text("#!/bin/sh\nyes 'a line of a long traceback' | head -c 300000 >&2\n"
                        "echo 'Traceback: the helper broke' >&2\nexit 1\n")  # fmt: skip
    crashing.chmod(0o755)
    result = rscript(
        flow_env, "-e", "suppressPackageStartupMessages(library(ledgerflow)); list_flows()",
        check=False, env={"LEDGERFLOW_PYTHON": str(crashing)},
    )  # fmt: skip
    assert result.returncode != 0
    assert "Ledgerflow's Python helper exited" in result.stderr
    assert "the helper broke" in result.stderr


def test_an_r_flow_passes_the_pylint_check_a_user_gets(flow_env: FlowEnv, tmp_path: Path) -> None:
    """pylint is on by default where it is installed (the dev extra installs it), as
    for every flow the suite runs; here with an empty cache of clean reports, so the
    check really runs. Every R flow failed it (E0611 on the generated file's import),
    which went unseen: in the flow's process R's LD_LIBRARY_PATH made pylint's Python
    fail to start, and a pylint that could not run counted as a clean report."""
    fresh = {"LEDGERFLOW_PYLINT": "1", "LEDGERFLOW_PYLINT_CACHE": str(tmp_path / "cache")}
    pathspec = r_flow(flow_env, "talk_flow", env=fresh)
    assert list((tmp_path / "cache").iterdir())  # checked, and found clean
    assert Run(pathspec).data.out == 3


def test_a_misspelled_artifact_is_an_error_not_null(flow_env: FlowEnv) -> None:
    """`self$totl` for `self$total` read as NULL and the step went on; as in a Python
    step, it is an error that names the artifacts there are."""
    result = rscript(flow_env, str(R_FLOWS / "misspelled.R"), "run", check=False)
    assert result.returncode != 0
    assert "self$totl does not exist: the artifacts here are total" in result.stdout + result.stderr


def test_current_gives_an_r_step_its_tasks_facts(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "current_facts")
    start = Run(pathspec)["start"].task
    assert start.data.seen == "CurrentFacts|start|0|tester"
    assert start.data.run_id == pathspec.split("/")[1]
    outside = rscript(flow_env, "-e", "library(ledgerflow); print(is.null(current()))")
    assert "TRUE" in outside.stdout
