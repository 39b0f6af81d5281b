"""The local backend's memory bound (issue 34): a cgroup per attempt where the machine
allows one, so only what an attempt keeps resident counts, an attempt over it is
reported as out of memory, and no cgroup outlives its attempt or its executor; the
address-space rlimit where none can be made. A real service and real executors, as in
test_executor.py. This machine has cgroup v1's memory controller; cgroup v2's path
(backends/cgroups.py) is not exercised here beyond parsing."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, run_over_memory
from ledgerflow.v1 import events_pb2, records_pb2
from ledgerflow_executor.backends.cgroups import (
    MemoryCgroups,
    Mount,
    NoMemoryCgroup,
    folder_of,
    open_memory_cgroups,
    parse_mountinfo,
    parse_proc_cgroup,
    sweep,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def cgroups() -> Iterator[MemoryCgroups]:
    """The memory cgroups an executor started by this test would use (it is in the
    test's own cgroup); skips where none can be made."""
    try:
        found = open_memory_cgroups()
    except NoMemoryCgroup as error:
        pytest.skip(f"no memory cgroup here: {error}")
    yield found
    found.close()


def stop(executor: subprocess.Popen[bytes]) -> None:
    """Drains the executor (SIGTERM): it ends as it would in production, closing its
    backend (conftest's cluster kills executors with SIGKILL)."""
    executor.send_signal(signal.SIGTERM)
    assert executor.wait(timeout=60) == 0


def executors_cgroups(cgroups: MemoryCgroups, executor: subprocess.Popen[bytes]) -> list[Path]:
    """The executor's folders of cgroups (one per local backend it opened)."""
    return list(cgroups.root.parent.glob(f"executor-{executor.pid}.*"))


def failures(cluster: Cluster, flow: str, run_id: str) -> list[events_pb2.TaskFailed]:
    events = cluster.events(flow, run_id)
    return [e.task_failed for e in events if e.HasField("task_failed")]


def test_threads_that_keep_little_resident_run_within_their_memory(
    cluster: Cluster, cgroups: MemoryCgroups
) -> None:
    # The repro: 16 threads of ~4 MB resident each under memory=512 failed with
    # "can't start new thread" when the bound was the address space.
    executor = cluster.executor()
    result = cluster.flow("memory_threads", "run", "--remote")
    assert "succeeded" in result.stdout, result.stdout
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    step = f"MemoryThreads/{run_id}/start"
    assert cluster.artifact(step, "threads") == 16
    # It ran in a cgroup of its own, in its executor's folder, bounded to its memory.
    cgroup = cluster.artifact(step, "cgroup")
    assert f"/ledgerflow/executor-{executor.pid}.0/ledgerflow-" in cgroup, cgroup
    assert cluster.artifact(step, "limit") == str(512 * 1024 * 1024)
    # The attempt's cgroup went with it, the executor's folder with the executor.
    assert not (cgroups.root.parent / cgroup.split("/ledgerflow/", 1)[1]).exists()
    assert executors_cgroups(cgroups, executor) != []
    stop(executor)
    assert executors_cgroups(cgroups, executor) == []


def test_a_step_over_its_memory_is_killed_by_its_cgroup(
    cluster: Cluster, cgroups: MemoryCgroups
) -> None:
    executor = cluster.executor(memory=8192)
    run_id = run_over_memory(cluster)  # OutOfMemory: killed by the kernel, not MemoryError
    (failed,) = failures(cluster, "ResourceLimits", run_id)
    assert failed.kind == records_pb2.FAILURE_KIND_OUT_OF_MEMORY
    assert failed.error_message.startswith("exceeded memory=256 MB")
    assert "@resources(memory=...)" in failed.error_message
    stop(executor)
    assert executors_cgroups(cgroups, executor) == []
    assert "address space" not in cluster.log_text()  # no fallback said


def test_without_a_cgroup_the_address_space_is_bounded(cluster: Cluster) -> None:
    # Forced: this machine can make memory cgroups, and the fallback (for machines that
    # cannot) must still bound memory as before: by address space, so the allocation
    # fails inside the task as MemoryError, which the task reports.
    executor = cluster.executor(memory=8192, env={"LEDGERFLOW_LOCAL_MEMORY": "rlimit"})
    run_id = run_over_memory(cluster, error_type="MemoryError")
    (failed,) = failures(cluster, "ResourceLimits", run_id)
    assert failed.kind == records_pb2.FAILURE_KIND_OUT_OF_MEMORY
    stop(executor)
    said = cluster.log_text()
    assert said.count("bounds each attempt's address space, not its memory") == 1, said
    assert "LEDGERFLOW_LOCAL_MEMORY=rlimit" in said


def test_the_cgroups_of_an_executor_killed_go_with_the_next_one(cgroups: MemoryCgroups) -> None:
    # kill -9 leaves the executor no time to clean up: the next one removes its cgroups
    # (empty, since its task servers and their attempts die with it).
    code = (
        "import os; from ledgerflow_executor.backends.cgroups import open_memory_cgroups; "
        "c = open_memory_cgroups(); c.create('orphan', 64); print(c.root, flush=True); "
        "os.kill(os.getpid(), 9)"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = Path(killed.stdout.strip())
    assert (left / "orphan").is_dir()
    sweep(cgroups.root.parent)
    assert not left.exists()


# Lines as the kernel writes them (proc(5)), from a cgroup v1 machine with a cgroup2
# mount beside it (this one), and from a cgroup v2 container with its own namespace.
HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
4:memory:/process_api/15512ede
2:cpu,cpuacct:/
0::/
"""


def test_cgroup_v1_and_v2_mounts_and_memberships_are_read() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    assert [(str(m.point), m.version) for m in mounts] == [
        ("/sys/fs/cgroup/memory", 1),
        ("/sys/fs/cgroup/cpu,cpuacct", 1),
        ("/sys/fs/cgroup/unified", 2),
    ]
    assert "memory" in mounts[0].controllers and "memory" not in mounts[1].controllers
    own = parse_proc_cgroup(HYBRID_CGROUP)
    assert own["memory"] == "/process_api/15512ede" and own["cpuacct"] == "/"
    assert own[""] == "/"
    assert folder_of(mounts[0], own["memory"]) == Path("/sys/fs/cgroup/memory/process_api/15512ede")
    # A mount of part of the hierarchy (a container's bind mount) and a path in it.
    part = Mount(Path("/sys/fs/cgroup"), "/kubepods/pod1", 2, frozenset())
    assert folder_of(part, "/kubepods/pod1/app") == Path("/sys/fs/cgroup/app")
    assert folder_of(part, "/kubepods/pod2") is None
    # A space in a mount point is written as \040.
    (spaced,) = parse_mountinfo("50 1 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw\n")
    assert spaced.point == Path("/mnt/my cgroups")
