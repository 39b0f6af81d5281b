"""What the web UI's pages say, read without a browser: a link keeps what it filters by,
whatever characters it holds (the real `ledgerflow ui` over an embedded ledger, over
HTTP), a step's tasks come in pages, the timeline's errors are JSON, the run's graph fits
a long step name in its box (one rule cuts every long text), and what the UI server
keeps (timelines, foreach splits) is what no longer changes."""

from __future__ import annotations

import html
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import events as ev
import pytest
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.ui import model
from ledgerflow.ui.dag import svg
from ledgerflow.ui.model import StepView
from ledgerflow.v1 import events_pb2, ledger_service_pb2, records_pb2
from test_ui import serve_ui

# Characters a query string gives meaning to: each must reach the next page as it is.
TAG = "team:a&b #1+2 100%"


def test_older_runs_keeps_a_tag_with_query_characters(tmp_path: Path) -> None:
    home = tmp_path / ".ledgerflow"
    metadata = EmbeddedMetadata(f"sqlite://{home / 'ledger.db'}", "alice")
    started = [ev.run_started("Flow", str(run), tags=(TAG,)) for run in range(60)]
    metadata.append(ledger_service_pb2.AppendRequest(events=started))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    with serve_ui({**env, "LEDGERFLOW_HOME": str(home)}) as address:

        def get(query: str) -> str:
            with urllib.request.urlopen(f"{address}/?{query}", timeout=30) as answer:
                return str(answer.read().decode())

        first = get(urllib.parse.urlencode({"tag": TAG}))
        assert first.count('href="/runs/Flow/') == 50
        older = re.search(r'<a class="next" href="\?([^"]+)">Older runs</a>', first)
        assert older is not None
        second = get(html.unescape(older.group(1)))
    assert "No runs match" not in second
    assert second.count('href="/runs/Flow/') == 10  # the ten oldest


def test_a_long_step_name_is_cut_to_its_box_and_kept_whole_in_its_title() -> None:
    name = "prepare_the_training_data_for_every_region"
    steps = {"start": StepView("start", kind="linear"), name: StepView(name, kind="foreach")}
    steps[name].inputs.add("start")
    drawn = svg(steps, "/{step}")
    assert f"<title>{name} (foreach): " in drawn
    shown = re.findall(r'class="name">([^<]*)</text>', drawn)
    assert shown == ["start", "prepare_the_trainin…"]


def _serve(tmp_path: Path, events: list[Any]) -> Any:
    """`ledgerflow ui` over an embedded ledger in `tmp_path` holding `events`."""
    home = tmp_path / ".ledgerflow"
    metadata = EmbeddedMetadata(f"sqlite://{home / 'ledger.db'}", "alice")
    for first in range(0, len(events), 500):  # SQLite takes at most 500 a batch
        metadata.append(ledger_service_pb2.AppendRequest(events=events[first : first + 500]))
    metadata.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    return serve_ui({**env, "LEDGERFLOW_HOME": str(home)})


def test_an_unknown_runs_timeline_answers_json(tmp_path: Path) -> None:
    """timeline.json is read by a script: its errors are JSON too, not an HTML page."""
    with _serve(tmp_path, [ev.run_started("Flow", "1")]) as address:
        with urllib.request.urlopen(f"{address}/runs/Flow/1/timeline.json", timeout=30) as ok:
            assert ok.headers["Content-Type"] == "application/json"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{address}/runs/Flow/2/timeline.json", timeout=30)
    assert refused.value.code == 404
    assert refused.value.headers["Content-Type"] == "application/json"
    said = json.loads(refused.value.read())
    assert list(said) == ["error"] and "2" in said["error"]


# The tasks a step's page lists (ui/step_page.py's PAGE_ROWS).
PAGE_ROWS = 500


def test_a_step_of_many_tasks_is_paged_and_its_links_keep_the_status(tmp_path: Path) -> None:
    many, done = 1205, 600
    events = [ev.run_started("ManyFlow", "1")]
    for n in range(1, many + 1):
        events.append(ev.task_started("ManyFlow", "1", "work", str(n)))
        if n <= done:
            events.append(ev.task_succeeded("ManyFlow", "1", "work", str(n)))
    with _serve(tmp_path, events) as address:

        def get(query: str) -> str:
            url = f"{address}/runs/ManyFlow/1/work{query}"
            with urllib.request.urlopen(url, timeout=60) as answer:
                return str(answer.read().decode())

        def links(text: str) -> dict[str, str]:
            found = re.findall(r'<a class="(next|previous)" rel="\w+" href="([^"]+)"', text)
            return {kind: html.unescape(href) for kind, href in found}

        first = get("")
        assert f"all ({many})" in first and f"succeeded ({done})" in first
        assert first.count("<tr data-task=") == PAGE_ROWS
        assert links(first) == {"next": "?page=2"}
        last = get("?page=3")
        assert last.count("<tr data-task=") == many - 2 * PAGE_ROWS
        assert links(last) == {"previous": "?page=2"}
        assert get("?page=99").count("<tr data-task=") == many - 2 * PAGE_ROWS

        # The status filter stays on as the pages turn.
        running = get("?status=running")
        assert running.count("<tr data-task=") == PAGE_ROWS
        assert links(running) == {"next": "?status=running&page=2"}
        second = get(links(running)["next"])
        assert second.count("<tr data-task=") == many - done - PAGE_ROWS
        assert links(second) == {"previous": "?status=running&page=1"}
        assert 'data-task="601"' in running and 'data-task="1"' not in second
    from ledgerflow.ui import step_page

    assert step_page.PAGE_ROWS == PAGE_ROWS


def test_every_cut_text_ends_the_same_way() -> None:
    """One rule cuts a long text: at most N characters, the last of them "…"."""
    from ledgerflow.ui import artifacts, audit_view, dag

    long = "x" * 10_000
    shown = artifacts._text(long)
    assert shown.endswith("…") and len(shown) == artifacts.PREVIEW_CHARS
    assert dag._fitted(long) == "x" * (dag.NAME_CHARACTERS - 1) + "…"
    event = events_pb2.Event(tags_added=events_pb2.TagsAdded(tags=["t" * 500]))
    summary = audit_view.summary(event)
    assert summary.endswith("…") and len(summary) == audit_view.SUMMARY_CHARS

    from ledgerflow.ui.text import cut  # the one home of the rule

    assert cut("abc", 3) == "abc" and cut("abcd", 3) == "ab…"
    value = "'" + "y" * model.PREVIEW_BYTES
    assert cut(value, model.PREVIEW_BYTES) == value[: model.PREVIEW_BYTES - 1] + "…"


def test_a_runs_duration_and_its_sort_key_are_one_arithmetic() -> None:
    from ledgerflow.ui import runs_filter

    run = records_pb2.Run()
    run.created_at.FromSeconds(1_000)
    run.finished_at.FromSeconds(1_090)
    assert runs_filter._seconds(run) == 90.0
    assert model.duration(run.created_at, run.finished_at) == "1 min 30 s"
    run.finished_at.FromSeconds(900)  # a clock that stepped back: never below 0
    assert (
        runs_filter._seconds(run) == 0.0
        and model.duration(run.created_at, run.finished_at) == "0.0 s"
    )
    assert runs_filter._seconds(records_pb2.Run()) == 0.0  # not started: 0 (and "-")
    assert model.seconds_between(run.created_at, run.finished_at) == 0.0  # the one home


def _metadata(tmp_path: Path, events: list[Any]) -> EmbeddedMetadata:
    metadata = EmbeddedMetadata(f"sqlite://{tmp_path / 'ledger.db'}", "alice")
    metadata.append(ledger_service_pb2.AppendRequest(events=events))
    return metadata


def test_a_timeline_is_kept_only_once_its_run_finished(tmp_path: Path) -> None:
    """A run counts as succeeded once its end task succeeded, before its RunFinished:
    its timeline is read again until then (else it would keep an end of null, the run
    drawn as going on forever). Once finished, the ledger refuses its task events, so
    its timeline is kept."""
    from ledgerflow.exceptions import RpcError
    from ledgerflow.ui.timeline import Timelines

    ended = ev.successful_run("Flow", "1")
    metadata = _metadata(tmp_path, [
        *ended[:-1],  # not RunFinished yet
        ev.run_started("Flow", "2"), ev.task_started("Flow", "2", "start", "1"),
        ev.run_finished("Flow", "2", succeeded=False),
    ])  # fmt: skip
    timelines = Timelines()
    early = json.loads(timelines.json(metadata, "Flow", "1"))
    assert early["status"] == "succeeded" and early["end"] is None
    metadata.append(ledger_service_pb2.AppendRequest(events=[ended[-1]]))
    done_text = timelines.json(metadata, "Flow", "1")
    done = json.loads(done_text)
    assert done["end"] is not None and done["end"] >= done["start"]

    failed = timelines.json(metadata, "Flow", "2")
    assert json.loads(failed)["status"] == "failed"
    with pytest.raises(RpcError, match="no more task events"):  # why it may be kept
        metadata.append(ledger_service_pb2.AppendRequest(events=[
            ev.task_started("Flow", "2", "late", "2"),
        ]))  # fmt: skip

    def no_reading(request: Any) -> Any:
        raise AssertionError(f"the tasks of {request.run_id} were read again")

    metadata.list_task_spans = no_reading  # type: ignore[method-assign]
    assert timelines.json(metadata, "Flow", "1") == done_text  # both kept
    assert timelines.json(metadata, "Flow", "2") == failed
    metadata.close()


def test_a_foreach_tasks_split_is_read_once_per_ui_server(tmp_path: Path) -> None:
    """The run page's live update reads a succeeded foreach task's split once, not at
    every update (one ListEvents a task)."""
    from ledgerflow.ui.foreach import SplitCounts, plan_counts

    K = records_pb2.StepKind
    graph = records_pb2.FlowGraph(steps=[
        records_pb2.StepSpec(name="start", kind=K.STEP_KIND_FOREACH, next_steps=["work"]),
        records_pb2.StepSpec(name="work", kind=K.STEP_KIND_LINEAR, next_steps=["join"]),
        records_pb2.StepSpec(name="join", kind=K.STEP_KIND_JOIN, next_steps=["end"],
                             in_steps=["work"], closes="start"),
        records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
    ])  # fmt: skip
    split = ev.task_succeeded("Flow", "1", "start", "1")
    split.task_succeeded.num_splits = 7
    metadata = _metadata(tmp_path, [
        ev.run_started("Flow", "1", declared_graph=graph),
        ev.task_started("Flow", "1", "start", "1"), split,
        ev.task_started("Flow", "1", "work", "2"),
    ])  # fmt: skip
    asked: list[Any] = []
    reading = metadata.list_events

    def list_events(request: Any) -> Any:
        asked.append(request.task_pathspec)
        return reading(request)

    metadata.list_events = list_events  # type: ignore[method-assign]
    known = SplitCounts()
    for _ in range(3):  # three live updates
        view = model.run_view(metadata, "Flow", "1")
        plan_counts(metadata, "Flow", "1", view.steps, known)
        assert view.steps["work"].planned == 7
    assert asked == ["Flow/1/start/1"]
    metadata.close()
