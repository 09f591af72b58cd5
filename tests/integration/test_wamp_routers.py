"""Several Crossbar nodes over one etcd: each router publishes to its own subscribers.

Real etcd, real Crossbar nodes (separate processes) made from the committed
config, with no setting added for running it on several nodes; the component
embedded in each router or outside it on asyncio (``component_loop``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    node_for,
    publisher_keys,
    registered,
)

from etcdwamp import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster
from etcdwamp.wamp.routers import PublisherKeys
from etcdwamp.wire import KeySet

ensure = pytest_twisted.ensureDeferred

TOPIC = "etcd.map.notes.on_change"


def extra(name: str) -> dict[str, Any]:
    """The committed component's settings, moved to keys of this test's own."""
    return {"db_prefix": f"{name}/maps/", "election": f"{name}/publisher",
            "maps": {"notes": {"slot": 1}}, "kv_prefixes": [], "presence": None}


def note_key(name: str, key: str) -> bytes:
    return f"{name}/maps/".encode() + b"\x00\x01" + key.encode()


@pytest.fixture(scope="module")
def two_nodes(etcd: EtcdCluster, component_loop: str) -> Iterator[list[CrossbarNode]]:
    """Two nodes of the committed config over the same etcd, one instance each."""
    with node_for(component_loop, CONFIG, etcd.urls, extra_overrides=extra("routers")) as a, \
            node_for(component_loop, CONFIG, etcd.urls, extra_overrides=extra("routers")) as b:
        yield [a, b]


@pytest_twisted.async_yield_fixture
async def client(etcd: EtcdCluster) -> Any:
    c = Client(reactor, endpoints=etcd.urls, timeout=5.0)
    yield c
    await c.close()


async def keys_publishing(node: CrossbarNode, election: str) -> PublisherKeys:
    """``node``'s publisher keys, once its instance publishes."""
    await registered(node)
    s = await connect(node)
    try:
        async def publishes() -> bool:
            return bool((await s.call("etcd.status"))["publisher"])

        await until(publishes, why=node.log_tail)
    finally:
        await disconnect(s)
    return await publisher_keys(node, election)


@ensure
async def test_a_subscriber_on_each_node_gets_every_event_once_in_order(
        two_nodes: list[CrossbarNode], client: Client, prefix: bytes) -> None:
    """100 puts: the subscriber on either node receives each one's event exactly once,
    in revision order (with one election for all, one node's got none)."""
    keys = [await keys_publishing(node, "routers/publisher") for node in two_nodes]
    assert keys[0].router != keys[1].router
    name = prefix.decode()
    sessions = [await connect(node) for node in two_nodes]
    seen: list[list[int]] = [[], []]
    try:
        for s, revisions in zip(sessions, seen, strict=True):
            await s.subscribe(lambda ev, revisions=revisions: revisions.append(ev["revision"])
                              if ev["key"].startswith(name) else None, TOPIC)
        written = [(await client.put(note_key("routers", f"{name}{i:03d}"), b"1")).revision
                   for i in range(100)]
        for node, revisions in zip(two_nodes, seen, strict=True):
            await until(lambda revisions=revisions: len(revisions) >= len(written),
                        why=lambda node=node, revisions=revisions:
                        f"{len(revisions)}/100 events\n{node.log_tail()}")
        assert seen[0] == written
        assert seen[1] == written
    finally:
        for s in sessions:
            await disconnect(s)


async def router_keys(client: Client, keys: PublisherKeys) -> list[bytes]:
    """The checkpoint and position keys of ``keys``' router."""
    found = [kv.key for kv in (await client.get(keys.checkpoint)).kvs]
    found += [kv.key for kv in (await client.get(KeySet(keys.checkpoint + b"/",
                                                        prefix=True))).kvs]
    return found


def kill(node: CrossbarNode) -> None:
    """Kill -9 ``node``: the router's process group and its asyncio components."""
    assert node.process is not None
    os.killpg(node.process.pid, signal.SIGKILL)
    for process in node.components:
        process.kill()
    node.process.wait(timeout=20)
    for process in node.components:
        process.wait(timeout=20)


@ensure
async def test_a_killed_nodes_checkpoint_goes_when_another_publisher_leads(
        etcd: EtcdCluster, component_loop: str, client: Client) -> None:
    """After a kill -9 of node B, B's checkpoint and positions stay until a publisher
    elsewhere starts leading; then they are deleted, while the keys of a router that
    still has a candidate (one of the test's) and the leader's own stay."""
    election = "gone/publisher"
    with node_for(component_loop, CONFIG, etcd.urls, extra_overrides=extra("gone")) as a, \
            node_for(component_loop, CONFIG, etcd.urls, extra_overrides=extra("gone")) as b:
        keys_a = await keys_publishing(a, election)
        keys_b = await keys_publishing(b, election)
        put = await client.put(note_key("gone", "k"), b"1")

        async def b_recorded() -> bool:
            kv = (await client.get(keys_b.checkpoint)).first
            return (kv is not None and int(kv.value) >= put.revision
                    and len(await router_keys(client, keys_b)) >= 2)

        await until(b_recorded, why=b.log_tail)
        # A router alive elsewhere: a candidate in its election, and a checkpoint.
        live = keys_a.of("elsewhere-1/42")
        await client.put(live.checkpoint, b"1")
        await client.put(live.checkpoint + b"/6c697665", b"1")
        candidate = client.election(live.election, ttl=30)
        await candidate.campaign(b"alive")
        try:
            kill(b)
            gone_b = await router_keys(client, keys_b)

            async def b_has_no_candidate() -> bool:
                found = await client.get(KeySet(keys_b.election + b"/", prefix=True))
                return found.count == 0

            await until(b_has_no_candidate, timeout=30)
            assert await router_keys(client, keys_b) == gone_b  # nobody started leading yet
            kept_a = await router_keys(client, keys_a)
            # A's publisher starts leading again: its lease ends as in a crash.
            leader = await client.election(keys_a.election).leader()
            assert leader is not None
            await client.lease_revoke(leader.lease)

            async def b_forgotten() -> bool:
                return await router_keys(client, keys_b) == []

            await until(b_forgotten, why=a.log_tail)
            assert len(await router_keys(client, live)) == 2
            assert set(kept_a) <= set(await router_keys(client, keys_a))
        finally:
            await candidate.resign()
            await client.delete(KeySet(live.checkpoint, prefix=True))
