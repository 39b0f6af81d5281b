"""Cards (@card, current.card, ledgerflow.cards): rendered by real runs on the embedded
ledger and through the service on Postgres, read back with get_cards and the flow's
`card` commands, shown by the UI in a sandbox, and drawn by a real browser offline."""

from __future__ import annotations

import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, FlowEnv
from ledgerflow import Flow
from ledgerflow.cards import Artifact, Image, Markdown, Table, VegaChart, card, get_cards
from ledgerflow.cards._page import render_page
from ledgerflow.cards.components import MAX_ROWS

sys.path.insert(0, str(FLOWS))
from card_flow import tiny_png


def test_a_run_records_its_cards_and_they_read_back(flow_env: FlowEnv, tmp_path: Path) -> None:
    flow_env.run("card_flow", "run")
    run = Flow("CardFlow").latest_run
    start = run["start"].task
    default, report = get_cards(start)
    assert (default.id, default.type, report.id, report.type) == (
        None,
        "default",
        "report",
        "blank",
    )
    assert [c.id for c in get_cards(start.pathspec, id="report")] == ["report"]

    page = default.html
    assert "Appended to the default card" in page
    assert "<td>alpha</td><td>0.5</td>" in page  # the parameters
    assert "<td>scores</td><td>list</td><td>[0.9, 0.8]</td>" in page  # artifacts, previewed
    assert "&lt;script&gt;alert" in page and "<script>alert" not in page  # values escaped
    assert 'data-step="start"' in page and 'data-step="end"' in page  # the graph
    assert '.dag [data-step="start"] rect' in page  # with this task's step marked
    assert "status</td><td>succeeded" in page

    page = report.get()
    assert "<h1>Scores</h1>" in page and "&lt;b&gt;raw html&lt;/b&gt;" in page
    assert "showing the first 1,000 of 10,000 rows" in page
    assert page.count("<tr><td>") == MAX_ROWS  # the rows shown
    assert 'src="data:image/png;base64,' in page and "a pixel" in page
    assert "vegaEmbed" in page and "connect-src 'none'" in page
    # Self-contained: nothing is loaded from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)

    assert "is not a card component" in start["append_error"].data
    assert "no @card with id 'nope' (ids: 'report')" in start["id_error"].data

    # A component that raised: the task succeeded, the card shows and records the error.
    a = run["a"].task
    assert a.successful
    (broken,) = get_cards(a)
    assert broken.error == "ValueError: this component cannot render"
    assert "before the broken one" in broken.html and "Broken failed to render" in broken.html
    assert get_cards(run["end"].task) == [] and run["end"].task["had_card"].data is False

    # The flow's `card` commands.
    listed = flow_env.run("card_flow", "card", "list", f"{run.id}/start/{start.id}").stdout
    assert re.search(r"^-\s+default\s+attempt 0", listed, re.M)
    assert re.search(r"^report\s+blank\s+attempt 0", listed, re.M)
    got = flow_env.run("card_flow", "card", "get", "start", "--id", "report").stdout
    assert got == report.html
    target = tmp_path / "card.html"
    flow_env.run("card_flow", "card", "get", f"{run.id}/start/{start.id}", str(target))
    assert target.read_text() == default.html
    viewed = flow_env.run("card_flow", "card", "view", "a", extra_env={"DISPLAY": ""})
    assert Path(viewed.stdout.strip()).read_text() == broken.html
    for args, said in [
        (["view", f"{run.id}/start/999"], f"no task at CardFlow/{run.id}/start/999"),
        (["view", f"{run.id}/end"], "has no cards (add @card to its step)"),
        (["get", "start", "--id", "zzz"], "has no card with id 'zzz' (it has: default card, "
                                          "id 'report' (blank))"),
        (["list", "1/2/3/4/5"], "use RUN_ID/STEP/TASK_ID"),
    ]:  # fmt: skip
        failed = flow_env.run("card_flow", "card", *args, check=False)
        assert failed.returncode != 0 and said in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr


def test_two_cards_with_one_id_are_refused_before_running(flow_env: FlowEnv) -> None:
    result = flow_env.run("duplicate_card_flow", "run", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "step 'start' has two @card with id 'report'" in result.stderr


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"id": "my report"}, "not a valid card id"),
        ({"id": "class"}, "not a valid card id"),
        ({"type": "fancy"}, "type 'fancy' is not one of default, blank"),
        ({"timeout": 0}, "timeout must be a positive"),
    ],
)
def test_bad_card_options_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        card(**options)  # type: ignore[arg-type]


def test_components_escape_what_they_show() -> None:
    html = Markdown("[x](javascript:alert(1)) <img src=x onerror=alert(1)>").render()
    assert "href=" not in html and "<img" not in html
    assert "&lt;b&gt;" in Table([["<b>"]], headers=["<i>"]).render()
    assert "&lt;i&gt;" in Table([["x"]], headers=["<i>"]).render()
    assert "&lt;script&gt;" in Artifact("<script>", name="<n>").render()
    spec = VegaChart({"title": "</script><script>alert(1)</script>"}).render()
    assert "</script><script>alert" not in spec


def test_tables_show_their_first_rows_and_say_so() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": range(5000), "b": ["x"] * 5000})
    html = Table.from_dataframe(frame).render()
    assert "<th>a</th><th>b</th>" in html and html.count("<tr>") == MAX_ROWS + 1
    assert "showing the first 1,000 of 5,000 rows" in html
    generated = Table([i] for i in range(MAX_ROWS + 5)).render()
    assert "of more than 1,000 rows" in generated
    wide = Table([list(range(150))]).render()
    assert "the first 100 of 150 columns" in wide
    assert "showing" not in Table([[1, 2]]).render()


def test_images_take_image_bytes_only() -> None:
    assert "data:image/png;base64," in Image(tiny_png()).render()
    with pytest.raises(TypeError, match="Image takes the image's bytes"):
        Image("plot.png")  # type: ignore[arg-type]
    page = render_page("t", "s", [Image(b"not an image"), Markdown("after")])
    assert page.error == "ValueError: the bytes are not a PNG, JPEG, GIF or WebP image"
    assert "after" in page.html


def test_a_matplotlib_figure_becomes_a_png() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    figure = plt.figure()
    plt.plot([1, 2], [3, 4])
    assert Image.from_matplotlib(figure).src.startswith(b"\x89PNG")


def test_a_slow_card_stops_at_its_timeout() -> None:
    class Slow(Markdown):
        def render(self) -> str:
            import time

            time.sleep(0.2)
            return super().render()

    page = render_page("t", "s", [Slow("one"), Slow("two"), Slow("three")], timeout=0.1)
    assert page.error.startswith("TimeoutError: rendering took longer than timeout=0.1s")
    assert "one" in page.html and "three" not in page.html


def test_a_vega_chart_draws_offline_in_a_browser(tmp_path: Path, browser: Any) -> None:
    """Debian's chromium (tests/sdk/conftest.py), with every request that leaves the
    page refused."""
    chart = VegaChart({
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "mark": "bar",
        "data": {"values": [{"a": "x", "b": 2}, {"a": "y", "b": 5}]},
        "encoding": {"x": {"field": "a", "type": "nominal"},
                     "y": {"field": "b", "type": "quantitative"}},
    })  # fmt: skip
    path = tmp_path / "card.html"
    path.write_text(render_page("chart", "s", [chart]).html)
    requests: list[str] = []
    page = browser.new_page()
    try:
        page.route("http*://**", lambda route: (requests.append(route.request.url), route.abort()))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_selector(".vega-target svg .mark-rect path", timeout=15_000)
        assert page.locator(".vega-target svg .mark-rect path").count() == 2
    finally:
        page.close()
    assert requests == [] and errors == []


def test_png_bytes_for_tests_are_real_pngs() -> None:
    data = tiny_png()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]


@pytest.mark.slow
def test_the_ui_shows_cards_in_a_sandbox(tmp_path: Path) -> None:
    """The task page frames each card; the card's own address serves it as a sandbox
    that may not reach the network."""
    import os
    import urllib.error
    import urllib.request

    from test_ui import Ledger, serve_ui

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(LEDGERFLOW_HOME=str(tmp_path / ".ledgerflow"),
               USERNAME="tester")  # fmt: skip
    pathspec = Ledger(tmp_path, env).run("card_flow")
    with serve_ui(env) as address:
        task_page = urllib.request.urlopen(f"{address}/runs/{pathspec}/start/1").read().decode()
        frames = re.findall(r"<iframe[^>]*>", task_page)
        assert len(frames) == 2 and all('sandbox="allow-scripts"' in f for f in frames)
        assert "allow-same-origin" not in task_page
        answer = urllib.request.urlopen(f"{address}/runs/{pathspec}/start/1/cards/1")
        policy = answer.headers["Content-Security-Policy"]
        assert policy.startswith("sandbox allow-scripts;") and "connect-src 'none'" in policy
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "showing the first 1,000 of 10,000 rows" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{address}/runs/{pathspec}/start/1/cards/7")
        assert missing.value.code == 404


def test_any_error_a_component_raises_can_be_recorded() -> None:
    """A card's error goes to the ledger with the task's outcome: one the ledger would
    refuse (a NUL character) or that cannot be read (its str() raises) must not stop
    the task's success from being recorded."""
    from ledgerflow.cards._page import render_page
    from ledgerflow.cards.components import CardComponent

    class Unreadable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message")

    class Raises(CardComponent):
        def __init__(self, error: Exception) -> None:
            self.error = error

        def render(self) -> str:
            raise self.error

    page = render_page("t", "s", [Raises(ValueError("bad\x00byte"))])
    assert page.error == "ValueError: bad\\x00byte" and "\x00" not in page.html
    page = render_page("t", "s", [Raises(Unreadable())])
    assert page.error == "Unreadable: <its message could not be read>"
