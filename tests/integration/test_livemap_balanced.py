"""A Python live map connected through HAProxy to three Crossbar nodes over a 3-member
etcd: kill -9 its node, it reconnects through the balancer to another node and its copy
equals the map in etcd (read directly), with the writes made during the outage and after it.

Each test runs on both loops (the ``loop`` fixture): "twisted" follows with
:class:`etcdwamp.wamp.livemap.LiveMap` over an ``autobahn.twisted`` Component in this
process; "asyncio" with :class:`etcdwamp.asyncio.livemap.LiveMap` over an
``autobahn.asyncio`` Component in a process of its own (``livemap_asyncio_follower.py``:
txaio's framework is per process), which reports every change on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

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
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from waiting import until

from etcdwamp import Client
from etcdwamp.testing import BalancedNodes
from etcdwamp.wamp.livemap import LiveMap

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

#: the asyncio follower program, and the repository it imports etcdwamp from
FOLLOWER = Path(__file__).with_name("livemap_asyncio_follower.py")
ROOT = Path(__file__).resolve().parents[2]


class Follower(Protocol):
    """A live map of "notes" following through the balancer, as the tests see it."""

    #: the sessions it joined, in order (each with ``session_id``)
    sessions: list[Any]

    @property
    def state(self) -> str: ...

    @property
    def revision(self) -> int | None: ...

    @property
    def snapshots(self) -> int: ...

    def table(self) -> dict[str, tuple[Any, int]]: ...

    def why(self) -> str: ...

    async def stop(self) -> None: ...


class TwistedFollower:
    """:class:`etcdwamp.wamp.livemap.LiveMap` on a reconnecting Twisted Component."""

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

    @property
    def state(self) -> str:
        return self.live.state

    @property
    def revision(self) -> int | None:
        return self.live.revision

    @property
    def snapshots(self) -> int:
        return self.live.snapshots

    def table(self) -> dict[str, tuple[Any, int]]:
        return {key: (row.value, row.revision) for key, row in self.live.rows.items()}

    def why(self) -> str:
        return f"state {self.live.state}"

    async def stop(self) -> None:
        self.live.stop()
        await self.component.stop()


class _Lines(ProcessProtocol):
    """Hands each JSON line the follower process writes to ``news``; keeps its stderr."""

    def __init__(self, news: Any) -> None:
        self._news = news
        self._buffer = b""
        self.stderr = b""
        #: why it ended (ProcessDone for exit 0), once it has
        self.ended: Failure | None = None

    def outReceived(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self._news(json.loads(line))

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-4000:]

    def processEnded(self, reason: Failure) -> None:
        self.ended = reason


class AsyncioFollower:
    """:class:`etcdwamp.asyncio.livemap.LiveMap` on a reconnecting asyncio Component, in
    a process of its own, mirrored from what it reports."""

    def __init__(self, balanced: BalancedNodes) -> None:
        self.sessions: list[Any] = []
        self.state = "disconnected"
        self.revision: int | None = None
        self.snapshots = 0
        self.errors: list[str] = []
        self._rows: dict[str, tuple[Any, int]] = {}
        self._lines = _Lines(self._news)
        # The ticket by the environment, as a user's program would take it.
        env = dict(os.environ, LIVEMAP_TICKET=balanced.writer_ticket,
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self._process = reactor.spawnProcess(
            self._lines, sys.executable,
            [sys.executable, str(FOLLOWER), balanced.url, balanced.realm], env=env)

    def _news(self, news: dict[str, Any]) -> None:
        if "joined" in news:
            self.sessions.append(SimpleNamespace(session_id=news["joined"]))
        elif "state" in news:
            self.state = news["state"]
        elif "error" in news:
            self.errors.append(news["error"])
        else:
            self._rows = {key: (value, revision)
                          for key, (value, revision) in news["rows"].items()}
            self.revision = news["revision"]
            self.snapshots = news["snapshots"]

    def table(self) -> dict[str, tuple[Any, int]]:
        return dict(self._rows)

    def why(self) -> str:
        return (f"state {self.state}, errors {self.errors}, stderr:\n"
                + self._lines.stderr.decode(errors="replace"))

    async def stop(self) -> None:
        """SIGTERM: it stops its live map and leaves; SIGKILL (by its PID) if it hangs."""
        lines = self._lines
        if lines.ended is None:
            self._process.signalProcess("TERM")
        try:
            await until(lambda: lines.ended is not None, timeout=15, why=self.why)
        finally:
            if lines.ended is None:
                self._process.signalProcess("KILL")
        assert lines.ended.check(ProcessDone), self.why()


def start_follower(balanced: BalancedNodes, loop: str) -> Follower:
    """A live follower of ``loop`` through the balancer."""
    if loop == "asyncio":
        return AsyncioFollower(balanced)
    return TwistedFollower(balanced)


async def follower_on_a_node(balanced: BalancedNodes, loop: str) -> tuple[Follower, int]:
    """A live follower on ``loop``, and the index of the node its session is on."""
    await all_registered(balanced)
    follower = start_follower(balanced, loop)
    try:
        await until(lambda: follower.state == "live", timeout=30,
                    why=lambda: follower.why() + "\n" + balanced.log_tail())
        [index] = await writers_on_nodes(balanced, follower.sessions[-1:])
    except BaseException:
        await follower.stop()
        raise
    return follower, index


async def kill_and_write(balanced: BalancedNodes, follower: Follower, index: int,
                         client: Client, name: str) -> int:
    """Kill node ``index`` (the follower's), change notes while the follower is away;
    returns once it is live again on another session (the revision of the last write)."""
    joined = len(follower.sessions)
    balanced.kill(index)
    await until(lambda: follower.state != "live", timeout=30,
                why=lambda: "the live map never saw its node go: " + follower.why())
    last = await write_while_away(client, name)
    await until(lambda: len(follower.sessions) > joined and follower.state == "live",
                timeout=60, why=lambda: f"never live again: {follower.why()}\n"
                + balanced.log_tail())
    return last


@ensure
async def test_the_live_map_is_exact_after_its_node_is_killed_and_it_reconnects(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, loop: str) -> None:
    """kill -9 of the live map's node: it reconnects through HAProxy to another node, and
    its copy equals etcd's notes, the puts and the delete made while it was away included
    (its snapshot on the new node has them)."""
    name = prefix.decode()
    await seed(etcd_client, name)
    follower, index = await follower_on_a_node(balanced, loop)
    try:
        assert follower.table() == await etcd_table(etcd_client)
        last = await kill_and_write(balanced, follower, index, etcd_client, name)
        [now] = await writers_on_nodes(balanced, follower.sessions[-1:])
        assert now != index
        assert follower.revision is not None and follower.revision >= last
        assert follower.snapshots == 2
        table = follower.table()
        assert table == await etcd_table(etcd_client)
        assert table[f"{name}added"][0] == "added while away"
        assert f"{name}deleted" not in table
    finally:
        await follower.stop()
        await restarted(balanced, index)


@ensure
async def test_the_live_map_follows_writes_on_its_new_node_after_the_kill(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, loop: str) -> None:
    """After the kill and the reconnect, writes made through the balancer (to any node)
    reach the live map as events on its new node: its copy equals etcd's after each,
    with no extra snapshot read. (Needs every node to publish to its own subscribers: the
    per-node publisher election; until then it passes only when the live map lands on the
    node whose instance wins the next election.)"""
    name = prefix.decode()
    await seed(etcd_client, name)
    follower, index = await follower_on_a_node(balanced, loop)
    try:
        await kill_and_write(balanced, follower, index, etcd_client, name)
        reads = follower.snapshots
        for i in range(5):
            put = await etcd_client.put(NOTES + f"{name}after{i}".encode(), str(i).encode())
            await until(lambda rev=put.revision: (follower.revision or 0) >= rev,
                        timeout=30, why="the event never reached the live map's new node")
        gone = await etcd_client.delete(NOTES + f"{name}kept".encode())
        await until(lambda: (follower.revision or 0) >= gone.revision, timeout=30,
                    why="the delete never reached the live map")
        assert follower.table() == await etcd_table(etcd_client)
        assert follower.snapshots == reads
    finally:
        await follower.stop()
        await restarted(balanced, index)
