"""A seeded, bounded fuzz of every RPC on both backends: random bytes, mutated valid
requests, and well-formed requests full of hostile values. Whatever arrives, the
server answers with a status a client can act on (never UNKNOWN or INTERNAL), stays
up, and a refused write leaves no row behind."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import events as ev
import grpc
import pytest
from google.protobuf import descriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from ledgerflow.v1 import (
    audit_service_pb2,
    deployment_service_pb2,
    events_pb2,
    executor_service_pb2,
    ledger_service_pb2,
    query_service_pb2,
    tag_service_pb2,
)
from ledgerflow_service import LedgerApplication
from ledgerflow_service.read_models import READ_MODEL_TABLES

pytestmark = pytest.mark.slow
REQUESTS_PER_BACKEND = 1200
SEED = 20261127
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

# (method path, request type, writes?, server streaming?)
RPCS: list[tuple[str, type[Message], bool, bool]] = [
    ("/ledgerflow.v1.LedgerService/Append", ledger_service_pb2.AppendRequest, True, False),
    ("/ledgerflow.v1.LedgerService/WatchEvents", ledger_service_pb2.WatchEventsRequest, False,
     True),
    ("/ledgerflow.v1.QueryService/GetFlow", query_service_pb2.GetFlowRequest, False, False),
    ("/ledgerflow.v1.QueryService/ListFlows", query_service_pb2.ListFlowsRequest, False, False),
    ("/ledgerflow.v1.QueryService/GetRun", query_service_pb2.GetRunRequest, False, False),
    ("/ledgerflow.v1.QueryService/ListRuns", query_service_pb2.ListRunsRequest, False, False),
    ("/ledgerflow.v1.QueryService/ListSteps", query_service_pb2.ListStepsRequest, False, False),
    ("/ledgerflow.v1.QueryService/ListTasks", query_service_pb2.ListTasksRequest, False, False),
    ("/ledgerflow.v1.QueryService/GetTask", query_service_pb2.GetTaskRequest, False, False),
    ("/ledgerflow.v1.QueryService/ListArtifacts", query_service_pb2.ListArtifactsRequest, False,
     False),
    ("/ledgerflow.v1.TagService/AddTags", tag_service_pb2.AddTagsRequest, True, False),
    ("/ledgerflow.v1.TagService/RemoveTags", tag_service_pb2.RemoveTagsRequest, True, False),
    ("/ledgerflow.v1.AuditService/ListEvents", audit_service_pb2.ListEventsRequest, False, False),
    ("/ledgerflow.v1.AuditService/GetRunAsOf", audit_service_pb2.GetRunAsOfRequest, False, False),
    # Executors and deployments: every RPC of each service, as its descriptor lists them.
    *((f"/ledgerflow.v1.{service}/{method.name}", getattr(module, method.input_type.name),
       not method.name.startswith(("Get", "List")), False)
      for module, service in ((executor_service_pb2, "ExecutorService"),
                              (deployment_service_pb2, "DeploymentService"))
      for method in module.DESCRIPTOR.services_by_name[service].methods),
    ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, False, False),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     reflection_pb2.ServerReflectionRequest, False, True),
]  # fmt: skip

HOSTILE_TEXTS = [
    "", "MyFlow", "1", "start", "end", "user:alice", "alice", "a\x00b", "\x00", " ", "../..",
    "MyFlow/1", "MyFlow/1/start/1", "'; DROP TABLE events; --", "%", "_", "?", "é🙂",
    "x" * 129, "y" * 5000, "\x1e", "\x1e\x1e", "NaN", "TaskStarted", "RunStarted",
    "00000000-0000-0000-0000-000000000000",
]  # fmt: skip
HOSTILE_INTS = [0, 1, 2, 7, 127, 2**31 - 1, 2**31, 2**32 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1]
HOSTILE_FLOATS = [0.0, -1.0, 1e308, math.inf, -math.inf, math.nan, 0.5]
_INT_RANGES = {
    descriptor.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    descriptor.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def text(self) -> str:
        if self.rng.random() < 0.2:
            return ev.new_id()
        return self.rng.choice(HOSTILE_TEXTS)

    def scalar(self, field: descriptor.FieldDescriptor) -> Any:
        kind = field.type
        if kind == field.TYPE_STRING:
            return self.text()
        if kind == field.TYPE_BYTES:
            return self.rng.randbytes(self.rng.randrange(0, 40))
        if kind == field.TYPE_BOOL:
            return self.rng.random() < 0.5
        if kind in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            return self.rng.choice(HOSTILE_FLOATS)
        if kind == field.TYPE_ENUM:
            return self.rng.choice([*field.enum_type.values_by_number, 99, -1])
        low, high = _INT_RANGES.get(kind, (-(2**31), 2**31 - 1))
        values = [v for v in HOSTILE_INTS if low <= v <= high] + [low, high]
        return self.rng.choice(values)

    def fill(self, message: Message, depth: int = 0) -> Message:
        """Sets a random selection of fields (one member of each oneof) to hostile
        values, recursing into sub-messages."""
        fields = list(message.DESCRIPTOR.fields)
        chosen_oneofs = {
            oneof.name: self.rng.choice(oneof.fields) for oneof in message.DESCRIPTOR.oneofs
        }
        for field in fields:
            oneof = field.containing_oneof
            if oneof is not None and chosen_oneofs[oneof.name] is not field:
                continue
            if oneof is None and self.rng.random() < 0.3:
                continue
            self._set(message, field, depth)
        return message

    def _set(self, message: Message, field: descriptor.FieldDescriptor, depth: int) -> None:
        is_message = field.type == field.TYPE_MESSAGE
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            for _ in range(self.rng.randrange(0, 3)):
                target[self.text()] = self.text()
            return
        if field.is_repeated:
            count = self.rng.choice([0, 1, 2, 3, 150])
            target = getattr(message, field.name)
            for _ in range(count if depth < 2 else min(count, 2)):
                if is_message:
                    self.fill(target.add(), depth + 1)
                else:
                    target.append(self.scalar(field))
            return
        if is_message:
            if depth < 4:
                self.fill(getattr(message, field.name), depth + 1)
            return
        setattr(message, field.name, self.scalar(field))

    def plausible_events(self) -> list[events_pb2.Event]:
        """Mostly-valid events on a few runs, so that the ledger gains state for the
        hostile requests to hit."""
        run = str(self.rng.randrange(1, 4))
        task = str(self.rng.randrange(1, 4))
        makers: list[Callable[[], events_pb2.Event]] = [
            lambda: ev.run_started("MyFlow", run, tags=("t1",)),
            lambda: ev.task_started("MyFlow", run, "start", task),
            lambda: ev.artifacts("MyFlow", run, "start", task, x="k" + task),
            lambda: ev.task_succeeded("MyFlow", run, "start", task),
            lambda: ev.task_failed("MyFlow", run, "start", task),
            lambda: ev.run_finished("MyFlow", run, self.rng.random() < 0.5),
        ]
        return [self.rng.choice(makers)() for _ in range(self.rng.randrange(1, 4))]

    def request_bytes(self, request_type: type[Message]) -> bytes:
        style = self.rng.random()
        if style < 0.15:
            return self.rng.randbytes(self.rng.randrange(0, 120))
        if request_type is ledger_service_pb2.AppendRequest and style < 0.55:
            message: Message = ledger_service_pb2.AppendRequest(
                events=self.plausible_events(), claimed_user=self.rng.choice(["alice", "bob"])
            )
        else:
            message = self.fill(request_type())
        data = bytearray(message.SerializeToString())
        if data and style < 0.3:  # mutate a valid encoding
            for _ in range(self.rng.randrange(1, 4)):
                data[self.rng.randrange(len(data))] = self.rng.randrange(256)
        return bytes(data)


def row_counts(app: LedgerApplication) -> tuple[int, ...]:
    with app.database.read() as tx:
        return tuple(
            int(tx.query(f"SELECT COUNT(*) FROM {table}")[0][0])
            for table in ("events", *READ_MODEL_TABLES)
        )


def test_fuzz_every_rpc(app: LedgerApplication, grpc_channel: grpc.Channel) -> None:
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng)
    answered: dict[str, int] = {}
    unary = {
        path: grpc_channel.unary_unary(path) for path, _, _, streaming in RPCS if not streaming
    }
    streaming = {path: grpc_channel.unary_stream(path) for path, _, _, s in RPCS if s}
    reflection = grpc_channel.stream_stream(RPCS[-1][0])
    # A few runs to begin with, for the hostile requests to hit (as well as the runs
    # the fuzzer's own plausible batches start).
    seed = [ev.run_started("MyFlow", run, tags=("t1",)) for run in ("1", "2", "3")]
    unary[RPCS[0][0]](ledger_service_pb2.AppendRequest(events=seed).SerializeToString())
    counts = seeded = row_counts(app)
    for number in range(REQUESTS_PER_BACKEND):
        path, request_type, writes, is_stream = rng.choice(RPCS)
        if is_stream and rng.random() < 0.8:  # streams take longer: fewer of them
            continue
        data = fuzzer.request_bytes(request_type)
        code = grpc.StatusCode.OK
        try:
            if path == RPCS[-1][0]:
                next(iter(reflection(iter([data]), timeout=2.0)))
            elif is_stream:
                next(iter(streaming[path](data, timeout=0.3)))
            else:
                unary[path](data, timeout=10.0)
        except StopIteration:
            pass
        except grpc.RpcError as error:
            code = error.code()
        assert code not in NEVER, f"request {number} to {path}: {code} ({data!r:.300})"
        answered[code.name] = answered.get(code.name, 0) + 1
        if writes:
            now = row_counts(app)
            if code != grpc.StatusCode.OK:
                assert now == counts, f"refused request {number} to {path} wrote rows"
            counts = now
    health = grpc_channel.unary_unary("/grpc.health.v1.Health/Check")
    health(health_pb2.HealthCheckRequest().SerializeToString(), timeout=5)  # still up
    # The fuzz reached both outcomes, and the ledger's state grew along the way.
    assert answered.get("OK", 0) > 30 and answered.get("INVALID_ARGUMENT", 0) > 100, answered
    assert counts[0] > seeded[0]
