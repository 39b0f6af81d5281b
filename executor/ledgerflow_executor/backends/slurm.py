"""The Slurm backend: each attempt becomes a Slurm batch job, so Slurm enforces its
cores (``--cpus-per-task``: a cpuset), memory (``--mem``: the job's cgroup; an overrun
ends OUT_OF_MEMORY), GPUs (``--gres=gpu:N``: Slurm picks them and sets
CUDA_VISIBLE_DEVICES) and time (``--time``, from @timeout).

The executor stays the puller: it leases what the cluster can take (its capacity is the
cluster's, from ``sinfo``, unless flags say less) and hands each attempt to ``sbatch``.
It follows the jobs with ``squeue --json`` (finished jobs stay listed for MinJobAge),
maps the states that end a job from outside (OUT_OF_MEMORY, TIMEOUT, CANCELLED,
NODE_FAIL, ...) to failures that say so, says why a pending job waits, and cancels with
``scancel``. The attempt runs bare, with this executor's Python, on nodes that share its
filesystem (the datastore and the work folder at the same paths), or, when it has an
image, in a podman container under the job's own cgroup. Debian's Slurm 22.05 is driven
through its commands: pyslurm does not match it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ledgerflow_executor.backends.base import Backend, BackendError, Launch, cpu_count_for
from ledgerflow_executor.backends.container import ContainerBackend

log = logging.getLogger(__name__)

# Job states in which the job has not begun, runs, or has ended (squeue's names).
_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
# Ends that Slurm imposed, as (error type, what happened) for the attempt's failure.
_IMPOSED_ENDS = {
    "TIMEOUT": ("TimeoutException", "Slurm ended job {job} at its time limit (--time)"),
    "DEADLINE": ("TimeoutException", "Slurm ended job {job} at its deadline"),
    "CANCELLED": ("Cancelled", "job {job} was cancelled in Slurm (scancel)"),
    "NODE_FAIL": ("NodeFailure", "node {node} failed while running job {job}"),
    "BOOT_FAIL": ("NodeFailure", "node {node} failed to boot for job {job}"),
    "PREEMPTED": ("Preempted", "Slurm preempted job {job}"),
}
# The job's cgroup (cgroup v1, as slurmd makes it), expanded by the batch script's shell.
_CGROUP_PARENT = '"--cgroup-parent=/slurm_${SLURMD_NODENAME}/uid_$(id -u)/job_${SLURM_JOB_ID}"'
_CGROUP_PARENT_MARK = "--cgroup-parent=SLURM-JOB"
# squeue is asked at most this often, however often the executor polls.
SQUEUE_EVERY_SECONDS = 0.25
# A job that this many answers of squeue in a row no longer list is taken as lost.
_MISSING_POLLS = 20


@dataclass
class _Job:
    missing: int = 0
    waiting: str = ""
    state: str = ""
    node: str = ""


class SlurmBackend(Backend):
    name = "slurm"

    def __init__(self, image: str = "", partition: str = "") -> None:
        super().__init__()
        for command in ("sbatch", "squeue", "scancel", "sinfo"):
            if shutil.which(command) is None:
                raise BackendError(f"the slurm backend needs {command} (Debian: slurm-client)")
        self.image = image
        self.partition = partition
        self._jobs: dict[int, _Job] = {}
        self._ended: dict[int, _Job] = {}  # jobs the last poll found finished
        self._last_squeue = 0.0

    # ---- what the cluster offers --------------------------------------------------------

    def capacity(self) -> tuple[float, int, int]:
        """(cpus, memory MB, GPUs) of the partition's nodes that take jobs."""
        args = ["sinfo", "--noheader", "--Node", "--format", "%N|%c|%m|%G|%t"]
        if self.partition:
            args += ["--partition", self.partition]
        lines = _slurm(args).stdout.splitlines()
        cpus, memory, gpus = 0.0, 0, 0
        for node in dict.fromkeys(lines):  # a node in two partitions is listed twice
            _, node_cpus, node_memory, gres, state = node.split("|")
            if state.rstrip("*~#$@").lower() in ("down", "drain", "drained", "fail"):
                continue
            cpus += float(node_cpus)
            memory += int(node_memory)
            gpus += _gres_gpus(gres)
        if not cpus:
            where = f" in partition {self.partition!r}" if self.partition else ""
            raise BackendError(f"Slurm lists no node that takes jobs{where}: {lines or 'none'}")
        return cpus, memory, gpus

    # ---- one attempt --------------------------------------------------------------------

    def start(self, launch: Launch) -> int:
        script = Path(launch.workdir) / "job.sh"
        script.write_text(self.job_script(launch))
        args = [
            "sbatch", "--parsable",
            f"--job-name=ledgerflow:{launch.task or launch.name}",
            f"--cpus-per-task={cpu_count_for(launch.cpu)}",
            f"--mem={launch.memory_mb}M",
            f"--output={launch.stdout_path}",
            f"--error={launch.stderr_path}",
            f"--chdir={launch.workdir}",
        ]  # fmt: skip
        if launch.gpu:
            args.append(f"--gres=gpu:{launch.gpu}")
        if launch.timeout_seconds:
            args.append(f"--time={math.ceil(launch.timeout_seconds / 60)}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        answer = _slurm([*args, str(script)], retry_seconds=20)
        job = int(answer.stdout.strip().split(";")[0])
        self._jobs[job] = _Job()
        return job

    def job_script(self, launch: Launch) -> str:
        """The batch script: the attempt's environment, then its command (in the image
        under the job's cgroup when it has one)."""
        env = dict(launch.env)
        if launch.gpu:  # Slurm names the GPUs it gave the job
            env.pop("CUDA_VISIBLE_DEVICES", None)
        exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        command = shlex.join(launch.command)
        image = launch.image or self.image
        if image:  # podman in the job's cgroup, so the job's limits hold the container
            podman = ContainerBackend("podman", image, extra_args=(_CGROUP_PARENT_MARK,))
            # Slurm, not this executor, picked the job's GPUs (CDI would give devices).
            inner = podman.command(dataclasses.replace(launch, gpu_ids=()))
            passed = ["SLURM_JOB_ID", "SLURMD_NODENAME"]
            if launch.gpu:
                passed.append("CUDA_VISIBLE_DEVICES")
            inner[2:2] = [arg for name in passed for arg in ("--env", name)]
            command = shlex.join(inner).replace(_CGROUP_PARENT_MARK, _CGROUP_PARENT)
        return "\n".join(["#!/bin/bash", *exports, f"exec {command}", ""])

    def poll(self) -> list[tuple[int, int]]:
        now = time.monotonic()
        if not self._jobs or now - self._last_squeue < SQUEUE_EVERY_SECONDS:
            return []
        self._last_squeue = now
        ids = ",".join(map(str, self._jobs))
        try:
            listed = json.loads(_slurm(["squeue", "--json", f"--jobs={ids}"]).stdout)["jobs"]
        except (BackendError, ValueError, KeyError) as error:
            log.warning("cannot follow the Slurm jobs: %s", error)  # the controller is back soon
            return []
        self._ended.clear()
        exited = []
        seen = set()
        for entry in listed:
            job_id = int(entry["job_id"])
            job = self._jobs.get(job_id)
            if job is None:
                continue
            seen.add(job_id)
            job.state, job.node = entry["job_state"], entry.get("nodes", "")
            job.missing = 0
            job.waiting = ""
            if job.state in _WAITING:
                reason = entry.get("state_reason") or "None"
                job.waiting = f"pending in Slurm (job {job_id})" + (
                    f": {reason}" if reason != "None" else ""
                )
            elif job.state not in _RUNNING:
                exited.append((job_id, _exit_code(int(entry.get("exit_code", 0)))))
        for job_id, job in self._jobs.items():
            if job_id not in seen:
                job.missing += 1
                if job.missing >= _MISSING_POLLS:
                    job.state = "LOST"
                    exited.append((job_id, -1))
        for job_id, _ in exited:
            self._ended[job_id] = self._jobs.pop(job_id)
        return exited

    def waiting(self, handle: int) -> str:
        job = self._jobs.get(handle)
        return job.waiting if job else ""

    def memory_killed(self, handle: int, exit_code: int) -> bool:
        # Slurm's cgroup, or podman's within it (exit 137: the job just FAILED)
        job = self._ended.get(handle)
        oom = job is not None and job.state == "OUT_OF_MEMORY"
        return oom or super().memory_killed(handle, exit_code)

    def ended_by(self, handle: int) -> str:
        job = self._ended.get(handle)
        if job is None:
            return ""
        if job.state == "LOST":
            return f"NodeFailure: Slurm no longer lists job {handle}"
        imposed = _IMPOSED_ENDS.get(job.state)
        if imposed is None:
            return ""
        kind, message = imposed
        return f"{kind}: {message.format(job=handle, node=job.node or '?')}"

    def kill(self, handle: int) -> None:
        _slurm(["scancel", str(handle)], check=False)


def _slurm(
    args: list[str], *, check: bool = True, retry_seconds: float = 0
) -> subprocess.CompletedProcess[str]:
    """Runs a Slurm command; while the controller cannot be reached, tries again for up
    to `retry_seconds` (a restarting slurmctld is back within seconds)."""
    deadline = time.monotonic() + retry_seconds
    while True:
        answer = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if answer.returncode == 0 or not check:
            return answer
        unreachable = "Unable to contact slurm controller" in answer.stderr
        if not unreachable or time.monotonic() >= deadline:
            message = answer.stderr.strip() or f"exit {answer.returncode}"
            raise BackendError(f"{args[0]} failed: {message}")
        time.sleep(0.5)


def _exit_code(wait_status: int) -> int:
    """squeue reports the raw wait status: the exit code, or minus the signal."""
    if wait_status & 0x7F:
        return -(wait_status & 0x7F)
    return wait_status >> 8


def _gres_gpus(gres: str) -> int:
    """GPUs in sinfo's GRES column, for example ``gpu:2`` or ``gpu:a100:4(S:0)``."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total
