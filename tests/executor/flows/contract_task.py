"""One step that does what its --mode says, for the backend contract tests: print and
succeed, raise, call sys.exit(125), exit before reporting (with code 3, or with the
code a container engine uses for its own failures, 125), sleep until killed, use a GiB
of memory, leave a process behind in a session of its own (orphan), or (mark) say
whether an earlier attempt left a mark in its container, whether the process an
earlier attempt left still runs, and where its temporary files go; peek: whether the
path in CONTRACT_PEEK exists where it runs."""

import os
import subprocess
import sys
import tempfile
import time

from ledgerflow import FlowSpec, Parameter, step


def running(pid: str) -> bool:
    """Whether the process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ContractTask(FlowSpec):
    mode = Parameter("mode", default="ok")

    @step
    def start(self):
        print("hello from the task", flush=True)
        if self.mode == "raise":
            raise ValueError("the step raised")
        if self.mode == "exit":
            os._exit(3)
        if self.mode == "exit-125":
            os._exit(125)
        if self.mode == "sys.exit":
            sys.exit(125)
        if self.mode == "sleep":
            time.sleep(120)
        if self.mode == "hog":
            hog = b"x" * (1 << 30)
            print(len(hog))
        if self.mode == "peek":
            seen = os.path.exists(os.environ["CONTRACT_PEEK"])
            print("can see it" if seen else "cannot see it")
        orphan = "/var/tmp/ledgerflow-contract-orphan"
        if self.mode == "orphan":
            left = subprocess.Popen(["sleep", "300"], start_new_session=True)
            with open(orphan, "w") as out:
                out.write(str(left.pid))
        if self.mode == "mark":
            mark = "/var/tmp/ledgerflow-contract-mark"
            print("marked before" if os.path.exists(mark) else "no mark before")
            print(f"temporary files in {tempfile.gettempdir()}")
            open(mark, "w").close()
            if os.path.exists(orphan):
                with open(orphan) as left:
                    print("orphan alive" if running(left.read()) else "orphan gone")
        self.next(self.end)

    @step
    def end(self):
        pass


ContractTask()
