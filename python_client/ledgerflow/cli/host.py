"""``ledgerflow host serve``: a WebServiceSpec over HTTP (ledgerflow/hosting)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from ledgerflow.cli.errors import friendly_errors

_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
          "gb": 1000**3, "gib": 1024**3}  # fmt: skip


class _Bytes(click.ParamType):
    """A size in bytes: ``1048576``, ``512KiB``, ``16MiB``, ``1GB``."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
        unit = found.group(2).lower() if found else ""
        if found is None or unit not in _UNITS or int(found.group(1)) < 1:
            self.fail(f"{value!r} is not a size such as 1048576, 512KiB or 16MiB", param, ctx)
        return int(found.group(1)) * _UNITS[unit]


@click.group("host")
def host() -> None:
    """Serve a flow's results over HTTP (see WebServiceSpec)."""


@host.command("serve")
@click.argument("service_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--flow", "flow_name", required=True, help="The flow whose runs answer.")
@click.option(
    "--namespace",
    "ns",
    default=None,
    help="Namespace of the runs (default: the production namespace when the flow has one, "
    "else user:<you>).",
)
@click.option(
    "--pin",
    metavar="RUN_ID",
    default=None,
    help="Serve this run (RUN_ID or FLOW/RUN_ID, in any namespace) and never switch: "
    "to roll back, or to hold a run while newer ones are checked.",
)
@click.option(
    "--max-body",
    type=_Bytes(),
    default="16MiB",
    show_default=True,
    help="The largest request body read; a larger one is answered 413.",
)
@click.option("--host", "address", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, help="0 picks a free port.")
@friendly_errors
def serve(
    service_file: str,
    flow_name: str,
    ns: str | None,
    pin: str | None,
    max_body: int,
    address: str,
    port: int,
) -> None:
    """Serve the WebServiceSpec in SERVICE_FILE, answering from FLOW's latest successful
    run that the service accepts; a newer one takes over as soon as it finishes."""
    import logging
    import socket

    import uvicorn

    from ledgerflow.hosting.app import build_app
    from ledgerflow.hosting.binding import Binding, serving_namespace
    from ledgerflow.hosting.spec import describe, load_service

    if pin and ns:
        raise click.UsageError("--pin names one run: --namespace has nothing to choose")
    service_class = load_service(Path(service_file))
    describe(service_class)  # refuses what it cannot serve before anything starts
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    binding = Binding(service_class, flow_name, "" if pin else serving_namespace(flow_name, ns))
    try:
        if pin:
            binding.pin(pin)
        else:
            binding.refresh()
        binding.follow()
        listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((address, port))
            listener.listen(2048)  # connections queue from now on, before uvicorn starts
        except OSError as error:
            raise click.ClickException(f"cannot listen on {address}:{port}: {error}") from None
        bound = listener.getsockname()[1]
        serving = binding.current.run.pathspec if binding.current else "no run yet"
        where = "pinned" if pin else f"{flow_name} in {binding.namespace}"
        click.echo(
            f"serving {service_class.__name__} on http://{address}:{bound} ({where}: {serving})",
            err=True,
        )
        app = build_app(binding, max_body_bytes=max_body)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
    finally:
        binding.stop()
