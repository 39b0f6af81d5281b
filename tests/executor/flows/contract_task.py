"""One step that does what its --mode says, for the backend contract tests: print and
succeed, raise, call sys.exit(125), exit before reporting (with code 3, or with the
code a container engine uses for its own failures, 125), sleep until killed, use a GiB
of memory, or (mark) say whether an earlier attempt left a mark in its container and
where its temporary files go."""

import os
import sys
import tempfile
import time

from ledgerflow import FlowSpec, Parameter, step


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
        if self.mode == "mark":
            mark = "/var/tmp/ledgerflow-contract-mark"
            print("marked before" if os.path.exists(mark) else "no mark before")
            print(f"temporary files in {tempfile.gettempdir()}")
            open(mark, "w").close()
        self.next(self.end)

    @step
    def end(self):
        pass


ContractTask()
