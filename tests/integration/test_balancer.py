"""Three Crossbar nodes behind HAProxy (crossbar/haproxy.cfg) over a 3-member etcd: the
balancer spreads connections round-robin, a call works whichever node answers it, a node
killed with SIGKILL is taken out of rotation by the health check and put back once it
serves again, and a call in flight on a killed node fails at once. (Every subscriber
receiving every event, on any node, is for the per-node publisher election.)"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from balanced_helpers import (
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    writers_on_nodes,
)
from livemap_helpers import node_of_session, restarted
from twisted.internet.defer import Deferred, ensureDeferred
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


class Putting:
    """Puts notes ``{name}{i}`` on ``session`` one after the other, so that a call is
    always in flight, until one fails; notes when the session left and when and how the
    call failed."""

    def __init__(self, session: Any, name: str) -> None:
        self.session = session
        self.name = name
        self.puts = 0
        self.pending: Deferred[Any] | None = None
        self.left_at: float | None = None
        self.failed_at: float | None = None
        self.error: BaseException | None = None
        session.on("leave", self._left)
        self.running = ensureDeferred(self._run())

    def _left(self, session: Any, details: Any) -> None:
        self.left_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            self.pending = self.session.call("etcd.map.put", "notes",
                                             f"{self.name}{self.puts}", self.puts)
            try:
                await self.pending
            except Exception as exc:
                self.failed_at, self.error = time.monotonic(), exc
                return
            self.puts += 1


async def session_on(balanced: BalancedNodes, index: int) -> Any:
    """A plain writer session (calls in flight stay pending when it leaves, as autobahn
    has it) joined through the balancer that landed on node ``index``."""
    while True:  # round-robin: one of the next three connections lands there
        s = await connect(balanced)
        if await node_of_session(balanced, s.session_id) == index:
            return s
        await disconnect(s)


@ensure
async def test_a_call_in_flight_fails_at_once_when_its_node_is_killed(
        balanced: BalancedNodes, prefix: bytes) -> None:
    """A client putting through the balancer, its node killed with SIGKILL: HAProxy ends
    its connection and its call in flight fails with ``wamp.close.transport_lost``
    within 5 s of the kill (printed), and it rejoins through the balancer on another
    node, where its put works. A plain autobahn ``Component`` session on the same node
    leaves as fast, but its call in flight stays pending (the client must fail it:
    :func:`etcdwamp.wamp.inflight.fail_in_flight_on_leave`)."""
    await all_registered(balanced)
    name = prefix.decode()
    client = await connect(balanced, fail_on_leave=True)
    index = await node_of_session(balanced, client.session_id)
    plain = await session_on(balanced, index)
    putting, control = Putting(client, name + "a"), Putting(plain, name + "b")
    try:
        await until(lambda: putting.puts >= 5 and control.puts >= 5, timeout=30)
        killed = time.monotonic()
        balanced.kill(index)
        await until(lambda: putting.failed_at is not None, timeout=30,
                    why=lambda: f"{putting.puts} puts, left: {putting.left_at}")
        assert putting.failed_at is not None and putting.left_at is not None
        assert isinstance(putting.error, ApplicationError), repr(putting.error)
        assert putting.error.error == "wamp.close.transport_lost"
        await until(lambda: control.left_at is not None, timeout=30)
        assert control.left_at is not None
        assert control.pending is not None and not control.pending.called

        async def put_elsewhere() -> bool:
            try:
                s = await connect(balanced, fail_on_leave=True)
            except Exception:  # the balancer found no node in time: try again
                return False
            try:
                await s.call("etcd.map.put", "notes", name + "again", 1)
                return await node_of_session(balanced, s.session_id) != index
            finally:
                await disconnect(s)

        await until(put_elsewhere, timeout=30, why=balanced.log_tail)
        print(f"\nnode{index + 1} killed under a call in flight: connection lost after "
              f"{putting.left_at - killed:.2f}s, call failed after "
              f"{putting.failed_at - killed:.2f}s, put on another node after "
              f"{time.monotonic() - killed:.2f}s; a plain session left after "
              f"{control.left_at - killed:.2f}s with its call still pending")
        assert putting.failed_at - killed < 5.0
    finally:
        process = balanced.nodes[index].process
        if process is None or process.poll() is not None:  # killed (the test got that far)
            await restarted(balanced, index)
