"""Events obey the read rules (real Crossbar, real etcd).

The router here lets guests subscribe to every ``etcd.`` topic, so only the
component's own rule (``eligible_authrole`` / ``eligible_authid`` on each
publish) stands between a refused subscriber and the data. Every test has a
permitted subscriber receive every event, and ends with a marker event the
refused subscriber may see, published after all the refused ones: had the
router delivered any of those to it, they would have arrived before the marker.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    node_for,
    publisher_keys,
    registered,
)

from etcdwamp import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

DB = b"ev/maps/"
ELECTION = b"ev/publisher"
EXTRA = {
    "db_prefix": DB.decode(),
    "election": ELECTION.decode(),
    "maps": {
        "notes": {"slot": 1, "read": ["writer"]},
        "open": {"slot": 2},
        "inbox": {"slot": 3, "read": ["guest", "writer"], "owner": True, "events": "owner"},
        "nobody": {"slot": 4, "read": []},
    },
    "kv_prefixes": [{"prefix": "ev/raw/", "read": ["writer"]},
                    {"prefix": "ev/pub/", "name": "pub", "read": ["guest", "writer"]},
                    {"prefix": "ev/pub/locked/", "name": "locked", "read": ["writer"],
                     "nested": True}],
    "presence": {"prefix": "ev/presence/", "read": ["writer"]},
}


def map_key(slot: int, key: str) -> bytes:
    return DB + slot.to_bytes(2, "big") + key.encode()


@pytest.fixture(scope="module")
def crossbar(etcd: EtcdCluster, tmp_path_factory: pytest.TempPathFactory,
             component_loop: str) -> Iterator[CrossbarNode]:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    for worker in config["workers"]:
        for realm in worker.get("realms", []):
            for role in realm.get("roles", []):
                if role["name"] == "guest":
                    role["permissions"].append({
                        "uri": "etcd.", "match": "prefix",
                        "allow": {"call": False, "register": False, "publish": False,
                                  "subscribe": True},
                        "disclose": {"caller": True, "publisher": False}, "cache": True})
    path = tmp_path_factory.mktemp("events") / ".crossbar" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config), encoding="utf-8")
    with node_for(component_loop, path, etcd.urls, web_dir=str(CONFIG.parents[1] / "web"),
                  extra_overrides=EXTRA) as cb:
        yield cb


@pytest_twisted.async_fixture
async def node(crossbar: CrossbarNode) -> CrossbarNode:
    return await registered(crossbar)


class Inbox:
    """What one session received, per topic, filtered to one test's keys."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.events: dict[str, list[dict[str, Any]]] = {}

    async def follow(self, session: Any, *topics: str) -> None:
        for topic in topics:
            self.events[topic] = []

            def got(event: dict[str, Any], topic: str = topic) -> None:
                key = event.get("key")
                text = key.decode() if isinstance(key, bytes) else str(key)
                if "compact_revision" in event or self.mark in text:
                    self.events[topic].append(event)

            await session.subscribe(got, topic)

    def count(self, topic: str) -> int:
        return len(self.events[topic])


@contextlib.asynccontextmanager
async def writer_and_guest(node: CrossbarNode, mark: str,
                           *topics: str) -> AsyncIterator[tuple[Inbox, Inbox]]:
    """A writer and a guest session following ``topics``; what each received."""
    writer, guest = await connect(node), await connect(node, writer=False)
    seen_w, seen_g = Inbox(mark), Inbox(mark)
    try:
        await seen_w.follow(writer, *topics)
        await seen_g.follow(guest, *topics)
        yield seen_w, seen_g
    finally:
        await disconnect(writer)
        await disconnect(guest)


async def marker(client: Client, mark: str, inboxes: list[Inbox]) -> None:
    """A change of the open map, which everyone may see; wait until it arrived."""
    key = mark + "marker"
    await client.put(map_key(2, key), b"1")
    for inbox in inboxes:
        events = inbox.events["etcd.map.open.on_change"]
        await until(lambda events=events: any(ev.get("key") == key  # type: ignore[misc]
                                              for ev in events))


@ensure
async def test_map_events_reach_only_roles_that_may_read(node: CrossbarNode, client: Client,
                                                         prefix: bytes) -> None:
    mark = prefix.decode()
    topics = ("etcd.map.notes.on_change", "etcd.map.open.on_change", "etcd.map.nobody.on_change")
    async with writer_and_guest(node, mark, *topics) as (seen_w, seen_g):
        for i in range(50):
            await client.put(map_key(1, f"{mark}{i}"), b'{"secret": %d}' % i)
            await client.put(map_key(4, f"{mark}{i}"), b"1")
        await client.delete(map_key(1, f"{mark}0"))
        await until(lambda: seen_w.count("etcd.map.notes.on_change") == 51)
        await marker(client, mark, [seen_w, seen_g])
        assert seen_g.count("etcd.map.notes.on_change") == 0
        # read: [] -- nobody, not even the writer
        assert seen_w.count("etcd.map.nobody.on_change") == 0
        assert seen_g.count("etcd.map.nobody.on_change") == 0


@ensure
async def test_kv_prefix_events_obey_each_prefix_rule(node: CrossbarNode, client: Client,
                                                      prefix: bytes) -> None:
    mark = prefix.decode()
    topics = ("etcd.kv.ev_raw.on_change", "etcd.kv.pub.on_change", "etcd.kv.locked.on_change",
              "etcd.map.open.on_change")
    async with writer_and_guest(node, mark, *topics) as (seen_w, seen_g):
        for i in range(20):
            await client.put(f"ev/raw/{mark}{i}".encode(), b"private")
            await client.put(f"ev/pub/locked/{mark}{i}".encode(), b"private too")
            await client.put(f"ev/pub/{mark}{i}".encode(), b"public")
        for topic in topics[:3]:
            await until(lambda topic=topic: seen_w.count(topic) == 20)  # type: ignore[misc]
        await until(lambda: seen_g.count("etcd.kv.pub.on_change") == 20)
        await marker(client, mark, [seen_w, seen_g])
        assert seen_g.count("etcd.kv.ev_raw.on_change") == 0
        assert seen_g.count("etcd.kv.locked.on_change") == 0
        # Keys under the nested prefix travel on its topic only, with its rule.
        assert all(not ev["key"].startswith(b"ev/pub/locked/")
                   for ev in seen_w.events["etcd.kv.pub.on_change"])


@ensure
async def test_presence_events_obey_the_presence_read_rule(node: CrossbarNode,
                                                          client: Client, prefix: bytes) -> None:
    mark = prefix.decode().replace("/", "_")
    writer, guest = await connect(node), await connect(node, writer=False)
    joiner = await connect(node)
    seen_w, seen_g = Inbox(mark), Inbox(mark)
    try:
        await seen_w.follow(writer, "etcd.presence.on_change", "etcd.map.open.on_change")
        await seen_g.follow(guest, "etcd.presence.on_change", "etcd.map.open.on_change")
        for i in range(5):
            await joiner.call("etcd.presence.put", f"{mark}{i}", "here")
        await disconnect(joiner)  # five leaves
        await until(lambda: seen_w.count("etcd.presence.on_change") == 10,
                    why=lambda: f"{seen_w.events}\n{node.log_tail(30)}")
        await marker(client, mark, [seen_w, seen_g])
        assert seen_g.count("etcd.presence.on_change") == 0
    finally:
        await disconnect(joiner)
        await disconnect(writer)
        await disconnect(guest)


@ensure
async def test_owner_events_reach_only_the_owner(node: CrossbarNode, client: Client,
                                                 prefix: bytes) -> None:
    alice, bob = await connect(node, writer=False), await connect(node, writer=False)
    writer = await connect(node)
    a, b = alice._authid, bob._authid
    got: dict[str, list[Any]] = {"alice": [], "bob": [], "writer": []}
    try:
        for name, session in (("alice", alice), ("bob", bob), ("writer", writer)):
            await session.subscribe(lambda ev, name=name: got[name].append(ev["key"]),
                                    "etcd.map.inbox.on_change")
        seen_w, seen_a, seen_b = Inbox(prefix.decode()), Inbox(prefix.decode()), \
            Inbox(prefix.decode())
        await seen_w.follow(writer, "etcd.map.open.on_change")
        await seen_a.follow(alice, "etcd.map.open.on_change")
        await seen_b.follow(bob, "etcd.map.open.on_change")
        for i in range(10):
            await client.put(map_key(3, a), b'{"n": %d}' % i)
            await client.put(map_key(3, b), b'{"n": %d}' % i)
        await until(lambda: len(got["alice"]) == 10 and len(got["bob"]) == 10)
        await marker(client, prefix.decode(), [seen_w, seen_a, seen_b])
        assert set(got["alice"]) == {a} and set(got["bob"]) == {b}
        assert got["writer"] == []  # the writer's authid is neither key
    finally:
        await disconnect(alice)
        await disconnect(bob)
        await disconnect(writer)


@ensure
async def test_resync_notices_obey_the_read_rule(node: CrossbarNode, client: Client,
                                                 prefix: bytes) -> None:
    mark = prefix.decode()
    topics = ("etcd.map.notes.on_resync", "etcd.map.open.on_resync", "etcd.kv.ev_raw.on_resync",
              "etcd.map.open.on_change")
    async with writer_and_guest(node, mark, *topics) as (seen_w, seen_g):
        keys = await publisher_keys(node, ELECTION)
        checkpoint = keys.checkpoint
        mark_put = await client.put(map_key(2, mark + "before"), b"0")

        async def caught_up() -> bool:
            kv = (await client.get(checkpoint)).first
            return kv is not None and int(kv.value) >= mark_put.revision

        await until(caught_up)
        # A checkpoint long gone: history before it is compacted away, and
        # the publisher dies; its successor (the same instance) must resync.
        latest = await client.put(checkpoint, b"1")
        await client.compact(latest.revision, physical=True)
        leader = await client.election(keys.election).leader()
        assert leader is not None
        await client.lease_revoke(leader.lease)
        await until(lambda: seen_g.count("etcd.map.open.on_resync") >= 1, why=node.log_tail)
        await until(lambda: seen_w.count("etcd.map.notes.on_resync") >= 1
                    and seen_w.count("etcd.kv.ev_raw.on_resync") >= 1)
        # The guest's open-map resync was published after the notes one or
        # not; wait for a change published after all resyncs to be sure.
        await marker(client, mark + "after", [seen_w, seen_g])
        assert seen_g.count("etcd.map.notes.on_resync") == 0
        assert seen_g.count("etcd.kv.ev_raw.on_resync") == 0
