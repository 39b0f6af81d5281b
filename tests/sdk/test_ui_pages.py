"""`ledgerflow ui`'s runs list (filters, search, time range, sort, paging), step page
(foreach inputs, status filter), audit payloads and tables pages, in Debian's chromium
driven by Playwright (the fixtures of test_ui.py), over an embedded ledger."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime

import events as ev
import pytest
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.v1 import events_pb2, ledger_service_pb2
from playwright.sync_api import Locator, Page, expect
from test_ui import Ledger, serve_ui, shot
from test_ui import ledger as ledger  # a fixture
from test_ui import page as page  # a fixture

pytestmark = pytest.mark.slow

HOSTILE = '<img src=x onerror="alert(1)">&amp;'


def _append(ledger: Ledger, events: list[events_pb2.Event]) -> None:
    metadata = EmbeddedMetadata(f"sqlite://{ledger.home / '.ledgerflow' / 'ledger.db'}", "alice")
    metadata.append(ledger_service_pb2.AppendRequest(events=events))
    metadata.close()


def _shown(page: Page) -> list[str]:
    """The runs the list shows, in order."""
    expect(page.locator("#runs table.runs")).to_be_visible()
    return page.locator("tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")


def _filter(page: Page, **fields: str) -> None:
    for label, value in fields.items():
        page.get_by_label(label.replace("_", " "), exact=True).fill(value)
    page.get_by_role("button", name="Filter").click()


def test_runs_list_filters_by_tags_text_and_time_and_sorts_by_any_column(
    ledger: Ledger, page: Page
) -> None:
    both = ("shared", "b&c #1+2 100%")
    _append(ledger, [
        *ev.successful_run("TrainFlow", "10", tags=both),
        *ev.successful_run("TrainFlow", "11", tags=("shared",)),
        ev.run_started("ScoreFlow", "12", tags=both),  # still running
    ])  # fmt: skip
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    _append(ledger, [
        *ev.successful_run("nightly_scoreflow", "13", tags=both),
        ev.run_started("PredictFlow", "100"),
        ev.run_finished("PredictFlow", "100", succeeded=False),
    ])  # fmt: skip
    everything = ["PredictFlow/100", "nightly_scoreflow/13", "ScoreFlow/12", "TrainFlow/11",
                  "TrainFlow/10"]  # fmt: skip
    with serve_ui(ledger.env) as address:
        page.goto(address)
        assert _shown(page) == everything
        expect(page.locator('tr[data-run="TrainFlow/10"] td').first).to_have_text("TrainFlow")

        # Several tags (one a line): only the runs with all of them.
        _filter(page, Tags="shared\nb&c #1+2 100%")
        assert _shown(page) == ["nightly_scoreflow/13", "ScoreFlow/12", "TrainFlow/10"]
        # Text in the flow name or the run id, any case, with the tags still applied.
        _filter(page, Search="SCORE")
        assert _shown(page) == ["nightly_scoreflow/13", "ScoreFlow/12"]
        # The view is in the URL: a reload (a bookmark) shows the same runs.
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
        assert query["q"] == ["SCORE"]
        page.reload()
        assert _shown(page) == ["nightly_scoreflow/13", "ScoreFlow/12"]

        page.goto(address)
        _filter(page, Search="10")
        assert _shown(page) == ["PredictFlow/100", "TrainFlow/10"]

        # A time range.
        page.goto(address)
        _filter(page, Started_after=between.isoformat())
        assert _shown(page) == ["PredictFlow/100", "nightly_scoreflow/13"]
        _filter(page, Started_after="", Started_before=between.strftime("%Y-%m-%dT%H:%M:%S.%f"))
        assert _shown(page) == ["ScoreFlow/12", "TrainFlow/11", "TrainFlow/10"]
        shot(page, "runs-filtered")

        # A date that is none: said on the page, not a server error.
        page.goto(address)
        _filter(page, Started_before="last tuesday")
        expect(page.locator(".problems .error-message")).to_contain_text(
            "Started before: 'last tuesday' is not a time"
        )
        assert "Traceback" not in page.content()
        expect(page.get_by_label("Started before", exact=True)).to_have_value("last tuesday")

        # Sort by a column's header; a second click turns it around.
        page.goto(address)
        header = page.locator("th a.sort")
        header.filter(has_text="Flow").click()
        assert _shown(page) == ["nightly_scoreflow/13", "PredictFlow/100", "ScoreFlow/12",
                                "TrainFlow/11", "TrainFlow/10"]  # fmt: skip
        expect(page.locator('th:has(a[data-column="flow"])')).to_have_attribute(
            "aria-sort", "ascending"
        )
        header.filter(has_text="Flow").click()
        assert _shown(page)[0].startswith("TrainFlow/")
        assert _shown(page)[-1] == "nightly_scoreflow/13"
        header.filter(has_text="Run").click()  # run ids as numbers: 100 > 13
        assert _shown(page) == ["PredictFlow/100", "nightly_scoreflow/13", "ScoreFlow/12",
                                "TrainFlow/11", "TrainFlow/10"]  # fmt: skip
        header.filter(has_text="Run").click()
        assert _shown(page) == ["TrainFlow/10", "TrainFlow/11", "ScoreFlow/12",
                                "nightly_scoreflow/13", "PredictFlow/100"]  # fmt: skip
        header.filter(has_text="Status").click()
        assert [page.locator(f'tr[data-run="{r}"] .badge').inner_text() for r in _shown(page)] == [
            "failed", "running", "succeeded", "succeeded", "succeeded"
        ]  # fmt: skip
        # The longest first: the run still running (it has run the longest by now).
        header.filter(has_text="Duration").click()
        assert _shown(page)[0] == "ScoreFlow/12"
        # Filters and sort together, and the filter form keeps the sort.
        _filter(page, Tags="shared")
        assert _shown(page)[0] == "ScoreFlow/12"
        assert set(_shown(page)) == {"ScoreFlow/12", "nightly_scoreflow/13", "TrainFlow/10",
                                     "TrainFlow/11"}  # fmt: skip
        shot(page, "runs-sorted")


def test_paging_keeps_the_search_the_tags_and_the_sort(ledger: Ledger, page: Page) -> None:
    tag = "team:a&b #1+2 100%"
    started = [ev.run_started("BulkFlow", str(run), tags=(tag,)) for run in range(1, 66)]
    started += [ev.run_started("OtherFlow", str(run), tags=(tag,)) for run in range(100, 160)]
    _append(ledger, started)
    with serve_ui(ledger.env) as address:
        query = urllib.parse.urlencode({"tag": tag, "q": "bulk", "sort": "run", "order": "asc"})
        page.goto(f"{address}/?{query}")
        first = _shown(page)
        assert first == [f"BulkFlow/{run}" for run in range(1, 51)]
        page.get_by_role("link", name="More runs").click()
        assert _shown(page) == [f"BulkFlow/{run}" for run in range(51, 66)]
        expect(page.get_by_role("link", name="More runs")).to_have_count(0)

        # Newest first (the service's order), searching page after page.
        page.goto(f"{address}/?{urllib.parse.urlencode({'tag': tag, 'q': 'bulk'})}")
        assert _shown(page) == [f"BulkFlow/{run}" for run in range(65, 15, -1)]
        page.get_by_role("link", name="Older runs").click()
        assert _shown(page) == [f"BulkFlow/{run}" for run in range(15, 0, -1)]
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["tag"] == [tag]


STEP_FLOW = """
from ledgerflow import FlowSpec, step


class PaintFlow(FlowSpec):
    @step
    def start(self):
        self.sizes = [3, 5]
        self.colors = ["red", "green", "<b>blue</b>"]
        self.next(self.paint, foreach="colors")

    @step
    def paint(self):
        if self.input == "green":
            raise ValueError("no green paint")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PaintFlow()
"""


def test_step_page_shows_each_tasks_foreach_input_and_filters_by_status(
    ledger: Ledger, page: Page
) -> None:
    flow = ledger.home / "paint_flow.py"
    flow.write_text(STEP_FLOW)
    result = subprocess.run([sys.executable, str(flow), "run"], env=ledger.env, cwd=ledger.home,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0, result.stdout  # the green item fails
    found = re.search(r"PaintFlow/(\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    with serve_ui(ledger.env) as address:
        page.goto(f"{address}/runs/PaintFlow/{found[1]}/paint")
        rows = page.locator("table.tasks tbody tr")
        expect(rows).to_have_count(3)
        inputs = page.locator("td.foreach").all_inner_texts()
        assert inputs == ["index 0 (of 3) 'red'", "index 1 (of 3) 'green'",
                          "index 2 (of 3) '<b>blue</b>'"]  # fmt: skip
        expect(page.locator("td.foreach b")).to_have_count(0)  # shown, never markup
        shot(page, "step-foreach")

        page.get_by_role("link", name="failed (1)").click()
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".badge")).to_have_text("failed")
        expect(rows.first.locator("td.foreach")).to_have_text("index 1 (of 3) 'green'")
        page.get_by_role("link", name="succeeded (2)").click()
        assert page.locator("td.foreach .item").all_inner_texts() == ["'red'", "'<b>blue</b>'"]
        page.get_by_role("link", name="running (0)").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_text("No running tasks.")
        page.get_by_role("link", name="all (3)").click()
        expect(rows).to_have_count(3)

        page.goto(f"{address}/runs/PaintFlow/{found[1]}/start")  # not in a foreach
        expect(page.locator("td.foreach")).to_have_text("-")


def _lineage_events() -> list[events_pb2.Event]:
    return [
        ev.run_started("WriterFlow", "1", tags=(HOSTILE,)),
        ev.task_started("WriterFlow", "1", "start", "1"),
        ev.table_written("WriterFlow", "1", "start", "1", "vtuulos", "input_table"),
        ev.task_succeeded("WriterFlow", "1", "start", "1"),
        ev.run_started("WriterFlow", "2"),
        ev.task_started("WriterFlow", "2", "start", "4"),
        ev.table_written("WriterFlow", "2", "start", "4", "vtuulos", "input_table", num_rows=1234),
        ev.run_started("ReaderFlow", "3"),
        ev.task_started("ReaderFlow", "3", "b", "7"),
        ev.table_read("ReaderFlow", "3", "b", "7", "vtuulos", "input_table", 1),
        ev.task_started("ReaderFlow", "3", "c", "8"),
        ev.table_read("ReaderFlow", "3", "c", "8", "vtuulos", "input_table", 1),
        ev.table_read("ReaderFlow", "3", "c", "8", "vtuulos", "input_table", 2),
        ev.run_started("OtherFlow", "5"),
        ev.task_started("OtherFlow", "5", "start", "9"),
        ev.table_written("OtherFlow", "5", "start", "9", "team", "scores"),
    ]


def test_audit_page_shows_each_events_payload(ledger: Ledger, page: Page) -> None:
    _append(ledger, _lineage_events())
    with serve_ui(ledger.env) as address:
        page.goto(f"{address}/runs/ReaderFlow/3/audit")
        read = page.locator("table.events tbody tr").filter(has_text="TableVersionRead")
        expect(read).to_have_count(3)
        expect(read.first.locator("summary")).to_have_text(
            "task=ReaderFlow/3/b/7, namespace=vtuulos, table=input_table, version=1"
        )
        details = read.first.locator("pre.event-json")
        expect(details).to_be_hidden()
        read.first.locator("summary").click()
        expect(details).to_be_visible()
        expect(details).to_contain_text('"table_version_read": {')
        expect(details).to_contain_text('"table": "input_table"')
        expect(details).to_contain_text('"step_name": "b"')
        shot(page, "audit-payload")

        # A payload is text, whatever it holds.
        page.goto(f"{address}/runs/WriterFlow/1/audit")
        started = page.locator("table.events tbody tr").filter(has_text="RunStarted")
        expect(started.locator("summary")).to_contain_text(f"tags=[{HOSTILE}]")
        started.locator("summary").click()
        expect(started.locator("pre.event-json")).to_contain_text('<img src=x onerror=\\"alert(1)')
        expect(page.locator("td.payload img")).to_have_count(0)


def test_tables_page_shows_each_version_and_who_wrote_and_read_it(
    ledger: Ledger, page: Page
) -> None:
    _append(ledger, _lineage_events())
    with serve_ui(ledger.env) as address:
        page.goto(address)
        page.get_by_role("navigation", name="main").get_by_role("link", name="Tables").click()
        tables = page.locator("tr[data-table]")
        assert tables.evaluate_all("rows => rows.map(r => r.dataset.table)") == [
            "team/scores", "vtuulos/input_table"
        ]  # fmt: skip
        expect(page.locator('tr[data-table="vtuulos/input_table"] td').nth(1)).to_have_text("2")
        page.get_by_label("Namespace").fill("team")
        page.get_by_role("button", name="Filter").click()
        expect(tables).to_have_count(1)

        page.goto(f"{address}/tables")
        page.get_by_role("link", name="vtuulos/input_table").click()
        versions = page.locator("tr[data-version]")
        assert versions.evaluate_all("rows => rows.map(r => r.dataset.version)") == ["2", "1"]
        newest, oldest = versions.nth(0), versions.nth(1)
        expect(newest.locator("td").nth(1)).to_have_text("1,234")

        def links(row: Locator, kind: str) -> list[str]:
            found = row.locator(f"td.{kind} a")
            return list(found.evaluate_all("links => links.map(a => a.getAttribute('href'))"))

        assert links(oldest, "writer") == ["/runs/WriterFlow/1/start/1", "/runs/WriterFlow/1"]
        reader_b, reader_c = "/runs/ReaderFlow/3/b/7", "/runs/ReaderFlow/3/c/8"
        assert links(oldest, "readers") == [reader_b, "/runs/ReaderFlow/3", reader_c,
                                            "/runs/ReaderFlow/3"]  # fmt: skip
        assert links(newest, "writer") == ["/runs/WriterFlow/2/start/4", "/runs/WriterFlow/2"]
        assert links(newest, "readers") == ["/runs/ReaderFlow/3/c/8", "/runs/ReaderFlow/3"]
        shot(page, "table-lineage")

        # The links lead to the run and the task.
        newest.locator("td.readers a.run").click()
        expect(page).to_have_url(f"{address}/runs/ReaderFlow/3")
        page.go_back()
        oldest.locator("td.writer a.task").click()
        expect(page).to_have_url(f"{address}/runs/WriterFlow/1/start/1")
        expect(page.locator("h1")).to_contain_text("start/1")

        answer = page.goto(f"{address}/tables/vtuulos/no_such_table")
        assert answer is not None and answer.status == 404
        expect(page.locator(".error-message")).to_contain_text("input_table")


def test_the_filters_links_stay_encoded() -> None:
    """Without a browser: the sort links and the form keep every filter, encoded."""
    from ledgerflow.ui.runs_filter import RunsQuery
    from starlette.datastructures import QueryParams

    query = RunsQuery.from_query(QueryParams(
        "tag=a%26b&tag=c%23d%0Ae%2Bf&q=x%25&after=2026-01-01&sort=flow&order=desc&page=50"
    ))  # fmt: skip
    assert query.tags == ("a&b", "c#d", "e+f")
    assert query.problems == ()
    again = RunsQuery.from_query(QueryParams(query.sort_url("status")[1:]))
    assert (again.tags, again.text, again.after, again.sort, again.order, again.page) == (
        query.tags, "x%", query.after, "status", "asc", ""
    )  # fmt: skip
    assert (
        RunsQuery.from_query(QueryParams("sort=flow&order=desc"))
        .sort_url("flow")
        .endswith("sort=flow&order=asc")
    )
    bad = RunsQuery.from_query(QueryParams("after=2026-02-01&before=2026-01-01&sort=nope"))
    assert len(bad.problems) == 2


NAMES_FLOW = """
from ledgerflow import FlowSpec, step


class NamesFlow(FlowSpec):
    @step
    def start(self):
        self.数据 = [1, 2]
        self.größe = b"abc"
        self.plain = {"a": 1}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NamesFlow()
"""


def test_any_artifact_name_downloads_and_a_step_shows_all_its_tasks(ledger: Ledger) -> None:
    """Without a browser: a name a header cannot hold as it is (not Latin-1) still
    downloads, named (RFC 6266 filename*), and a step of more tasks than one page of
    ListTasks is counted whole (and listed 500 a page)."""
    import urllib.request

    flow = ledger.home / "names_flow.py"
    flow.write_text(NAMES_FLOW)
    result = subprocess.run([sys.executable, str(flow), "run"], env=ledger.env, cwd=ledger.home,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"NamesFlow/(\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    many = 1205
    started = [ev.run_started("ManyFlow", "1")]
    started += [ev.task_started("ManyFlow", "1", "work", str(n)) for n in range(1, many + 1)]
    for first in range(0, len(started), 1000):  # a batch holds at most 1000
        _append(ledger, started[first : first + 1000])
    with serve_ui(ledger.env) as address:
        base = f"{address}/runs/NamesFlow/{found[1]}/start/1/artifacts/"
        expected = {
            "数据": ("application/json", "attachment; filename=\"__.json\"; "
                     "filename*=UTF-8''%E6%95%B0%E6%8D%AE.json"),
            "größe": ("application/octet-stream", "attachment; filename=\"gr__e.bin\"; "
                      "filename*=UTF-8''gr%C3%B6%C3%9Fe.bin"),
            "plain": ("application/json", 'attachment; filename="plain.json"'),
        }  # fmt: skip
        for name, (media, disposition) in expected.items():
            with urllib.request.urlopen(base + urllib.parse.quote(name), timeout=30) as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"] == media
                assert answer.headers["Content-Disposition"] == disposition
        with urllib.request.urlopen(f"{base}{urllib.parse.quote('数据')}", timeout=30) as answer:
            assert answer.read() == b"[\n 1,\n 2\n]"
        log = f"{address}/runs/NamesFlow/{found[1]}/start/1/logs/0/stdout"
        with urllib.request.urlopen(log, timeout=30) as answer:
            assert answer.headers["Content-Disposition"] == (
                f'attachment; filename="NamesFlow_{found[1]}_start_1.attempt0.stdout.log"'
            )

        with urllib.request.urlopen(f"{address}/runs/ManyFlow/1/work", timeout=60) as answer:
            text = answer.read().decode()
        assert f"all ({many})" in text and f"running ({many})" in text
        assert text.count("<tr data-task=") == 500  # the first page (test_ui_links pages on)
        assert 'href="?page=2">Next tasks</a>' in text


def test_a_large_compressed_value_is_not_read_to_say_its_size() -> None:
    """Its stored size is said instead: a value of gigabytes is not fetched and inflated
    when its task's page is opened."""
    from ledgerflow.ui import artifacts
    from ledgerflow.v1 import records_pb2

    class Untouched:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"the store was read ({name})")

    big = records_pb2.Artifact(name="weights", serializer="pickle5+zlib",
                               size=artifacts.LOAD_BYTES + 1, content_key="k")  # fmt: skip
    shown = artifacts.Previews(Untouched()).of(big)
    assert (shown.size, shown.kind, shown.formats) == (None, "none", ["pickle"])
    assert shown.size_text == "8.0 MiB stored"
    assert artifacts.Preview(3 * 2**30, "none").size_text == "3.0 GiB"


def test_an_array_with_nan_offers_no_json() -> None:
    """JSON has no NaN: its link would answer 400, so it is not offered."""
    import numpy
    from ledgerflow.ui.artifacts import _formats

    assert _formats(numpy.array([1.0, 2.5])) == ["npy", "json"]
    assert _formats(numpy.array([1.0, numpy.nan])) == ["npy"]
    assert _formats(numpy.array([numpy.inf])) == ["npy"]
    assert _formats(numpy.arange(3)) == ["npy", "json"]
