"""The client's Prometheus metrics against a real etcd, on both event loops:
request counters move by exactly the requests made, a stalled member (SIGSTOP)
shows as a failed outcome and an unhealthy endpoint until it answers again, a
stopped member of three as ``connect_failed`` and unhealthy while the others
serve, and a watch moves the open-streams gauge up and back down."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from loops import ensure, make_client
from members import a_follower, victim_first
from prometheus_client import CollectorRegistry
from stall import stalled

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.errors import RequestTimeout
from etcdwamp.prometheus import PrometheusClientMetrics
from etcdwamp.testing import EtcdCluster

REQUESTS = "etcdwamp_etcd_requests_total"
DURATION = "etcdwamp_etcd_request_duration_seconds"
HEALTHY = "etcdwamp_etcd_endpoint_healthy"
STREAMS = "etcdwamp_watch_streams"


def reader(registry: CollectorRegistry) -> Callable[..., float]:
    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found
    return value


@ensure
async def test_counters_move_by_exactly_the_requests_made(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    registry = CollectorRegistry()
    value = reader(registry)
    client = make_client(loop, url=etcd.url, metrics=PrometheusClientMetrics(registry))
    clients.append(client)
    url = client.endpoints[0]
    assert value(HEALTHY, endpoint=url) == 1
    for i in range(7):
        await client.put(prefix + b"%d" % i, b"v")
    for i in range(5):
        assert (await client.get(prefix + b"%d" % i)).kvs
    assert value(REQUESTS, endpoint=url, outcome="ok") == 12
    assert value(DURATION + "_count", endpoint=url) == 12
    assert value(DURATION + "_sum", endpoint=url) > 0
    # Exactly those: no other outcome was counted.
    outcomes = {s.labels["outcome"] for m in registry.collect() if m.name == REQUESTS[:-6]
                for s in m.samples if s.name == REQUESTS}
    assert outcomes == {"ok"}

    watch = client.watch(KeySet(prefix, prefix=True), lambda batch: None)
    assert not watch.streaming  # etcd has not confirmed it yet
    await watch
    assert value(STREAMS) == 1 and watch.streaming
    await watch.cancel()
    assert value(STREAMS) == 0 and not watch.streaming


@ensure
async def test_a_stalled_member_is_a_failed_outcome_and_unhealthy_until_it_answers(
        etcd_factory: Callable[..., EtcdCluster], loop: str, prefix: bytes,
        clients: list[Client]) -> None:
    cluster = etcd_factory(1)
    member = cluster.members[0]
    registry = CollectorRegistry()
    value = reader(registry)
    client = make_client(loop, url=cluster.url, timeout=1.0,
                         metrics=PrometheusClientMetrics(registry))
    clients.append(client)
    url = client.endpoints[0]
    await client.put(prefix + b"k", b"1")
    assert value(REQUESTS, endpoint=url, outcome="ok") == 1
    with stalled(member):
        with pytest.raises(RequestTimeout):
            await client.get(prefix + b"k")
        assert value(REQUESTS, endpoint=url, outcome="timeout") == 1
        assert value(HEALTHY, endpoint=url) == 0
        # The attempt took the whole timeout, and the histogram saw it.
        assert value(DURATION + "_sum", endpoint=url) >= 0.9
    # Continued: the next call (to the only endpoint, tried though demoted) answers.
    assert (await client.get(prefix + b"k")).kvs
    assert value(HEALTHY, endpoint=url) == 1
    assert value(REQUESTS, endpoint=url, outcome="ok") >= 2


@ensure
async def test_a_stopped_member_is_connect_failed_and_unhealthy_while_the_others_serve(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    victim = await a_follower(etcd_cluster3, loop)
    registry = CollectorRegistry()
    value = reader(registry)
    client = victim_first(etcd_cluster3, victim, loop, timeout=5.0,
                          metrics=PrometheusClientMetrics(registry))
    clients.append(client)
    first, second, third = client.endpoints
    victim.stop()
    await client.put(prefix + b"k", b"v")
    assert value(REQUESTS, endpoint=first, outcome="connect_failed") == 1
    assert value(REQUESTS, endpoint=second, outcome="ok") == 1
    assert value(HEALTHY, endpoint=first) == 0
    assert value(HEALTHY, endpoint=second) == value(HEALTHY, endpoint=third) == 1
    # The next call starts at the member that answered: the stopped one costs no more.
    await client.get(prefix + b"k")
    assert value(REQUESTS, endpoint=second, outcome="ok") == 2
    assert value(REQUESTS, endpoint=first, outcome="connect_failed") == 1
