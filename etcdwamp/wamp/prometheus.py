"""The component's metrics in ``prometheus_client`` (the ``metrics`` extra).

One set of metrics per registry, shared by every component instance that
reports to it (two components in one router worker would otherwise register
the same names twice and fail). How they add up over the instances of a
process: counters and the histogram count every instance's calls and events;
``etcdwamp_publisher_is_leader`` is the number of instances leading (0 or 1
with one instance per router worker), ``etcdwamp_publisher_lag_revisions`` the
largest lag of any of them, ``etcdwamp_sessions`` the sessions of
every realm they serve (instances in one realm count its sessions once).
An instance that stops (:meth:`PrometheusComponentMetrics.close`) no longer
counts in the gauges.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .metrics import ComponentMetrics

__all__ = ["METRIC_NAMES", "PrometheusComponentMetrics"]

#: every metric this module creates, as exposed (counters with their ``_total``)
METRIC_NAMES = (
    "etcdwamp_calls_total", "etcdwamp_call_duration_seconds",
    "etcdwamp_events_published_total", "etcdwamp_publisher_is_leader",
    "etcdwamp_publisher_lag_revisions", "etcdwamp_limit_refusals_total",
    "etcdwamp_sessions",
)

#: call latencies from a cached read to an etcd write across a slow link (seconds)
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            5.0, 10.0)


class _Shared:
    """The metrics of one registry and the gauge values of each instance reporting to it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lock = threading.Lock()
        self.leaders: dict[int, int] = {}
        self.lags: dict[int, int] = {}
        self.sessions: dict[int, tuple[str, int]] = {}  # instance -> (realm, count)
        # labels() validates and locks on every use: a call's series are looked up
        # once, then taken from here (the label sets are bounded, so are these)
        self.call_series: dict[tuple[str, str], Any] = {}
        self.duration_series: dict[str, Any] = {}
        self.calls = Counter("etcdwamp_calls", "WAMP procedure calls by outcome",
                             ["procedure", "outcome"], registry=registry)
        self.duration = Histogram("etcdwamp_call_duration_seconds",
                                  "WAMP procedure call duration", ["procedure"],
                                  buckets=_BUCKETS, registry=registry)
        self.events = Counter("etcdwamp_events_published", "WAMP events published",
                              ["kind"], registry=registry)
        self.refusals = Counter("etcdwamp_limit_refusals", "calls refused by a limit",
                                ["limit"], registry=registry)
        self._gauge("etcdwamp_publisher_is_leader", "component instances publishing now",
                    registry, lambda: sum(self.leaders.values()))
        self._gauge("etcdwamp_publisher_lag_revisions",
                    "revisions the newest change is ahead of the last published one",
                    registry, lambda: max(self.lags.values(), default=0))
        self._gauge("etcdwamp_sessions", "WAMP sessions in the component's realms",
                    registry, self._sessions)

    def _sessions(self) -> int:
        by_realm: dict[str, int] = {}
        for realm, count in self.sessions.values():
            by_realm[realm] = max(count, by_realm.get(realm, 0))
        return sum(by_realm.values())

    def _gauge(self, name: str, doc: str, registry: CollectorRegistry,
               value: Callable[[], int]) -> None:
        def read() -> float:
            with self.lock:
                return float(value())
        Gauge(name, doc, registry=registry).set_function(read)


_shared: weakref.WeakKeyDictionary[CollectorRegistry, _Shared] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _of(registry: CollectorRegistry) -> _Shared:
    with _shared_lock:
        shared = _shared.get(registry)
        if shared is None:
            shared = _shared[registry] = _Shared(registry)
        return shared


class PrometheusComponentMetrics(ComponentMetrics):
    """:class:`~etcdwamp.wamp.metrics.ComponentMetrics` recorded in ``registry``
    (``prometheus_client``'s default one unless given); see the module docstring for
    how several instances on one registry add up."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._m = _of(registry)
        self._me = id(self)
        self._closed = False

    def call_done(self, procedure: str, outcome: str, seconds: float) -> None:
        """Count one call of ``procedure`` with its ``outcome`` and time it."""
        m = self._m
        calls = m.call_series.get((procedure, outcome))
        if calls is None:
            calls = m.call_series[procedure, outcome] = m.calls.labels(procedure, outcome)
        calls.inc()
        duration = m.duration_series.get(procedure)
        if duration is None:
            duration = m.duration_series[procedure] = m.duration.labels(procedure)
        duration.observe(seconds)

    def event_published(self, kind: str, count: int = 1) -> None:
        """Count ``count`` events of ``kind`` published."""
        self._m.events.labels(kind).inc(count)

    def limit_refused(self, limit: str) -> None:
        """Count one refusal by ``limit``."""
        self._m.refusals.labels(limit).inc()

    def publisher_leader(self, is_leader: bool) -> None:
        """Set whether this instance publishes (leader gauge)."""
        self._set(self._m.leaders, int(is_leader))

    def publisher_lag(self, revisions: int) -> None:
        """Set this instance's lag in revisions."""
        self._set(self._m.lags, revisions)

    def sessions(self, count: int, realm: str = "") -> None:
        """Set the number of WAMP sessions in this instance's ``realm``."""
        self._set(self._m.sessions, (realm, count))

    def _set(self, table: dict[int, Any], value: Any) -> None:
        with self._m.lock:
            if not self._closed:
                table[self._me] = value

    def close(self) -> None:
        """This instance stopped: it no longer counts in the gauges (its counts stay)."""
        with self._m.lock:
            self._closed = True
            for table in (self._m.leaders, self._m.lags, self._m.sessions):
                table.pop(self._me, None)
