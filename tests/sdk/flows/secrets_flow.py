"""@secrets from a file of NAME=value lines and from AWS Secrets Manager (moto's
server in the tests); where each comes from is set by the test's environment. The step
keeps only what it derives from a secret, never the secret."""

import hashlib
import os

from ledgerflow import FlowSpec, secrets, step

SOURCES = [{"type": "env-file", "id": os.environ.get("SECRETS_FILE", "/nonexistent")}]
if os.environ.get("AWS_SECRET_NAME"):
    SOURCES.append(os.environ["AWS_SECRET_NAME"])  # the default backend


class SecretsFlow(FlowSpec):
    @secrets(sources=SOURCES)
    @step
    def start(self):
        password = os.environ["DB_PASSWORD"]
        self.password_digest = hashlib.sha256(password.encode()).hexdigest()
        self.api_key_length = len(os.environ.get("API_KEY", ""))
        print("connected with a password of", len(password), "characters")
        self.next(self.end)

    @step
    def end(self):
        # Secrets are the step's own: the next step's task does not have them.
        self.leaked_to_end = "DB_PASSWORD" in os.environ


if __name__ == "__main__":
    SecretsFlow()
