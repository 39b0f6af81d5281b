"""A step that stores something unpicklable."""

import threading

from ledgerflow import FlowSpec, step


class BadArtifactFlow(FlowSpec):
    @step
    def start(self):
        self.fine = 1
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass


BadArtifactFlow()
