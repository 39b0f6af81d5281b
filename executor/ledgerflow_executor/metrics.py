"""The executor's Prometheus metrics, served at ``/metrics`` by ``ledgerflow executor
--metrics-port PORT`` (off by default; on 127.0.0.1 unless ``--metrics-address`` says
otherwise). prometheus_client is the ``executor`` extra's: without metrics, the
executor counts nothing and needs none of it.

- ``ledgerflow_executor_leases_total``: task attempts leased.
- ``ledgerflow_executor_attempts_running``: attempts started and not yet reaped.
- ``ledgerflow_executor_attempts_finished_total{kind}``: attempts that ended, by outcome:
  ``succeeded``, or the failure's kind (``exception``, ``timeout``, ``out_of_memory``,
  ``killed``, ``cancelled``, ``infrastructure``, ``unspecified``).
- ``ledgerflow_executor_rpc_seconds{rpc}``: how long the service took to answer
  ``LeaseTasks`` and ``RenewLease`` (a histogram).
- ``ledgerflow_executor_renewals_refused_total``: renewals answered "stop" (the lease
  is lost, or the run was cancelled).
- ``ledgerflow_executor_capacity{resource, state}``: cpu, memory_mb and gpu, ``total``
  and ``free``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

from ledgerflow.engine import TaskOutcome
from ledgerflow.v1 import records_pb2

# Seconds: a lease call answers in milliseconds on a quiet service, in seconds on a
# busy one, and the executor gives up on it after 30.
_RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsUnavailable(Exception):
    """prometheus_client is not installed."""


def outcome_kind(outcome: TaskOutcome) -> str:
    """The `kind` label of a finished attempt: succeeded, or its failure's kind."""
    if outcome.ok:
        return "succeeded"
    name = records_pb2.FailureKind.Name(outcome.kind)  # type: ignore[arg-type]
    return name.removeprefix("FAILURE_KIND_").lower()


class Metrics:
    """What the executor counts. This one counts nothing (metrics off); see
    :class:`PrometheusMetrics`."""

    def leased(self, count: int) -> None:
        """`count` attempts were leased."""

    @contextlib.contextmanager
    def timed(self, rpc: str) -> Iterator[None]:
        """Times one call of `rpc` to the service."""
        yield

    def finished(self, outcome: TaskOutcome, count: int = 1) -> None:
        """`count` attempts ended with `outcome`."""

    def renewal_refused(self) -> None:
        """A renewal was answered keep_running: false."""

    def watch(self, running: Callable[[], int], free: Callable[[], Any], total: Any) -> None:
        """Reads the number of running attempts and the free capacity (cpu, memory_mb
        and gpu attributes) at each scrape; `total` is the whole capacity."""

    def close(self) -> None:
        """Stops serving."""


class PrometheusMetrics(Metrics):
    """The executor's metrics in a registry of their own, for ``/metrics``."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prometheus
        except ImportError:
            raise MetricsUnavailable(
                "metrics need prometheus_client: pip install 'ledgerflow[executor]'"
            ) from None
        self._prometheus = prometheus
        self.registry = prometheus.CollectorRegistry()
        into = self.registry
        self._leases = prometheus.Counter(
            "ledgerflow_executor_leases", "Task attempts leased.", registry=into
        )
        self._running = prometheus.Gauge(
            "ledgerflow_executor_attempts_running",
            "Attempts started and not yet ended.",
            registry=into,
        )
        self._finished = prometheus.Counter(
            "ledgerflow_executor_attempts_finished",
            "Attempts that ended, by outcome: succeeded, or the failure's kind.",
            ["kind"],
            registry=into,
        )
        self._rpc = prometheus.Histogram(
            "ledgerflow_executor_rpc_seconds",
            "How long the metadata service took to answer a lease call.",
            ["rpc"],
            buckets=_RPC_BUCKETS,
            registry=into,
        )
        self._refused = prometheus.Counter(
            "ledgerflow_executor_renewals_refused",
            "Lease renewals answered keep_running: false (lease lost, or run cancelled).",
            registry=into,
        )
        self._capacity = prometheus.Gauge(
            "ledgerflow_executor_capacity",
            "What the executor hands out: each resource's total and what is free of it.",
            ["resource", "state"],
            registry=into,
        )
        self._server: Any = None

    def leased(self, count: int) -> None:
        self._leases.inc(count)

    @contextlib.contextmanager
    def timed(self, rpc: str) -> Iterator[None]:
        with self._rpc.labels(rpc=rpc).time():
            yield

    def finished(self, outcome: TaskOutcome, count: int = 1) -> None:
        self._finished.labels(kind=outcome_kind(outcome)).inc(count)

    def renewal_refused(self) -> None:
        self._refused.inc()

    def watch(self, running: Callable[[], int], free: Callable[[], Any], total: Any) -> None:
        self._running.set_function(running)
        for resource in ("cpu", "memory_mb", "gpu"):
            self._capacity.labels(resource=resource, state="total").set(getattr(total, resource))
            self._capacity.labels(resource=resource, state="free").set_function(
                lambda r=resource: _read(lambda: getattr(free(), r))  # type: ignore[misc]
            )

    def serve(self, address: str, port: int) -> int:
        """Serves /metrics on `address`:`port` (0: a free port) in a thread; returns the
        port."""
        server, _ = self._prometheus.start_http_server(port, address, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _read(value: Callable[[], Any]) -> float:
    """A value the executor's loop may be changing while a scrape reads it (a dict that
    changes size under the reader): tried again, else NaN."""
    for _ in range(3):
        try:
            return float(value())
        except RuntimeError:
            continue
    return math.nan
