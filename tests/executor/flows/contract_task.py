"""One step that does what its --mode says, for the backend contract tests: print and
succeed, raise, call sys.exit(125), exit before reporting (with code 3, or with the
code a container engine uses for its own failures, 125), or sleep until killed."""

import os
import sys
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
        self.next(self.end)

    @step
    def end(self):
        pass


ContractTask()
