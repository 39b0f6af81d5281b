"""Which run a service answers from.

Following (the default): the flow's newest successful run in the namespace that the
service's ``accept(run)`` takes. A run that finishes later is seen on the ledger's watch
stream and, once accepted, swapped in atomically: requests in flight finish on the run
they started with. A refused run is logged with the reason and never asked about again;
the served run goes on. On an embedded ledger that no run has made yet, the server waits
for the file and follows it from then on.

Pinned (``--pin``): one run, named outright, served until the server stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from ledgerflow import client
from ledgerflow.engine.deployments import production_namespace_of
from ledgerflow.exceptions import LedgerflowException
from ledgerflow.hosting.artifacts import ArtifactsView
from ledgerflow.hosting.code import RunCode
from ledgerflow.hosting.spec import ServiceError, WebServiceSpec
from ledgerflow.v1 import common_pb2, ledger_service_pb2

log = logging.getLogger("ledgerflow.hosting")
# How often a server started before the embedded ledger exists looks for its file.
LEDGER_WAIT_SECONDS = 0.2
RECONNECT_SECONDS = 1.0


def serving_namespace(flow_name: str, requested: str | None) -> str:
    """The namespace a service reads: the one asked for; else the newest production
    namespace among the flow's runs (a ``production:...`` tag), else the user's."""
    if requested:
        return requested
    client.namespace(None)
    try:
        for run in client.Flow(flow_name).runs():
            production = production_namespace_of(run.tags)
            if production:
                return production
    except LedgerflowException:
        pass
    return f"user:{client._config().username}"


class Binding:
    """The service bound to the run it answers from (`current`, None until one is)."""

    def __init__(self, service_class: type[WebServiceSpec], flow_name: str, namespace: str) -> None:
        self.service_class, self.flow_name, self.namespace = service_class, flow_name, namespace
        self.current: WebServiceSpec | None = None
        self.pinned = False
        self.refused: dict[str, str] = {}  # pathspec: why accept() refused it
        self._code = RunCode()
        self._stop = threading.Event()

    def waiting_for(self) -> str:
        """Why no run answers yet (the 503's message)."""
        return f"no successful run of {self.flow_name} in namespace {self.namespace} yet" + (
            f" that {self.service_class.__name__}.accept() takes" if self.refused else ""
        )

    def pin(self, run_id: str) -> None:
        """Binds run `run_id` (or FLOW/RUN_ID) for good: no later run replaces it, and
        accept() is not asked (the operator chose it)."""
        flow_name, _, rest = run_id.strip("/").rpartition("/")
        if flow_name and flow_name != self.flow_name:
            raise ServiceError(f"--pin {run_id} is a run of {flow_name}, not of {self.flow_name}")
        pathspec = f"{self.flow_name}/{rest}"
        client.namespace(None)
        run = client.Run(pathspec, _namespace_check=False)
        if not run.successful:
            raise ServiceError(f"run {pathspec} is {run.status}: pin a successful run")
        self._code.switch(run)
        self._serve(self._service_for(run))
        self.pinned = True

    def refresh(self) -> None:
        """Switches to the newest successful run, newer than the one served, that
        accept() takes (at the start: the newest of all that it takes)."""
        if self.pinned:
            return
        client.namespace(self.namespace)
        for run in self._newer_runs():
            if run.pathspec in self.refused:
                continue
            undo = None
            try:
                undo = self._code.switch(run)
                service = self._service_for(run)
                accepted = service.accept(run)
                reason = "" if accepted else f"accept() returned {accepted!r}"
            except Exception as error:  # accept() said why, or the run's code is unreadable
                reason = f"{type(error).__name__}: {error}"
            if not reason:
                self._serve(service)
                return
            if undo is not None:
                undo()
            self.refused[run.pathspec] = reason
            log.warning(
                "not switching to %s: %s (serving %s)", run.pathspec, reason,
                self.current.run.pathspec if self.current else "no run",
            )  # fmt: skip

    def _newer_runs(self) -> Iterator[client.Run]:
        """The flow's successful runs in the namespace, newest first, down to the one
        served (none when the flow has no runs yet)."""
        served = self.current.run if self.current else None
        try:
            runs = client.Flow(self.flow_name)._runs([], [common_pb2.STATUS_SUCCEEDED], 20)
            for run in runs:
                if served is not None and (run.pathspec == served.pathspec or _older(run, served)):
                    return
                yield run
        except LedgerflowException:
            return

    def _service_for(self, run: client.Run) -> WebServiceSpec:
        service = self.service_class()
        service.run = run
        service.artifacts = ArtifactsView(run)
        return service

    def _serve(self, service: WebServiceSpec) -> None:
        self.current = service  # one assignment: a request sees the old run or the new
        log.info("serving %s", service.run.pathspec)

    def follow(self) -> None:
        """Re-binds whenever a run of the flow finishes (the ledger's watch stream),
        until stop(); reconnects when the stream breaks. A pinned binding stays."""
        if not self.pinned:
            threading.Thread(target=self._follow, name="ledgerflow-hosting", daemon=True).start()

    def _follow(self) -> None:
        request = ledger_service_pb2.WatchEventsRequest(event_types=["RunFinished"], from_head=True)
        while not self._stop.is_set():
            try:
                metadata, _ = client._clients()
                if client._connection.get("awaiting") is not None:
                    # No embedded ledger yet: an empty stand-in answers, whose stream
                    # would never say a thing. Open the file once a run has made it.
                    self._stop.wait(LEDGER_WAIT_SECONDS)
                    continue
                events = metadata.watch_events(request)  # starts now...
                self.refresh()  # ...so a run that finished before it is seen here
                for event in events:
                    if self._stop.is_set():
                        return
                    finished = event.run_finished
                    if finished.flow_name == self.flow_name and finished.succeeded:
                        self.refresh()
            except Exception:  # a broken stream or an unreachable service: try again
                log.exception("the watch stream broke; reconnecting")
                self._stop.wait(RECONNECT_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._code.close()


def _older(run: client.Run, than: client.Run) -> bool:
    return bool(run.created_at and than.created_at and run.created_at < than.created_at)
