"""R flows, issue 30's items on values, sessions and the client: NULL artifacts,
catch(var=)'s error read in R, run() from an R session (R -e, source(), an interactive
session as RStudio's), and listing a run's steps and a step's tasks from R. Each test
runs on the embedded ledger and through the metadata service (flow_env), with pylint
on, as a user gets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FlowEnv
from ledgerflow import Flow, Run
from ledgerflow.exceptions import CaughtException
from test_r_client import R_FLOWS, r_eval, r_flow, rscript

pytestmark = pytest.mark.slow


def r_session(
    flow_env: FlowEnv, command: list[str], code: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`code` run by `command` (R -e, Rscript -e, a Python embedding R) as a user would."""
    result = subprocess.run(
        [*command, code],
        env={**flow_env.env, "USERNAME": "tester", "LEDGERFLOW_PYTHON": sys.executable},
        cwd=flow_env.home, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}\n{result.stdout}\n"
                             f"{result.stderr}")  # fmt: skip
    return result


def latest(flow: str) -> Run:
    run = Flow(flow).latest_run
    assert run is not None, f"{flow} has no run"
    return run


def test_null_is_an_artifacts_value(flow_env: FlowEnv) -> None:
    """`self$x <- NULL` failed the step with rpy2's `R_NamesSymbol` error."""
    pathspec = r_flow(flow_env, "null_values")
    run = Run(pathspec)
    assert run.successful
    assert run["start"].task.data.nothing is None
    assert run["start"].task["nothing"]._record.type_name == "R NULL"
    assert run["middle"].task.data.saw_nothing is True
    assert run["middle"].task.data.was is None  # a loaded artifact set to NULL
    assert run["end"].task.data.both_null is True
    read = r_eval(flow_env, f'cat(is.null(get_artifact("{pathspec}/middle", "was")))')
    assert read == "TRUE"


def test_a_caught_error_reads_as_the_error_in_r_and_null_where_none(flow_env: FlowEnv) -> None:
    """catch(var = "err") stored the error, but R read it as NULL."""
    pathspec = r_flow(flow_env, "caught")
    run = Run(pathspec)
    assert run.successful
    inspect = run["inspect"].task.data
    message = "no data for 1 (in bad(self))"
    assert inspect.seen == f"ledgerflow_caught_exception|ledgerflow.r.embedded.RStepError|{message}"
    assert inspect.has_stack is True and inspect.raised_again == message
    # Stored again by an R step, it is the CaughtException Python readers know.
    assert isinstance(inspect.kept, CaughtException) and inspect.kept.message == message
    assert run["bad"].task.data.err == inspect.kept
    join = run["join"].task.data
    assert join.good_err_null is True and join.bad_err == message
    assert run["good"].task.data.err is None
    code = (f'e <- get_artifact("{pathspec}/bad", "err"); '
            "cat(inherits(e, 'error'), e$type, conditionMessage(e), sep = '|')")  # fmt: skip
    assert r_eval(flow_env, code) == f"TRUE|ledgerflow.r.embedded.RStepError|{message}"


def test_a_failure_of_the_runtime_reached_from_r_is_an_error_not_null(
    flow_env: FlowEnv,
) -> None:
    """The runtime's functions R calls (loading an artifact, merge_artifacts) could not
    raise into R: R got NULL. A merge over disagreeing inputs merged nothing and the
    join went on."""
    result = rscript(flow_env, str(R_FLOWS / "merge_conflict.R"), "run", check=False)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "merge_artifacts: artifact 'x' differs between inputs" in said
    assert 'set self$x before merge_artifacts(self, inputs), or pass exclude = "x"' in said
    assert not latest("MergeConflict")["join"].task.successful


SESSIONS = {
    "R -e": ["R", "--no-save", "--quiet", "-e"],
    "Rscript -e": ["Rscript", "-e"],
    # R embedded in another program, interactive() as in RStudio's console.
    "interactive": [sys.executable, "-c", "import sys, rpy2.robjects as ro; ro.r(sys.argv[1])"],
}


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_run_from_an_r_session(flow_env: FlowEnv, session: str) -> None:
    """run() stopped with "run() runs a flow from its script" outside Rscript. From a
    session, the steps are the session's functions, with the session's objects."""
    script = R_FLOWS / "session_flow.R"
    code = f'bonus <- 40; source("{script}"); cat("interactive:", interactive(), "\\n")'
    result = r_session(flow_env, SESSIONS[session], code)
    assert "run() returned" in result.stdout  # the session goes on
    assert f"interactive: {'TRUE' if session == 'interactive' else 'FALSE'}" in result.stdout
    run = latest("SessionFlow")
    assert run.successful and run.data.doubled == 84


def test_run_from_a_session_takes_its_command_and_fails_as_an_r_error(flow_env: FlowEnv) -> None:
    flow = (
        'library(ledgerflow); fails <- TRUE; '
        'f <- ledgerflow("SessionFails") %>% '
        'step(step = "start", r_function = function(self) { if (fails) stop("not yet"); '
        "self$ok <- 1 }, next_step = \"end\") %>% step(step = \"end\"); "
    )  # fmt: skip
    code = flow + (
        'failed <- tryCatch({ run(f); "no error" }, error = function(e) conditionMessage(e)); '
        'cat("[", failed, "]\\n"); run(f, "show"); fails <- FALSE; run(f, "resume")'
    )
    result = r_session(flow_env, SESSIONS["R -e"], code)
    assert "[ SessionFails run exited with status 1: its output above says why ]" in result.stdout
    assert "start" in result.stdout and "end" in result.stdout
    again = latest("SessionFails")
    assert again.successful and again.data.ok == 1
    assert not Run(f"SessionFails/{again._record.origin_run_id}").successful


def test_r_lists_a_runs_steps_and_a_steps_tasks(flow_env: FlowEnv) -> None:
    """The R client could not list steps or tasks; a foreach step's artifact or logs
    needed a task pathspec nobody could find from R."""
    pathspec = r_flow(flow_env, "foreach_frames")
    code = (
        f'steps <- list_steps("{pathspec}"); cat(steps$step, "|", steps$tasks, "\\n"); '
        f'tasks <- list_tasks("{pathspec}/count"); cat(tasks$index, "|", tasks$status, "\\n"); '
        'cat(vapply(get_artifact(tasks$pathspec, "frame"), function(f) f$name, ""), "\\n"); '
        'cat(trimws(vapply(tasks$pathspec, get_logs, "")), sep = ","); cat("\\n"); '
        f'cat(is.na(list_tasks("{pathspec}/start")$index), "\\n")'
    )
    steps, tasks, names, logs, outside = r_eval(flow_env, code).splitlines()
    assert steps.split() == ["start", "count", "bind", "end", "|", "1", "3", "1", "1"]
    assert tasks.split() == ["0", "1", "2", "|", "succeeded", "succeeded", "succeeded"]
    assert names.split() == ["ada", "grace", "edsger"]
    assert logs == '[1] "counting ada",[1] "counting grace",[1] "counting edsger"'
    assert outside.strip() == "TRUE"
    # A step's pathspec alone: an error that names every task and says how to read them.
    count_tasks = [t.pathspec for t in Run(pathspec)["count"]]
    for call, advice in (
        (f'get_artifact("{pathspec}/count", "frame")',
         f'get_artifact(list_tasks("{pathspec}/count")$pathspec, "frame") reads it from each'),
        (f'get_logs("{pathspec}/count")',
         f'lapply(list_tasks("{pathspec}/count")$pathspec, get_logs)'),
    ):  # fmt: skip
        refused = rscript(flow_env, "-e", f"library(ledgerflow); {call}", check=False)
        assert refused.returncode != 0
        assert f"step {pathspec}/count has 3 tasks: name one ({', '.join(count_tasks)})" in (
            refused.stderr
        )
        assert advice in refused.stderr.replace("\n", "")


def test_run_in_a_session_without_the_objects_its_steps_use_says_which(
    flow_env: FlowEnv,
) -> None:
    """The session's objects travel with the flow: one the session never made is R's
    own error in the step, named."""
    code = f'source("{R_FLOWS / "session_flow.R"}")'  # no `bonus`
    result = r_session(flow_env, SESSIONS["Rscript -e"], code, check=False)
    assert result.returncode != 0
    assert "object 'bonus' not found" in result.stdout + result.stderr
    assert "SessionFlow run exited with status 1" in result.stderr


def test_run_from_a_session_whose_package_the_runtime_lacks_says_so(
    flow_env: FlowEnv, tmp_path: Path
) -> None:
    """What truly cannot work: the session attached a package the runtime's R cannot
    load (here removed after it was attached). One clear error, no Python traceback."""
    package, library = tmp_path / "lfonlyhere", tmp_path / "library"
    (package / "R").mkdir(parents=True)
    library.mkdir()
    (package / "DESCRIPTION").write_text(
        "Package: lfonlyhere\nVersion: 0.1\nTitle: Here\nDescription: Here only.\n"
        "License: MIT\nAuthor: A\nMaintainer: A <a@example.invalid>\n"
    )
    (package / "NAMESPACE").write_text("export(here)\n")
    (package / "R" / "here.R").write_text("here <- function() 1\n")
    subprocess.run(["R", "CMD", "INSTALL", "-l", str(library), str(package)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    code = (
        f'.libPaths(c("{library}", .libPaths())); library(lfonlyhere); library(ledgerflow); '
        'f <- ledgerflow("LacksPackage") %>% step(step = "start", next_step = "end") %>% '
        f'step(step = "end"); unlink("{library / "lfonlyhere"}", recursive = TRUE); run(f)'
    )
    result = r_session(flow_env, SESSIONS["Rscript -e"], code, check=False)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert (
        "the R session that ran LacksPackage had package 'lfonlyhere' attached, which this R "
        "cannot load (there is no package called"
    ) in said
    assert "install it where the flow runs" in said
    assert "Traceback" not in said
