"""ledgerflow.Runner: a flow run from Python as `python flow.py run` runs it (a real
subprocess on the embedded ledger), found again through `run --run-id-file`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ledgerflow.client
import pytest
from conftest import FLOWS, FlowEnv
from ledgerflow import Flow, Runner
from ledgerflow.runner import RunNotStarted

# The Runner's runs are local runs: the embedded ledger is enough, and quicker.
pytestmark = pytest.mark.parametrize("flow_env", ["embedded"], indirect=True)

FLOW_FILE = FLOWS / "runner_flow.py"


def test_run_takes_python_values_and_run_reads_the_artifacts(flow_env: FlowEnv) -> None:
    with Runner(FLOW_FILE, show_output=False, cwd=flow_env.home, pylint=False) as runner:
        result = runner.run(
            alpha=2.0, count=3, loud=True, config={"k": 2}, tags=["a", "b"], max_workers=2
        )
    assert (result.status, result.returncode) == ("successful", 0)
    assert result.command[1:4] == [str(FLOW_FILE), "--no-pylint", "run"]
    assert result.command[4:10] == ["--alpha", "2.0", "--count", "3", "--loud", "true"]
    run = result.run
    assert run is not None and run.id == result.run_id and run.successful
    assert {"a", "b"} <= run.tags
    assert run["start"].task.data.seen == {
        "alpha": 2.0, "count": 3, "greeting": "hello", "loud": True, "config": {"k": 2},
    }  # fmt: skip
    assert run["middle"].task.data.total == 6.0
    assert f"RunnerFlow/{run.id} succeeded" in result.stdout and "end/3> HELLO" in result.stdout
    assert Flow("RunnerFlow").latest_run.id == run.id  # the ledger this process reads


def test_command_lines_follow_the_flows_options(flow_env: FlowEnv) -> None:
    """Flags as Metaflow's Runner writes them: False is the negative flag where there is
    one and nothing where there is none; a bool parameter takes a value; None is left
    out; a list of a multiple option repeats it. (No run: the command line only.)"""
    runner = Runner(FLOW_FILE, pylint=False)
    assert runner._top_level_args == ["--no-pylint"]
    assert runner._run_command(
        {"loud": False, "code_package": False, "remote": True, "alpha": None, "tags": "x"}
    ) == ["run", "--loud", "false", "--remote", "--tag", "x"]
    assert runner._resume_command({"step": "middle", "with_": ["retry", "retry:times=2"]}) == [
        "resume", "--with", "retry", "--with", "retry:times=2", "middle",
    ]  # fmt: skip


def test_a_failing_run_and_its_resume(flow_env: FlowEnv) -> None:
    failing = Runner(FLOW_FILE, show_output=False, env={"RUNNER_FAIL": "1"})
    with failing.run(count=2) as failed:
        assert (failed.status, failed.returncode) == ("failed", 1)
        assert "middle fails while RUNNER_FAIL is set" in failed.stdout
        assert failed.run is not None and failed.run.finished and not failed.run.successful
    assert failed.run is not None and failed.run.status == "failed"  # after its cleanup

    with Runner(FLOW_FILE, show_output=False) as runner:
        resumed = runner.resume(origin_run_id=failed.run.id, step="middle", tags=["again"])
    assert resumed.status == "successful"
    run = resumed.run
    assert run is not None and run.successful and run.origin_run_id == failed.run.id
    assert run["start"].task.origin_pathspec == f"RunnerFlow/{failed.run.id}/start/1"
    assert run["middle"].task.data.total == 1.0  # the origin's count=2, alpha 0.5
    assert "again" in run.tags


def test_async_run_returns_once_the_run_has_an_id(flow_env: FlowEnv, tmp_path: Path) -> None:
    """The run goes to another ledger than the one this process reads: `.run` switches
    the client API to it, as Metaflow's Runner does."""
    other = tmp_path / "other-ledger"

    async def main() -> None:
        async with Runner(
            FLOW_FILE, show_output=False, env={"LEDGERFLOW_HOME": str(other)}
        ) as runner:
            executing = await runner.async_run(count=4)
            assert executing.run_id is not None and executing.status in ("running", "successful")
            assert executing.run is not None and executing.run.id == executing.run_id
            assert await executing.wait() is executing
            assert (executing.status, executing.returncode) == ("successful", 0)
            assert executing.run.successful and executing.run["middle"].task.data.total == 2.0

    try:
        asyncio.run(main())
        assert ledgerflow.client.get_metadata() == f"local@{other}"
    finally:
        ledgerflow.client.default_metadata()


def test_wait_with_a_timeout_stops_the_run(flow_env: FlowEnv) -> None:
    """Stopped, the run is recorded as failed (so it can be resumed), not left going."""

    async def main() -> None:
        with Runner(FLOWS / "sleepy_flow.py", show_output=False) as runner:
            executing = await runner.async_run(seconds=60)
            with pytest.raises(TimeoutError, match="it was stopped"):
                await executing.wait(timeout=0.2)
            assert executing.status == "failed" and executing.returncode != 0
            assert executing.run is not None and executing.run.status == "failed"

    asyncio.run(main())


def test_run_id_file_from_the_command_line(flow_env: FlowEnv, tmp_path: Path) -> None:
    id_file = tmp_path / "run-id"
    flow_env.run("runner_flow", "run", "--run-id-file", str(id_file))
    assert id_file.read_text() == Flow("RunnerFlow").latest_run.id

    nowhere = flow_env.run(
        "runner_flow", "run", "--run-id-file", str(tmp_path / "no" / "id"), check=False
    )
    assert nowhere.returncode == 2 and "its folder does not exist" in nowhere.stderr
    assert len(list(Flow("RunnerFlow"))) == 1  # refused before a run started


def test_mistakes_are_clear_errors(flow_env: FlowEnv) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such-flow\.py"):
        Runner(FLOWS / "no-such-flow.py")
    with pytest.raises(ValueError, match=r"pylnt.*pylint"):
        Runner(FLOW_FILE, pylnt=False)
    runner = Runner(FLOW_FILE, show_output=False)
    with pytest.raises(ValueError, match=r"no parameter 'alhpa': its parameters are alpha, count"):
        runner.run(alhpa=1)
    with pytest.raises(ValueError, match="resume takes no 'alpha'"):
        runner.resume(alpha=1)
    with pytest.raises(ValueError, match="the Runner's own"):
        runner.run(run_id_file="elsewhere")
    # The command refuses it before a run has an id: the command's own message.
    with pytest.raises(RunNotStarted, match="has no run of yours to resume") as refused:
        runner.resume()
    assert refused.value.returncode == 1


def test_a_required_parameter_may_come_from_its_environment_variable(
    flow_env: FlowEnv, tmp_path: Path
) -> None:
    """Runner checks required parameters before it starts anything, the way the flow's
    command line reads them: the option, else LEDGERFLOW_RUN_<NAME>."""
    flow = tmp_path / "needs_who.py"
    flow.write_text(
        "from ledgerflow import FlowSpec, Parameter, step\n\n\n"
        "class NeedsWho(FlowSpec):\n    who = Parameter('who', help='Whose run')\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    NeedsWho()\n"
    )
    with pytest.raises(ValueError, match="NeedsWho needs the parameters who"):
        Runner(str(flow))._check_required({})
    Runner(str(flow), env={"LEDGERFLOW_RUN_WHO": "me"})._check_required({})  # no error
