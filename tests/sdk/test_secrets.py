"""@secrets as a flow's author uses it: a file of NAME=value lines and AWS Secrets
Manager (moto's server, over HTTP on loopback) put their values in the step's
environment, and no value reaches the ledger, the datastore or the logs; a secret that
cannot be read fails the task naming the source, and a bad source is refused before
anything runs. Every test runs embedded and against the service."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from conftest import S3_CREDENTIALS, FlowEnv
from ledgerflow import Flow

PASSWORD = "correct-horse-battery-staple-7f3a"
API_KEY = "ak-93be0c7d1e2f"


def files_hold(folder: Path, secret: str) -> list[Path]:
    """The files under `folder` (the ledger, the datastore, the logs) holding `secret`."""
    needle = secret.encode()
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def history_holds(run: object, secret: str) -> bool:
    return any(secret.encode() in e.SerializeToString() for e in run.history())  # type: ignore[attr-defined]


def test_a_secrets_values_are_in_the_step_and_nowhere_else(
    flow_env: FlowEnv, tmp_path: Path, s3_endpoint: str
) -> None:
    secrets_file = tmp_path / "db.env"
    secrets_file.write_text(f"# the database\nDB_PASSWORD='{PASSWORD}'\n\nexport OTHER=1\n")
    client = boto3.client("secretsmanager", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
    name = f"prod/api-{uuid.uuid4().hex[:8]}"  # moto's server is shared by the tests
    client.create_secret(Name=name, SecretString=f'{{"API_KEY": "{API_KEY}"}}')
    env = {
        **S3_CREDENTIALS,
        "SECRETS_FILE": str(secrets_file),
        "AWS_SECRET_NAME": name,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": s3_endpoint,
    }
    result = flow_env.run("secrets_flow", "run", extra_env=env)
    assert f"connected with a password of {len(PASSWORD)} characters" in result.stdout
    run = Flow("SecretsFlow").latest_run
    data = run["start"].task.data
    assert data.password_digest == hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert data.api_key_length == len(API_KEY)
    assert run.data.leaked_to_end is False
    for secret in (PASSWORD, API_KEY):
        assert files_hold(flow_env.home, secret) == []
        assert not history_holds(run, secret)
        assert secret not in result.stdout + result.stderr


def test_a_secret_that_cannot_be_read_fails_the_task_naming_its_source(
    flow_env: FlowEnv, tmp_path: Path, s3_endpoint: str
) -> None:
    missing = tmp_path / "missing.env"
    failed = flow_env.run("secrets_flow", "run", extra_env={"SECRETS_FILE": str(missing)},
                          check=False)  # fmt: skip
    assert failed.returncode == 1
    error = Flow("SecretsFlow").latest_run["start"].task.exception
    assert error is not None and error.type.endswith("SecretsError")
    assert f"secret env-file:{missing}: cannot read {missing}" in str(error)
    secrets_file = tmp_path / "db.env"
    secrets_file.write_text(f"DB_PASSWORD={PASSWORD}\n")
    env = {
        **S3_CREDENTIALS,
        "SECRETS_FILE": str(secrets_file),
        "AWS_SECRET_NAME": "no/such/secret",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": s3_endpoint,
    }
    failed = flow_env.run("secrets_flow", "run", extra_env=env, check=False)  # fmt: skip
    error = Flow("SecretsFlow").latest_run["start"].task.exception
    assert failed.returncode == 1 and error is not None
    assert "secret aws-secrets-manager:no/such/secret: AWS Secrets Manager says " in str(error)
    assert PASSWORD not in failed.stdout + failed.stderr


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (
            "[{'type': 'vault', 'id': 'x'}]",
            "has type 'vault'; the types are aws-secrets-manager, env-file",
        ),
        ("[]", "@secrets needs sources=[...]"),
        ("[42]", "a source is a secret's name or"),
    ],
)
def test_a_bad_source_is_refused_before_anything_runs(
    tmp_path: Path, sources: str, message: str
) -> None:
    flow = tmp_path / "bad_secrets.py"
    flow.write_text(
        "from ledgerflow import FlowSpec, secrets, step\n\n\n"
        "class BadSecrets(FlowSpec):\n"
        f"    @secrets(sources={sources})\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\nBadSecrets()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["LEDGERFLOW_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, str(flow), "run"], env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_secret_is_refused_without_showing_any_of_it(tmp_path: Path) -> None:
    """A line of a key file broken over lines, or a typo, holds secret material: the
    error names the source and the line, never its text; a clash is refused by name."""
    from ledgerflow._secrets import SecretsError, SecretsHook, SecretSource, _env_file

    broken = tmp_path / "broken.env"
    broken.write_text("KEY=-----BEGIN KEY-----\nMIIEv+QIBADANBgkq/hkiG9w0BAQEF==\n")
    with pytest.raises(SecretsError) as raised:
        _env_file(SecretSource("env-file", str(broken)))
    assert "line 2 is not NAME=value" in str(raised.value)
    assert "MIIEv" not in str(raised.value)
    typo = tmp_path / "typo.env"
    typo.write_text("API_TOKEN\tsk-live-abc/123=xyz\n")
    with pytest.raises(SecretsError) as raised:
        _env_file(SecretSource("env-file", str(typo)))
    assert "sk-live" not in str(raised.value) and "line 1" in str(raised.value)
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SecretsError, match="is not UTF-8 text"):
        _env_file(SecretSource("env-file", str(binary)))
    one, two = tmp_path / "one.env", tmp_path / "two.env"
    one.write_text(f"DB_PASSWORD={PASSWORD}\n")
    two.write_text("DB_PASSWORD=other\n")
    hook = SecretsHook([{"type": "env-file", "id": str(one)}, {"type": "env-file", "id": str(two)}],
                       None)  # fmt: skip
    with pytest.raises(SecretsError, match="DB_PASSWORD is also set by another source") as raised:
        hook.task_pre_step(None)
    assert PASSWORD not in str(raised.value)
    path_clash = tmp_path / "path.env"
    path_clash.write_text("PATH=/evil\n")
    with pytest.raises(SecretsError, match="PATH is already set in the task's environment"):
        SecretsHook([{"type": "env-file", "id": str(path_clash)}], None).task_pre_step(None)
