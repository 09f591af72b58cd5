"""/metrics and /health of a real Crossbar node (the committed config, component embedded
in the router worker) over a real etcd of its own: real calls, events, refusals, an
etcd outage and a hung member move the scraped values as they should.

Only the embedded placement: the operator transport lives in the router worker and
sees the components of that process (an external asyncio component has none to
report to).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from stall import stalled
from waiting import until
from wamp_helpers import CONFIG, connect, disconnect, error_of, registered

from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

GUEST_LIMITS = {"session": {"calls_per_second": 2}, "authid": {}, "role": {}}
EXTRA: dict[str, Any] = {
    "health_interval": 0.2,
    "etcd": {"timeout": 2},
    "maps": {"notes": {"slot": 1, "key": "string", "value": "json",
                       "read": ["guest", "writer"], "write": ["writer"]}},
    "limits": {"roles": {"guest": GUEST_LIMITS}},
}


async def scrape(node: CrossbarNode) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    response = await treq.get(node.metrics_url + "metrics")
    assert response.code == 200
    text = await treq.text_content(response)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def health(node: CrossbarNode) -> tuple[int, dict[str, Any]]:
    response = await treq.get(node.metrics_url + "health")
    return response.code, json.loads(await treq.content(response))


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(node: CrossbarNode, name: str, at_least: float,
          **labels: str) -> Callable[[], Any]:
    """A condition for :func:`until`: the sample reached ``at_least``."""
    async def reached() -> bool:
        return sample(await scrape(node), name, **labels) >= at_least
    reached.__name__ = f"{name}{labels} >= {at_least}"
    return reached


@ensure
async def test_metrics_and_health_follow_calls_events_refusals_and_an_etcd_outage(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    cluster = etcd_factory(1)
    node = CrossbarNode(str(CONFIG), cluster.urls, extra_overrides=EXTRA)
    writer = guest = None
    try:
        node.start()
        await registered(node)

        async def healthy() -> bool:
            return (await health(node))[0] == 200
        await until(healthy, timeout=30, why=node.log_tail)
        code, body = await health(node)
        assert code == 200 and body["healthy"] and body["components"][0]["etcd_reachable"]
        await until(moved(node, "etcdwamp_publisher_is_leader", 1), why=node.log_tail)

        before = await scrape(node)
        writer = await connect(node)
        events: list[Any] = []
        await writer.subscribe(lambda *a, **kw: events.append(kw), "etcd.map.notes.on_change")
        for i in range(3):
            await writer.call("etcd.map.notes.put", f"k{i}", {"n": i})
        await until(lambda: len(events) == 3, why=node.log_tail)
        after = await scrape(node)
        ok = {"procedure": "map.put", "outcome": "ok"}
        assert (sample(after, "etcdwamp_calls_total", **ok)
                - sample(before, "etcdwamp_calls_total", **ok)) == 3
        assert (sample(after, "etcdwamp_call_duration_seconds_count", procedure="map.put")
                - sample(before, "etcdwamp_call_duration_seconds_count",
                         procedure="map.put")) == 3
        # The component's etcd client reports to the same /metrics: its requests to the
        # one member (at least one per put) and that member's health.
        [endpoint] = cluster.urls
        requests = {"endpoint": endpoint, "outcome": "ok"}
        assert (sample(after, "etcdwamp_etcd_requests_total", **requests)
                - sample(before, "etcdwamp_etcd_requests_total", **requests)) >= 3
        assert sample(after, "etcdwamp_etcd_endpoint_healthy", endpoint=endpoint) == 1
        assert sample(after, "etcdwamp_watch_streams") >= 1  # the publisher's watches
        # The events are published before the subscriber has them: counted by now.
        assert (sample(after, "etcdwamp_events_published_total", kind="map")
                - sample(before, "etcdwamp_events_published_total", kind="map")) == 3
        # Caught up: the next health check finds nothing unpublished.
        async def caught_up() -> bool:
            return sample(await scrape(node), "etcdwamp_publisher_lag_revisions") == 0
        await until(caught_up)
        status = await writer.call("etcd.status")
        assert status["publisher"] is True and status["publisher_lag"] == 0
        assert status["endpoints"] == [True]
        # No label carries a key or a value.
        assert not [k for k in after if any(v.startswith("k") and v[1:].isdigit()
                                            for _, v in k[1])]

        # Sessions: the realm's, as the router counts them (the component and the
        # writer at least); one more while the guest is connected.
        await until(moved(node, "etcdwamp_sessions", 2), why=node.log_tail)
        sessions = sample(await scrape(node), "etcdwamp_sessions")

        def sessions_are(count: float) -> Callable[[], Any]:
            async def reached() -> bool:
                return sample(await scrape(node), "etcdwamp_sessions") == count
            reached.__name__ = f"etcdwamp_sessions == {count}"
            return reached

        # Refusals: the map's rules (guests read notes, never write), then the guest rate.
        guest = await connect(node, writer=False)
        await until(sessions_are(sessions + 1), why=node.log_tail)
        denied = await error_of(guest.call("etcd.map.notes.put", "k", 1))
        assert denied.error == "etcd.error.permission_denied"
        await until(moved(node, "etcdwamp_calls_total", 1, procedure="map.put",
                          outcome="permission_denied"))
        limited = None
        for _ in range(50):  # 2 calls a second: refused well before 50 back to back
            try:
                await guest.call("etcd.map.notes.get", "k0")
            except Exception as exc:
                limited = exc
                break
        assert getattr(limited, "error", None) == "etcd.error.rate_limited"
        refused = await scrape(node)
        assert sample(refused, "etcdwamp_limit_refusals_total", limit="rate") == 1
        assert sample(refused, "etcdwamp_calls_total", procedure="map.get",
                      outcome="rate_limited") == 1

        await disconnect(guest)
        guest = None

        await until(sessions_are(sessions), why=node.log_tail)

        # etcd goes away: /health turns 503 and calls fail as unavailable; back: 200.
        cluster.members[0].stop()

        async def unhealthy() -> bool:
            code, body = await health(node)
            return code == 503 and body["components"][0]["etcd_reachable"] is False
        await until(unhealthy, timeout=30, why=node.log_tail)
        failed = await error_of(writer.call("etcd.map.notes.get", "k0"))
        assert failed.error == "etcd.error.unavailable"
        await until(moved(node, "etcdwamp_calls_total", 1, procedure="map.get",
                          outcome="unavailable"))
        cluster.members[0].start()
        cluster.wait_serving(cluster.members[0])
        await until(healthy, timeout=60, why=node.log_tail)
        await writer.call("etcd.map.notes.put", "k9", 9)
        await until(moved(node, "etcdwamp_calls_total", 4, **ok), timeout=30)

        # A hung member (SIGSTOP) answers nothing, yet accepts connections: the bounded
        # check turns /health red all the same, and green once it runs again.
        with stalled(cluster.members[0]):
            await until(unhealthy, timeout=30, why=node.log_tail)
        await until(healthy, timeout=60, why=node.log_tail)
    finally:
        for session in (writer, guest):
            if session is not None:
                await disconnect(session)
        node.stop()


@ensure
async def test_health_answers_without_metrics(etcd: EtcdCluster) -> None:
    """``extra.metrics`` off: /health still follows the component and etcd (a load
    balancer's check must not depend on the metrics extra), /metrics has no etcdwamp
    series, and etcd.status still reports endpoints and the publisher lag."""
    node = CrossbarNode(str(CONFIG), etcd.urls,
                        extra_overrides={"health_interval": 0.2, "metrics": False})
    writer = None
    try:
        node.start()
        await registered(node)

        async def healthy() -> bool:
            return (await health(node))[0] == 200
        await until(healthy, timeout=30, why=node.log_tail)
        writer = await connect(node)
        status = await writer.call("etcd.status")
        assert status["endpoints"] == [True] and status["publisher_lag"] == 0
        assert not [name for name, _ in await scrape(node) if name.startswith("etcdwamp_")]
    finally:
        if writer is not None:
            await disconnect(writer)
        node.stop()
