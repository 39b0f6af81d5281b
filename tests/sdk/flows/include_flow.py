"""IncludeFile with a text and a binary file, and an end step that can fail once, so
that `resume end` reads both files back from the run."""

import hashlib
import os

from ledgerflow import FlowSpec, IncludeFile, step


def summary(value):
    return [
        type(value).__name__,
        len(value),
        hashlib.blake2b(value.encode() if isinstance(value, str) else value).hexdigest(),
    ]


class IncludeFlow(FlowSpec):
    text = IncludeFile("text", help="a text file")
    blob = IncludeFile("blob", is_text=False, help="a binary file")

    @step
    def start(self):
        self.seen = [summary(self.text), summary(self.blob)]
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_END"):
            raise RuntimeError("failing once, to be resumed")
        self.seen_again = [summary(self.text), summary(self.blob)]


IncludeFlow()
