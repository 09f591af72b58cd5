"""The client's metrics as Prometheus collectors (the ``etcdwamp[metrics]`` extra).

``Client(..., metrics=PrometheusClientMetrics())`` registers, once per
registry (clients built on one registry share them, their counts add up):

- ``etcdwamp_etcd_requests_total{endpoint, outcome}``: request attempts,
  one per endpoint tried (a call that fails over counts each attempt);
  ``outcome`` is ``ok`` or one of :data:`etcdwamp.metrics.OUTCOMES`
- ``etcdwamp_etcd_request_duration_seconds{endpoint}``: their durations
- ``etcdwamp_etcd_endpoint_healthy{endpoint}``: 1, or 0 from a demotion or a
  refused connection until the endpoint answers again (with several clients on
  one registry: the last report)
- ``etcdwamp_watch_streams``: watch streams open now
- ``etcdwamp_coalesced_ops_total``: single-key requests sent inside coalesced transactions
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "etcdwamp.prometheus needs prometheus_client: pip install 'etcdwamp[metrics]'"
    ) from exc

from .metrics import ClientMetrics

__all__ = ["DURATION_BUCKETS", "PrometheusClientMetrics"]

#: seconds: an etcd request on a LAN takes about a millisecond, a failover seconds
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, float("inf"))


@dataclass(frozen=True, slots=True)
class _Collectors:
    requests: Counter
    duration: Histogram
    healthy: Gauge
    watch_streams: Gauge
    coalesced: Counter


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = (
    weakref.WeakKeyDictionary())


def _collectors(registry: CollectorRegistry) -> _Collectors:
    """The client collectors on ``registry``, created on first use: registering
    a name twice would raise, and a process may build several clients."""
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = _Collectors(
                requests=Counter(
                    "etcdwamp_etcd_requests_total",
                    "etcd request attempts, by endpoint and outcome",
                    ["endpoint", "outcome"], registry=registry),
                duration=Histogram(
                    "etcdwamp_etcd_request_duration_seconds",
                    "Duration of etcd request attempts, by endpoint",
                    ["endpoint"], buckets=DURATION_BUCKETS, registry=registry),
                healthy=Gauge(
                    "etcdwamp_etcd_endpoint_healthy",
                    "1 if the etcd endpoint is healthy, 0 while demoted",
                    ["endpoint"], registry=registry),
                watch_streams=Gauge(
                    "etcdwamp_watch_streams", "Watch streams open now", registry=registry),
                coalesced=Counter(
                    "etcdwamp_coalesced_ops_total",
                    "Single-key requests sent inside coalesced transactions",
                    registry=registry),
            )
        return found


class PrometheusClientMetrics(ClientMetrics):
    """Reports a client's metrics to Prometheus collectors on ``registry``
    (default: ``prometheus_client.REGISTRY``); share one between clients or not."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._c = _collectors(self.registry)
        # labels() takes a lock and builds a key per call: keep the children
        # (an endpoint has a handful of outcomes, a client a handful of endpoints).
        self._requests: dict[tuple[str, str], Any] = {}
        self._durations: dict[str, Any] = {}

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        """Count the attempt and observe its duration."""
        counter = self._requests.get((endpoint, outcome))
        if counter is None:
            counter = self._requests[(endpoint, outcome)] = self._c.requests.labels(
                endpoint, outcome)
        counter.inc()
        histogram = self._durations.get(endpoint)
        if histogram is None:
            histogram = self._durations[endpoint] = self._c.duration.labels(endpoint)
        histogram.observe(seconds)

    def endpoint_health(self, endpoint: str, healthy: bool) -> None:
        """Set the endpoint's gauge to 1 or 0."""
        self._c.healthy.labels(endpoint).set(1 if healthy else 0)

    def endpoint_removed(self, endpoint: str) -> None:
        """Drop the endpoint's health series (another client on this registry that
        still uses it sets it again on its next change)."""
        with contextlib.suppress(KeyError):
            self._c.healthy.remove(endpoint)

    def watch_streams(self, delta: int) -> None:
        """Move the open-streams gauge by ``delta``."""
        self._c.watch_streams.inc(delta)

    def coalesced(self, ops: int) -> None:
        """Add ``ops`` to the coalesced-ops counter."""
        self._c.coalesced.inc(ops)
