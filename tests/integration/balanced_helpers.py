"""Three Crossbar nodes behind HAProxy over a 3-member etcd, as a module-scoped fixture, and
where a client's WAMP session landed.

A test module imports :func:`balanced_fixture` (pytest finds it by its name,
``balanced``); a test that kills a node restarts it before it ends, so the next test
finds all three in rotation. The component runs embedded in Crossbar: the balancer
routes connections to routers, and where a router hosts its component does not change
that (both placements are covered by the single-node WAMP tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wamp_helpers import CONFIG, connect, disconnect, registered

from etcdwamp.testing import BalancedNodes, EtcdCluster

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
