"""The talk's samples (seed-talk.txt), with metaflow replaced by ledgerflow, run end to
end in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledgerflow import Flow, LedgerflowNamespaceMismatch, Run, namespace

pytestmark = pytest.mark.slow


def test_branch_flow_takes_the_max(flow_env) -> None:
    result = flow_env.run("branch_flow", "run")
    assert "out is 3" in result.stdout
    run = Flow("MyFlow").latest_run
    assert run.successful and run.finished
    assert run["join"].task.data.out == 3
    assert run["join"].task.data.from_a == 2
    assert run.data.out == 3
    assert run["start"].task.data.x == 0
    assert [s.id for s in run] == ["start", "a", "b", "join", "end"]
    assert run["end"].task.stdout == "out is 3\n"


def test_foreach_over_the_grid(flow_env) -> None:
    flow_env.run("foreach_flow", "run")
    run = Flow("ForeachFlow").latest_run
    tasks = run["a"].tasks()
    assert sorted(t.data.x for t in tasks) == [ord("x"), ord("y"), ord("z")]
    assert sorted(t.index for t in tasks) == [0, 1, 2]
    assert run.data.out == ord("z")
    assert run["join"].task.data.positions == [0, 1, 2]


def test_resume_b_clones_start_and_a(flow_env, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    failed = flow_env.run(
        "branch_flow", "run", check=False, extra_env={"FAIL_B": "1", "COUNT_FILE": str(counts)}
    )
    assert failed.returncode == 1
    assert failed.stdout.count("Traceback (most recent call last)") == 1
    assert 'raise ValueError("b is broken today")' in failed.stdout
    first = Flow("MyFlow").latest_run
    assert not first.successful and first.finished

    counts.write_text("")
    flow_env.run("branch_flow", "resume", "b", extra_env={"COUNT_FILE": str(counts)})
    assert counts.read_text().split() == ["b", "join", "end"]  # start and a did not run
    resumed = Flow("MyFlow").latest_run
    assert resumed.id != first.id and resumed.origin_run_id == first.id
    assert resumed.successful and resumed.data.out == 3
    assert resumed["start"].task.origin_pathspec == f"MyFlow/{first.id}/start/1"
    assert resumed["a"].task.origin_pathspec is not None
    assert resumed["b"].task.origin_pathspec is None
    assert resumed["a"].task["x"].sha == first["a"].task["x"].sha  # no artifact copied


def test_resume_without_a_step_starts_at_the_failed_one(flow_env, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    flow_env.run("branch_flow", "run", check=False, extra_env={"FAIL_B": "1"})
    result = flow_env.run("branch_flow", "resume", extra_env={"COUNT_FILE": str(counts)})
    assert "from step 'b'" in result.stdout
    assert counts.read_text().split() == ["b", "join", "end"]


def test_namespaces_and_tags(flow_env) -> None:
    flow_env.run("branch_flow", "run", "--tag", "unsampled_model", user="savin")
    flow_env.run("branch_flow", "run", "--tag", "sampled_model", user="david")

    namespace("user:savin")
    run = Flow("MyFlow").latest_run
    assert run.user == "savin"
    assert "unsampled_model" in run.tags and "sampled_model" not in run.tags
    savin_id = run.id

    namespace("user:david")
    run = Flow("MyFlow").latest_run
    assert "sampled_model" in run.tags
    david_id = run.id
    with pytest.raises(LedgerflowNamespaceMismatch):
        Run(f"MyFlow/{savin_id}")

    namespace(None)
    assert Flow("MyFlow").latest_run.id == david_id  # everyone's newest
    assert {r.id for r in Flow("MyFlow").runs("unsampled_model")} == {savin_id}

    run = Run(f"MyFlow/{savin_id}")
    run.add_tag("reviewed")
    run.remove_tag("unsampled_model")
    assert "reviewed" in Run(f"MyFlow/{savin_id}").user_tags
    assert "unsampled_model" not in Run(f"MyFlow/{savin_id}").tags
