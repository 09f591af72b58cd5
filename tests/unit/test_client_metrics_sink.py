"""What the client reports to its metrics sink (etcdwamp.metrics), over the fake
gateway on a task.Clock: every request attempt with its endpoint, outcome and
duration; demotions and recoveries; watch streams opened and closed; coalesced
ops. And the Prometheus collectors of etcdwamp.prometheus on a fresh registry."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fake_gateway import Rig
from prometheus_client import CollectorRegistry
from twisted.internet.defer import CancelledError

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.health import EndpointHealth
from etcdwamp.metrics import OUTCOMES, ClientMetrics, outcome_of
from etcdwamp.prometheus import PrometheusClientMetrics

ONE, TWO, THREE = "http://one.test:2379", "http://two.test:2379", "http://three.test:2379"
ENDPOINTS = [ONE, TWO, THREE]
SINGLE = "http://etcd.test:2379"


class Recording(ClientMetrics):
    """Keeps every report, in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, float]] = []
        self.health: list[tuple[str, bool]] = []
        self.streams: list[int] = []
        self.coalesced_ops: list[int] = []

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.requests.append((endpoint, outcome, seconds))

    def endpoint_health(self, endpoint: str, healthy: bool) -> None:
        self.health.append((endpoint, healthy))

    def watch_streams(self, delta: int) -> None:
        self.streams.append(delta)

    def coalesced(self, ops: int) -> None:
        self.coalesced_ops.append(ops)

    def outcomes(self) -> list[tuple[str, str]]:
        return [(endpoint, outcome) for endpoint, outcome, _ in self.requests]


def recorded(**client_args: Any) -> tuple[Rig, Recording]:
    metrics = Recording()
    return Rig.make(metrics=metrics, **client_args), metrics


# -- outcomes ------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "outcome"), [
    (e.ConnectFailed("x"), "connect_failed"),
    (e.RequestTimeout("x"), "timeout"),
    (e.ConnectionLost("x"), "connection_lost"),
    (e.IndefiniteAnswer("x", code=14, http_status=503), "indefinite"),
    (e.Busy("x"), "busy"),
    (e.ProtocolError("x"), "protocol_error"),
    (e.NoLeader("etcdserver: no leader"), "no_leader"),
    (e.Unavailable("x"), "unavailable"),
    (e.NoSpace("x"), "no_space"),
    (e.ResourceExhausted("x"), "resource_exhausted"),
    (e.RequestTooLarge("x"), "invalid_argument"),
    (e.LeaseNotFound("x"), "not_found"),
    (e.RevisionCompacted("x"), "out_of_range"),
    (e.PermissionDenied("x"), "permission_denied"),
    (e.Unauthenticated("x"), "unauthenticated"),
    (e.DeadlineExceeded("x"), "deadline_exceeded"),
    (e.FailedPrecondition("x"), "failed_precondition"),
    (e.Internal("x"), "server_error"),
    (CancelledError(), "cancelled"),
    (RuntimeError("bug"), "error"),
])
def test_each_failure_has_its_outcome_name(exc: BaseException, outcome: str) -> None:
    assert outcome_of(exc) == outcome
    assert outcome in OUTCOMES


def test_the_outcome_set_is_small_and_snake_case() -> None:
    assert "ok" in OUTCOMES and len(OUTCOMES) <= 24
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", name) for name in OUTCOMES)


def test_a_client_refuses_a_metrics_sink_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="ClientMetrics"):
        Rig.make(metrics=object())


# -- request attempts ------------------------------------------------------------


def test_every_request_reports_one_ok_attempt_at_its_endpoint() -> None:
    rig, metrics = recorded()
    for i in range(3):
        rig.run(rig.client.put(b"k%d" % i, b"v"))
    rig.run(rig.client.get(b"k0"))
    assert metrics.outcomes() == [(SINGLE, "ok")] * 4
    assert [seconds for _, _, seconds in metrics.requests] == [0.0] * 4  # no time passed


def test_an_attempt_that_times_out_reports_its_duration_then_the_next_endpoint_answers() -> None:
    rig, metrics = recorded(endpoints=ENDPOINTS, timeout=9.0)
    rig.etcd.hung_hosts.add("one.test")
    d = rig.client.get(b"k")
    rig.flush()
    rig.advance(3.0)  # one of three shares of the timeout
    rig.run(d)
    assert metrics.outcomes() == [(ONE, "timeout"), (TWO, "ok")]
    assert metrics.requests[0][2] == pytest.approx(3.0)


def test_a_member_without_leader_reports_no_leader_and_is_reported_unhealthy_until_it_answers(
) -> None:
    rig, metrics = recorded(endpoints=ENDPOINTS)
    # Every configured endpoint starts healthy.
    assert metrics.health == [(ONE, True), (TWO, True), (THREE, True)]
    rig.etcd.unavailable_hosts.add("one.test")
    rig.run(rig.client.put(b"k", b"1"))
    assert metrics.outcomes() == [(ONE, "no_leader"), (TWO, "ok")]
    assert metrics.health[3:] == [(ONE, False)]

    # ONE has its leader back; after its back-off the others fail, so it is tried.
    rig.etcd.unavailable_hosts = {"two.test", "three.test"}
    rig.advance(1.0)
    del metrics.requests[:]
    rig.run(rig.client.put(b"k", b"2"))
    assert metrics.outcomes() == [(TWO, "no_leader"), (THREE, "no_leader"), (ONE, "ok")]
    assert metrics.health[4:] == [(TWO, False), (THREE, False), (ONE, True)]


def test_an_error_etcd_answers_is_reported_with_its_name() -> None:
    rig, metrics = recorded()
    with pytest.raises(e.LeaseNotFound):
        rig.run(rig.client.lease_revoke(424242))
    assert metrics.outcomes() == [(SINGLE, "not_found")]


def test_health_reports_only_changes() -> None:
    from twisted.internet.task import Clock
    metrics = Recording()
    health = EndpointHealth(Clock(), metrics=metrics)
    health.succeeded(ONE)  # was not demoted: nothing changes
    health.demote(ONE, "hung")
    health.demote(ONE, "hung")  # the same incident
    health.succeeded(ONE)
    health.succeeded(ONE)
    assert metrics.health == [(ONE, False), (ONE, True)]


def test_a_refused_connection_reports_unhealthy_without_demoting_until_an_answer() -> None:
    from twisted.internet.task import Clock
    metrics = Recording()
    health = EndpointHealth(Clock(), metrics=metrics)
    health.unreachable(ONE)
    health.unreachable(ONE)
    health.demote(ONE, "hung")  # already reported down
    assert metrics.health == [(ONE, False)]
    health.succeeded(ONE)
    assert metrics.health == [(ONE, False), (ONE, True)]
    health.unreachable(TWO)
    assert health.is_healthy(TWO)  # still tried in its turn
    health.keep_only([ONE])  # TWO left the member list: forgotten
    health.succeeded(TWO)
    assert metrics.health == [(ONE, False), (ONE, True), (TWO, False)]


def test_new_endpoints_from_the_member_list_start_healthy() -> None:
    rig, metrics = recorded()
    rig.client.transport.set_endpoints([SINGLE, TWO])
    assert metrics.health == [(SINGLE, True), (TWO, True)]


# -- watch streams and coalescing -----------------------------------------------


def test_watch_streams_count_up_and_down_across_reconnects() -> None:
    rig, metrics = recorded(endpoints=ENDPOINTS)
    watch = rig.client.watch(KeySet(b"w/", prefix=True), lambda batch: None)
    rig.run(watch.created)
    assert metrics.streams == [1]
    rig.etcd.end_streams("one.test")  # "no leader": the watch moves to another member
    rig.flush()
    assert metrics.streams == [1, -1, 1]
    rig.run(watch.cancel())
    assert metrics.streams == [1, -1, 1, -1]
    assert sum(metrics.streams) == 0


def test_coalesced_ops_are_reported_per_transaction() -> None:
    rig, metrics = recorded(coalesce=True)
    puts = [rig.client.put(b"k%d" % i, b"v") for i in range(3)]
    rig.clock.advance(0)
    for d in puts:
        rig.run(d)
    assert metrics.coalesced_ops == [3]
    assert metrics.outcomes() == [(SINGLE, "ok")]  # one transaction, one attempt


# -- Prometheus ------------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_prometheus_counts_attempts_health_streams_and_coalesced_ops() -> None:
    registry = CollectorRegistry()
    rig = Rig.make(endpoints=ENDPOINTS, coalesce=True,
                   metrics=PrometheusClientMetrics(registry))
    assert sample(registry, "etcdwamp_etcd_endpoint_healthy", endpoint=ONE) == 1
    rig.etcd.unavailable_hosts.add("one.test")
    d = rig.client.put(b"k", b"v")
    rig.clock.advance(0)  # the coalescer sends at the end of the turn
    rig.run(d)
    assert sample(registry, "etcdwamp_etcd_requests_total",
                  endpoint=ONE, outcome="no_leader") == 1
    assert sample(registry, "etcdwamp_etcd_requests_total", endpoint=TWO, outcome="ok") == 1
    assert sample(registry, "etcdwamp_etcd_request_duration_seconds_count", endpoint=TWO) == 1
    assert sample(registry, "etcdwamp_etcd_endpoint_healthy", endpoint=ONE) == 0
    assert sample(registry, "etcdwamp_etcd_endpoint_healthy", endpoint=TWO) == 1

    puts = [rig.client.put(b"k%d" % i, b"v") for i in range(4)]
    rig.clock.advance(0)
    for d in puts:
        rig.run(d)
    assert sample(registry, "etcdwamp_coalesced_ops_total") == 4
    assert sample(registry, "etcdwamp_etcd_requests_total", endpoint=TWO, outcome="ok") == 2

    watch = rig.client.watch(b"w", lambda batch: None)
    rig.run(watch.created)
    assert sample(registry, "etcdwamp_watch_streams") == 1
    rig.run(watch.cancel())
    assert sample(registry, "etcdwamp_watch_streams") == 0


def test_two_clients_on_one_registry_share_its_collectors() -> None:
    registry = CollectorRegistry()
    first = Rig.make(metrics=PrometheusClientMetrics(registry))
    second = Client(first.clock, url=SINGLE, http_client=first.stub, api_prefix="/v3",
                    metrics=PrometheusClientMetrics(registry))
    first.run(first.client.put(b"a", b"1"))
    first.run(second.put(b"b", b"2"))
    assert sample(registry, "etcdwamp_etcd_requests_total", endpoint=SINGLE, outcome="ok") == 2


def test_is_down_is_what_the_health_gauge_says() -> None:
    """A refused connection leaves an endpoint tried in its turn (not demoted) but down
    until it answers; a demotion is down after its back-off ran out too, until an answer:
    what etcd.status reports and the gauge shows agree."""
    from twisted.internet.task import Clock
    clock = Clock()
    health = EndpointHealth(clock)
    health.unreachable(ONE)
    assert health.is_healthy(ONE) and health.is_down(ONE)
    health.demote(TWO, "hung")
    clock.advance(60)  # the back-off is over: tried again, still not seen answering
    assert health.is_healthy(TWO) and health.is_down(TWO)
    health.succeeded(ONE)
    health.succeeded(TWO)
    assert not health.is_down(ONE) and not health.is_down(TWO)


def test_an_endpoint_that_left_the_member_list_is_no_longer_reported() -> None:
    """A member removed while down would read 0 for ever on a dashboard: its health
    series goes with it; the other endpoint's stays."""
    registry = CollectorRegistry()
    rig = Rig.make(endpoints=ENDPOINTS, metrics=PrometheusClientMetrics(registry))
    rig.etcd.unavailable_hosts.add("one.test")
    rig.run(rig.client.put(b"k", b"v"))
    assert sample(registry, "etcdwamp_etcd_endpoint_healthy", endpoint=ONE) == 0
    rig.client.transport.set_endpoints([TWO])
    assert registry.get_sample_value("etcdwamp_etcd_endpoint_healthy",
                                     {"endpoint": ONE}) is None
    assert sample(registry, "etcdwamp_etcd_endpoint_healthy", endpoint=TWO) == 1
