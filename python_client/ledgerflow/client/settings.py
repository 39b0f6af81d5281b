"""Where the client API reads from and in which namespace: ``metadata()``,
``get_metadata()``, ``namespace()``, ``default_namespace()``, and the clients (metadata
and datastore) every client object shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ledgerflow.config import Config, load_config, open_datastore
from ledgerflow.exceptions import (
    LedgerflowException,
)
from ledgerflow.metadata_client import EmbeddedMetadata, MetadataClient, connect

_UNSET = object()
_current_namespace: Any = _UNSET
_connection: dict[str, Any] = {}


_SETTINGS = (
    "LEDGERFLOW_HOME",
    "LEDGERFLOW_SERVICE",
    "LEDGERFLOW_TOKEN",
    "LEDGERFLOW_DATASTORE",
    "LEDGERFLOW_DATASTORE_ROOT",
    "LEDGERFLOW_S3_ENDPOINT_URL",
    "LEDGERFLOW_USER",
    "USERNAME",
    "USER",
)


# What metadata() chose: ("local", home folder or None for the default) or
# ("service", address or None for LEDGERFLOW_SERVICE); None: the settings decide.
_metadata_choice: tuple[str, str | None] | None = None


def _config() -> Config:
    """The settings, with the choice of metadata() applied."""
    if _metadata_choice is None:
        return load_config()
    kind, where = _metadata_choice
    if kind == "local":
        return load_config(metadata="local", home=Path(where) if where else None)
    return load_config(metadata="service", service=where)


def _clients() -> tuple[MetadataClient, Any]:
    """The metadata client and datastore for the current settings, reused while the
    settings (the environment variables of _config, metadata()'s choice and the working
    folder) stay the same. Checking them is cheap, as it must be: every artifact read
    asks. Reading never creates a ledger: where none exists yet, an empty one in
    memory answers (and the file is opened once a run has made it)."""
    key = (os.getcwd(), _metadata_choice, *(os.environ.get(name) for name in _SETTINGS))
    if _connection.get("key") == key and not (
        _connection.get("awaiting") and _connection["awaiting"].exists()
    ):
        return _connection["metadata"], _connection["store"]
    config = _config()
    if "metadata" in _connection:
        _connection["metadata"].close()
    ledger_file = config.home / "ledger.db"
    awaiting = config.metadata == "local" and not ledger_file.exists()
    _connection.update(
        key=key,
        metadata=(
            EmbeddedMetadata("sqlite://:memory:", config.username) if awaiting else connect(config)
        ),
        store=open_datastore(config),
        username=config.username,
        awaiting=ledger_file if awaiting else None,
    )
    return _connection["metadata"], _connection["store"]


def get_metadata() -> str:
    """Where the client API reads metadata: ``local@FOLDER`` (the embedded ledger) or
    ``service@HOST:PORT``."""
    config = _config()
    if config.metadata == "service":
        return f"service@{config.service_address}"
    return f"local@{config.home}"


def metadata(ms: str) -> str:
    """Switches where the client API reads metadata, as Metaflow's ``metadata()``:
    ``'local'``, ``'local@FOLDER'``, ``'service'`` (LEDGERFLOW_SERVICE),
    ``'service@HOST:PORT'``, or the path of a folder that is (or holds) a
    ``.ledgerflow`` folder. Returns the new :func:`get_metadata`."""
    global _metadata_choice
    kind, _, where = ms.partition("@")
    if kind in ("local", "service"):
        choice: tuple[str, str | None] = (kind, where or None)
    elif Path(ms).is_dir():
        folder = Path(ms).absolute()
        home = folder if folder.name == ".ledgerflow" else folder / ".ledgerflow"
        if not home.is_dir():
            raise LedgerflowException(f"{folder} holds no .ledgerflow folder: no runs there")
        choice = ("local", str(home))
    else:
        raise LedgerflowException(
            f"metadata {ms!r} is not one of 'local', 'local@FOLDER', 'service', "
            "'service@HOST:PORT' or an existing folder"
        )
    if choice == ("service", None) and not os.environ.get("LEDGERFLOW_SERVICE"):
        raise LedgerflowException("metadata('service') needs LEDGERFLOW_SERVICE=host:port")
    _metadata_choice = choice
    return get_metadata()


def default_metadata() -> str:
    """Switches back to the metadata the settings name; returns it."""
    global _metadata_choice
    _metadata_choice = None
    return get_metadata()


def namespace(ns: str | None) -> str | None:
    """Switches the namespace: 'user:NAME', 'production:...', any tag, or None for all."""
    global _current_namespace
    _current_namespace = ns
    return ns


def default_namespace() -> str:
    """Switches back to the default namespace, user:<you>, and returns it."""
    global _current_namespace
    _current_namespace = f"user:{_config().username}"
    return _current_namespace


def get_namespace() -> str | None:
    if _current_namespace is _UNSET:
        return f"user:{_config().username}"
    return _current_namespace
