"""`ledgerflow ui`'s run and task pages in a real browser (Debian's chromium, headless,
through Playwright), over real runs and over ledgers written event by event: the
timeline draws every task, a task shows every attempt's logs (tail, search, download),
live updates keep what the reader opened, artifacts preview and download in forms a
browser user can open, and a foreach counts against the tasks it planned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import events as ev
import pytest
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.v1 import events_pb2, ledger_service_pb2, records_pb2
from playwright.sync_api import Browser, Page, expect
from test_ui import _pathspec, serve_ui, shot

pytestmark = pytest.mark.slow

FAILED_RGB = (0xB3, 0x26, 0x1E)  # --failed in ui.css and timeline.js


class Home:
    """A scratch folder with its own embedded ledger, for flows written by the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        self.env.update(LEDGERFLOW_HOME=str(root / ".ledgerflow"), USERNAME="tester")

    def flow(self, name: str, source: str) -> Path:
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, flow: Path, *args: str, check: bool = True) -> str:
        command = [sys.executable, str(flow), "run", *args]
        result = subprocess.run(command, env=self.env, cwd=self.root, capture_output=True,
                                text=True, timeout=180)  # fmt: skip
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return _pathspec(result.stdout + result.stderr)

    def start(self, flow: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(flow), "run", *args], env=self.env,
                                cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def metadata(self) -> EmbeddedMetadata:
        (self.root / ".ledgerflow").mkdir(exist_ok=True)
        return EmbeddedMetadata(f"sqlite://{self.root / '.ledgerflow' / 'ledger.db'}", "tester")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def _append(metadata: EmbeddedMetadata, events: list[events_pb2.Event]) -> None:
    # 500 a batch: a batch over more than 500 streams fails on SQLite ("too many terms
    # in compound SELECT"), which a local run never asks of it.
    for start in range(0, len(events), 500):
        metadata.append(ledger_service_pb2.AppendRequest(events=events[start : start + 500]))


K = records_pb2.StepKind
FOREACH_GRAPH = records_pb2.FlowGraph(steps=[
    records_pb2.StepSpec(name="start", kind=K.STEP_KIND_FOREACH, next_steps=["work"],
                         max_num_splits=10_000),
    records_pb2.StepSpec(name="work", kind=K.STEP_KIND_LINEAR, next_steps=["join"]),
    records_pb2.StepSpec(name="join", kind=K.STEP_KIND_JOIN, next_steps=["end"],
                         in_steps=["work"], closes="start"),
    records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
])  # fmt: skip


def _foreach_run(
    flow: str, run: str, planned: int, begun: int, succeeded: int, failed: int = 0
) -> list[events_pb2.Event]:
    """A local run of start (a foreach of `planned` items) -> work -> join -> end, as far
    as `begun` work tasks begun, `succeeded` of them succeeded and `failed` failed."""
    split = ev.task_succeeded(flow, run, "start", "1")
    split.task_succeeded.num_splits = planned
    found = [ev.run_started(flow, run, "tester", declared_graph=FOREACH_GRAPH),
             ev.task_started(flow, run, "start", "1"), split]  # fmt: skip
    for index in range(begun):
        task = str(index + 2)
        found.append(ev.task_started(flow, run, "work", task))
        if index < succeeded:
            found.append(ev.task_succeeded(flow, run, "work", task))
        elif index < succeeded + failed:
            found.append(ev.task_failed(flow, run, "work", task))
    return found


def _failed_pixels(page: Page) -> int:
    """How many of the timeline canvas's pixels are the failed color."""
    return int(page.evaluate(
        """([r, g, b]) => {
          const canvas = document.querySelector("[data-timeline] canvas");
          const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let found = 0;
          for (let i = 0; i < data.length; i += 4)
            if (data[i] === r && data[i + 1] === g && data[i + 2] === b) found += 1;
          return found;
        }""",
        list(FAILED_RGB),
    ))  # fmt: skip


# ---- the run page ---------------------------------------------------------------------

FOREACH_FAILING = """
    import time
    from ledgerflow import FlowSpec, step

    class TimedFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(6))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            time.sleep(0.4 if self.input == 5 else 0.05)
            if self.input == 5:  # the last: every other task has begun by then
                raise ValueError("item 5 is bad")
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    TimedFlow()
"""


def test_the_timeline_draws_every_task_with_an_axis_durations_and_failures(
    home: Home, page: Page
) -> None:
    flow = home.flow("timed_flow", FOREACH_FAILING)
    pathspec = home.run(flow, "--max-workers", "2", check=False)
    with serve_ui(home.env) as address:
        page.goto(f"{address}/runs/{pathspec}")
        canvas = page.locator("[data-timeline] canvas")
        # start and the six work tasks, the failed one among them.
        expect(canvas).to_have_attribute("data-bars", "7")
        ticks = (canvas.get_attribute("data-ticks") or "").split("|")
        assert ticks[0] == "0 s" and len(ticks) >= 3, ticks
        assert all(tick.endswith(" s") for tick in ticks), ticks
        assert _failed_pixels(page) > 20  # drawn, in the failed color
        expect(page.locator(".timeline-failed a")).to_have_text("work/7")
        # Pointing at the failed bar names its task, its status and its duration.
        canvas.scroll_into_view_if_needed()
        bar = page.evaluate(
            """() => {
              const canvas = document.querySelector("[data-timeline] canvas");
              const {data, bars} = canvas.timeline;
              const [x, y, w, h] = bars.find((b) => data.tasks[b[4]][4] === 3);
              const box = canvas.getBoundingClientRect();
              return [box.left + x + w / 2, box.top + y + h / 2];
            }"""
        )
        page.mouse.move(bar[0], bar[1])
        tip = page.locator(".timeline-tip")
        expect(tip).to_be_visible()
        expect(tip).to_contain_text("work/7 · failed · ")
        assert " s · started at +" in (tip.text_content() or "")
        shot(page, "timeline-failed")
        page.mouse.click(bar[0], bar[1])
        expect(page).to_have_url(f"{address}/runs/{pathspec}/work/7")


def test_a_foreach_of_ten_thousand_tasks_draws_every_bar_fast(home: Home, page: Page) -> None:
    metadata = home.metadata()
    try:
        events = _foreach_run("Big", "1", 10_000, 10_000, 9_999, failed=1)
        _append(metadata, [*events, ev.run_finished("Big", "1", False)])
    finally:
        metadata.close()
    with serve_ui(home.env) as address:
        page.goto(f"{address}/runs/Big/1")  # the server's first page
        expect(page.locator("[data-timeline] canvas")).to_have_attribute("data-bars", "10001")
        began = time.perf_counter()
        page.goto(f"{address}/runs/Big/1")
        expect(page.locator("[data-timeline] canvas")).to_have_attribute("data-bars", "10001")
        took = time.perf_counter() - began
        # One canvas, not an element a task (bench/ui.py measures the 0.5 s goal).
        assert page.evaluate("() => document.querySelectorAll('*').length") < 400
        assert took < 3, took
        assert _failed_pixels(page) > 0
        expect(page.locator(".timeline-failed a")).to_have_text("work/10001")
        expect(page.locator('svg.dag a.step[data-step="work"] .counts')).to_have_text(
            "9999/10000 tasks · failed"
        )
        shot(page, "timeline-10000")


def test_a_foreach_counts_against_its_plan_tags_update_live_and_clones_are_marked(
    home: Home, page: Page
) -> None:
    metadata = home.metadata()
    try:
        _append(metadata, _foreach_run("Plan", "1", 200, 130, 127))
        with serve_ui(home.env) as address:
            page.goto(f"{address}/runs/Plan/1")
            work = page.locator('svg.dag a.step[data-step="work"] .counts')
            expect(work).to_have_text("127/200 tasks · running")
            expect(page.locator('tr[data-step="work"] .counts')).to_contain_text("of 200 planned")
            expect(page.locator("#run-tags")).to_have_text("none")
            page.wait_for_selector("#run[data-connected][data-updated]")
            page.evaluate("() => { window.notReloaded = true; }")
            added = events_pb2.TagsAdded(flow_name="Plan", run_id="1", tags=["fresh & new"])
            _append(metadata, [events_pb2.Event(event_id=ev.new_id(), tags_added=added)])
            expect(page.locator("#run-tags")).to_have_text("fresh & new", timeout=10_000)
            # More tasks begin: counted live, still against the plan.
            more = [ev.task_succeeded("Plan", "1", "work", str(i + 2)) for i in range(127, 130)]
            _append(metadata, more)
            expect(work).to_contain_text("130/200 tasks · ", timeout=10_000)
            assert page.evaluate("() => window.notReloaded === true")

            # A resumed run's clone says so, on the timeline and on its page.
            _append(metadata, [
                ev.run_started("Plan", "2", "tester", origin_run_id="1"),
                ev.task_cloned("Plan", "2", "start", "1", "Plan/1/start/1"),
                ev.task_started("Plan", "2", "work", "2"),
            ])  # fmt: skip
            page.goto(f"{address}/runs/Plan/2")
            cloned = page.evaluate(
                """() => {
                  const {data} = document.querySelector("[data-timeline] canvas").timeline;
                  return data.tasks.filter((t) => t[6]).map((t) => data.steps[t[0]] + "/" + t[1]);
                }"""
            )
            assert cloned == ["start/1"]
            page.goto(f"{address}/runs/Plan/2/start/1")
            expect(page.locator("#task-cloned")).to_have_text("cloned")
            expect(page.locator("#task")).to_contain_text("by resume from Plan/1/start/1")
    finally:
        metadata.close()


# ---- the task page --------------------------------------------------------------------

RETRIED_LOUD = """
    from ledgerflow import FlowSpec, current, retry, step

    class LoudFlow(FlowSpec):
        @retry(times=1, minutes_between_retries=0)
        @step
        def start(self):
            if current.retry_count == 0:
                for number in range(1, 1201):
                    print(f"line {number} of the first attempt")
                raise RuntimeError("the first attempt fails")
            print("the second attempt")
            self.next(self.end)

        @step
        def end(self):
            pass

    LoudFlow()
"""


def test_a_task_shows_every_attempts_logs_with_tail_search_and_download(
    home: Home, page: Page
) -> None:
    pathspec = home.run(home.flow("loud_flow", RETRIED_LOUD))
    with serve_ui(home.env) as address:
        page.goto(f"{address}/runs/{pathspec}/start/1")
        attempts = page.locator("details.attempt-logs")
        expect(attempts).to_have_count(2)
        # The latest attempt first, open; the first one closed until asked for.
        expect(attempts.first).to_have_attribute("data-attempt", "1")
        expect(attempts.first.locator('pre.log[data-stream="stdout"]')).to_have_text(
            "the second attempt"
        )
        first = page.locator('details.attempt-logs[data-attempt="0"]')
        expect(first.locator("pre.log")).to_have_count(2)
        first.locator("summary").click()
        stdout = first.locator('.log-viewer[data-stream="stdout"]')
        lines = stdout.locator("pre.log .ln")
        expect(lines).to_have_count(500)  # the tail
        assert lines.first.get_attribute("data-n") == "701"
        expect(lines.last).to_have_text("line 1200 of the first attempt")
        expect(stdout.locator(".log-count")).to_have_text("the last 500 of 1,200 lines")
        # In a box of its own: 1,200 lines do not make the page 1,200 lines long.
        box = stdout.locator("pre.log").bounding_box()
        assert box is not None and box.get("height", 0) < 700
        assert page.evaluate("() => document.documentElement.scrollHeight") < 4000
        # A line's number is drawn beside it, not part of its text.
        number = lines.first.evaluate("n => getComputedStyle(n, '::before').content")
        assert number == '"701"'

        stdout.get_by_role("button", name="Show all 1,200 lines").click()
        expect(lines).to_have_count(1200)
        assert lines.first.get_attribute("data-n") == "1"

        search = stdout.get_by_label("Search the stdout of attempt 0")
        search.fill("line 11")  # line 11, 110-119, 1100-1199
        expect(lines).to_have_count(1 + 10 + 100)
        expect(stdout.locator("pre.log mark")).to_have_count(111)
        expect(lines.first).to_have_attribute("data-n", "11")
        expect(stdout.locator(".log-count")).to_have_text('111 of 1,200 lines hold "line 11"')
        shot(page, "task-logs-search")

        # Each attempt's streams download as plain text files.
        with page.expect_download() as downloading:
            stdout.get_by_role("link", name="download").click()
        saved = downloading.value
        named = f"{pathspec.replace('/', '_')}_start_1.attempt0.stdout.log"
        assert saved.suggested_filename == named
        text = Path(saved.path()).read_text()
        assert text.splitlines() == [f"line {n} of the first attempt" for n in range(1, 1201)]
        answer = page.request.get(f"{address}/runs/{pathspec}/start/1/logs/0/stderr")
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert "RuntimeError: the first attempt fails" in answer.text()
        assert page.request.get(f"{address}/runs/{pathspec}/start/1/logs/7/stdout").status == 404


SLOW_FAILING = """
    import time
    from ledgerflow import FlowSpec, step

    class SlowFailFlow(FlowSpec):
        @step
        def start(self):
            self.items = [0, 1]
            self.next(self.work, foreach="items")

        @step
        def work(self):
            if self.input == 0:
                for number in range(1, 301):
                    print(f"output line {number}")
                raise ValueError("the first item fails")
            for beat in range(20):
                print(f"still working {beat}", flush=True)
                time.sleep(0.4)
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    SlowFailFlow()
"""


def test_a_failed_tasks_traceback_stays_open_while_the_run_goes_on(
    home: Home, page: Page, browser: Browser
) -> None:
    flow = home.flow("slow_fail_flow", SLOW_FAILING)
    running = home.start(flow, "--max-workers", "2")
    try:
        assert running.stdout is not None
        pathspec = _pathspec(running.stdout.readline())
        with serve_ui(home.env) as address:
            failed = f"{address}/runs/{pathspec}/work/2"
            for _ in range(100):  # until the failed task's page is there
                if page.goto(failed).status == 200 and page.locator("details.traceback").count():
                    break
                time.sleep(0.2)
            live = page.locator("#task")
            page.wait_for_selector("#task[data-connected][data-updated]")
            page.evaluate("() => { window.notReloaded = true; }")
            traceback = page.locator("details.traceback")
            traceback.locator("summary").click()
            expect(traceback).to_have_attribute("open", "")
            expect(traceback.locator("pre")).to_contain_text("ValueError: the first item fails")
            log = page.locator('pre.log[data-stream="stdout"]').first
            log.evaluate("n => { n.scrollTop = 120; }")
            # The run goes on: the page hears of it (more than once) and stays as it was.
            # A failed task's copy no longer changes, and one that did not change is not
            # swapped in: marked stale, each is, so that what is kept is kept by the swap.
            stale = "() => { document.querySelector('#task').lastHTML = 'stale'; }"
            updated = live.get_attribute("data-updated")
            for _ in range(3):
                page.evaluate(stale)
                expect(live).not_to_have_attribute("data-updated", updated or "", timeout=15_000)
                updated = live.get_attribute("data-updated")
                assert page.evaluate("() => document.querySelector('#task').lastHTML") != "stale"
            expect(traceback).to_have_attribute("open", "")
            assert log.evaluate("n => n.scrollTop") == 120
            assert page.evaluate("() => window.notReloaded === true")
            shot(page, "traceback-kept-open")

            # On the running task's page, its output redrawn as it comes keeps the search.
            other = browser.new_page()
            other.goto(f"{address}/runs/{pathspec}/work/3")
            viewer = other.locator('.log-viewer[data-stream="stdout"]').first
            viewer.get_by_role("searchbox").fill("working 1")
            expect(viewer.locator("pre.log .ln").first).to_contain_text("still working 1")
            before = int(viewer.locator("pre.log .ln").count())
            expect(viewer.locator("pre.log .ln")).not_to_have_count(before, timeout=15_000)
            expect(viewer.get_by_role("searchbox")).to_have_value("working 1")
            texts = viewer.locator("pre.log .ln").all_text_contents()
            assert texts and all("working 1" in t for t in texts), texts
            other.close()
    finally:
        running.wait(120)


# ---- artifacts ------------------------------------------------------------------------

ARTIFACTS = """
    import os, struct, zlib
    import pandas as pd
    from ledgerflow import FlowSpec, step

    def png(width, height):
        rows = b"".join(b"\\x00" + bytes([200, 30, 30]) * width for _ in range(height))
        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + os.environ["MARKER"],))

    class ArtifactsFlow(FlowSpec):
        @step
        def start(self):
            self.blob = bytes(range(256)) * 40
            self.frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "rain": [1.5, 0.2, 3.1]})
            self.long_text = "abc" * 100_000
            self.picture = png(40, 20)
            self.settings = {"depth": 3, "names": ["a", "b"]}
            self.next(self.end)

        @step
        def end(self):
            self.evil = Evil()

    ArtifactsFlow()
"""


def test_artifacts_preview_and_download_in_usable_forms(home: Home, page: Page) -> None:
    marker = home.root / "pwned"
    home.env["MARKER"] = str(marker)
    pathspec = home.run(home.flow("artifacts_flow", ARTIFACTS))
    with serve_ui(home.env) as address:
        page.goto(f"{address}/runs/{pathspec}/start/1")
        row = page.locator
        # A 10 kB bytes value wraps in its cell: the page is no wider than the window.
        expect(row('tr[data-artifact="blob"] .preview')).to_contain_text("b'\\x00\\x01")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
        # A frame's preview keeps its lines.
        frame = row('tr[data-artifact="frame"] .preview')
        shown = ["0  Oslo   1.5", "1  Lima   0.2", "2  Pune   3.1"]
        assert frame.inner_text().splitlines()[1:] == shown
        # Sizes are the values', not the compressed bytes stored.
        size = row('tr[data-artifact="long_text"] .size')
        assert int(size.get_attribute("data-bytes") or 0) > 300_000
        expect(size).to_have_text("293.0 KiB")
        assert "(compressed)" in (size.get_attribute("title") or "")
        # An image's bytes show as the image.
        image = row('tr[data-artifact="picture"] img.preview-image')
        expect(image).to_be_visible()
        assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [40, 20]
        shot(page, "task-artifacts")

        def fetched(name: str, form: str) -> tuple[bytes, dict[str, str]]:
            link = row(f'tr[data-artifact="{name}"] a[data-format="{form}"]')
            answer = page.request.get(address + (link.get_attribute("href") or ""))
            assert answer.ok, answer.text()
            return answer.body(), answer.headers

        body, headers = fetched("settings", "json")
        assert json.loads(body) == {"depth": 3, "names": ["a", "b"]}
        assert headers["content-disposition"] == 'attachment; filename="settings.json"'
        body, _ = fetched("frame", "csv")
        rows = [",city,rain", "0,Oslo,1.5", "1,Lima,0.2", "2,Pune,3.1"]
        assert body.decode().splitlines() == rows
        body, headers = fetched("blob", "bytes")
        assert body == bytes(range(256)) * 40
        body, headers = fetched("picture", "bytes")
        assert body.startswith(b"\x89PNG") and headers["content-type"] == "image/png"
        assert headers["content-disposition"] == 'attachment; filename="picture.png"'
        with page.expect_download() as downloading:
            row('tr[data-artifact="long_text"] a[data-format="json"]').click()
        assert json.loads(Path(downloading.value.path()).read_text()) == "abc" * 100_000

        # A value that would run code when loaded is neither loaded nor run by the UI.
        page.goto(f"{address}/runs/{pathspec}/end/2")
        evil = row('tr[data-artifact="evil"]')
        expect(evil.locator(".preview")).to_contain_text("preview not available")
        expect(evil.locator("a[data-format]")).to_have_count(1)
        body, headers = fetched("evil", "pickle")
        assert headers["content-disposition"] == 'attachment; filename="evil.pkl"'
        assert b"system" in body  # the pickle as it is, for the reader to judge
        refused = page.request.get(f"{address}/runs/{pathspec}/end/2/artifacts/evil?format=json")
        assert refused.status == 400
        assert not marker.exists()
