"""Events over three Crossbar nodes behind HAProxy and a 3-member etcd: subscribers
spread over the nodes (directly and through the balancer) each receive every event once,
in revision order, whichever node the writer used; and through a rolling restart of every
node under writes, no acknowledged write is lost and reconnecting subscribers end with
the exact table.

The figures (events missing and duplicated per subscriber, acknowledged writes lost,
time to resume after each restart) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from balanced_helpers import (
    Writer,
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    publishing,
    running,
    writers_on_nodes,
)
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from waiting import until
from wamp_helpers import connect, disconnect, until_registered

from etcdwamp import Client
from etcdwamp.testing import BalancedNodes, CrossbarNode
from etcdwamp.wamp.inflight import fail_in_flight_on_leave
from etcdwamp.wire import KeySet

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

TOPIC = "etcd.map.notes.on_change"
#: where the committed config keeps the ``notes`` map (slot 1) in etcd
NOTES = b"demo/maps/\x00\x01"


def figures(name: str, revisions: list[int], written: list[int]) -> tuple[int, int]:
    """Events of ``written`` that ``name`` never received, and received more than once
    (printed)."""
    counts = Counter(revisions)
    missing = sum(1 for r in written if r not in counts)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    print(f"  {name}: {len(revisions)} events, {missing} missing, {duplicated} duplicated")
    return missing, duplicated


@ensure
async def test_every_subscriber_on_any_node_gets_every_event_once_in_order(
        balanced: BalancedNodes, prefix: bytes) -> None:
    """A subscriber joined directly to each node and one through the balancer on each
    node; writers on each node in turn put 60 notes: every subscriber receives the event
    of each put exactly once, in revision order."""
    await all_registered(balanced)
    for node in balanced.nodes:
        await publishing(node)
    name = prefix.decode()
    direct = [await connect(node) for node in balanced.nodes]
    through = [await connect(balanced) for _ in balanced.nodes]
    writers = [await connect(node) for node in balanced.nodes]
    subscribers = direct + through
    try:
        assert sorted(await writers_on_nodes(balanced, through)) == [0, 1, 2]
        seen: list[list[int]] = [[] for _ in subscribers]
        for s, revisions in zip(subscribers, seen, strict=True):
            await s.subscribe(lambda ev, revisions=revisions: revisions.append(ev["revision"])
                              if ev["key"].startswith(name) else None, TOPIC)
        written = []
        for i in range(60):
            put = await writers[i % 3].call("etcd.map.put", "notes", f"{name}{i:03d}", {"i": i})
            written.append(put["revision"])
        for revisions in seen:
            await until(lambda revisions=revisions: len(revisions) >= len(written),
                        timeout=60, why=lambda revisions=revisions:
                        f"{len(revisions)}/{len(written)} events\n{balanced.log_tail()}")
        print(f"\n{len(written)} puts through the three nodes in turn:")
        labels = [f"direct node{i + 1}" for i in range(3)]
        labels += [f"balanced #{i + 1}" for i in range(3)]
        for label, revisions in zip(labels, seen, strict=True):
            figures(label, revisions, written)
        for revisions in seen:
            assert revisions == written
    finally:
        for s in subscribers + writers:
            await disconnect(s)


class Follower:
    """A page's table of the notes under ``name``, kept by a plain autobahn session through
    the balancer that reconnects to whichever node it reaches: on each join it
    subscribes, re-reads the map with ``get_and_watch`` and applies only what is newer
    than what it holds (per key, by revision)."""

    def __init__(self, balanced: BalancedNodes, name: str) -> None:
        self.name = name
        self.table: dict[str, tuple[Any, int]] = {}
        self.received: list[int] = []  # revisions of the events, as they came
        self.joins = 0
        self.synced = False
        self.session: Any = None
        self._pending: list[dict[str, Any]] | None = None
        self.component = Component(
            transports=[{"type": "websocket", "url": balanced.url, "serializers": ["cbor"],
                         "max_retries": -1, "initial_retry_delay": 0.1,
                         "max_retry_delay": 0.5}],
            realm=balanced.realm,
            authentication={"ticket": {"authid": "writer", "ticket": balanced.writer_ticket}},
        )
        # A read in flight when its node dies fails at once (autobahn would leave it pending).
        fail_in_flight_on_leave(self.component)
        self.component.on_join(self._joined)
        self.component.on_leave(self._left)
        self.done: Deferred[Any] | None = None

    def start(self) -> None:
        self.done = self.component.start(reactor)

    async def stop(self) -> None:
        await self.component.stop()

    def _apply(self, event: dict[str, Any]) -> None:
        key, revision = event["key"], event["revision"]
        held = self.table.get(key)
        if held is not None and held[1] >= revision:
            return  # seen already: from the snapshot or from another node's publisher
        self.table[key] = (None if event.get("op") == "delete" else event["value"], revision)

    def _event(self, event: dict[str, Any]) -> None:
        if not event["key"].startswith(self.name):
            return
        self.received.append(event["revision"])
        if self._pending is not None:
            self._pending.append(event)  # until the snapshot is in
        else:
            self._apply(event)

    async def _joined(self, session: Any, details: Any) -> None:
        self.session = session
        self._pending = []
        await session.subscribe(self._event, TOPIC)
        snapshot = await session.call("etcd.map.get_and_watch", "notes")
        for row in snapshot["items"]:
            if row["key"].startswith(self.name):
                self._apply({"key": row["key"], "value": row["value"],
                             "revision": row["revision"]})
        pending, self._pending = self._pending, None
        for event in pending:
            self._apply(event)
        self.joins += 1
        self.synced = True

    def _left(self, session: Any, details: Any) -> None:
        self.synced = False

    def values(self) -> dict[str, Any]:
        return {k: v for k, (v, _) in self.table.items() if v is not None}


def etcd_endpoints(node: CrossbarNode) -> list[str]:
    """The etcd endpoints ``node``'s component was given (in its written config)."""
    with open(os.path.join(node.cbdir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    for worker in config["workers"]:
        for component in worker.get("components", []):
            if component.get("classname", "").startswith("etcdwamp."):
                return list(component["extra"]["etcd"]["endpoints"])
    raise AssertionError("no etcdwamp component in the node's config")


async def etcd_table(node: CrossbarNode, name: str) -> dict[str, Any]:
    """The notes under ``name``, read from etcd directly (not through any node)."""
    client = Client(reactor, endpoints=etcd_endpoints(node), timeout=5.0)
    try:
        found = await client.get(KeySet(NOTES + name.encode(), prefix=True))
        return {kv.key[len(NOTES):].decode(): json.loads(kv.value) for kv in found.kvs}
    finally:
        await client.close()


@ensure
async def test_a_rolling_restart_under_writes_loses_no_acknowledged_write(
        balanced: BalancedNodes, prefix: bytes) -> None:
    """Each node in turn killed, restarted and back UP in HAProxy while a writer keeps
    putting through the balancer: every acknowledged write is in etcd at the end, and
    three subscribers through the balancer (one per node at first) that reconnect and
    re-read end with exactly etcd's table."""
    await all_registered(balanced)
    for node in balanced.nodes:
        await publishing(node)
    name = prefix.decode()
    states = balanced.server_states
    followers = [Follower(balanced, name) for _ in balanced.nodes]
    writer = Writer(balanced, name)
    writing: Deferred[None] | None = None
    resumed: list[tuple[int, float | None, float, float]] = []
    try:
        for f in followers:
            f.start()
            await until(lambda f=f: f.synced, timeout=30, why=balanced.log_tail)
        writing = ensureDeferred(writer.run())
        await until(lambda: len(writer.acknowledged) >= 10, timeout=30)
        for index in range(len(balanced.nodes)):
            server = balanced.server_name(index)
            sessions = [writer.session] + [f.session for f in followers]
            where = await writers_on_nodes(balanced, sessions)
            hit = [f for f, at in zip(followers, where[1:], strict=True) if at == index]
            joins = [f.joins for f in hit]
            joins_before = len(writer.joined_at)
            killed = time.monotonic()
            balanced.kill(index)
            writes_back = None
            if where[0] == index:  # the writer's node: it joins another one and resumes
                await until(lambda n=joins_before: len(writer.joined_at) > n, timeout=60,
                            why=balanced.log_tail)
                await until(lambda: writer.acked_after(writer.joined_at[-1]), timeout=60,
                            why=lambda: f"{writer.errors}\n{balanced.log_tail()}")
                writes_back = writer.acked_at[-1] - killed
            await until(lambda hit=hit, joins=joins: all(
                f.synced and f.joins > n for f, n in zip(hit, joins, strict=True)),
                timeout=60, why=balanced.log_tail)
            pages_back = time.monotonic() - killed
            # In a thread: the reactor keeps serving while the node boots.
            await deferToThread(balanced.restart, index)
            await until_registered(balanced.nodes[index], balanced.nodes[index].instances)
            await until(lambda server=server: states()[server].status == "UP", timeout=30,
                        why=lambda: str(states()))
            await publishing(balanced.nodes[index])
            print(f"node{index + 1} restarted, {len(writer.acknowledged)} writes so far")
            resumed.append((len(hit), writes_back, pages_back, time.monotonic() - killed))
        writer.running = False
        await writing
        writing = None
        stored = await etcd_table(balanced.nodes[0], name)
        lost = {k: v for k, v in writer.acknowledged.items() if stored.get(k) != v}
        for f in followers:
            await until(lambda f=f: f.synced and f.values() == stored, timeout=60,
                        why=lambda f=f: f"{len(f.values())}/{len(stored)} rows")
        print(f"\nrolling restart: {len(writer.acknowledged)} writes acknowledged, "
              f"{len(lost)} lost, {writer.failed_calls} calls failed (read back), "
              f"{len(stored)} rows in etcd")
        for index, (moved, writes_back, pages_back, up) in enumerate(resumed):
            writes = ("writer not on it" if writes_back is None
                      else f"writes resumed after {writes_back:.2f}s")
            print(f"  node{index + 1} killed: {writes}, its {moved} subscriber(s) re-synced "
                  f"elsewhere after {pages_back:.2f}s, back UP and publishing after {up:.2f}s")
        written = sorted({r for f in followers for r in f.received})
        for i, f in enumerate(followers):
            figures(f"follower #{i + 1} ({f.joins} joins; missed events re-read)",
                    f.received, written)
        assert lost == {}
        assert set(writer.acknowledged) <= set(stored)
        for f in followers:
            assert f.values() == stored
            assert f.joins >= 2  # each one's node was restarted under it
    finally:
        writer.running = False
        if writing is not None:
            # Not cancelled: autobahn fails to cancel a call whose transport is gone.
            writing.addErrback(lambda _: None)
            await until(lambda: writing.called, timeout=90)
        for f in followers:
            await f.stop()
        if writer.session is not None:
            await disconnect(writer.session)
        for index in range(len(balanced.nodes)):
            if not running(balanced, index):
                await deferToThread(balanced.restart, index)
