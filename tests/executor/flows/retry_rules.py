"""@retry: a step that fails twice and then succeeds; with --always-fail, one that fails
on every attempt (the run fails); with --fail-marker PATH, step b fails while PATH
exists (for resume)."""

import os

from ledgerflow import FlowSpec, Parameter, current, retry, step


class RetryRules(FlowSpec):
    always_fail = Parameter("always_fail", default=False, type=bool)
    fail_marker = Parameter("fail_marker", default="")

    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.seen = current.retry_count
        if current.retry_count < 2 or self.always_fail:
            raise RuntimeError(f"attempt {current.retry_count} fails")
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 2
        self.next(self.join)

    @step
    def b(self):
        if self.fail_marker and os.path.exists(self.fail_marker):
            raise RuntimeError("b fails while the marker exists")
        self.x = 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.out = max(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("out is", self.out)


RetryRules()
