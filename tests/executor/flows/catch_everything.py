"""@catch around every way a step can fail: an exception, a timeout, a kill, and an
exception after @retry's attempts. The flow goes on each time, as in Metaflow."""

import os
import signal
import time

from ledgerflow import FlowSpec, catch, current, retry, step, timeout


class CatchEverything(FlowSpec):
    @step
    def start(self):
        self.next(self.raises, self.times_out, self.killed, self.retried)

    @catch(var="err")
    @step
    def raises(self):
        raise ValueError("bad value")
        self.next(self.join)

    @catch(var="err", print_exception=False)
    @timeout(seconds=1)
    @step
    def times_out(self):
        time.sleep(30)
        self.next(self.join)

    @catch(var="err")
    @step
    def killed(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.join)

    @retry(times=1, minutes_between_retries=0)
    @catch(var="err")
    @step
    def retried(self):
        raise KeyError(f"attempt {current.retry_count}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.caught = {
            name: getattr(inputs, name).err.type
            for name in ("raises", "times_out", "killed", "retried")
        }
        self.next(self.end)

    @step
    def end(self):
        print("caught", sorted(self.caught.items()))


CatchEverything()
