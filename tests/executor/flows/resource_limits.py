"""One branch allocates more memory than its @resources allow; its sibling stays
within them and records the CPU quota its container sees."""

from pathlib import Path

from ledgerflow import FlowSpec, resources, step


def cpu_quota() -> str:
    """cfs quota/period, from the task's own cgroup (v1 or v2)."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    if v2.exists():
        return v2.read_text().strip()
    base = Path("/sys/fs/cgroup/cpu,cpuacct")
    if not base.exists():
        base = Path("/sys/fs/cgroup/cpu")
    quota = (base / "cpu.cfs_quota_us").read_text().strip()
    period = (base / "cpu.cfs_period_us").read_text().strip()
    return f"{quota} {period}"


class ResourceLimits(FlowSpec):
    @step
    def start(self):
        self.next(self.hog, self.modest)

    @resources(memory=256)
    @step
    def hog(self):
        self.block = bytearray(512 * 1024 * 1024)
        self.block[::4096] = b"x" * len(self.block[::4096])
        self.next(self.join)

    @resources(memory=256, cpu=0.5)
    @step
    def modest(self):
        self.block = len(bytearray(32 * 1024 * 1024))
        self.quota = cpu_quota()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ResourceLimits()
