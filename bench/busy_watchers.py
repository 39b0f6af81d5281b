"""What watch streams that are not idle cost a writer: single-append latency with no
stream open, with 10,000 streams of every run filtered by event type (what executors
and `host serve` open: here TaskQueued, which the appends are not), and with 200
streams of everything (each append goes out to all of them), the streams held by
another process, asking for batches as the SDK's watchers do (WatchEventsRequest.
batch_events; --batch 1: one event a response, as before). The conditions run in turn,
a few rounds, latencies pooled per condition (a shared VM drifts within minutes). The
service is `ledgerflow service` (one process) on a throwaway Postgres tuned for tests,
over loopback.

    python bench/busy_watchers.py [--singles 1500] [--filtered 10000] [--everything 200]
                                  [--rounds 3] [--no-read] [--threaded-readers]
                                  [--batch 64] [--compare-unbatched]

Goals (issue 31): append p99 < 10 ms with 10,000 filtered watchers, and < 10 ms with 200
watchers of everything held by another process.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from ingest import checkpoint, print_singles, time_singles
from ledgerflow.metadata_client import WATCH_BATCH_EVENTS
from ledgerflow.v1 import ledger_service_pb2, ledger_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import create_database, postgres_server
from services import cpu_seconds, start_service

CONNECTIONS = 20


def hold_watchers(
    address: str,
    count: int,
    types: list[str],
    read: bool,
    opened: Any,
    stop: Any,
    threaded: bool = False,
    batch: int = 1,
) -> None:
    """In a process of its own: `count` streams of every run (of `types`; all: empty),
    each read as fast as events come (unless not `read`), until `stop` is set. Streams
    that are read are read on one asyncio loop (grpc.aio), as a process holding many
    streams would, unless `threaded` (a thread a stream, grpc's blocking API: ~60 µs
    of the holder's CPU a message, which on 2 cores the service's appends wait for)."""
    import threading

    own = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=own) for _ in range(CONNECTIONS)]
    request = ledger_service_pb2.WatchEventsRequest(
        event_types=types, from_head=True, batch_events=batch
    )
    streams = [
        ledger_service_pb2_grpc.LedgerServiceStub(channels[i % CONNECTIONS]).WatchEvents(request)
        for i in range(count)
    ]

    def drain(stream: Any) -> None:
        try:
            for _ in stream:
                pass
        except grpc.RpcError:
            pass  # cancelled at the end

    if read and not types and not threaded:
        for stream in streams:
            stream.cancel()
        for channel in channels:
            channel.close()
        _read_on_one_loop(address, count, request, opened, stop, batch)
        return
    readers = [threading.Thread(target=drain, args=(s,), daemon=True) for s in streams]
    if types or not read:  # unread, the events still fit the streams' flow-control windows
        readers = []
    for reader in readers:
        reader.start()
    opened.set()
    stop.wait()
    for stream in streams:
        stream.cancel()
    for channel in channels:
        channel.close()


def _read_on_one_loop(
    address: str, count: int, request: Any, opened: Any, stop: Any, batch: int
) -> None:
    """`count` streams read as fast as events come, on one asyncio loop; prints how
    many events they got (the appends timed while they were open) in how many messages."""
    import asyncio

    async def hold() -> None:
        own = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(address, options=own) for _ in range(CONNECTIONS)]
        stubs = [ledger_service_pb2_grpc.LedgerServiceStub(c) for c in channels]
        calls = [stubs[i % CONNECTIONS].WatchEvents(request) for i in range(count)]

        received = [0, 0]  # messages, events

        async def drain(call: Any) -> None:
            try:
                async for message in call:
                    received[0] += 1
                    received[1] += len(message.events) or 1
            except (grpc.RpcError, asyncio.CancelledError):
                pass  # cancelled at the end

        readers = [asyncio.create_task(drain(call)) for call in calls]
        opened.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for channel in channels:
            await channel.close()
        messages, events = received
        print(f"    (streams of everything asking for batches of {batch}: by the end of the "
              f"timing they got {events:,} events in {messages:,} messages, "
              f"{events / max(1, messages):.2f} a message)", flush=True)  # fmt: skip

    asyncio.run(hold())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--singles", type=int, default=1500)
    parser.add_argument("--filtered", type=int, default=10_000)
    parser.add_argument("--everything", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-read", action="store_true",
        help="the streams of everything are not read: the service's cost alone (their "
        "events fit the streams' flow-control windows), not the readers' on these cores",
    )  # fmt: skip
    parser.add_argument(
        "--batch", type=int, default=WATCH_BATCH_EVENTS,
        help="events a response the streams of everything ask for (the SDK's default)",
    )  # fmt: skip
    parser.add_argument(
        "--compare-unbatched", action="store_true",
        help="also the streams of everything asking for one event a response, in turn",
    )  # fmt: skip
    parser.add_argument(
        "--threaded-readers", action="store_true",
        help="read the streams of everything on a thread each (grpc's blocking API) "
        "instead of on one asyncio loop: the holder's own CPU then competes more",
    )  # fmt: skip
    args = parser.parse_args()
    conditions: list[tuple[str, int, list[str], int]] = [
        ("no watch streams open", 0, [], 1),
        (f"{args.filtered:,} streams of TaskQueued, another process", args.filtered,
         ["TaskQueued"], 1),
        (f"{args.everything} streams of everything, another process, batches of "
         f"{args.batch}", args.everything, [], args.batch),
    ]  # fmt: skip
    if args.compare_unbatched:
        conditions.append(
            (f"{args.everything} streams of everything, another process, one event a "
             "response", args.everything, [], 1)
        )  # fmt: skip
    per_round = max(1, args.singles // args.rounds)
    pooled: dict[str, list[float]] = {name: [] for name, _, _, _ in conditions}
    elapsed = {name: 0.0 for name, _, _, _ in conditions}
    cpu_per_append = {name: collections.Counter[str]() for name, _, _, _ in conditions}
    spawn = multiprocessing.get_context("spawn")
    with postgres_server() as server:
        url = create_database(server, "busy_watchers")
        process, port = start_service(url, workers=1)
        address = f"127.0.0.1:{port}"
        try:
            with grpc.insecure_channel(address) as channel:
                stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
                print(f"busy watch streams: service (1 process) on Postgres (fsync off), "
                      f"loopback, {os.cpu_count()} cores")  # fmt: skip
                time_singles(stub, 200)  # warm up
                for _ in range(args.rounds):
                    for name, count, types, batch in conditions:
                        holder = None
                        stop = spawn.Event()
                        if count:
                            opened = spawn.Event()
                            holding = (address, count, types, not args.no_read, opened, stop,
                                       args.threaded_readers, batch)  # fmt: skip
                            holder = spawn.Process(target=hold_watchers, args=holding)
                            holder.start()
                            opened.wait(120)
                            time.sleep(5.0)  # every stream registered
                        checkpoint(url)
                        pids = [process.pid] + ([holder.pid] if holder and holder.pid else [])
                        before = [cpu_seconds(pid) for pid in pids]
                        latencies, seconds = time_singles(stub, per_round)
                        spent = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
                        pooled[name] += latencies
                        elapsed[name] += seconds
                        for side, cpu in zip(("service", "streams' holder"), spent, strict=False):
                            cpu_per_append[name][side] += cpu / per_round
                        if holder is not None:
                            stop.set()
                            holder.join(60)
                for name, latencies in pooled.items():
                    print_singles(latencies, elapsed[name], f"  ({name})")
                    cpu = ", ".join(f"{side} {seconds / args.rounds * 1000:.2f} ms"
                                    for side, seconds in cpu_per_append[name].items())  # fmt: skip
                    print(f"    CPU an append: {cpu}")
        finally:
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
