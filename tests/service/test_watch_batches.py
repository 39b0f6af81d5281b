"""Watch streams in batches (WatchEventsRequest.batch_events): a batch is made from the
events' responses serialized once, by bytes alone, and an outbox sends what waits in it
as one message, never more than the stream's batch."""

from __future__ import annotations

import asyncio
import threading

import events as ev
from ledgerflow.v1 import events_pb2, ledger_service_pb2
from ledgerflow_service.api.watch_hub import merged_responses, serialized_response
from ledgerflow_service.api.watch_senders import SenderPool
from waiting import wait_for


def test_a_merged_batch_parses_as_the_events_in_order() -> None:
    big = ev.task_failed("F", "1", "start", "1")
    big.task_failed.traceback = "x" * 70_000  # a length of three varint bytes
    cases = [
        [events_pb2.Event()],  # an empty event still takes its place
        [ev.run_started("F", "1")],
        [big, ev.run_heartbeat("F", "1"), big],
        [ev.run_heartbeat("F", str(n)) for n in range(64)],
    ]
    for events in cases:
        merged = merged_responses([serialized_response(e) for e in events])
        parsed = ledger_service_pb2.WatchEventsResponse.FromString(merged)
        assert list(parsed.events) == events
        assert not parsed.HasField("event")


def test_what_waits_while_a_send_blocks_goes_out_in_batches_of_the_streams_size() -> None:
    """The first response is sent alone (nothing else waits); ten more wait while its
    send blocks, and go out as batches of at most four, in order."""
    loop = asyncio.new_event_loop()
    pool = SenderPool(loop)
    release = threading.Event()
    sent: list[bytes] = []

    def send(message: bytes) -> None:
        sent.append(message)
        release.wait(10)

    outbox = pool.outbox(send, 4, merged_responses)
    events = [ev.run_heartbeat("F", str(n)) for n in range(11)]
    try:
        assert outbox.offer(serialized_response(events[0]))
        wait_for(lambda: len(sent) == 1, 10, "the first send")
        for event in events[1:]:
            assert outbox.offer(serialized_response(event))
        release.set()
        wait_for(lambda: len(sent) == 4, 10, "the batches")
    finally:
        release.set()
        pool.close()
        loop.close()
    batches = [list(ledger_service_pb2.WatchEventsResponse.FromString(m).events) for m in sent]
    assert [len(batch) for batch in batches] == [1, 4, 4, 2]
    assert [e for batch in batches for e in batch] == events
