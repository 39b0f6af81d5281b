"""A real Slurm cluster on this one host, for the Slurm backend's tests and benchmark:
munged, slurmctld and two slurmd nodes (n1 with two fake GPUs, n2 with none), each on
ports of its own, with cgroup v1 limits on cores and memory, all under one folder.

Debian's slurm-wlm 22.05 and munge (scripts/setup installs them). Everything runs as
root, as the daemons' own tests do; the fake GPUs are character devices (/dev/null's
numbers) named in gres.conf, so Slurm hands them out and sets CUDA_VISIBLE_DEVICES.
Also a command line: ``python tests/slurm_cluster.py start|stop FOLDER``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NODES = {"n1": 2, "n2": 0}  # node name: fake GPUs
NODE_CPUS = 2
NODE_MEMORY_MB = 6000
_DAEMONS = ("slurmctld", "slurmd", "munged")


def available() -> str:
    """Empty when a test cluster can start here, else why not."""
    if os.geteuid() != 0:
        return "the Slurm test cluster runs its daemons as root"
    missing = [d for d in _DAEMONS if not shutil.which(d) and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        return f"{', '.join(missing)} not installed (scripts/setup installs slurm-wlm and munge)"
    return ""


class SlurmCluster:
    """Its daemons' files, and the environment (SLURM_CONF) every Slurm command needs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # ---- configuration ----------------------------------------------------------------

    def write_config(self) -> None:
        folder = self.folder
        for sub in ("state", "spool", "dev", "log"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        ports = _free_ports(1 + len(NODES))
        nodes, gres = [], []
        for (name, gpus), port in zip(NODES.items(), ports[1:], strict=True):
            gres_field = f" Gres=gpu:{gpus}" if gpus else ""
            nodes.append(
                f"NodeName={name} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 "
                f"Port={port} CPUs={NODE_CPUS} CoresPerSocket={NODE_CPUS} ThreadsPerCore=1 "
                f"RealMemory={NODE_MEMORY_MB}{gres_field} State=UNKNOWN"
            )
            for index in range(gpus):
                device = folder / "dev" / f"fakegpu-{name}-{index}"
                if not device.exists():
                    os.mknod(device, 0o666 | 0o020000, os.makedev(1, 5))
                gres.append(f"NodeName={name} Name=gpu File={device}")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=ledgerflow",
                    f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
                    f"SlurmctldPort={ports[0]}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CryptoType=crypto/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={folder / 'state'}",
                    f"SlurmdSpoolDir={folder / 'spool' / '%n'}",
                    f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                    f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
                    f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={folder / 'log' / 'slurmd-%n.log'}",
                    "ProctrackType=proctrack/cgroup",
                    "TaskPlugin=task/cgroup,task/affinity",
                    "JobAcctGatherType=jobacct_gather/cgroup",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
                    "ReturnToService=2",
                    "MinJobAge=600",
                    "GresTypes=gpu",
                    *nodes,
                    f"PartitionName=debug Nodes={','.join(NODES)} Default=YES "
                    "MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (folder / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainCores=yes\n"
            "ConstrainRAMSpace=yes\nConstrainSwapSpace=yes\nAllowedSwapSpace=0\n"
        )
        (folder / "gres.conf").write_text("\n".join(gres) + "\n")

    @property
    def munge_folder(self) -> Path:
        """munged's own folder: under /tmp, since the munge user cannot enter a private
        folder of root's (pytest's are); named after the cluster's folder."""
        return Path(tempfile.gettempdir()) / (
            "ledgerflow-munge-" + hashlib.sha256(str(self.folder).encode()).hexdigest()[:12]
        )

    @property
    def munge_socket(self) -> Path:
        return self.munge_folder / "munge.socket"

    # ---- daemons ------------------------------------------------------------------------

    def start(self) -> None:
        _remove_job_cgroups()  # an earlier cluster's, which would refuse jobs of equal ids
        self.write_config()
        self._start_munge()
        self.start_controller()
        for name in NODES:
            subprocess.run(["slurmd", "-N", name], env=self.env, check=True, timeout=30)
        self.wait_idle()

    def start_controller(self) -> None:
        subprocess.run(["slurmctld"], env=self.env, check=True, timeout=30)
        _wait(lambda: self.run("sinfo", "-h", check=False).returncode == 0, 30, "slurmctld")

    def stop_controller(self) -> None:
        _stop(self.folder / "slurmctld.pid")

    def wait_idle(self, seconds: float = 60) -> None:
        """Until every node is up and takes jobs."""

        def ready() -> bool:
            states = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
            return len(states) == len(NODES) and all(s in ("idle", "mix", "alloc") for s in states)

        _wait(ready, seconds, "the Slurm nodes to come up\n" + self.logs())

    def stop(self) -> None:
        """Cancels every job and stops the daemons (munged last)."""
        self.run("scancel", "--full", "--user", "root", check=False)
        for name in NODES:
            _stop(self.folder / f"slurmd-{name}.pid")
        self.stop_controller()
        _stop(self.munge_folder / "munged.pid")
        shutil.rmtree(self.munge_folder, ignore_errors=True)
        _remove_job_cgroups()

    def _start_munge(self) -> None:
        munge = self.munge_folder
        munge.mkdir(exist_ok=True)
        key = munge / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
        owner = pwd.getpwnam("munge")
        for path in (munge, key):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        munge.chmod(0o700)
        key.chmod(0o600)
        subprocess.run(
            [
                "runuser", "-u", "munge", "--", "munged",
                f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}", "--force",
            ],
            check=True,
            timeout=30,
        )  # fmt: skip
        _wait(self.munge_socket.exists, 10, "munged's socket")

    # ---- helpers ------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm command against this cluster."""
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.folder / "log").glob("*.log"))
        )


@contextmanager
def slurm_cluster(folder: Path) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(folder)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _remove_job_cgroups() -> None:
    """Removes the cgroups slurmd made for its nodes' jobs (cgroup v1: one tree per
    controller), deepest first; a cgroup that still holds a process stays. slurmd leaves
    them behind, and a new cluster, whose job ids start at 1 again, cannot reuse them
    ("Device or resource busy"). So one test cluster runs on a host at a time."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        for node in NODES:
            tree = controller / f"slurm_{node}"
            if not tree.is_dir():
                continue
            for folder, _, _ in sorted(os.walk(tree), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _stop(pid_file: Path, seconds: float = 30) -> None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait(gone, seconds, f"process {pid} ({pid_file.name}) to stop")


def _wait(condition: object, seconds: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: python tests/slurm_cluster.py start|stop FOLDER")
    cluster = SlurmCluster(Path(sys.argv[2]).resolve())
    if sys.argv[1] == "start":
        if reason := available():
            sys.exit(f"cannot start: {reason}")
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
