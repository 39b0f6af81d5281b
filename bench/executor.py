"""Executor benchmark: remote runs through `ledgerflow executor` against the forked
local runtime, lease throughput, and an idle executor's memory. Prints figures.

    python bench/executor.py [--items 100]
                             [--backends local,podman,podman-warm,slurm,slurm-steps]
                             [--lease-items 4000] [--baseline REF [--rounds 2]]

1. A foreach of --items trivial tasks, run locally (`run --max-workers 4`, forked
   tasks) and remotely (`run --remote` through one executor per backend, 4 tasks at
   once): the time each remote task adds over the local one, the time from
   submission to the first task running, and the CPU a task cost the service, the
   executor and the processes it started (for `local`, the task server and its
   forks). With slurm, each task is a batch job on the Slurm test cluster this script
   starts (tests/slurm_cluster.py: two nodes of 2
   cores, 4 jobs at once), and the figures include jobs per second; with slurm-steps,
   each task is a job step in an allocation the executor holds (--slurm-steps); with
   podman-warm, in a warm container an earlier task left (--warm-containers).
2. Leases per second: --lease-items queued tasks on Postgres, taken by 8 executor
   processes calling LeaseTask as fast as they can.
3. The resident memory of an executor that has been idle for a few seconds.

Everything runs on loopback with a service this script starts (SQLite for 1 and 3,
a throwaway Postgres for 2). Goals (issue 33): a task adds at most 5 ms on local, 350 ms
on podman with a container a task and 50 ms with warm containers, 100 ms as a Slurm job
step; 10,000 leases/s; an idle executor under 100 MB. The packages are compiled to
bytecode first, as an installed package is (bench/checkouts.py says why).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from checkouts import compile_packages, describe, in_turn, paired_checkouts  # noqa: E402
from services import child_pids, cpu_seconds, start_service  # noqa: E402

FLOW = """
from ledgerflow import FlowSpec, Parameter, resources, step


class BenchForeach(FlowSpec):
    items = Parameter("items", default=100, type=int)

    @step
    def start(self):
        self.things = list(range(self.items))
        self.next(self.work, foreach="things")

    @resources(cpu=0.25, memory=256)
    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BenchForeach()
"""


# Backends by another name: an executor's flags for each.
VARIANTS = {
    "slurm-steps": ["--backend", "slurm", "--slurm-steps"],
    "podman-warm": ["--backend", "podman", "--warm-containers"],
}


def start_executor(env: dict[str, str], port: int, backend: str) -> subprocess.Popen[bytes]:
    """An executor of `backend` (or of one of the VARIANTS)."""
    flags = VARIANTS.get(backend, ["--backend", backend])
    return subprocess.Popen(
        [sys.executable, "-m", "ledgerflow.cli", "executor", "--service", f"127.0.0.1:{port}",
         *flags, "--cpus", "1", "--memory", "4096", "--poll-seconds", "0.2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def items_flags(items: int) -> list[str]:
    """The foreach's item count, and a bound on splits that lets it through."""
    return ["--items", str(items), "--max-num-splits", str(max(items, 100))]


def timed_run(args: list[str], env: dict[str, str], cwd: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - began


def first_task_delay(port: int, run_id: str) -> float:
    """Seconds from the RunStarted to the first TaskStarted, as the ledger recorded them."""
    from ledgerflow.metadata_client import GrpcMetadata
    from ledgerflow.v1 import audit_service_pb2

    client = GrpcMetadata(f"127.0.0.1:{port}", "bench")
    events = client.list_events(
        audit_service_pb2.ListEventsRequest(run_pathspec=f"BenchForeach/{run_id}")
    ).events
    client.close()
    submitted = next(e for e in events if e.HasField("run_started")).recorded_at
    started = next(e for e in events if e.HasField("task_started")).recorded_at
    return (started.ToMicroseconds() - submitted.ToMicroseconds()) / 1e6


def foreach_figures(
    items: int, backends: list[str], base_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Prints the foreach's figures (`base_env`: the environment the service, executor
    and runs start from, this process's by default); returns the ms each remote task
    adds over local, by backend, and the local run's seconds ("local runtime")."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in (base_env or os.environ).items()
               if not k.startswith("LEDGERFLOW_")}  # fmt: skip
        env.update(LEDGERFLOW_HOME=str(Path(scratch) / ".ledgerflow"), LEDGERFLOW_PYLINT="0")
        flow = Path(scratch) / "bench_foreach.py"
        flow.write_text(FLOW)
        local = timed_run([str(flow), "run", "--max-workers", "4", *items_flags(items)],
                          env, scratch)  # fmt: skip
        figures["local runtime"] = local
        print(f"foreach of {items}, local forked runtime (4 workers): {local:.2f} s")
        service, port = start_service(f"sqlite://{scratch}/service.db", env=env)
        remote_env = {**env, "LEDGERFLOW_SERVICE": f"127.0.0.1:{port}"}
        try:
            for backend in backends:
                with contextlib.ExitStack() as stack:
                    if backend.startswith("slurm"):
                        from slurm_cluster import slurm_cluster

                        slurm = stack.enter_context(slurm_cluster(Path(scratch) / backend))
                        env = {**env, "SLURM_CONF": str(slurm.conf)}
                    remote = remote_foreach(env, remote_env, service.pid, port, backend, flow,
                                            items, scratch)  # fmt: skip
                added = (remote.seconds - local) / (items + 3) * 1000
                figures[backend] = added
                print(
                    f"foreach of {items}, remote on {backend} (4 tasks at once): "
                    f"{remote.seconds:.2f} s, {added:+.0f} ms a task over local, "
                    f"{(items + 3) / remote.seconds:.1f} tasks/s; submission to first task "
                    f"{remote.first_task_delay * 1000:.0f} ms"
                )
                spent = (remote.service_cpu, remote.executor_cpu, remote.tasks_cpu)
                per_task = [1000 * seconds / (items + 3) for seconds in spent]
                print("    CPU a task: service {:.1f} ms, executor {:.1f} ms, the processes the "
                      "executor started {:.1f} ms".format(*per_task))  # fmt: skip
        finally:
            service.terminate()
            service.wait(30)
    return figures


@dataclass
class RemoteFigures:
    seconds: float
    first_task_delay: float
    # CPU seconds the run cost the service, the executor, and the processes the executor
    # started (for `local`, the task server and its forks; a container's or a Slurm
    # job's are not its children and are not counted).
    service_cpu: float = 0.0
    executor_cpu: float = 0.0
    tasks_cpu: float = 0.0


def remote_foreach(
    env: dict[str, str],
    remote_env: dict[str, str],
    service: int,
    port: int,
    backend: str,
    flow: Path,
    items: int,
    scratch: str,
) -> RemoteFigures:
    """`run --remote` of the foreach through one executor of `backend` (the service's
    process: `service`)."""
    executor = start_executor(env, port, backend)

    def cpu() -> tuple[float, float, float]:
        children = sum(cpu_seconds(c, reaped_children=True) for c in child_pids(executor.pid))
        return cpu_seconds(service), cpu_seconds(executor.pid), children

    try:
        time.sleep(1.0)  # the executor connects and opens its watch stream
        began, cpu_before = time.perf_counter(), cpu()
        out = subprocess.run(
            [sys.executable, str(flow), "run", "--remote", *items_flags(items)],
            env=remote_env, cwd=scratch, capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode:
            raise SystemExit(f"the run on {backend} failed:\n{out.stdout[-3000:]}{out.stderr}")
        seconds = time.perf_counter() - began
        spent = [after - before for after, before in zip(cpu(), cpu_before, strict=True)]
        run_id = out.stdout.split(" run ", 1)[1].split()[0]
        return RemoteFigures(seconds, first_task_delay(port, run_id), *spent)
    finally:
        executor.terminate()
        executor.wait(60)


def _lease_until_empty(
    port: int, executor_id: str, per_call: int, counts: multiprocessing.Queue
) -> None:
    from ledgerflow.metadata_client import GrpcMetadata
    from ledgerflow.v1 import executor_service_pb2

    client = GrpcMetadata(f"127.0.0.1:{port}", "bench")
    big = executor_service_pb2.Capacity(cpu=1000, memory_mb=1 << 30, gpu=0)
    leased = 0
    while True:
        request = executor_service_pb2.LeaseTaskRequest(
            executor_id=executor_id, free=big, total=big, lease_seconds=3600
        )
        response = client.lease_tasks(
            executor_service_pb2.LeaseTasksRequest(request=request, max_tasks=per_call)
        )
        if not response.leases:
            break
        leased += len(response.leases)
    counts.put(leased)
    client.close()


def queue_foreach(client: object, items: int) -> None:
    """Submits a run whose start step splits into `items` queued tasks, playing the
    executor of the start step itself."""
    import uuid

    from ledgerflow.v1 import events_pb2, executor_service_pb2, records_pb2

    kind = records_pb2.StepKind
    graph = records_pb2.FlowGraph(steps=[
        records_pb2.StepSpec(name="start", kind=kind.STEP_KIND_FOREACH, next_steps=["work"]),
        records_pb2.StepSpec(name="work", kind=kind.STEP_KIND_LINEAR, next_steps=["join"]),
        records_pb2.StepSpec(name="join", kind=kind.STEP_KIND_JOIN, next_steps=["end"],
                             in_steps=["work"], closes="start"),
        records_pb2.StepSpec(name="end", kind=kind.STEP_KIND_END),
    ])  # fmt: skip

    def event(**payload: object) -> events_pb2.Event:
        return events_pb2.Event(event_id=str(uuid.uuid4()), **payload)  # type: ignore[arg-type]

    started = events_pb2.RunStarted(flow_name="BenchLeases", run_id="1", user="bench",
                                    system_tags=["user:bench"], graph=graph)  # fmt: skip
    client.append_events([event(run_started=started)])  # type: ignore[attr-defined]
    big = executor_service_pb2.Capacity(cpu=1, memory_mb=1 << 20)
    lease = client.lease_task(  # type: ignore[attr-defined]
        executor_service_pb2.LeaseTaskRequest(executor_id="bench", free=big, total=big)
    )
    ref = events_pb2.TaskRef(flow_name="BenchLeases", run_id="1", step_name="start", task_id="1")
    client.append_events([  # type: ignore[attr-defined]
        event(task_started=events_pb2.TaskStarted(task=ref, lease_id=lease.lease_id)),
        event(task_succeeded=events_pb2.TaskSucceeded(task=ref, lease_id=lease.lease_id,
                                                      num_splits=items)),
    ])  # fmt: skip


def lease_figures(
    items: int, executors: int, per_call: int, base_env: dict[str, str] | None = None
) -> float:
    """Prints and returns the leases a second (`base_env`: the service's environment)."""
    from ledgerflow.metadata_client import GrpcMetadata
    from postgres_server import create_database, postgres_server

    with postgres_server() as server_url, tempfile.TemporaryDirectory() as scratch:
        url = create_database(server_url, "bench_leases")
        env = {k: v for k, v in (base_env or os.environ).items()
               if not k.startswith("LEDGERFLOW_")}  # fmt: skip
        env["LEDGERFLOW_HOME"] = scratch
        service, port = start_service(url, env=env)
        try:
            client = GrpcMetadata(f"127.0.0.1:{port}", "bench")
            queue_foreach(client, items)
            client.close()
            counts: multiprocessing.Queue = multiprocessing.Queue()
            workers = [
                multiprocessing.Process(
                    target=_lease_until_empty, args=(port, f"bench-{i}", per_call, counts)
                )
                for i in range(executors)
            ]
            began = time.perf_counter()
            for worker in workers:
                worker.start()
            total = sum(counts.get() for _ in workers)
            seconds = time.perf_counter() - began
            for worker in workers:
                worker.join()
            print(
                f"leases: {total} handed out to {executors} executors in {seconds:.2f} s: "
                f"{total / seconds:.0f} leases/s (Postgres; up to {per_call} per LeaseTasks call)"
            )
            return total / seconds
        finally:
            service.terminate()
            service.wait(30)


def idle_rss() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
        env["LEDGERFLOW_HOME"] = scratch
        service, port = start_service(f"sqlite://{scratch}/service.db", env=env)
        executor = start_executor(env, port, "local")
        try:
            time.sleep(5)
            status = Path(f"/proc/{executor.pid}/status").read_text()
            rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS"))
                         .split()[1])  # fmt: skip
            print(f"idle executor: {rss_kb / 1024:.0f} MB resident")
        finally:
            executor.terminate()
            executor.wait(30)
            service.terminate()
            service.wait(30)


def paired(args: argparse.Namespace, backends: list[str]) -> None:
    """The foreach's added ms a task and the leases a second on the commit --baseline
    and on this checkout, in alternating rounds: the service, the executor and the runs
    of each side run its own packages (bench/checkouts.py); the lease clients are this
    checkout's on both sides, so the difference is the service's."""
    with paired_checkouts(args.baseline, prefix="executor-paired-") as (_, sides):
        for side in sides:
            print(f"  {side.role}: {describe(side.ref)}")
        found: dict[tuple[str, str], list[float]] = {}
        for number in range(args.rounds):
            for side in in_turn(sides, number):
                print(f"round {number + 1}, {side.role} {side.label}:")
                env = side.python_env()
                figures = foreach_figures(args.items, backends, env)
                figures["leases/s"] = lease_figures(args.lease_items, args.lease_executors, 64,
                                                    env)  # fmt: skip
                for name, value in figures.items():
                    found.setdefault((side.role, name), []).append(value)
        print(f"\n{'':28} {'old ' + sides[0].label:>16} {'new ' + sides[1].label:>16}")
        names = ["local runtime", *backends, "leases/s"]
        units = {"local runtime": "s, the foreach run locally", "leases/s": "leases/s"}
        for name in names:
            old, new = (statistics.median(found[(role, name)]) for role in ("old", "new"))
            unit = units.get(name, f"ms a task added, remote on {name}")
            print(f"{name:28} {old:>16,.1f} {new:>16,.1f}  ({unit}; medians of {args.rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--backends", default="local,podman")
    parser.add_argument("--lease-items", type=int, default=4000)
    parser.add_argument("--lease-executors", type=int, default=8)
    parser.add_argument("--phases", default="foreach,leases,rss", help="which figures, in order")
    parser.add_argument(
        "--baseline", metavar="REF",
        help="instead: the foreach and the leases on the commit REF and on this checkout, "
        "in --rounds alternating rounds, side by side",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline")
    args = parser.parse_args()
    if args.baseline:
        paired(args, [b for b in args.backends.split(",") if b])
        return
    phases = args.phases.split(",")
    # As `pip install` would: no task process or container compiles the SDK (see
    # bench/checkouts.py; the paired mode compiles each side's checkout).
    compile_packages()
    if "foreach" in phases:
        foreach_figures(args.items, [b for b in args.backends.split(",") if b])
    if "leases" in phases:
        for per_call in (1, 64):
            lease_figures(args.lease_items, args.lease_executors, per_call)
    if "rss" in phases:
        idle_rss()


if __name__ == "__main__":
    main()
