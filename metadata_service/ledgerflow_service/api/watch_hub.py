"""Watch streams that cost nothing while idle: one reader per process follows the
ledger's head, and every watcher of the process is served from what it read.

Why not one database poll per watcher: thousands of idle watchers (executors, UIs,
serving processes) would each wake and query on every append. Instead the hub keeps
the newest events in a bounded buffer and wakes only the watchers an event concerns
(by run and event type). A watcher that is behind the buffer (it asked for old events,
or it fell behind) reads the database itself, a chunk at a time, until it reaches the
buffer; so memory stays bounded however slow a watcher is, and a slow watcher slows
only itself.

The follower reads only the events of the runs watched here (every run's only while
someone watches all runs): with idle watchers on quiet runs, it would otherwise read
back everything every process appends (at 8,000 events/s, a third of the service's
CPU). The buffer therefore holds, after a position, every event of the watched runs,
not of all runs; a watcher whose run was not being read when it arrived is covered
from the position of the first read that includes it, and reads the database up to
there.

Everything here runs on one asyncio event loop (a thread of its own); database reads
run in the loop's default thread pool, and the blocking sends of grpc's non-blocking
stream API on a few sender threads (watch_senders.py), so a client that does not read
blocks only its own stream. Positions are gapless and commit in order (appends are serialized), so
"everything after the last position seen" never skips an event that commits late.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from ledgerflow.v1 import events_pb2, ledger_service_pb2

from ledgerflow_service.api.watch_senders import Outbox, SenderPool
from ledgerflow_service.application import CommittedEvents, LedgerApplication, WatchFilter
from ledgerflow_service.call_scope import DEFAULT_STATEMENT_TIMEOUT_SECONDS, CallScope
from ledgerflow_service.errors import LedgerError, ResourceExhausted, Unavailable

log = logging.getLogger("ledgerflow.service")

# Events a database read returns at most (catch-up chunks and the follower's reads).
WATCH_CHUNK = 500
# The follower's buffer of recent events: at most this many bytes of payload.
BUFFER_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_WATCHERS = 10_000  # ledgerflow service --max-watchers (cli.py repeats it)
# Beyond this many watched runs, the follower reads every run's events: a query naming
# them all would grow like the reads it saves (and SQLite bounds a statement's
# parameters).
MAX_FOLLOWED_RUNS = 1000


@dataclass(slots=True)
class _Buffered:
    """An event in the buffer, with its run, its size, and the WatchEventsResponse that
    carries it, serialized once for every stream that sends it (made when first sent)."""

    event: events_pb2.Event
    run: str
    size: int
    response: bytes | None = None

    def serialized(self) -> bytes:
        if self.response is None:
            self.response = serialized_response(self.event)
        return self.response


def serialized_response(event: events_pb2.Event) -> bytes:
    return ledger_service_pb2.WatchEventsResponse(event=event).SerializeToString()


# A serialized WatchEventsResponse with one event in `event` (field 1) is this tag, the
# event's length and its bytes; the same event in `events` (field 2) differs only in the
# tag, and a repeated field's entries are concatenated. So responses serialized once for
# every stream become one response of a batch by bytes alone, never parsed again.
_EVENT_TAG, _EVENTS_TAG = b"\x0a", b"\x12"
_EVENT_FIELD = ledger_service_pb2.WatchEventsResponse.DESCRIPTOR.fields_by_name["event"]
_EVENTS_FIELD = ledger_service_pb2.WatchEventsResponse.DESCRIPTOR.fields_by_name["events"]
assert (_EVENT_FIELD.number, _EVENTS_FIELD.number) == (1, 2)  # the tags above


def merged_responses(responses: list[bytes]) -> bytes:
    """One serialized WatchEventsResponse whose `events` are the events of
    `responses` (each a serialized_response()), in order."""
    assert all(response[:1] == _EVENT_TAG for response in responses)
    return b"".join(_EVENTS_TAG + response[1:] for response in responses)


@dataclass(eq=False)
class _Subscription:
    """One live watcher, as the hub sees it: what it wants, where its events go, how to
    wake it, and the position after which the buffer holds every event it may want.

    A watcher that has sent everything up to the follower's position waits *parked*:
    the follower then puts the events it wants straight into its outbox as they
    arrive (its position follows the follower's), instead of waking its coroutine to
    look, so an event sent to hundreds of streams costs the loop a few µs a stream. A
    full outbox, or anything that leaves the buffer short of what it wants, unparks
    it at the position it got to, and its coroutine goes on from there."""

    wants: WatchFilter
    covered_after: int
    position: int
    outbox: Outbox
    parked: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def unpark(self, position: int) -> None:
        self.parked = False
        self.position = position
        self.wake.set()


class WatchHub:
    """The watchers of one server process and the follower that feeds them."""

    def __init__(
        self,
        app: LedgerApplication,
        loop: asyncio.AbstractEventLoop,
        *,
        max_watchers: int = DEFAULT_MAX_WATCHERS,
        buffer_bytes: int = BUFFER_BYTES,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.loop = loop
        self.max_watchers = max_watchers
        self.buffer_bytes = buffer_bytes
        self.statement_timeout = statement_timeout
        self._senders = SenderPool(loop)
        self._open_streams = 0
        self._open_lock = threading.Lock()
        self._subscriptions: set[_Subscription] = set()
        # The same subscriptions by the run they watch ("" for those watching all runs),
        # and those of all runs again by the event types they want ("": every type), so
        # that an event wakes only the watchers it concerns: thousands of executors'
        # streams of TaskQueued cost an append of anything else nothing.
        self._by_run: dict[str, set[_Subscription]] = collections.defaultdict(set)
        self._all_runs_by_type: dict[str, set[_Subscription]] = collections.defaultdict(set)
        # Recent events, oldest first: every event of the followed runs after
        # self._start, up to self._position.
        self._buffer: collections.deque[_Buffered] = collections.deque()
        self._buffered_bytes = 0
        self._start = 0
        self._position: int | None = None  # None: not following (no watchers)
        self._appended = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._closed = False
        app.signal.subscribe(self._on_append_anywhere)

    @property
    def watcher_count(self) -> int:
        """The streams open now (admitted, not yet ended)."""
        return self._open_streams

    def _on_append_anywhere(
        self, committed: CommittedEvents | None, runs: frozenset[str] | None
    ) -> None:
        """Called from any thread after an append to `runs` (None: any run): this
        process's, with its committed events at hand (they are handed over, so no read
        is needed), or another's, through the database's notifications (the follower
        reads its events).

        Appends no watcher here waits for are passed over, before their events are
        even made: waking the loop costs a thread switch, and the follower's read a
        query, for every append of every process. The buffer then has a gap, which the
        next hand-over notices and the follower fills from the database, reading only
        the watched runs (as its poll does every watch_poll_seconds)."""
        if not self._subscriptions or self.loop.is_closed():
            return
        if (
            runs is not None
            and not self._by_run.get("")
            and not any(run in self._by_run for run in runs)
        ):
            return
        events = committed() if committed is not None else None
        self.loop.call_soon_threadsafe(self._offer, events)

    def _offer(self, events: list[tuple[events_pb2.Event, str]] | None) -> None:
        """Takes an append's events when they continue the buffer; otherwise (another
        process's events, or appends that finished out of order) wakes the follower
        to read what is missing."""
        if events and self._position is not None:
            events.sort(key=lambda item: item[0].global_position)
            fresh = [item for item in events if item[0].global_position > self._position]
            if not fresh:
                return
            expected = range(self._position + 1, self._position + 1 + len(fresh))
            if [item[0].global_position for item in fresh] == list(expected):
                self._take(fresh)
                return
        self._appended.set()

    # ---- streams ------------------------------------------------------------------

    def open_stream(
        self,
        after_position: int,
        wants: WatchFilter,
        send: Callable[[Any], None],
        context: grpc.ServicerContext,
        batch: int = 1,
    ) -> None:
        """Admits a WatchEvents stream (called on a gRPC thread, which it leaves at
        once): its events will go out through `send` (grpc's non-blocking stream
        callback; None ends the stream), up to `batch` in a response when several
        wait (see merged_responses), until the caller goes away or the hub closes.
        Raises ResourceExhausted beyond the maximum number of streams, and Unavailable
        while the server shuts down (a client retries that elsewhere, or later)."""
        with self._open_lock:
            if self._closed:
                raise Unavailable("the server is shutting down: reconnect in a moment")
            if self._open_streams >= self.max_watchers:
                raise ResourceExhausted(
                    f"this server holds {self.max_watchers} watch streams, its maximum "
                    "(ledgerflow service --max-watchers); retry later or use another server"
                )
            self._open_streams += 1
        try:
            serving = asyncio.run_coroutine_threadsafe(
                self._serve(after_position, wants, send, context, batch), self.loop
            )
        except BaseException:
            self._close_stream()
            raise
        # However the stream ends (its end sent, failed, or cancelled before it even
        # started), its place is given back.
        serving.add_done_callback(lambda _: self._close_stream())

        def on_call_end() -> None:  # the caller went away first: stop serving it
            serving.cancel()

        context.add_callback(on_call_end)

    def _close_stream(self) -> None:
        with self._open_lock:
            self._open_streams -= 1

    async def _serve(
        self,
        after_position: int,
        wants: WatchFilter,
        send: Callable[[Any], None],
        context: grpc.ServicerContext,
        batch: int = 1,
    ) -> None:
        """Puts one stream's events in its outbox, for the sender threads to send (a send
        blocks while the client's flow-control window is full, and a full outbox makes
        this wait: that is the stream's backpressure)."""
        outbox = self._senders.outbox(send, batch, merged_responses)
        try:
            await self.watch(after_position, wants, outbox)
        except LedgerError as error:
            context.set_code(error.code)
            context.set_details(error.message)
        except Exception:
            log.exception("a watch stream failed")
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details("the watch stream failed on the server; see its log")
        # (A cancelled stream, whose call has ended, sends nothing more.)
        await outbox.end()

    # ---- watchers ---------------------------------------------------------------

    async def watch(self, after_position: int, wants: WatchFilter, outbox: Outbox) -> None:
        """Puts into `outbox` the events after `after_position` that `wants`, oldest
        first, each as its serialized WatchEventsResponse (the servicer sends the bytes
        as they are): the backlog from the database, then live, until the hub closes."""
        subscription = _Subscription(
            wants, covered_after=self._position or 0, position=after_position, outbox=outbox
        )
        self._subscriptions.add(subscription)
        self._by_run[wants.run_pathspec].add(subscription)
        types = _type_keys(wants)
        for event_type in types:
            self._all_runs_by_type[event_type].add(subscription)
        self._ensure_following()
        try:
            while not self._closed:
                if self._covers(subscription, subscription.position):
                    subscription.wake.clear()
                    fresh, reached = self._buffered_after(subscription.position)
                    for item in fresh:
                        if wants.matches(item.run, item.event.event_type):
                            await outbox.put(item.serialized())
                    subscription.position = reached
                    if fresh:
                        continue
                    # Sent everything up to the follower: from now on the follower puts
                    # what it wants in its outbox, until something unparks it.
                    subscription.parked = reached == self._position
                    await subscription.wake.wait()
                    continue
                chunk, head, _ = await self.loop.run_in_executor(
                    None,
                    self.app.read_watch_chunk,
                    subscription.position,
                    wants,
                    WATCH_CHUNK,
                    CallScope(None, cap_seconds=self.statement_timeout),
                )
                for event, _ in chunk:
                    await outbox.put(serialized_response(event))
                # Nothing else matched up to the head (which is the last event read when
                # the read stopped at its count or its bytes: more follow at once).
                subscription.position = max(
                    head, chunk[-1][0].global_position if chunk else subscription.position
                )
        finally:
            subscription.parked = False
            self._subscriptions.discard(subscription)
            _forget(self._by_run, wants.run_pathspec, subscription)
            for event_type in types:
                _forget(self._all_runs_by_type, event_type, subscription)

    def _covers(self, subscription: _Subscription, position: int) -> bool:
        """Whether the buffer holds every event after `position` that `subscription`
        may want (or will: a position ahead of the follower is covered once the
        follower gets there)."""
        return (
            self._position is not None
            and position >= self._start
            and position >= subscription.covered_after
        )

    def _buffered_after(self, position: int) -> tuple[list[_Buffered], int]:
        """The buffered events after `position`, and the position they reach (the
        follower's: past it, nothing of the followed runs exists yet)."""
        assert self._position is not None
        newer = itertools.takewhile(
            lambda item: item.event.global_position > position, reversed(self._buffer)
        )
        return list(newer)[::-1], max(position, self._position)

    # ---- the follower -----------------------------------------------------------

    def _ensure_following(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = self.loop.create_task(self._follow(), name="ledgerflow-watch-hub")

    def _followed_runs(self) -> frozenset[str] | None:
        """The runs whose events the follower reads (None: every run's)."""
        if "" in self._by_run or len(self._by_run) > MAX_FOLLOWED_RUNS:
            return None
        return frozenset(self._by_run)

    async def _follow(self) -> None:
        """Reads the watched runs' new events into the buffer while anyone watches."""
        head = await self.loop.run_in_executor(None, self.app.ledger_head)
        self._buffer.clear()
        self._buffered_bytes = 0
        self._start = self._position = head
        try:
            while self._subscriptions and not self._closed:
                self._appended.clear()
                runs = self._followed_runs()
                chunk, head, more = await self.loop.run_in_executor(
                    None, self.app.read_runs_chunk, self._position, runs, WATCH_CHUNK
                )
                # A read cut short (by count or bytes) vouches for nothing past its
                # last event, which is then its head.
                self._take(chunk, head, runs)
                if more:
                    continue
                # Woken by an append; the timeout also catches appends of writers that
                # cannot notify (another process on the same SQLite file).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._appended.wait(), self.app.watch_poll_seconds)
        finally:
            for subscription in self._subscriptions:  # they fall back to the database
                if subscription.parked:
                    subscription.unpark(self._position)
                subscription.wake.set()
            self._position = None
            self._buffer.clear()
            self._buffered_bytes = 0

    def _take(
        self,
        chunk: list[tuple[events_pb2.Event, str]],
        reached: int | None = None,
        runs: frozenset[str] | None = None,
    ) -> None:
        """Buffers a chunk of new events, every event of `runs` (None: of every run)
        up to position `reached` (by default, the chunk's last), and wakes the
        watchers they concern."""
        assert self._position is not None
        position = self._position
        chunk = [item for item in chunk if item[0].global_position > position]
        if reached is None:
            reached = chunk[-1][0].global_position if chunk else position
        if reached <= position:  # an append handed them over while the follower read
            return
        if runs is not None:
            # Those who arrived during the read, for runs it did not include, are
            # covered only from here on.
            for subscription in self._subscriptions:
                if subscription.wants.run_pathspec not in runs:
                    subscription.covered_after = max(subscription.covered_after, reached)
                    if subscription.parked:  # the read did not look for its events
                        subscription.unpark(position)
        of_any_type = self._all_runs_by_type.get("", ())
        for event, run in chunk:
            buffered = _Buffered(event, run, event.ByteSize())
            self._buffer.append(buffered)
            self._buffered_bytes += buffered.size
            concerned = itertools.chain(
                self._by_run.get(run, ()),
                of_any_type,
                self._all_runs_by_type.get(event.event_type, ()),
            )
            for subscription in concerned:
                if subscription.wake.is_set() or not subscription.wants.matches(
                    run, event.event_type
                ):
                    continue
                if not subscription.parked:
                    subscription.wake.set()
                elif not subscription.outbox.offer(buffered.serialized()):
                    subscription.unpark(event.global_position - 1)
        self._position = reached
        while self._buffered_bytes > self.buffer_bytes and len(self._buffer) > 1:
            oldest = self._buffer.popleft()
            self._buffered_bytes -= oldest.size
            self._start = oldest.event.global_position

    async def close(self) -> None:
        """Ends every watch stream (before a shutdown): each is sent its end."""
        with self._open_lock:
            self._closed = True
        self.app.signal.unsubscribe(self._on_append_anywhere)
        for subscription in self._subscriptions:
            subscription.unpark(subscription.position)
        self._appended.set()
        if self._follower is not None:
            await asyncio.gather(self._follower, return_exceptions=True)
        for _ in range(100):  # the streams send their ends (a blocked one is cancelled)
            if not self._open_streams:
                break
            await asyncio.sleep(0.01)
        self._senders.close()


def _type_keys(wants: WatchFilter) -> tuple[str, ...]:
    """Where a watcher of all runs is indexed by event type ("": every type); none for
    a watcher of one run (found by its run)."""
    if wants.run_pathspec:
        return ()
    return tuple(wants.event_types) or ("",)


def _forget(index: dict[str, set[_Subscription]], key: str, subscription: _Subscription) -> None:
    watching = index.get(key)
    if watching is not None:
        watching.discard(subscription)
        if not watching:
            del index[key]
