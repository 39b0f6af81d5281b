"""The run rules (ledgerflow.engine) on their own: successors and joins over a graph
message, the attempt policy, and the events an outcome becomes. The runtime, the
service and the executor tests show each caller follows them; these pin the rules."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ledgerflow.engine import (
    MAX_LOST_ATTEMPTS,
    JoinArrival,
    JoinBook,
    Next,
    NextTask,
    RunGraph,
    Tally,
    TaskOutcome,
    UnknownStep,
    after_failure,
    after_lost,
    after_not_started,
    after_queue_timeout,
    catches_in_process,
    decide,
    died_outcome,
    note_death,
    outcome_events,
    runs_fallback,
)
from ledgerflow.v1 import events_pb2, records_pb2

K = records_pb2.StepKind
Frame = records_pb2.ForeachFrame


def spec(name: str, kind: int, *next_steps: str, **extra: object) -> records_pb2.StepSpec:
    return records_pb2.StepSpec(name=name, kind=kind, next_steps=list(next_steps), **extra)  # type: ignore[arg-type]


# start -> (a, b) -> join -> outer (foreach) -> inner (foreach) -> leaf -> ij -> oj -> end
GRAPH = RunGraph(
    records_pb2.FlowGraph(
        steps=[
            spec("start", K.STEP_KIND_SPLIT, "a", "b"),
            spec("a", K.STEP_KIND_LINEAR, "join"),
            spec("b", K.STEP_KIND_LINEAR, "join"),
            spec("join", K.STEP_KIND_JOIN, "outer", in_steps=["a", "b"], closes="start"),
            spec("outer", K.STEP_KIND_FOREACH, "inner"),
            spec("inner", K.STEP_KIND_FOREACH, "leaf"),
            spec("leaf", K.STEP_KIND_LINEAR, "ij"),
            spec("ij", K.STEP_KIND_JOIN, "oj", in_steps=["leaf"], closes="inner"),
            spec("oj", K.STEP_KIND_JOIN, "end", in_steps=["ij"], closes="outer"),
            spec("end", K.STEP_KIND_END),
        ]
    )
)


def test_a_split_starts_each_branch_and_its_branches_meet_in_one_join() -> None:
    assert GRAPH.successors("start", (), 0, "start/1") == [
        NextTask("a", (), "after start/1"),
        NextTask("b", (), "after start/1"),
    ]
    from_b = GRAPH.successors("b", (), 0, "b/3")
    from_a = GRAPH.successors("a", (), 0, "a/2")
    assert [type(x) for x in (*from_a, *from_b)] == [JoinArrival, JoinArrival]
    arrival_a, arrival_b = from_a[0], from_b[0]
    assert isinstance(arrival_a, JoinArrival) and isinstance(arrival_b, JoinArrival)
    assert arrival_a.key == arrival_b.key and arrival_a.expected == 2
    assert (arrival_a.position, arrival_b.position) == (0, 1)  # the join's in_steps order
    book: JoinBook[str] = JoinBook()
    assert book.arrive(arrival_b, "b/3") is None
    assert book.arrive(arrival_a, "a/2") == ["a/2", "b/3"]


def test_nested_foreach_items_carry_their_frames_and_join_per_open_frame() -> None:
    items = GRAPH.successors("outer", (), 2, "outer/5")
    assert [(t.step, [(f.step_name, f.index, f.num_splits) for f in t.foreach_stack])
            for t in items if isinstance(t, NextTask)] == [
        ("inner", [("outer", 0, 2)]),
        ("inner", [("outer", 1, 2)]),
    ]  # fmt: skip
    outer_frame = Frame(step_name="outer", index=1, num_splits=2)
    leaves = GRAPH.successors("inner", (outer_frame,), 3, "inner/7")
    assert len(leaves) == 3 and all(isinstance(t, NextTask) for t in leaves)
    # Each leaf feeds the inner join of its own outer item, which waits for 3 leaves.
    arrivals = []
    for index in (2, 0, 1):
        stack = (outer_frame, Frame(step_name="inner", index=index, num_splits=3))
        (arrival,) = GRAPH.successors("leaf", stack, 0, f"leaf/{index}")
        assert isinstance(arrival, JoinArrival)
        arrivals.append(arrival)
    assert {a.key for a in arrivals} == {arrivals[0].key}
    assert arrivals[0].expected == 3 and arrivals[0].foreach_stack == (outer_frame,)
    other_item = (Frame(step_name="outer", index=0, num_splits=2),
                  Frame(step_name="inner", index=0, num_splits=3))  # fmt: skip
    assert GRAPH.join_key("leaf", other_item) != arrivals[0].key
    book: JoinBook[int] = JoinBook()
    results = [book.arrive(a, a.position) for a in arrivals]
    assert results == [None, None, [0, 1, 2]]  # in the order of the items
    assert GRAPH.join_key("a", ()) == GRAPH.join_key("b", ()) and GRAPH.join_key("start", ()) == ""


def test_an_unknown_step_is_named() -> None:
    with pytest.raises(UnknownStep, match="'nope' is not in the run's graph"):
        GRAPH.step("nope")


def test_retry_counts_the_tasks_own_failures_then_fails() -> None:
    step = spec("s", K.STEP_KIND_LINEAR, "end", retries=2, minutes_between_retries=2)
    first = after_failure(step, 1, "ValueError", remote=False)
    assert (first.next, first.delay_seconds) == (Next.RETRY, 0.0)  # locally at once
    assert after_failure(step, 1, "ValueError", remote=True).delay_seconds == 120.0
    assert after_failure(step, 2, "ValueError", remote=True).next is Next.RETRY
    last = after_failure(step, 3, "ValueError", remote=True)
    assert last.next is Next.FAIL and "3 attempt(s)" in last.reason


def test_catch_acts_once_the_retries_are_used_up() -> None:
    step = spec("s", K.STEP_KIND_LINEAR, "end", retries=1, catch=True)
    # Attempt after 0 failures runs the step and lets an exception fail it (retry left).
    assert not catches_in_process(step, 0) and not runs_fallback(step, 0)
    # The last try under @retry catches its exception itself.
    assert catches_in_process(step, 1) and not runs_fallback(step, 1)
    # If that one dies without reporting (timeout, kill), the fallback records it.
    assert after_failure(step, 2, "TimeoutException", remote=True).next is Next.CATCH
    assert runs_fallback(step, 2)
    # A fallback that fails too fails the task.
    assert after_failure(step, 3, "OSError", remote=True).next is Next.FAIL


def test_a_foreach_step_is_never_caught() -> None:
    step = spec("s", K.STEP_KIND_FOREACH, "x", catch=True)
    assert not catches_in_process(step, 0)
    assert after_failure(step, 1, "ValueError", remote=False).next is Next.FAIL


def test_a_switch_step_is_never_caught() -> None:
    step = spec("s", K.STEP_KIND_SWITCH, "x", catch=True)
    assert not catches_in_process(step, 0)
    assert after_failure(step, 1, "ValueError", remote=False).next is Next.FAIL


def test_a_gang_node_is_never_tried_again() -> None:
    """Alone, a retried node could not rejoin its gang (its mates run or are done)."""
    step = spec("train", K.STEP_KIND_LINEAR, "join", retries=3, catch=True, parallel=True)
    assert not catches_in_process(step, 3)
    failed = after_failure(step, 1, "ValueError", remote=True)
    assert failed.next is Next.FAIL and "could not rejoin its gang" in failed.reason
    assert after_lost(step, 1).next is Next.FAIL


def test_lost_attempts_have_a_budget_of_their_own() -> None:
    step = spec("s", K.STEP_KIND_LINEAR, "x")
    assert [after_lost(step, n).next for n in (1, 2, 3, 4)] == [Next.RETRY] * 3 + [Next.FAIL]


def test_an_attempt_that_never_began_is_the_infrastructures_and_says_why() -> None:
    step = spec("s", K.STEP_KIND_LINEAR, "x", retries=5)
    decisions = [after_not_started(step, n, "ImagePullError", "no such image") for n in (1, 4)]
    assert [d.next for d in decisions] == [Next.RETRY, Next.FAIL]
    assert decisions[0].reason == (
        "it never began: ImagePullError: no such image; tried again (1 of 3 such retries)"
    )
    assert decisions[1].reason == "it never began: ImagePullError: no such image, 4 times"
    gang_node = spec("train", K.STEP_KIND_LINEAR, "join", parallel=True)
    assert after_not_started(gang_node, 1, "Unschedulable", "0/1 nodes").next is Next.FAIL


def test_a_queue_timeout_fails_the_task_whatever_its_decorators() -> None:
    waited = after_queue_timeout("no executor took it within 60 s: waiting: no gpu=4")
    assert (waited.next, waited.reason) == (
        Next.FAIL, "no executor took it within 60 s: waiting: no gpu=4"
    )  # fmt: skip


def test_outcome_events_are_the_same_for_every_recorder() -> None:
    artifact = records_pb2.Artifact(name="x", content_key="k")
    ok = TaskOutcome(ok=True, artifacts=[artifact], num_splits=3)
    ref = events_pb2.TaskRef(flow_name="F", run_id="1", step_name="s", task_id="2")
    events = outcome_events(ref, 1, ok, lease_id="L")
    assert [e.WhichOneof("payload") for e in events] == ["artifacts_recorded", "task_succeeded"]
    assert events[1].task_succeeded.num_splits == 3 and events[1].task_succeeded.lease_id == "L"
    failed = outcome_events(ref, 0, died_outcome(-signal.SIGSEGV))
    assert failed[0].task_failed.error_type == "TaskProcessDied"
    assert "signal 11 (SIGSEGV)" in failed[0].task_failed.error_message


def test_a_death_is_explained_at_the_end_of_stderr(tmp_path: Path) -> None:
    crash = "import ctypes, faulthandler; faulthandler.enable(); ctypes.string_at(0)"
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as out:
        code = subprocess.run([sys.executable, "-c", crash], stderr=out, check=False).returncode
    outcome = died_outcome(code)
    note_death(stderr, outcome)
    text = stderr.read_text()
    assert "Segmentation fault" in text  # Python's own report
    assert text.rstrip().endswith("killed by signal 11 (SIGSEGV) before reporting")
    assert died_outcome(0, timeout_seconds=1.5).error_type == "TimeoutException"
    assert died_outcome(3).error_message == "the task process exited with code 3 before reporting"


def test_infrastructure_failures_leave_retry_alone() -> None:
    infra, own = records_pb2.FAILURE_KIND_INFRASTRUCTURE, records_pb2.FAILURE_KIND_EXCEPTION
    step = spec("s", K.STEP_KIND_LINEAR, "end")  # no @retry
    lost = Tally().after(infra)
    assert lost == Tally(failures=0, lost=1)
    assert decide(step, lost, infra, "ContainerEngineError", remote=True).next is Next.RETRY
    assert not catches_in_process(spec("c", K.STEP_KIND_LINEAR, "end", catch=True, retries=1),
                                  lost.failures)  # fmt: skip
    failed_once = Tally().after(own)
    assert decide(step, failed_once, own, "ValueError", remote=True).next is Next.FAIL
    worn_out = Tally(lost=MAX_LOST_ATTEMPTS).after(infra)
    assert decide(step, worn_out, infra, "NodeFailure", remote=True).next is Next.FAIL


@pytest.mark.parametrize("kind", list(records_pb2.FailureKind.values()))
def test_only_infrastructure_failures_count_as_lost(kind: int) -> None:
    """Every kind a TaskFailed can carry; UNSPECIFIED (events recorded before kinds
    existed) is the task's own failure."""
    after = Tally(failures=1, lost=1).after(kind)
    if kind == records_pb2.FAILURE_KIND_INFRASTRUCTURE:
        assert after == Tally(failures=1, lost=2)
    else:
        assert after == Tally(failures=2, lost=1)


def test_a_lost_attempt_before_the_last_try_leaves_catch_for_later() -> None:
    step = spec("s", K.STEP_KIND_LINEAR, "end", retries=1, catch=True)
    tally = Tally().after(records_pb2.FAILURE_KIND_INFRASTRUCTURE)
    assert not catches_in_process(step, tally.failures)  # the retry is still owed
    tally = tally.after(records_pb2.FAILURE_KIND_EXCEPTION)
    assert decide(step, tally, records_pb2.FAILURE_KIND_EXCEPTION, "ValueError",
                  remote=True).next is Next.RETRY  # fmt: skip
    assert catches_in_process(step, tally.failures)
