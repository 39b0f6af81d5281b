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

A @parallel gang is one job of N tasks (``sbatch --ntasks=N``, each task's cores, memory
and GPUs), whose batch script runs them all with one ``srun``; with ``--slurm-steps``,
one ``srun --ntasks=N`` step in a held node. Either way each task picks its node's
attempt by ``SLURM_PROCID`` (gang.sh) and learns node 0's address from Slurm
(``NodeAddr`` of the job's first node: current.parallel.main_ip).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerflow.engine import TaskOutcome, died_outcome, failed
from ledgerflow.engine.facts import MAIN_IP_VARIABLE
from ledgerflow.engine.outcomes import TIMEOUT_ERROR
from ledgerflow.v1 import records_pb2

from ledgerflow_executor.backends.base import (
    PRIVATE_VARIABLES,
    WORKROOT,
    Backend,
    BackendError,
    Launch,
    Leftover,
    cpu_count_for,
)
from ledgerflow_executor.backends.container import ContainerBackend, container_ending

log = logging.getLogger(__name__)

# Job states in which the job has not begun, runs, or has ended (squeue's names).
_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
# Ends that Slurm imposed, as (error type, what happened) for the attempt's failure.
_INFRA = records_pb2.FAILURE_KIND_INFRASTRUCTURE
_IMPOSED_ENDS = {
    "TIMEOUT": (TIMEOUT_ERROR, "Slurm ended {what} at its time limit (--time)",
                records_pb2.FAILURE_KIND_TIMEOUT),
    "DEADLINE": (TIMEOUT_ERROR, "Slurm ended {what} at its deadline",
                 records_pb2.FAILURE_KIND_TIMEOUT),
    "CANCELLED": ("Cancelled", "{what} was cancelled in Slurm (scancel)",
                  records_pb2.FAILURE_KIND_CANCELLED),
    "NODE_FAIL": ("NodeFailure", "node {node} failed while running {what}", _INFRA),
    "BOOT_FAIL": ("NodeFailure", "node {node} failed to boot for {what}", _INFRA),
    "PREEMPTED": ("Preempted", "Slurm preempted {what}", _INFRA),
}  # fmt: skip
# The job's cgroup (cgroup v1, as slurmd makes it), expanded by the batch script's shell.
_CGROUP_PARENT = '"--cgroup-parent=/slurm_${SLURMD_NODENAME}/uid_$(id -u)/job_${SLURM_JOB_ID}"'
_CGROUP_PARENT_MARK = "--cgroup-parent=SLURM-JOB"
# squeue is asked at most this often, however often the executor polls.
SQUEUE_EVERY_SECONDS = 0.25
# A step whose srun has not started it after this long waits for room on its node.
STEP_START_SECONDS = 1.0
# A job that this many answers of squeue in a row no longer list is taken as lost.
_MISSING_POLLS = 20


@dataclass(frozen=True)
class _Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int


@dataclass
class _Job:
    what: str = ""  # "job 12", or "a step of job 7"
    missing: int = 0
    waiting: str = ""
    state: str = ""
    node: str = ""


@dataclass
class _Gang:
    """The attempts of a @parallel gang that one Slurm handle (a job, or an srun
    step's process) runs: their own handles, and where each task's exit code lands."""

    handles: list[int]
    exit_files: list[Path]


class SlurmBackend(Backend):
    name = "slurm"
    assigns_gpus = True
    holds_attempts_back = True

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
        self._gangs: dict[int, _Gang] = {}  # by the Slurm handle that runs the gang
        self._gang_of: dict[int, int] = {}  # a gang attempt's handle -> the Slurm handle
        self._next_gang_handle = -1  # gang attempts get handles of their own (negative)

    # ---- what the cluster offers --------------------------------------------------------

    def capacity(self) -> tuple[float, int, int]:
        """(cpus, memory MB, GPUs) of the partition's nodes that take jobs."""
        nodes = self.nodes()
        return (
            float(sum(n.cpus for n in nodes)),
            sum(n.memory_mb for n in nodes),
            sum(n.gpus for n in nodes),
        )

    def nodes(self) -> list[_Node]:
        """The partition's nodes that take jobs (not down, drained or failed)."""
        args = ["sinfo", "--noheader", "--Node", "--format", "%N|%c|%m|%G|%t"]
        if self.partition:
            args += ["--partition", self.partition]
        lines = _slurm(args).stdout.splitlines()
        nodes = []
        for line in dict.fromkeys(lines):  # a node in two partitions is listed twice
            name, cpus, memory, gres, state = line.split("|")
            if state.rstrip("*~#$@").lower() not in ("down", "drain", "drained", "fail"):
                nodes.append(_Node(name, int(float(cpus)), int(memory), _gres_gpus(gres)))
        if not nodes:
            where = f" in partition {self.partition!r}" if self.partition else ""
            raise BackendError(f"Slurm lists no node that takes jobs{where}: {lines or 'none'}")
        return nodes

    # ---- one attempt --------------------------------------------------------------------

    def start(self, launch: Launch) -> int:
        script = Path(launch.workdir) / "job.sh"
        script.write_text(self.job_script(launch))
        args = ["sbatch", "--parsable", *_attempt_args(launch)]
        if self.partition:
            args.append(f"--partition={self.partition}")
        answer = _slurm([*args, str(script)], retry_seconds=20)
        job = int(answer.stdout.strip().split(";")[0])
        self._jobs[job] = _Job(f"job {job}")
        return job

    def start_gang(self, launches: list[Launch]) -> list[int]:
        """One job of len(launches) tasks, started together by one srun."""
        first = launches[0]
        dispatch = self._gang_script(launches)
        script = Path(first.workdir) / "gang-job.sh"
        srun = f"exec srun --kill-on-bad-exit=0 /bin/bash {shlex.quote(str(dispatch))}"
        script.write_text("\n".join(["#!/bin/bash", _MAIN_IP_FROM_SLURM, srun, ""]))
        args = ["sbatch", "--parsable", *_gang_args(first, len(launches))]
        if self.partition:
            args.append(f"--partition={self.partition}")
        answer = _slurm([*args, str(script)], retry_seconds=20)
        job = int(answer.stdout.strip().split(";")[0])
        self._jobs[job] = _Job(f"job {job}")
        return self._gang(job, launches)

    def _gang_script(self, launches: list[Launch]) -> Path:
        """gang.sh, which each of the gang's Slurm tasks runs: its node's attempt (by
        SLURM_PROCID), with that attempt's output files, then its exit code noted."""
        cases = []
        for index, launch in enumerate(launches):
            node_script = Path(launch.workdir) / "job.sh"
            node_script.write_text(self.job_script(launch, gang=True))
            run = (
                f"/bin/bash {shlex.quote(str(node_script))} "
                f">{shlex.quote(launch.stdout_path)} 2>{shlex.quote(launch.stderr_path)}"
            )
            exit_file = shlex.quote(str(Path(launch.workdir) / "exit-code"))
            # Noted as squeue's codes read: a signal N as -N (bash says 128 + N).
            cases.append(f"  {index}) cd {shlex.quote(launch.workdir)}; {run}; code=$?; "
                         f"[ $code -gt 128 ] && code=$((128 - code)); "
                         f"echo $code >{exit_file} ;;")  # fmt: skip
        dispatch = Path(launches[0].workdir) / "gang.sh"
        unknown = '  *) echo "no attempt for task $SLURM_PROCID" >&2; exit 1 ;;'
        lines = ["#!/bin/bash", 'case "$SLURM_PROCID" in', *cases, unknown, "esac", ""]
        dispatch.write_text("\n".join(lines))
        return dispatch

    def _gang(self, slurm_handle: int, launches: list[Launch]) -> list[int]:
        """Handles for a gang's attempts, which `slurm_handle` runs together."""
        handles = []
        for _ in launches:
            handles.append(self._next_gang_handle)
            self._gang_of[self._next_gang_handle] = slurm_handle
            self._next_gang_handle -= 1
        exit_files = [Path(launch.workdir) / "exit-code" for launch in launches]
        self._gangs[slurm_handle] = _Gang(handles, exit_files)
        return handles

    def _fan_out(self, exited: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The exits of attempts: a gang's Slurm handle ending ends each of its
        attempts, with the exit code its task noted (else the handle's)."""
        found = []
        for handle, code in exited:
            gang = self._gangs.pop(handle, None)
            if gang is None:
                found.append((handle, code))
                continue
            for attempt, exit_file in zip(gang.handles, gang.exit_files, strict=True):
                found.append((attempt, _noted_code(exit_file, code)))
                if handle in self._ended:
                    self._ended[attempt] = self._ended[handle]
        return found

    def _slurm_handle(self, handle: int) -> int:
        """The Slurm handle (job id, srun pid) that runs an attempt."""
        return self._gang_of.get(handle, handle)

    def job_script(self, launch: Launch, *, gang: bool = False) -> str:
        """The batch script: the attempt's environment, then its command (in the image
        under the job's cgroup when it has one); for a node of a `gang`, what its
        task runs. The environment's values are not in the script (anyone who may see
        the job reads it back with `scontrol write batch_script`): they are written
        here to a file only this user can read, in the attempt's folder, which the
        job sources and deletes before it runs the attempt."""
        env_file = write_env_script(launch)
        source = f". {shlex.quote(str(env_file))}; rm -f {shlex.quote(str(env_file))}"
        command = shlex.join(launch.command)
        image = launch.image or self.image
        if image:  # podman in the job's cgroup, so the job's limits hold the container
            podman = ContainerBackend("podman", image, extra_args=(_CGROUP_PARENT_MARK,))
            # Slurm, not this executor, picked the job's GPUs (CDI would give devices).
            inner = podman.command(dataclasses.replace(launch, gpu_ids=()))
            passed = ["SLURM_JOB_ID", "SLURMD_NODENAME"]
            if gang:  # node 0's address, which the gang's batch script found
                passed.append(MAIN_IP_VARIABLE)
            if launch.gpu:
                passed.append("CUDA_VISIBLE_DEVICES")
            inner[2:2] = [arg for name in passed for arg in ("--env", name)]
            command = shlex.join(inner).replace(_CGROUP_PARENT_MARK, _CGROUP_PARENT)
        # sbatch hands the job the executor's environment: not its private settings.
        private = f"unset {' '.join(sorted(PRIVATE_VARIABLES))}"
        return "\n".join(["#!/bin/bash", private, source, f"exec {command}", ""])

    def poll(self) -> list[tuple[int, int]]:
        now = time.monotonic()
        if not self._jobs or now - self._last_squeue < SQUEUE_EVERY_SECONDS:
            return []
        self._last_squeue = now
        try:
            listed = _squeue_json(set(self._jobs))
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
        return self._fan_out(exited)

    def waiting(self, handle: int) -> str:
        job = self._jobs.get(self._slurm_handle(handle))
        return job.waiting if job else ""

    def begun(self, handle: int) -> bool:
        """Once squeue says the job runs (or it ended): a pending job has not begun."""
        job = self._jobs.get(self._slurm_handle(handle))
        return job is None or job.state in _RUNNING

    def why_ended(self, handle: int, exit_code: int, memory_mb: int) -> TaskOutcome | None:
        job = self._ended.get(handle)
        if job is not None and job.state == "OUT_OF_MEMORY":  # Slurm's cgroup
            return died_outcome(exit_code, memory_mb=memory_mb)
        if job is not None and job.state == "LOST":
            return failed("NodeFailure", f"Slurm no longer lists job {handle}", _INFRA)
        imposed = _IMPOSED_ENDS.get(job.state) if job is not None else None
        if job is None or imposed is None:  # podman's cgroup within the job: exit 137
            return container_ending("podman", exit_code, memory_mb)
        error_type, message, kind = imposed
        return failed(error_type, message.format(what=job.what, node=job.node or "?"), kind)

    def kill(self, handle: int) -> None:
        # A gang's job ends whole: one node of it cannot go on without the others.
        _slurm(["scancel", str(self._slurm_handle(handle))], check=False)

    def handle_of(self, launch: Launch) -> str:
        """The job's comment (its id is Slurm's to give, once submitted):
        ``squeue --format=%i,%k`` finds it."""
        return job_comment(launch)

    def leftovers(self) -> list[Leftover]:
        """This user's attempts' jobs Slurm has not finished (pending, running,
        suspended): executors of one service run as one user."""
        listed = _slurm(["squeue", "--me", "--noheader", "--format=%i|%j|%k"]).stdout
        found = []
        for line in listed.splitlines():
            job, _, rest = line.partition("|")
            name, _, comment = rest.partition("|")
            attempt = attempt_of_job(name.strip(), comment.strip())
            if attempt is not None and job.strip().isdigit():
                found.append(dataclasses.replace(attempt, handle=f"job {job.strip()}"))
        return found

    def kill_leftover(self, leftover: Leftover) -> None:
        _slurm(["scancel", leftover.handle.removeprefix("job ")], check=False)


def write_env_script(launch: Launch) -> Path:
    """The attempt's environment as `export` lines for its job to source, in a new file
    (0600) in its folder, which the nodes see at the same path."""
    path = Path(launch.workdir) / "env.sh"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in launch.env.items())
    return path


def job_name(launch: Launch, gang: int = 0) -> str:
    """What squeue names an attempt's job (or step): STEP.TASK.ATTEMPT@FLOW/RUN, the
    most telling first, as plain squeue shows 8 characters (`fit.3.0@`, where a fixed
    prefix would name every job alike); a @parallel gang of N: STEP.TASK.ATTEMPT.gangN@..."""
    parts = launch.task.split("/")
    if len(parts) != 4:
        return launch.name
    flow, run_id, step, task_attempt = parts
    gang_part = f".gang{gang}" if gang else ""
    return f"{step}.{task_attempt}{gang_part}@{flow}/{run_id}"


def job_comment(launch: Launch) -> str:
    """What an attempt's job says of its lease: ledgerflow-LEASE@SERVICE."""
    return f"{launch.name}@{launch.service}"


def attempt_of_job(name: str, comment: str) -> Leftover | None:
    """The attempt a job runs, from its name (job_name) and comment (job_comment); None
    for jobs that are not attempts."""
    step_task_attempt, _, flow_run = name.partition("@")
    parts = step_task_attempt.split(".")
    lease, _, service = comment.partition("@")
    if not lease.startswith("ledgerflow-") or len(parts) < 3 or flow_run.count("/") != 1:
        return None
    step, task_id, attempt = parts[:3]
    if not attempt.isdigit():
        return None
    return Leftover("", f"{flow_run}/{step}/{task_id}", int(attempt),
                    lease.removeprefix("ledgerflow-"), service)  # fmt: skip


def _attempt_args(launch: Launch) -> list[str]:
    """What sbatch and srun both take: the attempt's name, resources, time and files."""
    args = [
        f"--job-name={job_name(launch)}",
        f"--comment={job_comment(launch)}",
        f"--cpus-per-task={cpu_count_for(launch.cpu)}",
        f"--mem={launch.memory_mb}M",
        f"--output={launch.stdout_path}",
        f"--error={launch.stderr_path}",
        f"--chdir={launch.workdir}",
    ]
    if launch.gpu:
        args.append(f"--gres=gpu:{launch.gpu}")
    if launch.timeout_seconds:  # Slurm's time limits are whole minutes
        args.append(f"--time={math.ceil(launch.timeout_seconds / 60)}")
    return args


def _gang_args(launch: Launch, nodes: int) -> list[str]:
    """sbatch's and srun's options for a gang of `nodes` tasks, each with the step's
    cores, memory and GPUs (per task, where the attempt's options are per job)."""
    cpus = cpu_count_for(launch.cpu)
    args = [
        f"--job-name={job_name(launch, gang=nodes)}",
        f"--comment={job_comment(launch)}",
        f"--ntasks={nodes}",
        f"--cpus-per-task={cpus}",
        f"--mem-per-cpu={math.ceil(launch.memory_mb / cpus)}M",
        f"--output={Path(launch.workdir) / 'gang.log'}",
        f"--chdir={launch.workdir}",
    ]
    if launch.gpu:
        args.append(f"--gpus-per-task={launch.gpu}")
    if launch.timeout_seconds:
        args.append(f"--time={math.ceil(launch.timeout_seconds / 60)}")
    return args


# Node 0's address, as Slurm knows it (the NodeAddr of the job's first node), for every
# task of a gang: current.parallel.main_ip.
_MAIN_IP_FROM_SLURM = (
    'first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
    'address=$(scontrol show node "$first" -o | sed -n "s/.*NodeAddr=\\([^ ]*\\).*/\\1/p")\n'
    f"main=$(getent ahostsv4 \"${{address:-$first}}\" | awk 'NR == 1 {{print $1}}')\n"
    f'export {MAIN_IP_VARIABLE}="${{main:-${{address:-$first}}}}"'
)


def _noted_code(exit_file: Path, otherwise: int) -> int:
    """The exit code a gang's task noted, else `otherwise` (the job's)."""
    try:
        return int(exit_file.read_text().strip())
    except (OSError, ValueError):
        return otherwise


def _node_address(node: str) -> str:
    """A node's address as Slurm knows it (NodeAddr), for a gang's main_ip."""
    said = _slurm(["scontrol", "show", "node", node, "-o"]).stdout
    for field in said.split():
        if field.startswith("NodeAddr="):
            return field.removeprefix("NodeAddr=")
    return node


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


def _squeue_json(job_ids: set[int]) -> list[dict[str, Any]]:
    """What squeue --json says of these jobs (finished ones too, for MinJobAge)."""
    ids = ",".join(map(str, sorted(job_ids)))
    listed = json.loads(_slurm(["squeue", "--json", f"--jobs={ids}"]).stdout)["jobs"]
    return [job for job in listed if int(job["job_id"]) in job_ids]


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


@dataclass
class _Holder:
    """A job that holds one node for this executor's attempts, and what they use."""

    job: int
    node: _Node
    used: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)

    def total(self) -> tuple[int, int, int]:
        return self.node.cpus, self.node.memory_mb, self.node.gpus

    def free(self) -> tuple[int, int, int]:
        cpus, memory_mb, gpus = self.total()
        return (
            cpus - sum(u[0] for u in self.used),
            memory_mb - sum(u[1] for u in self.used),
            gpus - sum(u[2] for u in self.used),
        )


@dataclass
class _Step:
    holder: _Holder
    need: tuple[int, int, int]
    srun_log: Path
    stdout: Path
    submitted: float  # time.monotonic() of its srun
    began: bool = False


class SlurmStepsBackend(SlurmBackend):
    """Slurm with a held allocation per node: the executor submits one job per node
    that holds it (`--exclusive`, all its memory and GPUs) and starts each attempt as a
    job step in it with `srun` (the step's cores, memory, GPUs and time), which takes
    ~0.1 s where a job takes ~1 s. Steps run under the same cgroup limits as jobs. A
    holder ends itself once the executor stops touching its heartbeat file for 60 s,
    so an executor that dies does not keep the nodes."""

    HEARTBEAT_SECONDS = 60

    def __init__(self, image: str = "", partition: str = "", workroot: Path = WORKROOT) -> None:
        super().__init__(image, partition)
        self._workroot = workroot
        workroot.mkdir(parents=True, exist_ok=True)
        self._holders: list[_Holder] = []
        self._steps: dict[int, _Step] = {}
        self._heartbeat = self._workroot / f"ledgerflow-slurm-{uuid.uuid4().hex[:12]}.alive"

    def start(self, launch: Launch) -> int:
        if not self._holders:
            self._hold_nodes()
        script = Path(launch.workdir) / "job.sh"
        script.write_text(self.job_script(launch))
        need = (cpu_count_for(launch.cpu), launch.memory_mb, launch.gpu)
        holder = self._place(need)
        args = ["srun", f"--jobid={holder.job}", "--ntasks=1", *_attempt_args(launch)]
        srun_log = Path(launch.workdir) / "srun.log"  # srun's own messages
        with open(srun_log, "wb") as log_file:
            process = subprocess.Popen(
                [*args, "/bin/bash", str(script)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._processes[process.pid] = process
        holder.used.append(need)
        self._steps[process.pid] = _Step(
            holder, need, srun_log, Path(launch.stdout_path), time.monotonic()
        )
        return process.pid

    def start_gang(self, launches: list[Launch]) -> list[int]:
        """One srun step of len(launches) tasks in a held node with room for all."""
        if not self._holders:
            self._hold_nodes()
        first, count = launches[0], len(launches)
        need = (cpu_count_for(first.cpu) * count, first.memory_mb * count, first.gpu * count)
        if not any(_fits(h.total(), need) for h in self._holders):
            raise BackendError(
                f"a gang of {count} needs cpu={need[0]}, memory={need[1]} MB, gpu={need[2]} "
                "on one node: with --slurm-steps a gang runs in one held node, and none is "
                "that big (without --slurm-steps it is a job that spans nodes)"
            )
        holder = self._place(need)
        dispatch = self._gang_script(launches)
        args = ["srun", f"--jobid={holder.job}", *_gang_args(first, count)]
        srun_log = Path(first.workdir) / "srun.log"
        environment = {**os.environ, MAIN_IP_VARIABLE: _node_address(holder.node.name)}
        with open(srun_log, "wb") as log_file:
            process = subprocess.Popen(
                [*args, "/bin/bash", str(dispatch)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=environment,
            )  # fmt: skip
        self._processes[process.pid] = process
        holder.used.append(need)
        self._steps[process.pid] = _Step(
            holder, need, srun_log, Path(first.workdir) / "gang.log", time.monotonic()
        )
        return self._gang(process.pid, launches)

    def poll(self) -> list[tuple[int, int]]:
        self._heartbeat.touch()
        self._ended.clear()
        exited = Backend.poll(self)
        for handle, _ in exited:
            step = self._steps.pop(handle)
            step.holder.used.remove(step.need)
            self._ended[handle] = _Job(
                f"a step of job {step.holder.job}",
                state=_step_end(step.srun_log),
                node=step.holder.node.name,
            )
        return self._fan_out(exited)

    def begun(self, handle: int) -> bool:
        """Once slurmstepd opened the step's output (or it ended)."""
        step = self._steps.get(self._slurm_handle(handle))
        return step is None or step.began or step.stdout.exists()

    def waiting(self, handle: int) -> str:
        step = self._steps.get(self._slurm_handle(handle))
        if step is None or step.began:
            return ""
        # slurmstepd opens the step's output file as it starts the step (srun itself says
        # nothing of a wait when its output is not a terminal).
        if step.stdout.exists() or time.monotonic() - step.submitted < STEP_START_SECONDS:
            step.began = step.stdout.exists()
            return ""
        cpu, memory, gpu = step.need
        return (
            f"pending in Slurm (a step of job {step.holder.job} on {step.holder.node.name}): "
            f"waiting for cpu={cpu}, memory={memory} MB, gpu={gpu} to come free"
        )

    def kill(self, handle: int) -> None:
        process = self._processes.get(self._slurm_handle(handle))
        if process is not None and process.poll() is None:
            process.terminate()  # srun cancels its step

    def close(self) -> None:
        if self._holders:
            _slurm(["scancel", *(str(h.job) for h in self._holders)], check=False)
        self._heartbeat.unlink(missing_ok=True)

    def _place(self, need: tuple[int, int, int]) -> _Holder:
        """The node with room for the step (the most free cores), or else the least busy
        one that could ever take it: srun then waits until the step fits."""
        fits = [h for h in self._holders if _fits(h.free(), need)]
        able = [h for h in self._holders if _fits(h.total(), need)]
        return max(fits or able or self._holders, key=lambda h: h.free()[0])

    def _hold_nodes(self) -> None:
        self._heartbeat.touch()
        watch = (
            f"while [ $(( $(date +%s) - $(stat -c %Y {shlex.quote(str(self._heartbeat))}) )) "
            f"-lt {self.HEARTBEAT_SECONDS} ]; do sleep 5; done"
        )
        for node in self.nodes():
            submit = [
                "sbatch", "--parsable", f"--nodelist={node.name}", "--exclusive", "--mem=0",
                "--job-name=ledgerflow-hold", "--output=/dev/null", f"--wrap={watch}",
            ]  # fmt: skip
            if node.gpus:
                submit.append(f"--gres=gpu:{node.gpus}")
            if self.partition:
                submit.append(f"--partition={self.partition}")
            job = int(_slurm(submit, retry_seconds=20).stdout.strip().split(";")[0])
            self._holders.append(_Holder(job, node))
        deadline = time.monotonic() + 120
        while not self._all_holding():
            if time.monotonic() > deadline:
                self.close()
                raise BackendError("Slurm did not start the jobs that hold its nodes in 120 s")
            time.sleep(0.2)

    def _all_holding(self) -> bool:
        ids = {h.job for h in self._holders}
        listed = _squeue_json(ids)  # Slurm 22.05 lists other jobs too: filtered here
        running = {int(j["job_id"]) for j in listed if j["job_state"] == "RUNNING"}
        return ids <= running


def _fits(free: tuple[int, int, int], need: tuple[int, int, int]) -> bool:
    return all(have >= wanted for have, wanted in zip(free, need, strict=True))


def _step_end(srun_log: Path) -> str:
    """How Slurm ended a step, from what srun said: a job state name, or empty."""
    said = srun_log.read_text(errors="replace") if srun_log.exists() else ""
    if "Out Of Memory" in said or "oom-kill event" in said:
        return "OUT_OF_MEMORY"
    if "DUE TO TIME LIMIT" in said:
        return "TIMEOUT"
    if "CANCELLED" in said:
        return "CANCELLED"
    return ""
