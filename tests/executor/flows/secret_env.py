"""One step that checks the credentials the executor passes on reached it: it records
the SHA-256 of AWS_ACCESS_KEY_ID (never the value), then waits `--seconds` so that a
test can look at the process table and the engine while it runs."""

import hashlib
import os
import time

from ledgerflow import FlowSpec, Parameter, step


class SecretEnv(FlowSpec):
    seconds = Parameter("seconds", type=float, default=0.0)

    @step
    def start(self):
        key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self.key_digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SecretEnv()
