"""A step that writes its process id to a file, then sleeps: for watching what
happens to a task process when its runtime goes away."""

import os
import time
from pathlib import Path

from ledgerflow import FlowSpec, Parameter, step


class PidFlow(FlowSpec):
    pidfile = Parameter("pidfile", help="where the nap step writes its pid")

    @step
    def start(self):
        self.next(self.nap)

    @step
    def nap(self):
        Path(self.pidfile).write_text(str(os.getpid()))
        time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass


PidFlow()
