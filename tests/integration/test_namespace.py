"""``client.namespace(prefix)`` against a real etcd: every key lives under the
prefix on the server and comes back without it."""

from __future__ import annotations

import pytest
from loops import ensure
from waiting import until

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.wire import (
    CompModified,
    CompValue,
    CompVersion,
    OpDel,
    OpGet,
    OpSet,
    RangeResult,
    Transaction,
)
from etcdwamp.wire.watch import EventType, WatchEvent
from etcdwamp.wire.watch_state import WatchBatch


@ensure
async def test_kv_lives_under_the_prefix_and_comes_back_without_it(
        client: Client, prefix: bytes) -> None:
    ns = client.namespace(prefix + b"ns/")
    await client.put(prefix + b"outside", b"o")  # beside the namespace, never seen by it
    await client.put(prefix + b"ns0", b"o")  # right after the namespace's range
    put = await ns.put(b"a", b"1")
    assert (await client.get(prefix + b"ns/a")).kvs[0].value == b"1"
    await ns.put(b"b", b"2")
    replaced = await ns.put(b"a", b"1b", prev_kv=True)
    assert replaced.prev_kv is not None and replaced.prev_kv.key == b"a"
    got = await ns.get(b"a")
    assert [(kv.key, kv.value) for kv in got.kvs] == [(b"a", b"1b")]
    assert got.kvs[0].create_revision == put.revision
    everything = await ns.get(KeySet.all())
    assert [kv.key for kv in everything.kvs] == [b"a", b"b"]
    from_b = await ns.get(KeySet(b"b", range_end=b"\x00"))  # "b and everything after"
    assert [kv.key for kv in from_b.kvs] == [b"b"]
    assert [kv.key async for kv in ns.range_iter(KeySet.all(), page_size=1)] == [b"a", b"b"]
    deleted = await ns.delete(KeySet.all(), prev_kv=True)
    assert deleted.deleted == 2 and sorted(kv.key for kv in deleted.prev_kvs) == [b"a", b"b"]
    assert (await client.get(prefix + b"outside")).count == 1
    assert (await client.get(prefix + b"ns0")).count == 1
    nested = ns.namespace(b"inner/")
    await nested.put(b"k", b"v")
    assert (await client.get(prefix + b"ns/inner/k")).count == 1
    assert [kv.key for kv in (await ns.get(KeySet(b"inner/", prefix=True))).kvs] == \
        [b"inner/k"]
    with pytest.raises(ValueError):
        client.namespace(b"")
    with pytest.raises(TypeError):
        await ns.put("k", b"v")  # type: ignore[arg-type]


@ensure
async def test_transactions_compare_and_write_inside_the_namespace(
        client: Client, prefix: bytes) -> None:
    ns = client.namespace(prefix + b"ns/")
    first = await ns.put(b"counter", b"1")
    # the same key outside the namespace must not satisfy the compare
    await client.put(prefix + b"counter", b"elsewhere")
    result = await ns.txn(Transaction(
        compare=[CompValue(b"counter", "==", b"1"), CompModified(b"counter", "==", first.revision)],
        success=[OpSet(b"counter", b"2"), OpGet(b"counter"),
                 Transaction(compare=[CompVersion(b"absent", "==", 0)],
                             success=[OpSet(b"created", b"yes")]),
                 OpDel(b"gone", prev_kv=True)],
        failure=[OpGet(b"counter")]))
    assert result.succeeded
    read = result.responses[1]
    assert isinstance(read, RangeResult) and read.kvs[0].key == b"counter"
    assert read.kvs[0].value == b"2"
    assert (await client.get(prefix + b"ns/created")).kvs[0].value == b"yes"
    assert (await client.get(prefix + b"counter")).kvs[0].value == b"elsewhere"
    await client.delete(prefix + b"counter")
    failed = await ns.txn(Transaction(compare=[CompValue(b"counter", "==", b"1")],
                                      failure=[OpGet(KeySet.all())]))
    assert not failed.succeeded
    listed = failed.responses[0]
    assert isinstance(listed, RangeResult)
    assert [kv.key for kv in listed.kvs] == [b"counter", b"created"]


@ensure
async def test_watch_sees_namespace_keys_without_the_prefix(
        client: Client, prefix: bytes) -> None:
    ns = client.namespace(prefix + b"w/")
    batches: list[WatchBatch] = []
    watch = ns.watch(KeySet.all(), batches.append, prev_kv=True)
    await watch
    try:
        await client.put(prefix + b"outside", b"x")
        await ns.put(b"k", b"1")
        await ns.delete(b"k")
        await until(lambda: sum(len(b.events) for b in batches) >= 2,
                    why=lambda: repr(batches))
        events = [ev for b in batches for ev in b.events]
        assert [(ev.type, ev.kv.key) for ev in events] == [
            (EventType.PUT, b"k"), (EventType.DELETE, b"k")]
        assert events[1].prev_kv is not None and events[1].prev_kv.key == b"k"
        assert all(b.keyset == KeySet.all() for b in batches)
        assert watch.keysets == (KeySet.all(),)
    finally:
        await watch.cancel()


@ensure
async def test_on_event_gets_each_event_without_the_prefix(client: Client,
                                                           prefix: bytes) -> None:
    """``ns.watch(on_event=)``, as ``client.watch(on_event=)``: one call per event,
    keys (and ``prev_kv``) without the prefix, nothing from outside."""
    ns = client.namespace(prefix + b"e/")
    events: list[WatchEvent] = []
    watch = await ns.watch(KeySet.all(), on_event=events.append, prev_kv=True)
    try:
        await client.put(prefix + b"outside", b"x")
        both = await ns.txn(Transaction(success=[OpSet(b"a", b"1"), OpSet(b"b", b"2")]))
        await ns.put(b"a", b"3")
        await until(lambda: len(events) >= 3, why=lambda: repr(events))
        assert [(ev.kv.key, ev.kv.value) for ev in events] == [
            (b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
        assert [ev.revision for ev in events[:2]] == [both.revision] * 2
        assert events[2].prev_kv is not None
        assert (events[2].prev_kv.key, events[2].prev_kv.value) == (b"a", b"1")
    finally:
        await watch.cancel()


@ensure
async def test_watch_iterated_and_get_and_watch(client: Client, prefix: bytes) -> None:
    ns = client.namespace(prefix)
    await ns.put(b"a", b"0")
    snapshot, watch = await ns.get_and_watch(b"a")
    try:
        assert snapshot.kvs[0].key == b"a"
        await ns.put(b"a", b"1")
        async for batch in watch:
            assert [ev.kv.key for ev in batch.events] == [b"a"]
            assert batch.events[0].kv.value == b"1"
            break
    finally:
        await watch.cancel()


@ensure
async def test_lease_keys_lock_and_election_are_namespaced(
        client: Client, prefix: bytes) -> None:
    ns = client.namespace(prefix)
    lease = await ns.lease_grant(60)
    try:
        await ns.put(b"leased", b"v", lease=lease.id)
        await client.put(prefix[:-1] + b"-elsewhere", b"v", lease=lease.id)
        info = await ns.lease_time_to_live(lease.id, keys=True)
        assert info.keys == (b"leased",)
    finally:
        await ns.lease_revoke(lease.id)
    lock = ns.lock(b"job")
    await lock.acquire()
    try:
        assert lock.key is not None and lock.key.startswith(prefix + b"job")
        other = client.namespace(prefix + b"other/").lock(b"job")
        await other.acquire(timeout=5)  # a different namespace: a different lock
        await other.release()
    finally:
        await lock.release()
    election = ns.election(b"leader")
    await election.campaign(b"me")
    try:
        leader = await election.leader()
        assert leader is not None and leader.value == b"me"
        assert leader.key.startswith(prefix + b"leader")
    finally:
        await election.resign()


@ensure
async def test_a_pmap_database_lives_in_a_namespace(client: Client, prefix: bytes) -> None:
    """``Database(client.namespace(p))``: maps, transactions and conflicts work
    unchanged, and every key they write lies under ``p``."""
    from etcdwamp import pmap
    from etcdwamp.pmap import Database, TransactionConflict

    ns = client.namespace(prefix + b"ns/")
    db = Database(ns, prefix=b"app/")
    notes = pmap.MapStringJson(1)
    async with db.begin(write=True) as txn:
        notes[txn, "a"] = {"n": 1}
        notes[txn, "b"] = {"n": 2}
    async with db.begin() as txn:
        assert await notes.get(txn, "a") == {"n": 1}
        assert await notes.count(txn) == 2
    stored = (await client.get(KeySet(prefix, prefix=True), keys_only=True)).kvs
    assert sorted(kv.key for kv in stored) == [prefix + b"ns/app/\x00\x01a",
                                               prefix + b"ns/app/\x00\x01b"]
    # A conflict is still detected through the namespace's compares.
    first, second = db.begin(write=True), db.begin(write=True)
    for txn in (first, second):
        await txn.__aenter__()
        assert await notes.count(txn) == 2
    notes[first, "a"] = {"n": 10}
    notes[second, "b"] = {"n": 20}
    await first.__aexit__(None, None, None)
    with pytest.raises(TransactionConflict):
        await second.__aexit__(None, None, None)
