"""What the web UI's pages say, read without a browser: a link keeps what it filters by,
whatever characters it holds (the real `ledgerflow ui` over an embedded ledger, over
HTTP), and the run's graph fits a long step name in its box."""

from __future__ import annotations

import html
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

import events as ev
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.ui.dag import svg
from ledgerflow.ui.model import StepView
from ledgerflow.v1 import ledger_service_pb2
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
