"""What slow watch streams from the start of a ledger of big events cost the service.

    python bench/watch_memory.py [--events 200] [--event-kib 1000] [--readers 16]
                                 [--batch 1]

Starts `ledgerflow service` on a temporary SQLite ledger (loopback, a free port),
appends --events events of about --event-kib KiB each (runs whose parameter is that
big), then opens --readers watch streams from position 0 that each take one event and
then stop reading (a slow client), and prints the service's resident memory before and
while they hang there (the goal in docs/security.md: under 512 MB with 16 readers over
200 events of 1 MiB). Each database read of a watcher is bounded by bytes
(store.events.read_after: 1 MiB), not only by its 500 events; what a slow stream still
holds beyond that is gRPC's own send buffering. --batch N: the readers ask for up to N
events a message (WatchEventsRequest.batch_events; the SDK asks for 64), so a message
the service sends them is a batch of its own making (at most 1 MiB, or one event).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from ledgerflow.v1 import events_pb2, ledger_service_pb2, ledger_service_pb2_grpc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--event-kib", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="events a message, 1 to 64")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-watch-"))
    port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow.cli", "service", "--database-url",
         f"sqlite://{folder}/ledger.db", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20),
                                          ("grpc.max_send_message_length", 64 << 20)],
        )  # fmt: skip
        grpc.channel_ready_future(channel).result(timeout=30)
        ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        big = json.dumps("x" * (args.event_kib * 1024 - 200))
        for run in range(args.events):
            started = events_pb2.RunStarted(flow_name="Big", run_id=str(run), user="bench",
                                            parameters={"p": big})  # fmt: skip
            ledger.Append(ledger_service_pb2.AppendRequest(events=[
                events_pb2.Event(event_id=str(uuid.uuid4()), run_started=started)]))  # fmt: skip
        time.sleep(1)
        before = rss_mb(service.pid)
        print(f"{args.events} events of ~{args.event_kib} KiB appended; service RSS "
              f"{before:.0f} MB")  # fmt: skip
        streams = []
        for _ in range(args.readers):
            reader = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]
            )
            stream = ledger_service_pb2_grpc.LedgerServiceStub(reader).WatchEvents(
                ledger_service_pb2.WatchEventsRequest(batch_events=args.batch)
            )
            next(stream)  # one event, then this client stops reading
            streams.append(stream)
        peak = before
        for _ in range(10):
            time.sleep(1)
            peak = max(peak, rss_mb(service.pid))
        print(f"{args.readers} slow readers from position 0, batches of {args.batch}: service "
              f"RSS peak {peak:.0f} MB (goal: < 512 MB)")  # fmt: skip
        for stream in streams:
            stream.cancel()
        threading.Event().wait(0.5)
    finally:
        service.terminate()
        service.wait(timeout=30)


if __name__ == "__main__":
    main()
