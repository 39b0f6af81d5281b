"""Where metadata and artifacts go, from the environment (and CLI overrides).

| variable | meaning | default |
| --- | --- | --- |
| LEDGERFLOW_HOME | folder of the embedded ledger and local datastore | see find_home |
| LEDGERFLOW_SERVICE | host:port of a metadata service to use instead | unset |
| LEDGERFLOW_TOKEN | bearer token for the service | unset |
| LEDGERFLOW_DATASTORE | local or s3 | local |
| LEDGERFLOW_DATASTORE_ROOT | folder, or s3://bucket/prefix | HOME/data |
| LEDGERFLOW_S3_ENDPOINT_URL | S3 endpoint (e.g. a local S3 server) | AWS |
| LEDGERFLOW_USER, USERNAME, USER | who runs flows | the login name |
| LEDGERFLOW_DATATOOLS_S3ROOT | where S3(run=...) writes (see _s3.py) | S3 datastore root/data |
| LEDGERFLOW_PYLINT | 0 skips the pylint check of run, resume, check | on |
| LEDGERFLOW_PYLINT_CACHE | where clean pylint reports are kept | XDG_CACHE_HOME/ledgerflow/pylint |
| LEDGERFLOW_HEARTBEAT_SECONDS | heartbeat interval of runs and tasks | 10 |
| LEDGERFLOW_LOG_SECONDS | how often a running task's new output is recorded | 1 |
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """The settings contradict each other or are incomplete."""


@dataclass(frozen=True)
class Config:
    home: Path
    metadata: str
    service_address: str | None
    token: str | None
    datastore: str
    datastore_root: str
    s3_endpoint_url: str | None
    username: str

    @property
    def ledger_url(self) -> str:
        return f"sqlite://{self.home / 'ledger.db'}"


def username() -> str:
    for variable in ("LEDGERFLOW_USER", "USERNAME", "USER"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


HOME_FOLDER = ".ledgerflow"


def find_home(start: Path | None = None) -> Path:
    """The embedded ledger's folder: LEDGERFLOW_HOME, else the first `.ledgerflow`
    folder in the working folder or one of its parents (so a notebook in a subfolder
    finds the runs of the flows beside it, as Metaflow finds `.metaflow`), else
    `.ledgerflow` in the working folder (made on the first run)."""
    if os.environ.get("LEDGERFLOW_HOME"):
        return Path(os.environ["LEDGERFLOW_HOME"]).absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / HOME_FOLDER).is_dir():
            return folder / HOME_FOLDER
    return here / HOME_FOLDER


def load_config(
    *,
    metadata: str | None = None,
    datastore: str | None = None,
    home: Path | None = None,
    service: str | None = None,
) -> Config:
    """The settings from the environment; arguments override it (the CLI's
    --metadata and --datastore, the client's metadata())."""
    home = home or find_home()
    service = service or os.environ.get("LEDGERFLOW_SERVICE") or None
    metadata = metadata or ("service" if service else "local")
    if metadata not in ("local", "service"):
        raise ConfigError(f"metadata must be 'local' or 'service', not {metadata!r}")
    if metadata == "service" and not service:
        raise ConfigError("--metadata service needs LEDGERFLOW_SERVICE=host:port")
    datastore = datastore or os.environ.get("LEDGERFLOW_DATASTORE", "local")
    if datastore not in ("local", "s3"):
        raise ConfigError(f"datastore must be 'local' or 's3', not {datastore!r}")
    root = os.environ.get("LEDGERFLOW_DATASTORE_ROOT") or (
        str(home / "data") if datastore == "local" else ""
    )
    if datastore == "s3" and not root.startswith("s3://"):
        raise ConfigError("the s3 datastore needs LEDGERFLOW_DATASTORE_ROOT=s3://bucket/prefix")
    return Config(
        home=home,
        metadata=metadata,
        service_address=service if metadata == "service" else None,
        token=os.environ.get("LEDGERFLOW_TOKEN") or None,
        datastore=datastore,
        datastore_root=root,
        s3_endpoint_url=os.environ.get("LEDGERFLOW_S3_ENDPOINT_URL"),
        username=username(),
    )


def open_datastore(config: Config):
    from ledgerflow.datastore.content import ContentStore, LocalStorage, S3Storage

    if config.datastore == "s3":
        return ContentStore(S3Storage(config.datastore_root, endpoint_url=config.s3_endpoint_url))
    return ContentStore(LocalStorage(config.datastore_root))
