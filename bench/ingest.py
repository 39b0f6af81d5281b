"""Ingest benchmark: the real metadata service on a throwaway Postgres, over loopback.

Prints events/s for single appends and for batches of 100, p50/p99 append latency,
watch latency (append -> a subscriber receives it) within one service process and
across two (so that Postgres LISTEN/NOTIFY is on the path), and single-append latency
with and without 1,000 idle watch streams open (the conditions in turn, a few rounds).
The server runs in its own process (``ledgerflow service``) so client and server do
not share a GIL. Every phase runs on a Postgres tuned for tests (fsync off) and on one
with production durability (fsync and synchronous_commit on), one after the other.

    python bench/ingest.py [--singles 2000] [--batches 1000] [--watch 500]
                           [--clients 16] [--workers 2] [--idle-watchers 1000]
                           [--rounds 3] [--durability fast|durable|both]
                           [--baseline REF]

With --baseline REF it measures single appends and batches of 100 instead, on the commit
REF (a checkout of its own: bench/checkouts.py) and on this checkout as it is, in
alternating rounds, each side's service on a database of its own, and prints them side
by side: a regression shows in one run on a noisy VM.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
from ledgerflow.v1 import events_pb2, ledger_service_pb2, ledger_service_pb2_grpc, records_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from checkouts import describe, in_turn, paired_checkouts
from figures import percentile
from postgres_server import create_database, postgres_server
from services import start_service

APPEND_METHOD = "/ledgerflow.v1.LedgerService/Append"


def latency_summary(seconds: list[float]) -> str:
    return (
        f"p50 {percentile(seconds, 50) * 1e3:6.2f} ms  p99 {percentile(seconds, 99) * 1e3:6.2f} ms"
    )


def event(**payload: object) -> events_pb2.Event:
    return events_pb2.Event(event_id=str(uuid.uuid4()), **payload)  # type: ignore[arg-type]


def task_events(run: str, task: int) -> list[events_pb2.Event]:
    """What one task of a foreach writes: started, three artifacts, succeeded."""
    ref = events_pb2.TaskRef(flow_name="Bench", run_id=run, step_name="a", task_id=str(task))
    arts = [
        records_pb2.Artifact(
            name=f"v{i}",
            content_key=uuid.uuid4().hex * 2,
            size=1024,
            type_name="float",
            serializer="pickle",
        )
        for i in range(3)
    ]
    return [
        event(task_started=events_pb2.TaskStarted(task=ref)),
        event(artifacts_recorded=events_pb2.ArtifactsRecorded(task=ref, artifacts=arts)),
        event(task_succeeded=events_pb2.TaskSucceeded(task=ref)),
    ]


def time_singles(
    stub: ledger_service_pb2_grpc.LedgerServiceStub, count: int
) -> tuple[list[float], float]:
    """`count` single appends (a run's heartbeats), one at a time: their latencies, and
    the seconds they took in all."""
    run_id = f"singles-{uuid.uuid4().hex[:8]}"
    stub.Append(
        ledger_service_pb2.AppendRequest(
            events=[
                event(
                    run_started=events_pb2.RunStarted(
                        flow_name="Bench", run_id=run_id, user="bench"
                    )
                )
            ]
        )
    )
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        beat = event(run_heartbeat=events_pb2.RunHeartbeat(flow_name="Bench", run_id=run_id))
        t0 = time.perf_counter()
        stub.Append(ledger_service_pb2.AppendRequest(events=[beat]))
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def print_singles(latencies: list[float], elapsed: float, note: str = "") -> None:
    print(
        f"single appends   {len(latencies):>7} events  {len(latencies) / elapsed:>9,.0f} "
        f"events/s  {latency_summary(latencies)}{note}"
    )


def bench_batches(address: str, batches: int, clients: int) -> None:
    """Prints what append_batches measures."""
    rate, latencies = append_batches(address, batches, clients)
    print(
        f"batches of 100   {batches * 100:>7} events  {rate:>9,.0f} events/s  "
        f"{latency_summary(latencies)}"
        f"  (per batch, {clients} client{'s' if clients > 1 else ''})"
    )


def append_batches(address: str, batches: int, clients: int) -> tuple[float, list[float]]:
    """`clients` threads, each with a connection of its own (as separate client
    processes would have), append `batches` batches of 100 events between them; returns
    the events a second and each batch's latency.

    The clients share the server's two cores, so they send requests serialized in
    advance and leave the responses unparsed: what is measured is the service, with as
    little of the load generator's own work in the way as gRPC allows."""
    # Without a local subchannel pool, gRPC would share one connection among channels.
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=own_connection) for _ in range(clients)]
    # No serializers: requests go out as the bytes given, responses come back as bytes.
    appends = [channel.unary_unary(APPEND_METHOD) for channel in channels]
    run = f"batches-{clients}-{uuid.uuid4().hex[:8]}"
    ledger_service_pb2_grpc.LedgerServiceStub(channels[0]).Append(
        ledger_service_pb2.AppendRequest(
            events=[
                event(
                    run_started=events_pb2.RunStarted(flow_name="Bench", run_id=run, user="bench")
                )
            ]
        )
    )
    prepared: list[bytes] = []
    task = 0
    for _ in range(batches):
        batch: list[events_pb2.Event] = []
        while len(batch) < 99:
            batch.extend(task_events(run, task))
            task += 1
        batch.append(event(run_heartbeat=events_pb2.RunHeartbeat(flow_name="Bench", run_id=run)))
        prepared.append(ledger_service_pb2.AppendRequest(events=batch).SerializeToString())
    latencies: list[float] = []
    lock = threading.Lock()

    def client(append: grpc.UnaryUnaryMultiCallable, part: list[bytes]) -> None:
        for request in part:
            t0 = time.perf_counter()
            append(request)
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [
        threading.Thread(target=client, args=(appends[i], prepared[i::clients]))
        for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for channel in channels:
        channel.close()
    return batches * 100 / elapsed, latencies


def bench_watch(
    channel: grpc.Channel, count: int, watcher_channel: grpc.Channel | None = None
) -> None:
    """Appends through `channel` and watches through `watcher_channel` (another
    service process when given, so that the event reaches it by NOTIFY)."""
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    watcher = ledger_service_pb2_grpc.LedgerServiceStub(watcher_channel or channel)
    run_id = f"watch-{uuid.uuid4().hex[:8]}"
    head = stub.Append(
        ledger_service_pb2.AppendRequest(
            events=[
                event(
                    run_started=events_pb2.RunStarted(
                        flow_name="Bench", run_id=run_id, user="bench"
                    )
                )
            ]
        )
    )
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()
    stream = watcher.WatchEvents(
        ledger_service_pb2.WatchEventsRequest(
            after_position=head.events[0].global_position, run_pathspec=f"Bench/{run_id}"
        )
    )

    def subscriber() -> None:
        for message in stream:
            arrived = time.perf_counter()
            latencies.append(arrived - sent[message.event.event_id])
            if len(latencies) == count:
                done.set()
                return

    thread = threading.Thread(target=subscriber, daemon=True)
    thread.start()
    time.sleep(0.3)
    for _ in range(count):
        beat = event(run_heartbeat=events_pb2.RunHeartbeat(flow_name="Bench", run_id=run_id))
        sent[beat.event_id] = time.perf_counter()
        stub.Append(ledger_service_pb2.AppendRequest(events=[beat]))
        time.sleep(0.004)
    done.wait(timeout=30)
    stream.cancel()
    path = "another service process" if watcher_channel else "the same process"
    print(
        f"watch latency    {len(latencies):>7} events  {'':>20}  "
        f"{latency_summary(latencies)}"
        f"  (append -> subscriber on {path})"
    )


def open_idle_watchers(address: str, count: int) -> tuple[list[grpc.Channel], list[object]]:
    """`count` watch streams on a run nobody writes, spread over connections of their
    own (and so over the service's worker processes)."""
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=own_connection) for _ in range(20)]
    streams = [
        ledger_service_pb2_grpc.LedgerServiceStub(channels[i % 20]).WatchEvents(
            ledger_service_pb2.WatchEventsRequest(run_pathspec=f"Idle/{i}")
        )
        for i in range(count)
    ]
    return channels, streams


def close_idle_watchers(channels: list[grpc.Channel], streams: list[object]) -> None:
    for stream in streams:
        stream.cancel()  # type: ignore[attr-defined]
    for channel in channels:
        channel.close()


def hold_idle_watchers(address: str, count: int, opened: Any, stop: Any) -> None:
    """In a process of its own, as executors and UIs are: holds `count` idle watch
    streams until `stop` is set."""
    channels, streams = open_idle_watchers(address, count)
    opened.set()
    stop.wait()
    close_idle_watchers(channels, streams)


def checkpoint(url: str) -> None:
    """Writes out every dirty page now. Postgres checkpoints every five minutes, and on
    the durable server a checkpoint's writes stall a lone client's commits (each waits
    for its fsync) by tens of milliseconds: about when the idle-watcher phases run.
    Each of them starts with a checkpoint, so that none pays for the writes of the
    phases before it."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")


def bench_idle_watchers(
    stub: ledger_service_pb2_grpc.LedgerServiceStub,
    address: str,
    url: str,
    args: argparse.Namespace,
) -> None:
    """Single appends with no watch stream open, with `--idle-watchers` streams held
    by another process (as executors and UIs hold them), and with them held by the
    appending process itself: the three in turn, `--rounds` times, each condition's
    latencies pooled over the rounds. A shared VM's speed drifts by tens of percent
    within minutes; one phase per condition, always in the same order, would report
    that drift as a cost (or a saving) of the streams."""
    conditions = ("no watch streams open", f"{args.idle_watchers} idle watch streams "
                  "held by another process", f"{args.idle_watchers} idle watch streams "
                  "held by the appending process")  # fmt: skip
    per_round = max(1, args.singles // args.rounds)
    pooled: dict[str, list[float]] = {condition: [] for condition in conditions}
    elapsed = dict.fromkeys(conditions, 0.0)

    def measure(condition: str) -> None:
        latencies, seconds = time_singles(stub, per_round)
        pooled[condition] += latencies
        elapsed[condition] += seconds

    spawn = multiprocessing.get_context("spawn")
    for _ in range(args.rounds):
        checkpoint(url)
        measure(conditions[0])
        opened, stop = spawn.Event(), spawn.Event()
        holder = spawn.Process(target=hold_idle_watchers,
                               args=(address, args.idle_watchers, opened, stop))  # fmt: skip
        holder.start()
        try:
            opened.wait(60)
            time.sleep(5.0)  # let every stream be registered and caught up
            checkpoint(url)
            measure(conditions[1])
        finally:
            stop.set()
            holder.join(30)
        channels, streams = open_idle_watchers(address, args.idle_watchers)
        try:
            time.sleep(5.0)
            checkpoint(url)
            measure(conditions[2])
        finally:
            close_idle_watchers(channels, streams)
    print(f"single appends on the ledger as it is now, {args.rounds} rounds of {per_round}:")
    for condition, latencies in pooled.items():
        print_singles(latencies, elapsed[condition], f"  ({condition})")


def bench_database(url: str, args: argparse.Namespace, label: str) -> None:
    """Every phase against one database."""
    process, port = start_service(url, workers=args.workers)
    other, other_port = start_service(url, workers=1)
    address = f"127.0.0.1:{port}"
    try:
        with (
            grpc.insecure_channel(address) as channel,
            grpc.insecure_channel(f"127.0.0.1:{other_port}") as other_channel,
        ):
            stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            print(
                f"ledgerflow ingest benchmark: service ({args.workers} worker processes) "
                f"on Postgres ({label}), loopback, {os.cpu_count()} cores"
            )
            print_singles(*time_singles(stub, args.singles))
            bench_batches(address, args.batches, clients=1)
            bench_batches(address, args.batches, clients=args.clients)
            bench_watch(channel, args.watch)
            bench_watch(channel, args.watch, watcher_channel=other_channel)
            if args.idle_watchers:
                bench_idle_watchers(stub, address, url, args)
    finally:
        for service in (process, other):
            service.terminate()
            service.wait(timeout=20)


def bench_paired(server_url: str, args: argparse.Namespace, label: str) -> None:
    """Single appends and batches of 100 (one client and --clients), on the commit
    --baseline and on this checkout in alternating rounds, each side's service on a
    database of its own: a regression shows in one run on a noisy VM."""
    with paired_checkouts(args.baseline, prefix="ingest-paired-") as (_, sides):
        urls = {}
        for side in sides:
            urls[side.role] = create_database(server_url, f"ledgerflow_bench_{side.role}")
        measures = ["single appends", "batches of 100, 1 client",
                    f"batches of 100, {args.clients} clients"]  # fmt: skip
        rates: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        latencies: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        print(f"ledgerflow ingest, paired: service ({args.workers} worker processes) on "
              f"Postgres ({label}), loopback, {os.cpu_count()} cores, "
              f"{args.rounds} rounds")  # fmt: skip
        for side in sides:
            print(f"  {side.role}: {describe(side.ref)}")
        for number in range(args.rounds):
            for side in in_turn(sides, number):
                process, port = start_service(urls[side.role], workers=args.workers,
                                              env=side.python_env())  # fmt: skip
                address = f"127.0.0.1:{port}"
                try:
                    with grpc.insecure_channel(address) as channel:
                        stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
                        time_singles(stub, 50)  # warm up
                        single, seconds = time_singles(stub, max(1, args.singles // args.rounds))
                    rates[(side.role, measures[0])].append(len(single) / seconds)
                    latencies[(side.role, measures[0])] += single
                    for measure, clients in zip(measures[1:], (1, args.clients), strict=True):
                        rate, batch = append_batches(address, max(1, args.batches // args.rounds),
                                                     clients)  # fmt: skip
                        rates[(side.role, measure)].append(rate)
                        latencies[(side.role, measure)] += batch
                finally:
                    process.terminate()
                    process.wait(timeout=20)
        old, new = (side.role for side in sides)
        print(f"{'':34} {'old ' + sides[0].label:>24} {'new ' + sides[1].label:>24}  new/old")
        for measure in measures:
            medians = [statistics.median(rates[(role, measure)]) for role in (old, new)]
            print(f"{measure:34} {medians[0]:>14,.0f} events/s {medians[1]:>14,.0f} events/s"
                  f"  {medians[1] / medians[0]:.2f}")  # fmt: skip
            for role in (old, new):
                print(f"  {role} each round: "
                      + ", ".join(f"{r:,.0f}" for r in rates[(role, measure)])
                      + f" events/s; {latency_summary(latencies[(role, measure)])}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--watch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16, help="for the concurrent batches")
    parser.add_argument("--workers", type=int, default=2, help="service processes")
    parser.add_argument("--idle-watchers", type=int, default=1000, help="0 to skip that phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="of the idle-watcher comparison, its conditions in turn")  # fmt: skip
    parser.add_argument("--durability", choices=["fast", "durable", "both"], default="both")
    parser.add_argument(
        "--baseline", metavar="REF",
        help="instead of every phase: single appends and batches on the commit REF and on "
        "this checkout (as it is), in --rounds alternating rounds, side by side",
    )  # fmt: skip
    args = parser.parse_args()
    for durable in {"fast": [False], "durable": [True], "both": [False, True]}[args.durability]:
        with postgres_server(durable=durable) as server_url:
            label = "fsync=on, synchronous_commit=on" if durable else "fsync=off, as in tests"
            if args.baseline:
                bench_paired(server_url, args, label)
            else:
                bench_database(create_database(server_url, "ledgerflow_bench"), args, label)
        print()


if __name__ == "__main__":
    main()
