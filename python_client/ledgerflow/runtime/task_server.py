"""A warm task server: ``python FLOW_FILE task-server``, the task entry point for many
attempts. It imports the flow once, then forks one child per attempt, as the local
runtime does, so an attempt costs a fork instead of an interpreter start and an import.
An executor keeps one per code package (see ledgerflow_executor/backends/local.py).

The protocol is JSON lines. On stdin, one request per attempt::

    {"spec": PATH, "result": PATH, "stdout": PATH, "stderr": PATH, "cgroup": PATH,
     "memory_bytes": N, "cores": [0, 1], "env": {"NAME": "VALUE"}, "gpus": N,
     "cwd": PATH}

and ``{"kill": PID}`` to kill a running attempt (its process group). On stdout,
``{"started": PID}`` for each request, in order, and ``{"exited": PID, "code": CODE}``
as attempts end (a negative code: killed by that signal). Before the step runs, the
child joins `cgroup` (the attempt's memory cgroup, which the executor made and
bounded) or, when it is empty, bounds its address space to memory_bytes more than the
server had mapped (its data segment, when "gpus" is above 0; no bound when memory_bytes
is 0: a container around the server bounds it); it pins itself to `cores`, works in
`cwd` (when given), and reports through the result file exactly like ``python
FLOW_FILE task``. When an attempt exits, what it left in its process group is killed
and, when the server is a container's init (process 1), every other process in the
container, so the next attempt finds none of them. Nothing here imports gRPC, so
forking is safe; the server and its children die with the process that started them,
and when stdin closes (that process is gone, or done with the server) the attempts
still running are killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

from ledgerflow.runtime.launcher import task_process
from ledgerflow.runtime.orphans import die_with_parent
from ledgerflow.runtime.task import TaskRequest, capture_output, run_then_exit


def serve(run_request: Callable[[TaskRequest, str], None], out: TextIO = sys.stdout) -> None:
    """Serves attempts from stdin until it closes; `run_request(request, result_path)`
    runs one attempt in the forked child."""
    task_process()
    lock = threading.Lock()
    running: set[int] = set()
    closed = threading.Event()
    server = os.getpid()
    container_init = server == 1

    def say(message: dict[str, Any]) -> None:  # under the lock
        out.write(json.dumps(message) + "\n")
        out.flush()

    def reap() -> None:
        while not (closed.is_set() and not running):
            try:
                pid, status = os.wait()
            except ChildProcessError:
                closed.wait(0.01)
                continue
            with lock:  # after its "started"
                if pid not in running:  # an orphan the server inherited (as a container's init)
                    continue
                running.discard(pid)
                _kill_group(pid)  # what the attempt left behind (it leads its own group)
                if container_init and not running:
                    # A container's init, between attempts: whatever is left in the
                    # container (processes that left the attempt's group) goes too.
                    _kill_all_but_me()
                say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    reaper = threading.Thread(target=reap, name="ledgerflow-reaper", daemon=True)
    reaper.start()
    for line in sys.stdin:
        ask = json.loads(line)
        if "kill" in ask:
            if int(ask["kill"]) in running:
                _kill_attempt(int(ask["kill"]))
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        # Under the lock: no message is half written when the child is forked, and its
        # "started" goes out before its "exited" can.
        with lock:
            pid = os.fork()
            if pid == 0:
                _child(ask, server, run_request)
            running.add(pid)
            say({"started": pid})
    for pid in list(running):  # no one is left to hear of them
        _kill_attempt(pid)
    closed.set()
    reaper.join()


def _kill_attempt(pid: int) -> None:
    """Kills a running attempt: its process group, or the child itself while it has
    not made its group yet (then it has started nothing of its own)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    except PermissionError:
        pass


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _kill_all_but_me() -> None:
    """kill(-1): every process this one may signal but itself (for a container's init:
    everything else in the container)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(-1, signal.SIGKILL)


def _child(
    ask: dict[str, Any], server: int, run_request: Callable[[TaskRequest, str], None]
) -> NoReturn:
    """In the forked child: limits, output files, the attempt; never returns."""

    def attempt() -> None:
        die_with_parent(server)
        os.setsid()
        # In its cgroup before anything of the step's runs, so that all it allocates,
        # each thread and process it starts, counts against the cgroup's bound.
        # Otherwise, the step's memory on top of what the warm process had mapped
        # already. CUDA reserves terabytes of address space it never touches, so an
        # attempt with GPUs bounds its data segment (heap and private writable mappings).
        if ask.get("cgroup"):
            _join_cgroup(ask["cgroup"])
        elif ask.get("memory_bytes") and ask.get("gpus"):
            limit = _data_bytes() + int(ask["memory_bytes"])
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        elif ask.get("memory_bytes"):
            limit = _mapped_bytes() + int(ask["memory_bytes"])
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if ask.get("cores"):
            os.sched_setaffinity(0, set(ask["cores"]))
        if ask.get("cwd"):
            os.chdir(ask["cwd"])
        os.environ.update(ask.get("env", {}))
        tempfile.tempdir = None  # TMPDIR may be the attempt's own: asked again
        capture_output(ask["stdout"], ask["stderr"])
        with open(ask["spec"]) as spec:
            request = TaskRequest.from_json(spec.read())
        run_request(request, ask["result"])

    run_then_exit(attempt)


def _join_cgroup(cgroup: str) -> None:
    """Moves this process into the cgroup; fails the attempt when it cannot, rather
    than run it unbounded."""
    try:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    except OSError as error:
        raise RuntimeError(f"the attempt cannot join its memory cgroup {cgroup}: {error}") from None


def _mapped_bytes() -> int:
    """This process's address space, in bytes (the first field of /proc/self/statm)."""
    return _statm_pages(0) * os.sysconf("SC_PAGE_SIZE")


def _data_bytes() -> int:
    """This process's data segment and stack, in bytes (statm's sixth field)."""
    return _statm_pages(5) * os.sysconf("SC_PAGE_SIZE")


def _statm_pages(field: int) -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[field])
