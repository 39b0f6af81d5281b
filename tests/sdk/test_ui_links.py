"""The web UI's links carry what they filter by, whatever characters it holds (the
real `ledgerflow ui` over an embedded ledger, read over HTTP: a link needs no browser)."""

from __future__ import annotations

import html
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

import events as ev
from ledgerflow.metadata_client import EmbeddedMetadata
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
