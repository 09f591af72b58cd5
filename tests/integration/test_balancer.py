"""Three Crossbar nodes behind HAProxy (crossbar/haproxy.cfg) over a 3-member etcd: the
balancer spreads connections round-robin, a call works whichever node answers it, a node
killed with SIGKILL is taken out of rotation by the health check and put back once it
serves again. (Every subscriber receiving every event, on any node, is for the per-node
publisher election.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import pytest_twisted
from balanced_helpers import (
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    writers_on_nodes,
)
from twisted.internet.threads import deferToThread
from waiting import until
from wamp_helpers import connect, disconnect, until_registered

from etcdwamp.testing import BalancedNodes

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred


async def joined(balanced: BalancedNodes, count: int) -> list[Any]:
    """``count`` writer sessions joined through the balancer, one after the other."""
    return [await connect(balanced) for _ in range(count)]


async def leave(sessions: list[Any]) -> None:
    for s in sessions:
        await disconnect(s)


@ensure
async def test_connections_are_spread_round_robin_over_the_nodes(
        balanced: BalancedNodes) -> None:
    """Six connections through the balancer land two on each of the three routers."""
    await all_registered(balanced)
    sessions = await joined(balanced, 6)
    try:
        where = await writers_on_nodes(balanced, sessions)
        assert Counter(where) == {0: 2, 1: 2, 2: 2}, where
    finally:
        await leave(sessions)


@ensure
async def test_a_call_through_the_balancer_works_whichever_node_answers(
        balanced: BalancedNodes, prefix: bytes) -> None:
    """A note written through one node is read, at its revision, through each of the
    others: every node serves calls from the same etcd."""
    await all_registered(balanced)
    sessions = await joined(balanced, 3)
    try:
        assert sorted(await writers_on_nodes(balanced, sessions)) == [0, 1, 2]
        name = prefix.decode()
        for i, writer in enumerate(sessions):
            put = await writer.call("etcd.map.put", "notes", f"{name}{i}", {"by": i})
            for reader in sessions:
                got = await reader.call("etcd.map.get", "notes", f"{name}{i}")
                assert got == {"key": f"{name}{i}", "value": {"by": i},
                               "revision": put["revision"]}
    finally:
        await leave(sessions)


@ensure
async def test_a_killed_node_leaves_the_rotation_and_returns_once_restarted(
        balanced: BalancedNodes) -> None:
    """SIGKILL to node2: HAProxy's check marks it DOWN, new connections all go to the
    other two nodes and their calls work; restarted, node2 is UP again and takes its
    share of new connections."""
    await all_registered(balanced)
    states = balanced.server_states
    balanced.kill(1)
    await until(lambda: states()["node2"].status == "DOWN", timeout=30, why=lambda: str(states()))
    assert states()["node2"].check.startswith("L4")  # connection refused, not a bad answer

    sessions = await joined(balanced, 4)
    try:
        assert Counter(await writers_on_nodes(balanced, sessions)) == {0: 2, 2: 2}
        for s in sessions:
            assert (await s.call("etcd.status"))["version"].startswith("3.")
    finally:
        await leave(sessions)

    # In a thread: the reactor keeps serving while the node boots.
    await deferToThread(balanced.restart, 1)
    await until_registered(balanced.nodes[1], balanced.nodes[1].instances)
    await until(lambda: states()["node2"].status == "UP", timeout=30, why=lambda: str(states()))
    sessions = await joined(balanced, 3)
    try:
        assert sorted(await writers_on_nodes(balanced, sessions)) == [0, 1, 2]
    finally:
        await leave(sessions)
