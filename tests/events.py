"""Builders of ledger events for tests and benchmarks."""

from __future__ import annotations

import uuid

from ledgerflow.v1 import events_pb2, records_pb2

K = records_pb2.StepKind
# start -> a -> b -> end, as a local run of such a flow declares it.
LINEAR_GRAPH = records_pb2.FlowGraph(
    steps=[
        records_pb2.StepSpec(name="start", kind=K.STEP_KIND_LINEAR, next_steps=["a"]),
        records_pb2.StepSpec(name="a", kind=K.STEP_KIND_LINEAR, next_steps=["b"]),
        records_pb2.StepSpec(name="b", kind=K.STEP_KIND_LINEAR, next_steps=["end"]),
        records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
    ]
)


def one_step_graph(cpu: float = 1, memory_mb: int = 512, gpu: int = 0) -> records_pb2.FlowGraph:
    """start -> end, start asking for these resources: a remote run's one task."""
    wants = records_pb2.Resources(cpu=cpu, memory_mb=memory_mb, gpu=gpu)
    return records_pb2.FlowGraph(
        steps=[
            records_pb2.StepSpec(name="start", kind=K.STEP_KIND_LINEAR, next_steps=["end"],
                                 resources=wants),
            records_pb2.StepSpec(name="end", kind=K.STEP_KIND_END),
        ]
    )  # fmt: skip


def new_id() -> str:
    return str(uuid.uuid4())


def ref(flow: str, run: str, step: str, task: str) -> events_pb2.TaskRef:
    return events_pb2.TaskRef(flow_name=flow, run_id=run, step_name=step, task_id=task)


def run_started(
    flow: str, run: str, user: str = "alice", tags: tuple[str, ...] = (), **extra: object
) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        run_started=events_pb2.RunStarted(
            flow_name=flow,
            run_id=run,
            user=user,
            tags=list(tags),
            system_tags=[f"user:{user}"],
            **extra,
        ),
    )


def task_started(flow: str, run: str, step: str, task: str, attempt: int = 0) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        task_started=events_pb2.TaskStarted(task=ref(flow, run, step, task), attempt=attempt),
    )


def artifacts(
    flow: str, run: str, step: str, task: str, attempt: int = 0, **values: str
) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        artifacts_recorded=events_pb2.ArtifactsRecorded(
            task=ref(flow, run, step, task),
            attempt=attempt,
            artifacts=[
                records_pb2.Artifact(
                    name=k, content_key=v, size=len(v), type_name="str", serializer="pickle"
                )
                for k, v in values.items()
            ],
        ),
    )


def task_succeeded(flow: str, run: str, step: str, task: str, attempt: int = 0) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        task_succeeded=events_pb2.TaskSucceeded(task=ref(flow, run, step, task), attempt=attempt),
    )


def task_failed(
    flow: str, run: str, step: str, task: str, attempt: int = 0, message: str = "boom"
) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        task_failed=events_pb2.TaskFailed(
            task=ref(flow, run, step, task),
            attempt=attempt,
            error_type="ValueError",
            error_message=message,
        ),
    )


def heartbeat(flow: str, run: str, step: str, task: str, attempt: int = 0) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        task_heartbeat=events_pb2.TaskHeartbeat(task=ref(flow, run, step, task), attempt=attempt),
    )


def run_heartbeat(flow: str, run: str) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(), run_heartbeat=events_pb2.RunHeartbeat(flow_name=flow, run_id=run)
    )


def run_finished(flow: str, run: str, succeeded: bool) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        run_finished=events_pb2.RunFinished(flow_name=flow, run_id=run, succeeded=succeeded),
    )


def task_cloned(flow: str, run: str, step: str, task: str, origin: str) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=new_id(),
        task_cloned=events_pb2.TaskCloned(task=ref(flow, run, step, task), origin_pathspec=origin),
    )


def successful_run(
    flow: str, run: str, user: str = "alice", tags: tuple[str, ...] = ()
) -> list[events_pb2.Event]:
    """start (x) -> end, finished as succeeded."""
    return [
        run_started(flow, run, user, tags),
        task_started(flow, run, "start", "1"),
        artifacts(flow, run, "start", "1", x="key-x"),
        task_succeeded(flow, run, "start", "1"),
        task_started(flow, run, "end", "2"),
        task_succeeded(flow, run, "end", "2"),
        run_finished(flow, run, True),
    ]


def table_written(
    flow: str, run: str, step: str, task: str, namespace: str, table: str, attempt: int = 0,
    files: tuple[str, ...] = ("part-00000.parquet",), **extra: object,
) -> events_pb2.Event:  # fmt: skip
    return events_pb2.Event(
        event_id=new_id(),
        table_version_written=events_pb2.TableVersionWritten(
            task=ref(flow, run, step, task), attempt=attempt, namespace=namespace, table=table,
            location=f"/tables/{namespace}/{table}/{new_id()}", files=list(files),
            **{"num_rows": 10, "num_bytes": 1000, "schema": "x: int64", **extra},
        ),
    )  # fmt: skip


def table_read(
    flow: str, run: str, step: str, task: str, namespace: str, table: str, version: int,
    attempt: int = 0,
) -> events_pb2.Event:  # fmt: skip
    return events_pb2.Event(
        event_id=new_id(),
        table_version_read=events_pb2.TableVersionRead(
            task=ref(flow, run, step, task), attempt=attempt, namespace=namespace, table=table,
            version=version,
        ),
    )  # fmt: skip
