"""A watch of an embedded ledger (SQLite tells no other process of its appends) reads
again as soon as the ledger's files change, not only every watch_poll_seconds: what
the UI's live pages and `events tail` follow on a laptop."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.v1 import ledger_service_pb2
from ledgerflow_service import LedgerApplication, open_database
from waiting import wait_for

ANOTHER_PROCESS_APPENDS = """
import sys
sys.path.insert(0, sys.argv[2])
import events as ev
from ledgerflow.metadata_client import EmbeddedMetadata
from ledgerflow.v1 import ledger_service_pb2
metadata = EmbeddedMetadata(sys.argv[1], "bob")
metadata.append(ledger_service_pb2.AppendRequest(events=[ev.run_started("Flow", "1")]))
metadata.close()
"""


def test_a_watch_wakes_when_another_process_appends(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'ledger.db'}"
    # Polled alone, the watch would read again only after a minute.
    app = LedgerApplication(open_database(url), watch_poll_seconds=60)
    watcher = EmbeddedMetadata(url, "alice", app=app)
    stream = watcher.watch_events(ledger_service_pb2.WatchEventsRequest(from_head=True))
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(next(stream)), daemon=True)
    reader.start()
    tests = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", ANOTHER_PROCESS_APPENDS, url, str(tests)], check=True)
    wait_for(lambda: bool(seen), 20, "the watch to see the other process's append")
    assert seen[0].run_started.run_id == "1" and seen[0].actor == "bob"
    reader.join(5)
    stream.close()
    app.close()
