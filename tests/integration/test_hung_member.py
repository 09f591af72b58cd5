"""A member that hangs (SIGSTOP) under a watch, an observed election and a
kept-alive lease, on a real 3-member cluster and both event loops: its stream
probes fail, the streams resume on another member within the documented
detection time (probe_interval + probe_timeout) + 2 s, losing and repeating
nothing, and the lease lives on through the two others.

The hung member is a follower (a hung leader costs an election first, which
is the partition suite's subject); the client lists it first, so every
stream starts on it. Each test prints what it measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from contextlib import aclosing
from typing import Any

from loops import ensure
from members import a_follower, others_only, victim_first
from stall import stalled
from twisted.internet.defer import Deferred
from waiting import until

from etcdwamp import KeySet
from etcdwamp._deferred import Dual, dual
from etcdwamp.client import Client
from etcdwamp.probe import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT
from etcdwamp.testing import EtcdCluster, EtcdMember
from etcdwamp.wire.watch import WatchEvent

#: the documented worst case of noticing a hung member
DETECTION = DEFAULT_PROBE_INTERVAL + DEFAULT_PROBE_TIMEOUT
#: what moving the stream to another member may take on top
RESUME = 2.0


def start(client: Client, coro: Coroutine[Any, Any, Any]) -> Dual[Any]:
    """Run ``coro`` concurrently as a user of ``client``'s loop does."""
    if client.framework == "asyncio":
        return dual(Deferred.fromFuture(asyncio.ensure_future(coro)))
    return dual(Deferred.fromCoroutine(coro))


def clients(cluster: EtcdCluster, victim: EtcdMember, loop: str) -> tuple[Client, Client]:
    """A client that lists ``victim`` first, and a writer that uses the others only."""
    return (victim_first(cluster, victim, loop, timeout=5.0),
            others_only(cluster, victim, loop, timeout=5.0))


@ensure
async def test_a_watch_through_a_hung_member_resumes_on_another(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    victim = await a_follower(etcd_cluster3, loop)
    client, writer = clients(etcd_cluster3, victim, loop)
    events: list[WatchEvent] = []
    arrived: list[float] = []

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        arrived.append(time.monotonic())

    watch = client.watch(KeySet(prefix, prefix=True), on_event=on_event)
    try:
        await watch
        assert client.transport.probes.probing() == [victim.url]  # the stream is on it
        written = [b"before-%d" % i for i in range(5)]
        for value in written:
            await writer.put(prefix + b"k", value)
        await until(lambda: len(events) == 5, why=lambda: f"events: {len(events)}")
        with stalled(victim):
            stopped_at = time.monotonic()
            during = [b"during-%d" % i for i in range(20)]
            for value in during:
                await writer.put(prefix + b"k", value)
            written += during
            await until(lambda: len(events) == len(written), timeout=DETECTION + RESUME + 10,
                        why=lambda: f"events: {len(events)} of {len(written)}")
            resumed_in = arrived[5] - stopped_at
            assert victim.url not in client.transport.probes.probing()
        after = [b"after-%d" % i for i in range(5)]
        for value in after:
            await writer.put(prefix + b"k", value)
        written += after
        await until(lambda: len(events) == len(written), why=lambda: f"events: {len(events)}")
        assert [ev.kv.value for ev in events] == written  # none lost, none repeated, in order
        revisions = [ev.revision for ev in events]
        assert revisions == sorted(set(revisions))
        print(f"\n[{loop}] watch through a SIGSTOPped member resumed after {resumed_in:.2f}s "
              f"(bound {DETECTION + RESUME:.1f}s)")
        assert resumed_in <= DETECTION + RESUME
    finally:
        await watch.cancel()
        await client.close()
        await writer.close()


@ensure
async def test_observing_through_a_hung_member_resumes_without_a_repeat(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    victim = await a_follower(etcd_cluster3, loop)
    client, writer = clients(etcd_cluster3, victim, loop)
    leader = writer.election(prefix + b"e", ttl=5)
    await leader.campaign(b"v0")
    seen: list[bytes] = []
    arrived: list[float] = []

    async def observe() -> None:
        async with aclosing(client.election(prefix + b"e").observe()) as leaders:
            async for kv in leaders:
                seen.append(kv.value)
                arrived.append(time.monotonic())
                if kv.value == b"v2":
                    return

    observing = start(client, observe())
    try:
        await until(lambda: seen == [b"v0"], why=lambda: f"seen: {seen}")
        assert client.transport.probes.probing() == [victim.url]
        with stalled(victim):
            stopped_at = time.monotonic()
            await leader.proclaim(b"v1")
            await until(lambda: len(seen) == 2, timeout=DETECTION + RESUME + 10,
                        why=lambda: f"seen: {seen}")
            resumed_in = arrived[1] - stopped_at
        await leader.proclaim(b"v2")
        await observing
        assert seen == [b"v0", b"v1", b"v2"]  # v0 not repeated by the new stream
        print(f"\n[{loop}] observe through a SIGSTOPped member resumed after "
              f"{resumed_in:.2f}s (bound {DETECTION + RESUME:.1f}s)")
        assert resumed_in <= DETECTION + RESUME
    finally:
        observing.cancel()
        observing.addErrback(lambda _: None)
        await leader.resign()
        await client.close()
        await writer.close()


@ensure
async def test_a_short_lease_outlives_a_hung_first_member(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    """ttl=3 (renewals every second) with the client's 5 s timeout: a renewal
    sent to the hung member moves on within what is left of the TTL."""
    victim = await a_follower(etcd_cluster3, loop)
    client, writer = clients(etcd_cluster3, victim, loop)
    lease = await client.lease(3, keep_alive=True)
    try:
        await client.put(prefix + b"owned", b"v", lease=lease.id)
        with stalled(victim):
            renewed = lease.renewals
            # Five TTLs' worth of renewals while the member hangs.
            await until(lambda: lease.renewals >= renewed + 15 or lease.is_lost, timeout=30,
                        why=lambda: f"renewals: {lease.renewals - renewed}")
            assert not lease.is_lost
            assert (await writer.get(prefix + b"owned")).count == 1
        assert (await lease.remaining()) > 0
    finally:
        await lease.revoke()
        await client.close()
        await writer.close()
