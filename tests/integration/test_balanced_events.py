"""Events over three Crossbar nodes behind HAProxy and a 3-member etcd: subscribers
spread over the nodes (directly and through the balancer) each receive every event once,
in revision order, whichever node the writer used.

The figures (events missing and duplicated per subscriber) are printed; run with ``-s``
to see them.
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
from balanced_helpers import (
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    writers_on_nodes,
)
from waiting import until
from wamp_helpers import connect, disconnect

from etcdwamp.testing import BalancedNodes, CrossbarNode

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

TOPIC = "etcd.map.notes.on_change"


async def publishing(node: CrossbarNode) -> None:
    """Wait until ``node``'s instance leads its router's publisher election."""
    s = await connect(node)
    try:
        async def leads() -> bool:
            return bool((await s.call("etcd.status"))["publisher"])

        await until(leads, timeout=60, why=node.log_tail)
    finally:
        await disconnect(s)


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
