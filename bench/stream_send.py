"""What one streamed message costs a gRPC server in Python, the way the watch streams
send today (grpcio's synchronous server, a non-blocking handler whose send callback a
sender thread calls) against grpc.aio (one coroutine a stream, `await context.write`).
The same bytes, pre-serialized, go to 200 streams, 300 messages each, read by an
asyncio client in another process (over loopback); the server's CPU (getrusage) is
divided by the messages. Prints figures; no project code is involved.

    python bench/stream_send.py [--streams 200] [--messages 300]

Why: with 200 watch streams of everything, the service's CPU an append is ~2 ms of
sends, and a send of the synchronous server waits for its completion on grpc's poller
thread (docs/performance.md, session 20). This measures what a move of WatchEvents to
grpc.aio would save.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

SERVICE, METHOD = "bench.Stream", "Watch"
# A WatchEventsResponse-sized message: field 1, 120 bytes.
PAYLOAD = b"\x0a" + bytes([120]) + b"x" * 120
# The service's own setting (api/server.py): the GIL handed over every 0.2 ms.
GIL_SWITCH_SECONDS = 0.0002


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_streams(port: int, streams: int) -> None:
    """In a process of its own: `streams` calls read to their end on one loop."""

    async def read_all() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = channel.unary_stream(f"/{SERVICE}/{METHOD}")
            calls = [watch(b"") for _ in range(streams)]

            async def drain(call: Any) -> int:
                return sum([1 async for _ in call])

            await asyncio.gather(*(drain(call) for call in calls))

    asyncio.run(read_all())


def start_reader(port: int, streams: int) -> Any:
    reader = multiprocessing.get_context("spawn").Process(target=read_streams, args=(port, streams))
    reader.start()
    return reader


def report(kind: str, messages: int, seconds: float, cpu: float) -> None:
    print(f"{kind:<40} {messages / seconds:>9,.0f} messages/s   "
          f"server CPU {cpu / messages * 1e6:6.1f} µs a message")  # fmt: skip


def handler(behaviour: Callable[..., Any]) -> grpc.GenericRpcHandler:
    method = grpc.unary_stream_rpc_method_handler(behaviour)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})


def synchronous(streams: int, messages: int) -> None:
    callbacks: queue.SimpleQueue[Callable[[Any], None]] = queue.SimpleQueue()

    def watch(_: bytes, __: grpc.ServicerContext, send: Callable[[Any], None]) -> None:
        callbacks.put(send)

    watch.experimental_non_blocking = True  # type: ignore[attr-defined]
    server = grpc.server(ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers((handler(watch),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    reader = start_reader(port, streams)
    sends = [callbacks.get(timeout=60) for _ in range(streams)]
    began, cpu = time.perf_counter(), cpu_seconds()

    def send_all() -> None:  # one sender thread, as api/watch_senders.py's base pool
        for _ in range(messages):
            for send in sends:
                send(PAYLOAD)
        for send in sends:
            send(None)

    sender = threading.Thread(target=send_all)
    sender.start()
    sender.join()
    reader.join()
    report("synchronous server, one sender thread", streams * messages,
           time.perf_counter() - began, cpu_seconds() - cpu)  # fmt: skip
    server.stop(0).wait()


def asynchronous(streams: int, messages: int) -> None:
    async def serve() -> None:
        outboxes: asyncio.Queue[asyncio.Queue[bytes | None]] = asyncio.Queue()

        async def watch(_: bytes, context: grpc.aio.ServicerContext) -> None:
            outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
            await outboxes.put(outbox)
            while (message := await outbox.get()) is not None:
                await context.write(message)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler(watch),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        reader = start_reader(port, streams)
        boxes = [await outboxes.get() for _ in range(streams)]
        began, cpu = time.perf_counter(), cpu_seconds()
        for _ in range(messages):
            for box in boxes:
                box.put_nowait(PAYLOAD)
            await asyncio.sleep(0)
        for box in boxes:
            box.put_nowait(None)
        await asyncio.get_running_loop().run_in_executor(None, reader.join)
        report("grpc.aio server, a coroutine a stream", streams * messages,
               time.perf_counter() - began, cpu_seconds() - cpu)  # fmt: skip
        await server.stop(0)

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    for kind in (synchronous, asynchronous):
        kind(args.streams, args.messages)


if __name__ == "__main__":
    main()
