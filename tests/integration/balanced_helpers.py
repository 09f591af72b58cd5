"""Three Crossbar nodes behind HAProxy over a 3-member etcd, as a module-scoped fixture,
where a client's WAMP session landed, when a node publishes again, and a writer through
the balancer that survives the death of its node.

A test module imports :func:`balanced_fixture` (pytest finds it by its name,
``balanced``); a test that kills a node restarts it before it ends, so the next test
finds all three in rotation. The component runs embedded in Crossbar: the balancer
routes connections to routers, and where a router hosts its component does not change
that (both placements are covered by the single-node WAMP tests).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.python.failure import Failure
from waiting import until
from wamp_helpers import CONFIG, connect, disconnect, registered

from etcdwamp.testing import BalancedNodes, CrossbarNode, EtcdCluster

#: the committed HAProxy config template
HAPROXY_TEMPLATE = Path(__file__).resolve().parents[2] / "crossbar" / "haproxy.cfg"


@pytest.fixture(scope="module", name="balanced")
def balanced_fixture() -> Iterator[BalancedNodes]:
    """Three nodes from the committed config behind HAProxy from the committed template,
    over a fresh 3-member etcd; all stopped by PID after the module."""
    etcd = EtcdCluster(3)
    try:
        etcd.start()
        with BalancedNodes(str(CONFIG), str(HAPROXY_TEMPLATE), etcd.urls, count=3) as nodes:
            yield nodes
    finally:
        etcd.stop()


async def all_registered(balanced: BalancedNodes) -> BalancedNodes:
    """``balanced`` once the component of every running node registered its procedures."""
    for node in balanced.nodes:
        if node.process is not None and node.process.poll() is None:
            await registered(node)
    return balanced


async def writers_on_nodes(balanced: BalancedNodes, sessions: list[Any]) -> list[int]:
    """For each of ``sessions`` (writer sessions joined through the balancer), the index
    of the node whose router holds it, asked of each running node's router (its session
    meta API, over the node's own backend path, not through the balancer).

    :raises AssertionError: a session is on no running node, or on several
    """
    found: dict[int, list[int]] = {}
    for index, node in enumerate(balanced.nodes):
        if node.process is None or node.process.poll() is not None:
            continue
        meta = await connect(node, backend=True)
        try:
            for session_id in await meta.call("wamp.session.list", ["writer"]):
                found.setdefault(session_id, []).append(index)
        finally:
            await disconnect(meta)
    where = [found.get(s.session_id, []) for s in sessions]
    assert all(len(nodes) == 1 for nodes in where), where
    return [nodes[0] for nodes in where]


def running(balanced: BalancedNodes, index: int) -> bool:
    """Whether ``balanced.nodes[index]`` runs (it is not killed)."""
    process = balanced.nodes[index].process
    return process is not None and process.poll() is None


async def publishing(node: CrossbarNode) -> None:
    """Wait until ``node``'s instance leads its router's publisher election."""
    s = await connect(node)
    try:
        async def leads() -> bool:
            return bool((await s.call("etcd.status"))["publisher"])

        await until(leads, timeout=60, why=node.log_tail)
    finally:
        await disconnect(s)


def within(call: Deferred[Any], seconds: float) -> Deferred[Any]:
    """``call``'s outcome, or ``TimeoutError`` after ``seconds`` (``call`` is left alone:
    autobahn cannot cancel a call whose transport is gone)."""
    outcome: Deferred[Any] = Deferred()

    def settle(result: Any) -> None:
        if not outcome.called:
            outcome.callback(result)

    timer = reactor.callLater(seconds, lambda: settle(Failure(TimeoutError(seconds))))
    call.addBoth(lambda result: (timer.active() and timer.cancel(), settle(result))[1])
    return outcome


class Writer:
    """Puts ``{name}{i:04d}`` = ``{"i": i}`` for i = 0, 1, ... through the balancer until
    stopped, as a real client must: a call that failed (its node went away: its session's
    calls in flight fail when it leaves) is followed by a read-back on a new session, and
    put again only if the read-back does not find it."""

    def __init__(self, balanced: BalancedNodes, name: str) -> None:
        self.balanced = balanced
        self.name = name
        self.acknowledged: dict[str, Any] = {}
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement
        self.failed_calls = 0
        self.errors: Counter[str] = Counter()  # why calls failed, by error
        self.joined_at: list[float] = []  # monotonic time of each (re)join
        self.running = True
        self.session: Any = None

    async def _session(self) -> Any:
        if self.session is None or not self.session.is_attached():
            async def joined() -> bool:
                joining = ensureDeferred(connect(self.balanced, fail_on_leave=True))
                # A handshake that got nowhere is abandoned, as a browser would.
                joining.addTimeout(5, reactor)
                try:
                    self.session = await joining
                except Exception:  # a node down: try the balancer again
                    return False
                return True

            await until(joined, timeout=60, why=self.balanced.log_tail)
            self.joined_at.append(time.monotonic())
        return self.session

    async def _put(self, key: str, value: Any) -> None:
        while True:
            session = await self._session()
            try:
                await within(session.call("etcd.map.put", "notes", key, value), 10)
                break
            except CancelledError:
                raise
            except Exception as exc:  # the outcome is unknown: read it back
                self.failed_calls += 1
                self.errors[f"{type(exc).__name__} {getattr(exc, 'error', '')}"] += 1
            self.session = None
            while True:
                session = await self._session()
                try:
                    got = await within(session.call("etcd.map.get", "notes", key), 10)
                    break
                except CancelledError:
                    raise
                except Exception as exc:
                    if isinstance(exc, ApplicationError) and exc.error == "etcd.error.not_found":
                        got = None  # the put did not happen
                        break
                    self.failed_calls += 1
                    self.errors[f"{type(exc).__name__} {getattr(exc, 'error', '')}"] += 1
                    self.session = None
            if got is not None and got["value"] == value:
                break
        self.acknowledged[key] = value
        self.acked_at.append(time.monotonic())

    async def run(self) -> None:
        i = 0
        while self.running:
            await self._put(f"{self.name}{i:04d}", {"i": i})
            i += 1

    def acked_after(self, moment: float) -> bool:
        return bool(self.acked_at) and self.acked_at[-1] > moment
