"""`ledgerflow ui` in a real browser: Debian's chromium, driven headless by Playwright,
against the UI server (a process of its own) over an embedded ledger with real runs.
Screenshots go to build/ui-screenshots/."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ledgerflow.engine.schedules import schedule_message
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.ui.model import STATUS, deployment_views, trigger_kind
from ledgerflow.v1 import deployment_service_pb2 as deploy_api
from ledgerflow.v1 import events_pb2, query_service_pb2, records_pb2
from playwright.sync_api import Browser, Page, Route, expect

pytestmark = pytest.mark.slow

FLOWS = Path(__file__).parent / "flows"
SCREENSHOTS = Path(__file__).parents[2] / "build" / "ui-screenshots"


@dataclass
class Ledger:
    home: Path
    env: dict[str, str]

    def run(self, flow: str, *args: str) -> str:
        """Runs tests/sdk/flows/FLOW.py; its run's pathspec."""
        result = subprocess.run([sys.executable, str(FLOWS / f"{flow}.py"), "run", *args],
                                env=self.env, cwd=self.home, capture_output=True, text=True,
                                timeout=120, check=True)  # fmt: skip
        return _pathspec(result.stdout)

    def start(self, flow: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(FLOWS / f"{flow}.py"), "run", *args],
                                env=self.env, cwd=self.home, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _pathspec(output: str) -> str:
    found = re.search(r"^(\w+) run (\d+) by", output, re.MULTILINE)
    assert found, output
    return f"{found[1]}/{found[2]}"


@contextmanager
def serve_ui(env: dict[str, str], *args: str) -> Iterator[str]:
    """`ledgerflow ui --port 0`; yields its address."""
    command = [sys.executable, "-m", "ledgerflow.cli", "ui", "--port", "0", *args]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        said = []
        while not (found := re.search(r"http://[\d.:]+", said[-1] if said else "")):
            said.append(process.stderr.readline())
            assert said[-1], "".join(said)  # the server exited without listening
        yield found[0]
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(LEDGERFLOW_HOME=str(tmp_path / ".ledgerflow"),
               USERNAME="tester")  # fmt: skip
    return Ledger(tmp_path, env)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page()
    yield opened
    opened.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_runs_a_run_its_graph_a_task_and_the_audit(ledger: Ledger, page: Page) -> None:
    branches = ledger.run("branch_flow")
    run_id = branches.split("/")[1]
    tag = [sys.executable, str(FLOWS / "branch_flow.py"), "tag", "add", "--run-id", run_id, "good"]
    subprocess.run(tag, env=ledger.env, cwd=ledger.home, check=True, capture_output=True)
    sleepy = ledger.run("sleepy_flow", "--seconds", "0")
    with serve_ui(ledger.env) as address:
        page.goto(address)
        expect(page.locator(f'tr[data-run="{branches}"]')).to_be_visible()
        expect(page.locator(f'tr[data-run="{sleepy}"]')).to_be_visible()
        shot(page, "runs")
        page.get_by_label("Flow").fill("MyFlow")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tr[data-run]")).to_have_count(1)
        expect(page.locator(f'tr[data-run="{branches}"] .badge')).to_have_text("succeeded")

        page.get_by_role("link", name=branches).click()
        steps = page.locator("svg.dag a.step")
        expect(steps).to_have_count(5)
        names = sorted(steps.evaluate_all("nodes => nodes.map(n => n.dataset.step)"))
        assert names == ["a", "b", "end", "join", "start"]
        expect(page.locator('svg.dag a.step[data-state="succeeded"]')).to_have_count(5)
        for name, marked in (("start", "start (split)"), ("join", "join (join)")):
            expect(page.locator(f'svg.dag a.step[data-step="{name}"] .name')).to_have_text(marked)
        page.get_by_text("Each change of the run's tags").click()
        expect(page.locator(".tag-history")).to_contain_text("added good")
        shot(page, "run")

        page.goto(f"{address}/runs/{branches}/end/5")
        expect(page.locator('pre.log[data-stream="stdout"]')).to_contain_text("out is")
        expect(page.locator('tr[data-artifact="out"] .preview')).to_be_visible()
        shot(page, "task")

        page.goto(f"{address}/runs/{branches}/audit")
        expect(page.locator("table.events tbody tr").first).to_contain_text("RunStarted")
        expect(page.locator("table.events")).to_contain_text("RunFinished")
        # The third event's time: the run had begun, and was running.
        third = page.locator("table.events tbody tr").nth(2).locator("td").nth(1)
        page.get_by_label("The run as it was at").fill(third.text_content() or "")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#past")).to_contain_text("As of")
        expect(page.locator("section[aria-labelledby=past]")).to_contain_text("running")
        shot(page, "audit")


def test_a_running_step_turns_succeeded_without_a_reload(
    ledger: Ledger, page: Page, browser: Browser
) -> None:
    ledger.run("sleepy_flow", "--seconds", "0")  # the ledger exists before the UI opens it
    with serve_ui(ledger.env) as address:
        page.goto(address)
        page.evaluate("() => { window.notReloaded = true; }")
        expect(page.locator("tr[data-run]")).to_have_count(1)
        running = ledger.start("sleepy_flow", "--seconds", "8")
        try:
            assert running.stdout is not None
            pathspec = _pathspec(running.stdout.readline())
            # The runs list learns of the new run from the watch stream.
            expect(page.locator(f'tr[data-run="{pathspec}"]')).to_be_visible(timeout=20_000)
            assert page.evaluate("() => window.notReloaded === true")

            page.goto(f"{address}/runs/{pathspec}")
            page.evaluate("() => { window.notReloaded = true; }")
            nap = page.locator('svg.dag a.step[data-step="nap"]')
            expect(nap).to_have_attribute("data-state", "running", timeout=20_000)
            # The run declared its graph: the step not reached yet is drawn, waiting.
            end = page.locator('svg.dag .step[data-step="end"]')
            expect(end).to_have_attribute("data-state", "waiting")
            shot(page, "live-running")

            # The running task's output, followed on its page as it is recorded.
            task_page = browser.new_page()
            task_page.goto(f"{address}/runs/{pathspec}/nap/2")
            task_page.evaluate("() => { window.notReloaded = true; }")
            stdout = task_page.locator('pre.log[data-stream="stdout"]')
            expect(stdout).to_have_text("napping for 8.0 s", timeout=10_000)
            expect(task_page.locator("#task-status")).to_have_text("running")
            assert task_page.evaluate("() => window.notReloaded === true")
            shot(task_page, "live-task-output")
            task_page.close()

            expect(nap).to_have_attribute("data-state", "succeeded", timeout=30_000)
            expect(end).to_have_attribute("data-state", "succeeded")
            expect(page.locator("#run-status")).to_have_text("succeeded", timeout=10_000)
            assert page.evaluate("() => window.notReloaded === true")  # updated in place
            shot(page, "live-succeeded")
        finally:
            running.wait(60)


def test_a_change_before_the_live_stream_opens_is_not_missed(ledger: Ledger, page: Page) -> None:
    sleepy = ledger.run("sleepy_flow", "--seconds", "0")
    tag = [sys.executable, str(FLOWS / "sleepy_flow.py"), "tag", "add", "--run-id",
           sleepy.split("/")[1], "late"]  # fmt: skip

    def tag_then_open(route: Route) -> None:
        """The page is rendered; the run changes before its live stream opens."""
        subprocess.run(tag, env=ledger.env, cwd=ledger.home, check=True, capture_output=True)
        route.continue_()

    with serve_ui(ledger.env) as address:
        page.route("**/live?*", tag_then_open)
        page.goto(address)
        expect(page.locator(f'tr[data-run="{sleepy}"]')).to_contain_text("late")


def test_bad_input_shows_a_clear_page(ledger: Ledger, page: Page) -> None:
    ledger.run("sleepy_flow", "--seconds", "0")
    with serve_ui(ledger.env) as address:
        answer = page.goto(f"{address}/runs/NoSuchFlow/123")
        assert answer is not None and answer.status == 404
        expect(page.locator("h1")).to_have_text("Not found")
        expect(page.locator(".error-message")).to_contain_text("NoSuchFlow")
        assert "Traceback" not in page.content()
        shot(page, "not-found")
    with serve_ui(ledger.env, "--service", "127.0.0.1:1") as address:
        answer = page.goto(address)
        assert answer is not None and answer.status == 503
        expect(page.locator("h1")).to_have_text("The metadata service cannot be reached")
        assert "Traceback" not in page.content()
        shot(page, "service-down")


# ---- deployments ------------------------------------------------------------------------

HOSTILE = '<img src=x onerror="alert(1)">&amp;'
# A flow without @project deploys under its own name; a project's under project.branch.Flow.
NIGHTLY = "SleepyFlow"
ONDEMAND = "ondemand.user.tester.SleepyFlow"


def _deployment(name: str, **fields: Any) -> events_pb2.DeploymentCreated:
    """A deployment of sleepy_flow (SleepyFlow: start -> nap -> end), as `deploy` records
    one; the runs it fires are only queued (no executor here), which is all a page needs."""
    kinds = records_pb2.StepKind
    graph = records_pb2.FlowGraph(steps=[
        records_pb2.StepSpec(name="start", kind=kinds.STEP_KIND_LINEAR, next_steps=["nap"]),
        records_pb2.StepSpec(name="nap", kind=kinds.STEP_KIND_LINEAR, next_steps=["end"]),
        records_pb2.StepSpec(name="end", kind=kinds.STEP_KIND_END),
    ])  # fmt: skip
    return events_pb2.DeploymentCreated(
        name=name, flow_name="SleepyFlow", code_package_key="package-key", graph=graph,
        parameters={"seconds": "0"}, user="tester", system_tags=[f"production:{name}"],
        **fields,
    )  # fmt: skip


def _minute(stamp: Any) -> str:
    return f"{stamp.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M} UTC"


def test_deployments_page_shows_schedules_and_what_fired_each_run(
    ledger: Ledger, page: Page
) -> None:
    plain = ledger.run("sleepy_flow", "--seconds", "0")  # the ledger exists; no deployment
    with serve_ui(ledger.env) as address:
        page.goto(address)
        page.get_by_role("navigation").get_by_role("link", name="Deployments").click()
        expect(page.locator("h1")).to_have_text("Deployments")
        expect(page.locator(".empty")).to_contain_text("python flow.py deploy")
        shot(page, "deployments-empty")

        metadata = EmbeddedMetadata(f"sqlite://{ledger.home / '.ledgerflow' / 'ledger.db'}",
                                    "tester")  # fmt: skip
        try:
            nightly = metadata.deploy(
                _deployment(NIGHTLY, schedule=schedule_message(cron="0 3 * * *"))
            )
            metadata.deploy(_deployment(ONDEMAND, project="ondemand", branch="user.tester"))
            metadata.pause_deployment(ONDEMAND, "not now")
            # The schedule comes due (the service's scheduler would call this), then a
            # backfill of a past day, then someone triggers it.
            due = nightly.next_run_at
            metadata.app.deployments.fire_due(due.ToMicroseconds())
            backfill = deploy_api.BackfillDeploymentRequest(name=NIGHTLY)
            backfill.since.FromDatetime(datetime(2026, 1, 1, 3, tzinfo=UTC))
            backfill.until.FromDatetime(datetime(2026, 1, 1, 3, tzinfo=UTC))
            assert len(metadata.backfill_deployment(backfill).run_ids) == 1
            manual = metadata.trigger_deployment(NIGHTLY)
            # Deployed after the firing: its own due time may come before the nightly's
            # (Monday 04:30 UTC does, from Monday 03:00 UTC), and it is to show no run.
            helsinki = "proj.test.tester.SleepyFlow"
            metadata.deploy(_deployment(
                helsinki, project="proj", branch="test.tester", tags=[HOSTILE],
                schedule=schedule_message(cron="30 6 * * 1", timezone="Europe/Helsinki"),
            ))  # fmt: skip
            runs = {trigger_kind(r.trigger): r for r in _runs_of(metadata, NIGHTLY)}
            assert set(runs) == {"schedule", "backfill", "manual"}

            page.reload()
            sections = page.locator("section.deployment")
            names = sections.evaluate_all("nodes => nodes.map(n => n.dataset.deployment)")
            assert names == [NIGHTLY, ONDEMAND, helsinki]
            section = page.locator(f'[data-deployment="{NIGHTLY}"]')
            expect(section.locator("h2")).to_have_text(f"{NIGHTLY} active")
            expect(section).to_contain_text("SleepyFlow, version 1")
            expect(section.locator(".schedule")).to_have_text("0 3 * * * (UTC)")
            after = metadata.deployment(NIGHTLY).next_run_at
            assert after.ToMicroseconds() > due.ToMicroseconds()  # moved on once fired
            expect(section.locator(".next-run")).to_have_text(_minute(after))
            rows = section.locator("tbody tr[data-run]")
            expect(rows).to_have_count(3)  # newest first: manual, backfill, schedule
            expect(rows.locator(".trigger")).to_have_text([
                re.compile(r"^Triggered manually at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"),
                "Backfill for 2026-01-01 03:00 UTC",
                f"Fired by the schedule for {_minute(due)}",
            ])  # fmt: skip
            status = STATUS[runs["schedule"].status]
            expect(rows.nth(2).locator(".badge")).to_have_text(status)
            expect(rows.first.locator("a")).to_have_text(f"SleepyFlow/{manual.run_id}")
            expect(page.locator(f'tr[data-run="{plain}"]')).to_have_count(0)  # not deployed

            other = page.locator(f'[data-deployment="{helsinki}"]')
            expect(other).to_contain_text("proj, branch test.tester")
            expect(other.locator(".schedule")).to_have_text("30 6 * * 1 (Europe/Helsinki)")
            expect(other.locator(".next-run")).to_contain_text(re.compile(r"06:30 EES?T\)$"))
            expect(other.locator(".tags")).to_have_text(HOSTILE)  # text, not markup
            expect(page.locator("section.deployment img")).to_have_count(0)
            expect(other.locator("tbody")).to_have_text("No runs yet.")
            paused = page.locator(f'[data-deployment="{ONDEMAND}"]')
            expect(paused.locator("h2")).to_have_text(f"{ONDEMAND} paused")
            expect(paused.locator(".schedule")).to_contain_text("only when triggered")
            expect(paused.locator(".next-run")).to_have_text("none while paused")
            shot(page, "deployments")

            # A run's page says what fired it, linked to its deployment's section.
            rows.nth(2).get_by_role("link").click()
            fired = page.locator(".trigger")
            expect(fired).to_have_text(
                f"Fired by the schedule of deployment {NIGHTLY} (version 1) for {_minute(due)}"
            )
            shot(page, "run-fired-by-schedule")
            fired.get_by_role("link", name=NIGHTLY, exact=True).click()
            expect(page).to_have_url(f"{address}/deployments#deployment-{NIGHTLY}")
            page.goto(f"{address}/runs/{runs['backfill'].pathspec}")
            expect(page.locator(".trigger")).to_have_text(
                f"Backfill of deployment {NIGHTLY} (version 1) for 2026-01-01 03:00 UTC"
            )
            page.goto(f"{address}/runs/SleepyFlow/{manual.run_id}")
            expect(page.locator(".trigger")).to_contain_text(
                f"Triggered manually from deployment {NIGHTLY} (version 1) at "
            )
            page.goto(f"{address}/runs/{plain}")  # a run started with `run`: no trigger
            expect(page.locator("h1")).to_have_text(plain)
            expect(page.locator(".trigger")).to_have_count(0)

            # At most five runs a deployment, read with one ListRuns each.
            for _ in range(4):
                metadata.trigger_deployment(NIGHTLY)
            page.goto(f"{address}/deployments")
            expect(page.locator(f'[data-deployment="{NIGHTLY}"] tbody tr')).to_have_count(5)
            before = metadata.calls
            views = deployment_views(metadata)
            assert metadata.calls - before == 1 + len(views) == 4
        finally:
            metadata.close()


def _runs_of(metadata: EmbeddedMetadata, deployment: str) -> list[records_pb2.Run]:
    request = query_service_pb2.ListRunsRequest(tags=[f"deployment:{deployment}"])
    request.page.page_size = 100
    return list(metadata.list_runs(request).runs)


def test_deployments_page_shows_triggers_notifications_and_health(
    ledger: Ledger, page: Page
) -> None:
    from tests.service.test_triggers import work_off

    ledger.run("sleepy_flow", "--seconds", "0")  # the ledger exists
    metadata = EmbeddedMetadata(f"sqlite://{ledger.home / '.ledgerflow' / 'ledger.db'}",
                                "tester")  # fmt: skip
    after = "chain.test.tester.SleepyFlow"
    hook = "http://127.0.0.1:9/hook"
    try:
        metadata.deploy(_deployment(NIGHTLY))
        metadata.deploy(_deployment(
            after, project="chain", branch="test.tester", trigger_on_finish=[NIGHTLY],
            notify=[records_pb2.Notify(on=["failure"], webhook=hook)],
        ))  # fmt: skip
        good = metadata.trigger_deployment(NIGHTLY)
        work_off(metadata.app)  # the upstream succeeds, so the downstream runs too
        bad = metadata.trigger_deployment(NIGHTLY)
        work_off(metadata.app, failing="SleepyFlow")  # fails: starts nothing downstream
        (started,) = _runs_of(metadata, after)
        assert started.trigger.upstream_run == f"SleepyFlow/{good.run_id}"
    finally:
        metadata.close()
    with serve_ui(ledger.env) as address:
        page.goto(f"{address}/deployments")
        nightly = page.locator(f'[data-deployment="{NIGHTLY}"]')
        expect(nightly.locator(".health")).to_contain_text("2 finished, 1 failed (50%); median ")
        failure = nightly.locator(".last-failure")
        expect(failure).to_contain_text(f"SleepyFlow/{bad.run_id} at ")
        expect(failure).to_contain_text(": start: ValueError: bad")
        expect(failure).to_contain_text(f"resume --origin-run-id {bad.run_id}")
        waiting = page.locator(f'[data-deployment="{after}"]')
        expect(waiting.locator(".triggers")).to_have_text(f"when a run of {NIGHTLY} succeeds")
        expect(waiting.locator(".notify")).to_have_text("on failure: POST http://127.0.0.1:9/…")
        expect(waiting.locator(".last-failure")).to_have_count(0)
        expect(waiting.locator("tbody .trigger")).to_have_text(
            f"Started when SleepyFlow/{good.run_id} succeeded"
        )
        shot(page, "deployments-triggers-health")
        page.goto(f"{address}/runs/{started.pathspec}")
        expect(page.locator(".trigger")).to_have_text(
            f"Started from deployment {after} (version 1) when SleepyFlow/{good.run_id} succeeded"
        )
