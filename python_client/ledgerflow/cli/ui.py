"""``ledgerflow ui``: serve the web UI (ledgerflow/ui) on loopback."""

from __future__ import annotations

import socket

import click

from ledgerflow.cli.errors import friendly_errors


@click.command("ui")
@click.option(
    "--service",
    default=None,
    metavar="HOST:PORT",
    help="A metadata service (default: $LEDGERFLOW_SERVICE, else the embedded ledger).",
)
@click.option("--host", "address", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, help="0 picks a free port.")
@friendly_errors
def ui(service: str | None, address: str, port: int) -> None:
    """Serve the web UI: runs, a run's graph and tasks, logs, artifacts and its audit,
    updated live from the ledger's watch stream."""
    import uvicorn

    from ledgerflow.config import load_config, open_datastore
    from ledgerflow.metadata_client import connect
    from ledgerflow.ui.app import build_app

    config = load_config(metadata="service" if service else None, service=service)
    where = (f"service {config.service_address}" if config.metadata == "service"
             else f"embedded ledger {config.home}")  # fmt: skip
    app = build_app(lambda: connect(config), open_datastore(config), where)
    listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
        listener.listen(512)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {address}:{port}: {error}") from None
    click.echo(f"ledgerflow ui on http://{address}:{listener.getsockname()[1]} ({where})", err=True)
    # Live pages hold their event streams open: on SIGTERM, close them after a second.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    server.run(sockets=[listener])
