"""Leases, locks and elections against a real etcd, on both event loops
(tests/integration/loops.py): each test runs with the Twisted client driven
by Twisted's coroutine driver and with the asyncio client in an asyncio task,
and concurrent parts of a test run as that loop's users run them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from loops import ensure
from twisted.internet.defer import Deferred, gatherResults
from waiting import until

from etcdwamp import CompCreated, KeySet, OpSet, Transaction
from etcdwamp import errors as e
from etcdwamp._deferred import Dual, dual
from etcdwamp.client import Client


def start(client: Client, coro: Coroutine[Any, Any, Any]) -> Dual[Any]:
    """Run ``coro`` concurrently the way a user of ``client``'s loop does: on
    Twisted's coroutine driver, or as an asyncio task (whose every await must
    then work under asyncio). The Dual lets the test await it on either loop."""
    if client.framework == "asyncio":
        return dual(Deferred.fromFuture(asyncio.ensure_future(coro)))
    return dual(Deferred.fromCoroutine(coro))


async def key_count(client: Client, key: bytes | KeySet) -> int:
    return (await client.get(key, count_only=True)).count


@ensure
async def test_lease_grant_remaining_keys_revoke(client: Client, prefix: bytes) -> None:
    lease = await client.lease(30)
    assert lease.ttl == 30
    await client.put(prefix + b"a", b"1", lease=lease.id)
    await client.put(prefix + b"b", b"2", lease=lease.id)
    assert 0 < await lease.remaining() <= 30
    assert sorted(await lease.keys()) == [prefix + b"a", prefix + b"b"]
    await lease.revoke()
    assert await lease.remaining() == -1
    assert (await client.get(prefix + b"a")).count == 0
    await lease.revoke()  # revoking twice is harmless


@ensure
async def test_lease_expiry_deletes_the_key(client: Client, prefix: bytes) -> None:
    lease = await client.lease(1)
    await client.put(prefix + b"k", b"v", lease=lease.id)
    assert await key_count(client, prefix + b"k") == 1

    async def key_gone() -> bool:
        return await key_count(client, prefix + b"k") == 0

    # etcd expires leases on its own schedule (minimum TTL, ~0.5s checks):
    # wait for the deletion itself, however long that slack is.
    await until(key_gone, timeout=15, why="etcd did not expire a 1s lease")
    with pytest.raises(e.LeaseExpired):
        await lease.refresh()


@ensure
async def test_keep_alive_keeps_key_beyond_several_ttls(client: Client, prefix: bytes) -> None:
    """A kept-alive lease outlives a lease of three times its TTL that nobody renews:
    etcd itself is the clock (the witness key's deletion proves the time passed)."""
    lost: list[e.LeaseExpired] = []
    lease = await client.lease(1, keep_alive=True, on_lost=lost.append)
    try:
        await client.put(prefix + b"k", b"v", lease=lease.id)
        witness = await client.lease(3 * lease.ttl)
        await client.put(prefix + b"witness", b"", lease=witness.id)

        async def witness_expired() -> bool:
            return await key_count(client, prefix + b"witness") == 0

        await until(witness_expired, timeout=30, why="etcd did not expire the witness lease")
        assert await key_count(client, prefix + b"k") == 1
        assert lease.renewals >= 3
        assert not lost and not lease.is_lost
    finally:
        await lease.revoke()
    assert await key_count(client, prefix + b"k") == 0


@ensure
async def test_keep_alive_reports_a_lease_revoked_elsewhere(client: Client) -> None:
    lost: list[e.LeaseExpired] = []
    lease = await client.lease(3, keep_alive=True, on_lost=lost.append)
    lost_d = lease.lost
    await client.lease_revoke(lease.id)
    with pytest.raises(e.LeaseExpired):
        await lost_d
    assert lost and lost[0].lease_id == lease.id and lease.is_lost


@ensure
async def test_two_contenders_one_lock_holder_at_a_time(client: Client,
                                                        prefix: bytes) -> None:
    """Two workers take the lock 5 times each; their critical sections never overlap
    and fencing tokens only grow. Each critical section is an unguarded
    read-modify-write of a counter over the network, so an overlap would also
    lose an increment."""
    counter = prefix + b"counter"
    await client.put(counter, b"0")
    inside: list[str] = []
    timeline: list[tuple[str, str]] = []
    tokens: list[int] = []

    async def worker(name: str) -> None:
        for _ in range(5):
            lock = client.lock(prefix + b"lock", ttl=5)
            token = await lock.acquire()
            assert lock.held
            tokens.append(token)
            inside.append(name)
            timeline.append(("in", name))
            assert len(inside) == 1, f"two holders at once: {inside}"
            # Round trips to etcd hand the reactor to the other worker, whose
            # acquire would complete here if the lock did not exclude it.
            value = int((await client.get(counter)).kvs[0].value)
            await client.put(counter, b"%d" % (value + 1))
            assert inside == [name], f"two holders at once: {inside}"
            inside.remove(name)
            timeline.append(("out", name))
            await lock.release()

    await dual(gatherResults([start(client, worker("A")), start(client, worker("B"))],
                             consumeErrors=True))
    assert (await client.get(counter)).kvs[0].value == b"10"
    assert len(tokens) == 10
    assert tokens == sorted(tokens) and len(set(tokens)) == 10
    for i in range(0, len(timeline), 2):
        assert timeline[i][0] == "in" and timeline[i + 1] == ("out", timeline[i][1])


@ensure
async def test_lock_timeout_leaves_no_waiter(client: Client, prefix: bytes) -> None:
    holder = client.lock(prefix + b"lock")
    await holder.acquire()
    waiter = client.lock(prefix + b"lock")
    with pytest.raises(e.RequestTimeout):
        await waiter.acquire(timeout=0.5)
    await holder.release()
    # The waiter's key is gone, so a new contender gets the lock at once.
    again = client.lock(prefix + b"lock")
    await again.acquire(timeout=5)
    await again.release()


@ensure
async def test_try_acquire_takes_a_free_lock(client: Client, prefix: bytes) -> None:
    """try_acquire() and acquire(timeout=0) hold a free lock under etcd's key layout."""
    lock = client.lock(prefix + b"lock", ttl=5)
    token = await lock.try_acquire()
    assert token is not None and lock.held and lock.lease is not None
    assert lock.key == prefix + b"lock/" + format(lock.lease.id, "x").encode()
    stored = await client.get(lock.key)
    assert token == lock.fencing_token == stored.kvs[0].create_revision
    assert stored.kvs[0].lease == lock.lease.id
    await lock.release()
    assert await key_count(client, KeySet(prefix + b"lock/", prefix=True)) == 0
    again = client.lock(prefix + b"lock", ttl=5)
    assert await again.acquire(timeout=0) > token
    assert again.held
    await again.release()


@ensure
async def test_try_acquire_of_a_held_lock_fails_and_leaves_nothing(client: Client,
                                                                   prefix: bytes) -> None:
    """Against a holder of etcd's lock service, a try fails without waiting and
    leaves no waiter key, so the holder's release frees the lock for others."""
    holder = client.lock(prefix + b"lock", ttl=5)
    await holder.acquire()
    tried = client.lock(prefix + b"lock", ttl=5)
    assert await tried.try_acquire() is None
    assert not tried.held and tried.key is None and tried.lease is None
    with pytest.raises(e.RequestTimeout, match="held by another holder"):
        await tried.acquire(timeout=0)
    keys = await client.get(KeySet(prefix + b"lock/", prefix=True), keys_only=True)
    assert [kv.key for kv in keys.kvs] == [holder.key]
    await holder.release()
    assert await tried.try_acquire() is not None
    await tried.release()


@ensure
async def test_blocking_acquire_waits_behind_a_try_acquired_holder(client: Client,
                                                                   prefix: bytes) -> None:
    holder = client.lock(prefix + b"lock", ttl=5)
    token = await holder.try_acquire()
    assert token is not None
    waiter = client.lock(prefix + b"lock", ttl=5)
    waiting = waiter.acquire(timeout=30)  # a Dual: runs now, awaitable on either loop

    async def queued() -> bool:
        return await key_count(client, KeySet(prefix + b"lock/", prefix=True)) == 2

    # Once etcd has queued the waiter's key it decides on the keys alone.
    await until(queued, why="the blocking acquire never queued its key")
    assert not waiting.called and not waiter.held
    assert await client.lock(prefix + b"lock", ttl=5).try_acquire() is None
    await holder.release()
    assert await waiting > token
    assert waiter.held
    await waiter.release()


@ensure
async def test_fencing_token_guards_writes(client: Client, prefix: bytes) -> None:
    """A write guarded by the lock key's create revision fails once the lock is gone."""
    async with client.lock(prefix + b"lock") as lock:
        assert lock.key is not None
        guard = CompCreated(lock.key, "==", lock.fencing_token)
        ok = await client.txn(Transaction([guard], [OpSet(prefix + b"data", b"1")]))
        assert ok.succeeded
        key, token = lock.key, lock.fencing_token
    stale = await client.txn(Transaction([CompCreated(key, "==", token)],
                                         [OpSet(prefix + b"data", b"2")]))
    assert not stale.succeeded
    assert (await client.get(prefix + b"data")).kvs[0].value == b"1"


@ensure
async def test_election_campaign_proclaim_leader_resign(client: Client,
                                                        prefix: bytes) -> None:
    name = prefix + b"election"
    first = client.election(name, ttl=5)
    second = client.election(name, ttl=5)
    assert await first.leader() is None
    await first.campaign(b"one")
    assert first.is_leader
    assert (await first.leader()).value == b"one"  # type: ignore[union-attr]

    second_won = second.campaign(b"two")

    async def second_is_candidate() -> bool:
        # etcd's campaign writes the candidate's key under "<name>/" and then
        # waits for every older key there to go: two keys = second is waiting.
        return await key_count(client, KeySet(name + b"/", prefix=True)) == 2

    await until(second_is_candidate, why="the second campaign never reached etcd")
    await first.proclaim(b"one again")
    assert (await second.leader()).value == b"one again"  # type: ignore[union-attr]
    assert not second_won.called  # exactly one leader at a time

    await first.resign()
    await second_won
    assert second.is_leader
    assert (await first.leader()).value == b"two"  # type: ignore[union-attr]
    await second.resign()
    assert await first.leader() is None


@ensure
async def test_election_observe_sees_leader_changes(client: Client, prefix: bytes) -> None:
    name = prefix + b"observed"
    a = client.election(name, ttl=5)
    await a.campaign(b"a1")
    seen: list[bytes] = []

    async def observe() -> None:
        async for kv in a.observe():
            seen.append(kv.value)
            if len(seen) == 3:
                return

    watching = start(client, observe())
    # Observing starts with the current leader: once a1 is seen the stream is
    # open, and every later change must arrive on it.
    await until(lambda: seen == [b"a1"], why=lambda: f"seen: {seen}")
    await a.proclaim(b"a2")
    await until(lambda: seen == [b"a1", b"a2"], why=lambda: f"seen: {seen}")
    await a.resign()
    b = client.election(name, ttl=5)
    await b.campaign(b"b1")
    await watching
    assert seen == [b"a1", b"a2", b"b1"]
    await b.resign()
