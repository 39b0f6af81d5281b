"""Sixteen threads that each keep ~4 MB resident, all alive at once, under
@resources(memory=512): issue 34's repro (an address-space bound failed them with
"can't start new thread": each thread reserves a stack and an allocator arena). The
step also records the memory cgroup it ran in and that cgroup's limit."""

import threading
from pathlib import Path

from ledgerflow import FlowSpec, resources, step

THREADS = 16


def memory_cgroup() -> tuple[str, str]:
    """This process's memory cgroup (v1's memory line, else v2's) and its limit."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    v1 = [line.split(":", 2)[2] for line in lines if "memory" in line.split(":")[1].split(",")]
    v2 = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    for cgroup, limit in (
        *((c, Path("/sys/fs/cgroup/memory" + c) / "memory.limit_in_bytes") for c in v1),
        *((c, Path("/sys/fs/cgroup" + c) / "memory.max") for c in v2),
    ):
        if limit.exists():
            return cgroup, limit.read_text().strip()
    return "", ""


class MemoryThreads(FlowSpec):
    @resources(memory=512)
    @step
    def start(self):
        everyone = threading.Barrier(THREADS + 1)
        held = []

        def hold() -> None:
            # ~4 MB in 2 KB pieces: through malloc (Python's own allocator takes only
            # up to 512 bytes), so each thread gets a glibc arena, which reserves 64 MB
            # of address space; with the 8 MB of its stack, that is what broke.
            held.append([bytes(2048) for _ in range(2048)])
            everyone.wait(timeout=60)

        threads = [threading.Thread(target=hold) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        everyone.wait(timeout=60)  # all of them alive, their blocks resident
        for thread in threads:
            thread.join()
        self.threads = len(held)
        self.cgroup, self.limit = memory_cgroup()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MemoryThreads()
