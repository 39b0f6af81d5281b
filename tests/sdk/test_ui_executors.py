"""`ledgerflow ui`'s executors page: the executors that asked a real gRPC service (on
loopback, SQLite) for work, their capacity and the task attempts they run, in Debian's
chromium driven by Playwright (the fixtures of test_ui.py), and read over plain HTTP."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import events as ev
import pytest
from ledgerflow.v1 import events_pb2, executor_service_pb2, ledger_service_pb2
from ledgerflow_service import LedgerApplication, Principal, open_database
from ledgerflow_service.api.server import build_server
from playwright.sync_api import Page, expect
from test_ui import page as page  # a fixture
from test_ui import serve_ui, shot

pytestmark = pytest.mark.slow

ALICE = Principal("alice", authenticated=False)
HOSTILE = '<img src=x onerror="alert(1)">'
GRAPH = ev.one_step_graph()


def _lease(app: LedgerApplication, executor_id: str, cpu: float) -> Any:
    capacity = executor_service_pb2.Capacity(cpu=cpu, memory_mb=2048)
    request = executor_service_pb2.LeaseTaskRequest(
        executor_id=executor_id, free=capacity, total=capacity, queues=["", "big"]
    )
    return app.lease_task(request, ALICE)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[LedgerApplication, str]]:
    """A service whose executors ask it for work in this process: (its app, the
    environment's LEDGERFLOW_SERVICE)."""
    app = LedgerApplication(open_database(f"sqlite://{tmp_path / 'ledger.db'}"))
    server, port = build_server(app, port=0)
    try:
        yield app, f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait()
        app.close()


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    return {**env, "LEDGERFLOW_HOME": str(tmp_path / ".ledgerflow"), "USERNAME": "alice", **more}


def test_the_executors_page_shows_each_executor_and_what_it_runs(
    service: tuple[LedgerApplication, str], tmp_path: Path, page: Page
) -> None:
    app, address = service
    app.append(ledger_service_pb2.AppendRequest(
        events=[ev.run_started("Remote", "1", graph=GRAPH)]), ALICE)  # fmt: skip
    leased = _lease(app, "gpu-box-1", 4)
    started = events_pb2.TaskStarted(task=ev.ref("Remote", "1", "start", "1"), attempt=0,
                                     lease_id=leased.lease_id)  # fmt: skip
    app.append(ledger_service_pb2.AppendRequest(
        events=[events_pb2.Event(event_id=ev.new_id(), task_started=started)]), ALICE)  # fmt: skip
    _lease(app, HOSTILE, 2)  # idle: nothing left to lease

    with serve_ui(_env(tmp_path, LEDGERFLOW_SERVICE=address)) as ui:
        page.goto(ui)
        page.get_by_role("navigation", name="main").get_by_role("link", name="Executors").click()
        expect(page).to_have_title("Executors · Ledgerflow")
        busy = page.locator('tr[data-executor="gpu-box-1"]')
        expect(busy.locator("td.cpu")).to_have_text("3/4")  # the task took 1 of 4
        expect(busy.locator("td.memory")).to_have_text("1536/2048")
        expect(busy.locator("td.queues")).to_have_text("default, big")
        expect(busy.locator('[data-task="Remote/1/start/1"]')).to_contain_text("attempt 0 running")
        idle = page.locator("tr[data-executor]").filter(has_text="onerror")
        expect(idle.locator("td").first).to_have_text(HOSTILE)  # text, not an element
        expect(idle.locator("td.tasks")).to_have_text("idle")
        shot(page, "executors")
        busy.get_by_role("link", name="Remote/1/start/1").click()
        expect(page).to_have_url(f"{ui}/runs/Remote/1/start/1")

        with urllib.request.urlopen(f"{ui}/executors", timeout=30) as answer:
            text = answer.read().decode()
        assert HOSTILE not in text and "&lt;img src=x" in text
        assert "in the last 60 s" in text


def test_the_queue_shows_each_open_task_and_why_it_waits(
    service: tuple[LedgerApplication, str], tmp_path: Path, page: Page
) -> None:
    app, address = service
    wide = ev.one_step_graph(gpu=4)
    app.append(ledger_service_pb2.AppendRequest(
        events=[ev.run_started("Remote", "1", graph=GRAPH),
                ev.run_started("Wide", "2", graph=wide)]), ALICE)  # fmt: skip
    _lease(app, "cpu-box", 4)  # takes Remote's start; none offers Wide's 4 GPUs

    with serve_ui(_env(tmp_path, LEDGERFLOW_SERVICE=address)) as ui:
        page.goto(f"{ui}/executors")
        leased = page.locator('tr[data-queued="Remote/1/start/1"]')
        expect(leased.locator("td.state")).to_have_text("leased")
        expect(leased).to_contain_text("cpu-box")
        waiting = page.locator('tr[data-queued="Wide/2/start/1"]')
        expect(waiting.locator("td.state")).to_have_text("queued")
        expect(waiting).to_contain_text("gpu=4")
        expect(waiting.locator("td.reason")).to_have_text("waiting: no executor offers gpu=4")
        waiting.get_by_role("link", name="Wide/2/start/1").click()
        expect(page).to_have_url(f"{ui}/runs/Wide/2/start/1")


def test_the_executors_page_of_an_embedded_ledger_says_where_executors_are(
    tmp_path: Path,
) -> None:
    with serve_ui(_env(tmp_path)) as ui, urllib.request.urlopen(f"{ui}/executors") as answer:
        text = answer.read().decode()
    assert "which no executor asks for work" in text
    assert "ledgerflow ui --service HOST:PORT" in text
    assert '<a href="/executors">Executors</a>' in text
