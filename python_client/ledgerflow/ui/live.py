"""Live pages from the ledger's watch stream, not polling: one thread per UI server
(started when the first live page opens) follows every event from the ledger's head and
hands a note of each to the pages listening (server-sent events), each to the runs it
shows ("*": every run)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.v1 import ledger_service_pb2

log = logging.getLogger("ledgerflow.ui")
ANY_RUN = "*"


class LiveFeed:
    def __init__(self, connect: Callable[[], MetadataClient]) -> None:
        self._connect = connect
        self._listeners: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def listen(self, run: str) -> asyncio.Queue[str]:
        """A queue of notes about `run`; the first page to listen starts the follower."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        with self._lock:
            self._listeners.setdefault(run, set()).add((asyncio.get_running_loop(), queue))
            if self._thread is None:
                self._thread = threading.Thread(target=self._follow, name="ui-live", daemon=True)
                self._thread.start()
        return queue

    def forget(self, run: str, queue: asyncio.Queue[str]) -> None:
        with self._lock:
            found = self._listeners.get(run, set())
            found.difference_update({entry for entry in found if entry[1] is queue})

    def _follow(self) -> None:
        while True:  # the service may restart: follow again from its head
            try:
                metadata = self._connect()
                request = ledger_service_pb2.WatchEventsRequest(from_head=True)
                for event in metadata.watch_events(request):
                    self._tell(event)
            except Exception as error:  # keep the UI live, whatever stopped the stream
                log.warning("the live feed stopped (%s); following again in 1 s", error)
                time.sleep(1)

    def _tell(self, event: Any) -> None:
        kind = event.WhichOneof("payload")
        payload = getattr(event, kind)
        ref = payload.task if hasattr(payload, "task") and payload.HasField("task") else payload
        run = f"{ref.flow_name}/{ref.run_id}"
        with self._lock:
            targets = [*self._listeners.get(run, ()), *self._listeners.get(ANY_RUN, ())]
        for loop, queue in targets:
            loop.call_soon_threadsafe(_offer, queue, f"{run} {kind}")


def _offer(queue: asyncio.Queue[str], note: str) -> None:
    if not queue.full():  # a page that is behind only needs to know something changed
        queue.put_nowait(note)
