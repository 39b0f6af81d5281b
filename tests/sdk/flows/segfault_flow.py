"""A step that crashes the interpreter (a segfault in native code)."""

import ctypes

from ledgerflow import FlowSpec, step


class SegfaultFlow(FlowSpec):
    @step
    def start(self):
        print("about to crash")
        ctypes.string_at(0)
        self.next(self.end)

    @step
    def end(self):
        pass


SegfaultFlow()
