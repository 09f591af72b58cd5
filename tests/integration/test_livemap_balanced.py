"""A Python live map (:class:`etcdwamp.wamp.livemap.LiveMap`) connected through HAProxy to
three Crossbar nodes over a 3-member etcd: kill -9 its node, it reconnects through the
balancer to another node and its copy equals the map in etcd (read directly), with the
writes made during the outage and after it."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from balanced_helpers import (
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    writers_on_nodes,
)
from livemap_helpers import (
    NOTES,
    etcd_client_fixture,  # noqa: F401 (a fixture)
    etcd_table,
    restarted,
    seed,
    write_while_away,
)
from twisted.internet import reactor
from waiting import until

from etcdwamp import Client
from etcdwamp.testing import BalancedNodes
from etcdwamp.wamp.livemap import LiveMap

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

class Follower:
    """A live map of "notes" following a reconnecting Component through the balancer,
    with the sessions it joined, in order."""

    def __init__(self, balanced: BalancedNodes) -> None:
        self.live = LiveMap("notes")
        self.sessions: list[Any] = []
        self.component = Component(
            transports=[{"type": "websocket", "url": balanced.url, "serializers": ["json"],
                         "max_retries": -1, "initial_retry_delay": 0.2,
                         "max_retry_delay": 1.0, "retry_delay_jitter": 0.1}],
            realm=balanced.realm,
            authentication={"ticket": {"authid": "writer", "ticket": balanced.writer_ticket}},
        )
        self.live.follow(self.component)
        self.component.on("join", lambda session, details: self.sessions.append(session))
        self.done = self.component.start(reactor)
        self.done.addErrback(lambda failure: None)

    def table(self) -> dict[str, tuple[Any, int]]:
        return {key: (row.value, row.revision) for key, row in self.live.rows.items()}

    async def stop(self) -> None:
        self.live.stop()
        await self.component.stop()


async def follower_on_a_node(balanced: BalancedNodes) -> tuple[Follower, int]:
    """A live follower, and the index of the node its session is on."""
    await all_registered(balanced)
    follower = Follower(balanced)
    await until(lambda: follower.live.state == "live", timeout=30,
                why=lambda: balanced.log_tail())
    [index] = await writers_on_nodes(balanced, follower.sessions[-1:])
    return follower, index


async def kill_and_write(balanced: BalancedNodes, follower: Follower, index: int,
                         client: Client, name: str) -> int:
    """Kill node ``index`` (the follower's), change notes while the follower is away;
    returns once it is live again on another session (the revision of the last write)."""
    joined = len(follower.sessions)
    balanced.kill(index)
    await until(lambda: follower.live.state != "live", timeout=30,
                why="the live map never saw its node go")
    last = await write_while_away(client, name)
    await until(lambda: len(follower.sessions) > joined and follower.live.state == "live",
                timeout=60, why=lambda: f"never live again: {follower.live.state}\n"
                + balanced.log_tail())
    return last


@ensure
async def test_the_live_map_is_exact_after_its_node_is_killed_and_it_reconnects(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes) -> None:
    """kill -9 of the live map's node: it reconnects through HAProxy to another node, and
    its copy equals etcd's notes, the puts and the delete made while it was away included
    (its snapshot on the new node has them)."""
    name = prefix.decode()
    await seed(etcd_client, name)
    follower, index = await follower_on_a_node(balanced)
    try:
        assert follower.table() == await etcd_table(etcd_client)
        last = await kill_and_write(balanced, follower, index, etcd_client, name)
        [now] = await writers_on_nodes(balanced, follower.sessions[-1:])
        assert now != index
        assert follower.live.revision is not None and follower.live.revision >= last
        assert follower.live.snapshots == 2
        assert follower.table() == await etcd_table(etcd_client)
        assert follower.live.rows[f"{name}added"].value == "added while away"
        assert f"{name}deleted" not in follower.live.rows
    finally:
        await follower.stop()
        await restarted(balanced, index)


@ensure
async def test_the_live_map_follows_writes_on_its_new_node_after_the_kill(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes) -> None:
    """After the kill and the reconnect, writes made through the balancer (to any node)
    reach the live map as events on its new node: its copy equals etcd's after each,
    with no extra snapshot read. (Needs every node to publish to its own subscribers: the
    per-node publisher election; until then it passes only when the live map lands on the
    node whose instance wins the next election.)"""
    name = prefix.decode()
    await seed(etcd_client, name)
    follower, index = await follower_on_a_node(balanced)
    try:
        await kill_and_write(balanced, follower, index, etcd_client, name)
        reads = follower.live.snapshots
        for i in range(5):
            put = await etcd_client.put(NOTES + f"{name}after{i}".encode(), str(i).encode())
            await until(lambda rev=put.revision: (follower.live.revision or 0) >= rev,
                        timeout=30, why="the event never reached the live map's new node")
        gone = await etcd_client.delete(NOTES + f"{name}kept".encode())
        await until(lambda: (follower.live.revision or 0) >= gone.revision, timeout=30,
                    why="the delete never reached the live map")
        assert follower.table() == await etcd_table(etcd_client)
        assert follower.live.snapshots == reads
    finally:
        await follower.stop()
        await restarted(balanced, index)
