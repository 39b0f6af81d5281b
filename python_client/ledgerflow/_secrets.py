"""``@secrets``: put secrets in a step's environment when its task starts, as Metaflow's
``@secrets(sources=[...])`` does, without their values ever reaching the ledger, the
datastore, a command line or the logs.

Each source is resolved in the task's own process, just before the step runs, the same
way on a laptop and on an executor (which is why a secret is never passed down to the
task: the task fetches it). A source is a name for the default backend
(``LEDGERFLOW_DEFAULT_SECRETS_BACKEND_TYPE``, default ``aws-secrets-manager``) or
``{"type": ..., "id": ..., "options": {...}}``:

- ``aws-secrets-manager``: the secret's JSON object (``{"DB_PASSWORD": "..."}``) becomes
  variables; ``options``: ``region``, and ``role`` (an IAM role to assume first).
  boto3 finds credentials and endpoints as usual (``AWS_ENDPOINT_URL_SECRETS_MANAGER``).
- ``env-file``: a file of ``NAME=value`` lines (``#`` comments, optional quotes).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow._decorators import task_hooks
from ledgerflow._flow_config import deferrable
from ledgerflow.exceptions import LedgerflowException

F = Callable[..., Any]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_BACKEND_VARIABLE = "LEDGERFLOW_DEFAULT_SECRETS_BACKEND_TYPE"


class SecretsError(LedgerflowException):
    """A secret could not be read (the message names the source, never a value)."""


@dataclass(frozen=True)
class SecretSource:
    type: str
    id: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def _source(found: str | Mapping[str, Any]) -> SecretSource:
    if isinstance(found, str):
        default = os.environ.get(DEFAULT_BACKEND_VARIABLE, "aws-secrets-manager")
        return SecretSource(default, found)
    if not isinstance(found, Mapping) or not isinstance(found.get("id"), str):
        raise ValueError(
            f"@secrets: a source is a secret's name or {{'type': ..., 'id': ...}}, not {found!r}"
        )
    kind = found.get("type") or os.environ.get(DEFAULT_BACKEND_VARIABLE, "aws-secrets-manager")
    options = found.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"@secrets: the options of {found['id']!r} must be a dict")
    return SecretSource(str(kind), found["id"], dict(options))


def _checked(values: Mapping[str, Any], source: SecretSource) -> dict[str, str]:
    """The variables of a secret's JSON object. A key that is not a variable name is
    not shown: in a malformed secret it is as likely a piece of a value."""
    for number, (name, value) in enumerate(values.items(), 1):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SecretsError(
                f"secret {source}: key {number} of its JSON object is not an environment "
                "variable name (letters, digits and '_'; the key is not shown here)"
            )
        if not isinstance(value, str):
            raise SecretsError(
                f"secret {source}: the value of {name} is a {type(value).__name__}, not text"
            )
    return dict(values)


def _env_file(source: SecretSource) -> dict[str, str]:
    path = Path(source.id).expanduser()
    try:
        text = path.read_text()
    except OSError as error:
        raise SecretsError(f"secret {source}: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SecretsError(f"secret {source}: {path} is not UTF-8 text") from None
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise SecretsError(
                f"secret {source}: line {number} is not NAME=value (the text before '=' must "
                "be a variable name; the line is not shown here)"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def _aws_secrets_manager(source: SecretSource) -> dict[str, str]:
    import boto3
    import botocore.exceptions

    region = source.options.get("region") or None
    try:
        session = boto3.session.Session(region_name=region)
        role = source.options.get("role")
        if role:
            assumed = session.client("sts").assume_role(
                RoleArn=role, RoleSessionName="ledgerflow-secrets"
            )["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=assumed["AccessKeyId"],
                aws_secret_access_key=assumed["SecretAccessKey"],
                aws_session_token=assumed["SessionToken"],
                region_name=region,
            )
        answer = session.client("secretsmanager").get_secret_value(SecretId=source.id)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise SecretsError(f"secret {source}: AWS Secrets Manager says {code}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise SecretsError(f"secret {source}: {type(error).__name__}: {error}") from None
    if "SecretString" not in answer:
        raise SecretsError(f"secret {source}: a binary secret; store a JSON object of texts")
    try:
        values = json.loads(answer["SecretString"])
    except json.JSONDecodeError:
        raise SecretsError(
            f"secret {source}: not a JSON object of NAME: value (its text is not shown)"
        ) from None
    if not isinstance(values, dict):
        raise SecretsError(f"secret {source}: not a JSON object of NAME: value")
    return _checked(values, source)


BACKENDS: dict[str, Callable[[SecretSource], dict[str, str]]] = {
    "aws-secrets-manager": _aws_secrets_manager,
    "env-file": _env_file,
}


class SecretsHook:
    """Resolves the step's sources in its task, before the step runs (a TaskHook)."""

    def __init__(self, sources: Sequence[str | Mapping[str, Any]], role: str | None) -> None:
        self.raw, self.role = list(sources), role

    def sources(self) -> list[SecretSource]:
        found = [_source(s) for s in self.raw]
        if self.role:
            found = [
                SecretSource(s.type, s.id, {"role": self.role, **s.options})
                if s.type == "aws-secrets-manager"
                else s
                for s in found
            ]
        return found

    def check_step(self, step_name: str) -> None:
        if not self.raw:
            raise ValueError(f"step {step_name!r}: @secrets needs sources=[...]")
        for source in self.sources():
            if source.type not in BACKENDS:
                raise ValueError(
                    f"step {step_name!r}: @secrets source {source.id!r} has type "
                    f"{source.type!r}; the types are {', '.join(sorted(BACKENDS))}"
                )

    def task_pre_step(self, task: Any) -> None:
        """Sets every source's variables; as Metaflow, two sources that set the same
        variable, or a secret that would replace a variable the task already has, are
        an error (naming the variable, never a value)."""
        values: dict[str, str] = {}
        for source in self.sources():
            found = BACKENDS[source.type](source)
            for name in found:
                if name in values:
                    raise SecretsError(f"secret {source}: {name} is also set by another source")
                if name in os.environ:
                    raise SecretsError(
                        f"secret {source}: {name} is already set in the task's environment "
                        "(a secret never replaces a variable)"
                    )
            values.update(found)
        os.environ.update(values)

    def task_finished(self, task: Any, outcome: Any) -> list[Any]:
        return []


@deferrable
def secrets(
    func: F | None = None,
    *,
    sources: Sequence[str | Mapping[str, Any]] = (),
    role: str | None = None,
) -> Any:
    """Sets the variables of each secret in `sources` in the step's environment when its
    task starts (``os.environ['DB_PASSWORD']``); `role`: an IAM role to assume for AWS
    Secrets Manager. A secret that cannot be read fails the task, naming the source."""

    def attach(step_function: F) -> F:
        task_hooks(step_function).append(SecretsHook(sources, role))
        return step_function

    return attach(func) if func is not None else attach
