"""Sending watch streams' responses from a few threads, without a thread hop per send.

grpc's non-blocking stream API gives each stream a `send` callback that blocks until
the message is accepted, which takes a moment while the client reads and for as long
as the client's flow-control window stays full when it does not. So sends cannot run
on the hub's event loop (one client that stops reading would stop every stream), and
handing each send to a thread pool and back (`run_in_executor`) cost ~150 µs a stream:
with 200 streams of everything, every append paid ~30 ms of threads passing the GIL
around before the appending thread got it back.

Instead each stream has an :class:`Outbox`: the loop puts responses in it and goes on;
a sender thread that finds it ready sends everything in it, one stream after another,
and the loop hears back only when a full outbox has room again or a stream's end has
gone out. A stream that asked for batches gets what waits in its outbox (up to its batch,
and BATCH_BYTES) as one message: a reader that falls behind, because the service or the
reader itself is busy, catches up in fewer sends and receives, each of which costs both
ends more than the bytes it carries.

A few threads do the work of all streams. One that has been blocked on a send for
longer than STALL_SECONDS (a client not reading) no longer counts: while every thread
is blocked and outboxes wait, another thread is started, up to MAX_THREADS, and the
extra ones end once idle. A client that stops reading therefore holds one thread and
delays the other streams by STALL_SECONDS at most.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

# Threads that always run, and the most that may run while some are blocked.
BASE_THREADS = 1
MAX_THREADS = 64
# A send blocked this long is a client that does not read (a reading one takes µs).
STALL_SECONDS = 0.05
# An extra thread idle this long ends.
IDLE_SECONDS = 10.0
# An outbox holds at most this many responses or bytes before its stream waits for room
# (with the one being sent, what a slow client costs the server's memory, per stream).
OUTBOX_RESPONSES = 64
OUTBOX_BYTES = 1024 * 1024
# Messages a thread sends from one outbox before it lets the other streams' turn come.
TURN = 64
# A batch of responses holds more than this many bytes only when its first one does.
BATCH_BYTES = 1024 * 1024


class Outbox:
    """One stream's responses waiting to be sent, oldest first. At most one sender
    thread drains it at a time, so a stream's responses go out in order."""

    def __init__(
        self,
        send: Callable[[Any], None],
        pool: SenderPool,
        batch: int = 1,
        merge: Callable[[list[bytes]], bytes] | None = None,
    ) -> None:
        """`batch` > 1: every message is `merge(responses)` of up to that many
        waiting responses (of one, when only one waits)."""
        self._send = send
        self._pool = pool
        self._batch = batch
        self._merge = merge if batch > 1 else None
        self._loop = pool.loop
        # Serialized responses; None: the stream's end.
        self._pending: collections.deque[bytes | None] = collections.deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._draining = False  # in the pool's queue or being sent by a thread
        self._room: asyncio.Event | None = None  # set (on the loop) when there is room
        self._ended: asyncio.Future[None] | None = None

    def offer(self, response: bytes) -> bool:
        """Queues `response` (on the loop) unless the outbox is full; False if full."""
        with self._lock:
            if self._full():
                return False
            self._pending.append(response)
            self._pending_bytes += len(response)
            ready = not self._draining
            self._draining = True
        if ready:
            self._pool.submit(self)
        return True

    async def put(self, response: bytes) -> None:
        """Queues `response` (on the loop), waiting first while the outbox is full."""
        while not self.offer(response):
            with self._lock:
                # (Checked again under the lock: a thread may have made room since.)
                room = self._room = asyncio.Event() if self._full() else None
            if room is not None:
                await room.wait()

    def _full(self) -> bool:
        return len(self._pending) >= OUTBOX_RESPONSES or self._pending_bytes >= OUTBOX_BYTES

    async def end(self) -> None:
        """Queues the stream's end (after everything put before) and waits until it
        has been sent or the stream has gone."""
        self._ended = self._loop.create_future()
        with self._lock:
            self._pending.append(None)
            ready = not self._draining
            self._draining = True
        if ready:
            self._pool.submit(self)
        await self._ended

    def drain(self) -> bool:
        """Sends (on a sender thread) up to TURN messages; True when more wait, and
        the outbox must go back in the queue for another turn."""
        for _ in range(TURN):
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return False
                taken = self._take_next()
                room = self._room if len(self._pending) <= OUTBOX_RESPONSES // 2 else None
                if room is not None:
                    self._room = None
            if room is not None:
                self._loop.call_soon_threadsafe(room.set)
            response = taken
            if isinstance(taken, list):  # joined outside the lock the loop takes per event
                assert self._merge is not None
                response = self._merge(taken)
            self._send(response)
            if response is None and self._ended is not None:
                self._loop.call_soon_threadsafe(_settle, self._ended)
        return True

    def _take_next(self) -> bytes | list[bytes] | None:
        """Takes (under the lock) what the next message sends: the oldest response, or
        for a stream of batches the responses that wait (at least one), up to its batch
        and BATCH_BYTES, to be merged; None for the stream's end (sent alone)."""
        first = self._pending.popleft()
        if first is None or self._merge is None:
            self._pending_bytes -= len(first or b"")
            return first
        taken, size = [first], len(first)
        while len(taken) < self._batch and self._pending:
            following = self._pending[0]
            if following is None or size + len(following) > BATCH_BYTES:
                break
            self._pending.popleft()
            taken.append(following)
            size += len(following)
        self._pending_bytes -= size
        return taken


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SenderPool:
    """The threads that drain outboxes: BASE_THREADS, and more while those are
    blocked by clients that do not read."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready: queue.SimpleQueue[Outbox | None] = queue.SimpleQueue()
        self._threads_lock = threading.Lock()
        # When each thread's current send began (None: not sending), by thread.
        self._sending_since: dict[int, float | None] = {}
        self._closed = threading.Event()
        for _ in range(BASE_THREADS):
            self._start_thread(extra=False)
        self._watchdog = threading.Thread(
            target=self._watch_for_stalls, name="ledgerflow-watch-send-watchdog", daemon=True
        )
        self._watchdog.start()

    def outbox(
        self,
        send: Callable[[Any], None],
        batch: int = 1,
        merge: Callable[[list[bytes]], bytes] | None = None,
    ) -> Outbox:
        return Outbox(send, self, batch, merge)

    def submit(self, outbox: Outbox) -> None:
        self._ready.put(outbox)

    @property
    def thread_count(self) -> int:
        return len(self._sending_since)

    def close(self) -> None:
        """Ends the threads once they finish what they are sending (blocked ones end
        with their streams)."""
        self._closed.set()
        for _ in range(len(self._sending_since)):
            self._ready.put(None)

    def _start_thread(self, *, extra: bool) -> None:
        thread = threading.Thread(
            target=self._run, args=(extra,), name="ledgerflow-watch-send", daemon=True
        )
        thread.start()

    def _run(self, extra: bool) -> None:
        me = threading.get_ident()
        self._sending_since[me] = None
        try:
            while True:
                try:
                    outbox = self._ready.get(timeout=IDLE_SECONDS if extra else None)
                except queue.Empty:
                    return  # an extra thread no longer needed
                if outbox is None:
                    return
                self._sending_since[me] = time.monotonic()
                try:
                    more = outbox.drain()
                finally:
                    self._sending_since[me] = None
                if more:
                    self.submit(outbox)
        finally:
            with self._threads_lock:
                del self._sending_since[me]

    def _watch_for_stalls(self) -> None:
        """Every STALL_SECONDS: while outboxes wait and every thread has been sending
        for longer than that (blocked by clients that do not read), one more thread."""
        while not self._closed.wait(STALL_SECONDS):
            if self._ready.empty():
                continue
            now = time.monotonic()
            with self._threads_lock:
                busy = list(self._sending_since.values())
                stalled = all(since is not None and now - since > STALL_SECONDS for since in busy)
                if stalled and len(busy) < MAX_THREADS:
                    self._start_thread(extra=True)
