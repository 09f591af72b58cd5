"""Watches against a real etcd, on both event loops: delivery, options, callbacks,
cancellation, resume across crashes, compaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from loops import ensure, make_client
from twisted.internet import protocol, reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.protocols.portforward import ProxyFactory
from waiting import until

from etcdwamp import CompVersion, KeySet, OpSet, Transaction
from etcdwamp import errors as e
from etcdwamp._deferred import dual
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, EtcdMember
from etcdwamp.watch import WatchBatch
from etcdwamp.wire.watch import EventType


def keys_of(batches: list[WatchBatch]) -> list[bytes]:
    return [ev.kv.key for b in batches for ev in b.events]


@ensure
async def test_events_carry_type_value_prev_kv_and_revision(client: Client,
                                                            prefix: bytes) -> None:
    got: list[WatchBatch] = []
    watch = await client.watch(KeySet(prefix, prefix=True), got.append, prev_kv=True)
    try:
        r1 = await client.put(prefix + b"k", b"v1")
        r2 = await client.put(prefix + b"k", b"v2")
        r3 = await client.delete(prefix + b"k")
        await until(lambda: len(got) == 3)
        events = [b.events[0] for b in got]
        assert [ev.type for ev in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
        assert [ev.revision for ev in events] == [r1.revision, r2.revision, r3.revision]
        assert [ev.kv.value for ev in events] == [b"v1", b"v2", b""]
        assert events[0].prev_kv is None
        assert events[1].prev_kv is not None and events[1].prev_kv.value == b"v1"
        assert events[2].prev_kv is not None and events[2].prev_kv.value == b"v2"
    finally:
        await watch.cancel()


@ensure
async def test_one_txn_is_delivered_as_one_batch(client: Client, prefix: bytes) -> None:
    got: list[WatchBatch] = []
    watch = await client.watch(KeySet(prefix, prefix=True), got.append)
    try:
        res = await client.txn(Transaction(success=[OpSet(prefix + b"%d" % i, b"v")
                                                    for i in range(5)]))
        # One watch delivers in revision order: once a later put arrived,
        # everything the txn caused has arrived too.
        marker = await client.put(prefix + b"marker", b"")
        await until(lambda: keys_of(got)[-1:] == [prefix + b"marker"],
                    why=lambda: f"keys: {keys_of(got)}")
        assert got[-1].revision == marker.revision
        got.pop()
        assert len(got) == 1
        assert got[0].revision == res.revision
        assert len(got[0].events) == 5
        assert {ev.revision for ev in got[0].events} == {res.revision}
    finally:
        await watch.cancel()


@ensure
async def test_start_revision_replays_history(client: Client, prefix: bytes) -> None:
    first = await client.put(prefix + b"a", b"1")
    await client.put(prefix + b"b", b"2")
    got: list[WatchBatch] = []
    watch = await client.watch(KeySet(prefix, prefix=True), got.append,
                               start_revision=first.revision)
    try:
        await until(lambda: len(keys_of(got)) == 2)
        assert keys_of(got) == [prefix + b"a", prefix + b"b"]
    finally:
        await watch.cancel()


@ensure
async def test_filters_drop_event_kinds(client: Client, prefix: bytes) -> None:
    got: list[WatchBatch] = []
    watch = await client.watch(KeySet(prefix, prefix=True), got.append, filters=["noput"])
    try:
        await client.put(prefix + b"k", b"v")
        await client.delete(prefix + b"k")
        await until(lambda: len(got) == 1)
        assert got[0].events[0].type is EventType.DELETE
    finally:
        await watch.cancel()


@ensure
async def test_async_iteration_and_cancel(client: Client, prefix: bytes) -> None:
    watch = await client.watch(prefix + b"k")
    for i in range(3):
        await client.put(prefix + b"k", b"%d" % i)
    seen = []
    async for batch in watch:
        seen.extend(ev.kv.value for ev in batch.events)
        if len(seen) == 3:
            watch.cancel()
    assert seen == [b"0", b"1", b"2"]
    await watch.finished


@ensure
async def test_async_for_without_awaiting_the_watch_first(client: Client,
                                                          prefix: bytes) -> None:
    """``async for batch in etcd.watch(...)`` straight away (the README's form):
    iteration waits for the creation by itself and replays from ``start_revision``."""
    first = await client.put(prefix + b"k", b"0")
    await client.put(prefix + b"k", b"1")
    watch = client.watch(prefix + b"k", start_revision=first.revision)
    seen: list[bytes] = []
    try:
        async for batch in watch:
            seen.extend(ev.kv.value for ev in batch.events)
            if len(seen) >= 2:
                break
        assert seen == [b"0", b"1"]
    finally:
        await watch.cancel()


@ensure
async def test_several_keysets_add_and_remove(client: Client, prefix: bytes) -> None:
    got: list[WatchBatch] = []
    watch = await client.watch([prefix + b"a", prefix + b"b"], got.append)
    try:
        await client.put(prefix + b"a", b"1")
        await client.put(prefix + b"b", b"1")
        await client.put(prefix + b"c", b"ignored")
        await until(lambda: len(got) == 2)
        await watch.add(prefix + b"c")
        watch.remove(prefix + b"a")
        await watch.created
        await client.put(prefix + b"a", b"2")  # no longer watched
        await client.put(prefix + b"c", b"2")
        await client.put(prefix + b"b", b"2")
        # A last put on b: etcd sends a stream's events as their revisions
        # commit (or in one catch-up pass per stream), so an event for "a", had
        # it still been watched, would have come before this one.
        await client.put(prefix + b"b", b"last")
        await until(lambda: any(ev.kv.value == b"last" for b in got for ev in b.events),
                    why=lambda: f"got: {got}")
        # Order is kept per key set; etcd does not order events across key sets.
        per_keyset: dict[bytes, list[bytes]] = {}
        for b in got:
            per_keyset.setdefault(b.keyset.key, []).extend(ev.kv.value for ev in b.events)
        assert per_keyset == {prefix + b"a": [b"1"], prefix + b"b": [b"1", b"2", b"last"],
                              prefix + b"c": [b"2"]}
        assert watch.keysets == (KeySet(prefix + b"b"), KeySet(prefix + b"c"))
    finally:
        await watch.cancel()


@ensure
async def test_callback_exception_is_logged_and_watch_goes_on(client: Client,
                                                               prefix: bytes) -> None:
    got: list[bytes] = []

    def callback(batch: WatchBatch) -> None:
        value = batch.events[0].kv.value
        got.append(value)
        if value == b"boom":
            raise RuntimeError("callback bug")

    watch = await client.watch(prefix + b"k", callback)
    try:
        await client.put(prefix + b"k", b"boom")
        await client.put(prefix + b"k", b"after")
        await until(lambda: len(got) == 2)
        assert got == [b"boom", b"after"]
    finally:
        await watch.cancel()


@ensure
async def test_async_callback_runs_on_the_clients_loop(client: Client, loop: str,
                                                       prefix: bytes) -> None:
    """An ``async def`` callback is run, not dropped: as an asyncio task on the
    asyncio client, on Twisted's coroutine driver on the Twisted one. It may
    await the client; one whose coroutine fails does not stop the watch."""
    seen: list[bytes] = []
    in_task: list[bool] = []

    async def callback(batch: WatchBatch) -> None:
        in_task.append(asyncio.current_task() is not None)
        if batch.events[0].kv.value == b"boom":
            raise RuntimeError("async callback bug")
        then = await client.get(prefix + b"k", revision=batch.revision)
        seen.append(then.kvs[0].value)

    watch = await client.watch(prefix + b"k", callback)
    try:
        for value in (b"1", b"boom", b"2"):
            await client.put(prefix + b"k", value)
        await until(lambda: len(seen) == 2, why=lambda: f"seen: {seen}")
        # The reads of the two callbacks may answer in either order.
        assert sorted(seen) == [b"1", b"2"]
        assert in_task == [loop == "asyncio"] * 3
    finally:
        await watch.cancel()


class _Hung(protocol.Protocol):
    """Accepts a connection and never answers; its factory counts connections."""

    factory: _HungFactory

    def connectionMade(self) -> None:
        self.factory.made += 1
        self.factory.open += 1

    def connectionLost(self, reason: object = None) -> None:
        self.factory.open -= 1


class _HungFactory(protocol.Factory):
    protocol = _Hung

    def __init__(self) -> None:
        self.made = 0
        self.open = 0


@ensure
async def test_cancelling_the_wait_for_creation_cancels_the_watch(loop: str,
                                                                  prefix: bytes) -> None:
    """``await watch`` against a server that accepts and never answers: cancelling
    what awaits it (the asyncio task; the Deferred on Twisted) fails it with that
    loop's CancelledError, ends the watch and drops the connection, and nothing
    reconnects."""
    factory = _HungFactory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = make_client(loop, url=f"http://127.0.0.1:{port.getHost().port}",
                         api_prefix="/v3", timeout=30.0)
    try:
        watch = client.watch(prefix + b"k")
        waiting: list[bool] = []

        async def wait_for_creation() -> None:
            waiting.append(True)
            await watch

        if loop == "asyncio":
            task = asyncio.ensure_future(wait_for_creation())
            await until(lambda: factory.open == 1 and waiting)
            task.cancel()
            await asyncio.wait([task])
            assert task.cancelled()
        else:
            d = Deferred.fromCoroutine(wait_for_creation())
            await until(lambda: factory.open == 1 and waiting)
            d.cancel()
            assert d.called  # at once
            with pytest.raises(CancelledError):
                await d
        finished = watch.finished
        await until(lambda: finished.called, timeout=5, why="the watch did not end")
        assert await finished is None
        await until(lambda: factory.open == 0, why=lambda: f"{factory.open} open")
        assert factory.made == 1
    finally:
        await client.close()
        await dual(port.stopListening())


# -- resume across failures ----------------------------------------------------


@pytest.fixture
def own_etcd(etcd_factory: Callable[..., EtcdCluster]) -> EtcdCluster:
    """A single etcd this test may kill and restart."""
    return etcd_factory(1)


async def create_once(client: Client, key: bytes) -> None:
    """Create ``key`` exactly once, whatever the failures (retry until it exists)."""
    txn = Transaction(compare=[CompVersion(key, "==", 0)], success=[OpSet(key, b"x")])

    async def created() -> bool:
        try:
            await client.txn(txn)
        except (e.TransportError, e.Unavailable):
            return False  # etcd is down or electing: the compare makes retrying safe
        return True

    await until(created, timeout=60, why=lambda: f"cannot create {key!r}")


async def write_and_crash(client: Client, keys: list[bytes], crash_at: int,
                          crash: object) -> None:
    for i, key in enumerate(keys):
        if i == crash_at:
            crash()  # type: ignore[operator]
        await create_once(client, key)


async def watch_ends_with(client: Client, got: list[WatchBatch], marker: bytes) -> None:
    """Write ``marker`` and wait for it: one watch delivers in revision order, so
    every event before it (and any repeat of one) has been delivered by then."""
    await create_once(client, marker)
    await until(lambda: keys_of(got)[-1:] == [marker], timeout=60,
                why=lambda: f"{len(keys_of(got))} keys seen, last {keys_of(got)[-1:]}")


@ensure
async def test_watch_survives_kill_9_and_restart(own_etcd: EtcdCluster, loop: str,
                                                 prefix: bytes) -> None:
    """5,000 puts with etcd killed (SIGKILL) and restarted in the middle: the watcher
    sees exactly the 5,000 events, in order, none twice."""
    member: EtcdMember = own_etcd.members[0]
    writer = make_client(loop, url=member.url, timeout=2.0, connect_timeout=1.0)
    watcher = make_client(loop, url=member.url, timeout=2.0, connect_timeout=1.0)
    got: list[WatchBatch] = []
    watch = await watcher.watch(KeySet(prefix, prefix=True), got.append)
    keys = [prefix + b"w/%05d" % i for i in range(5000)]

    def crash() -> None:
        member.kill()
        member.start()

    try:
        await write_and_crash(writer, keys, 2500, crash)
        await watch_ends_with(writer, got, prefix + b"zz-end")
        assert keys_of(got) == [*keys, prefix + b"zz-end"]
        revisions = [ev.revision for b in got for ev in b.events]
        assert revisions == sorted(set(revisions))
        assert watch.reconnects >= 1
    finally:
        await watch.cancel()
        await writer.close()
        await watcher.close()


@ensure
async def test_watch_survives_member_kill_in_cluster(etcd_cluster3: EtcdCluster, loop: str,
                                                     prefix: bytes) -> None:
    """Same across a member kill in a 3-member cluster: the watch moves on."""
    writer = make_client(loop, endpoints=etcd_cluster3.urls, timeout=2.0, connect_timeout=1.0)
    watcher = make_client(loop, endpoints=etcd_cluster3.urls, timeout=2.0,
                          connect_timeout=1.0)
    got: list[WatchBatch] = []
    watch = await watcher.watch(KeySet(prefix, prefix=True), got.append)
    victim = next(m for m in etcd_cluster3.members if m.url == watcher.endpoint)
    keys = [prefix + b"w/%05d" % i for i in range(2000)]
    try:
        await write_and_crash(writer, keys, 1000, victim.kill)
        await watch_ends_with(writer, got, prefix + b"zz-end")
        assert keys_of(got) == [*keys, prefix + b"zz-end"]
        assert watch.reconnects >= 1
    finally:
        await watch.cancel()
        await writer.close()
        await watcher.close()


@ensure
async def test_compaction_while_disconnected_signals_watch_compacted(
        etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    """The watch runs through a proxy; the proxy goes away, history is written and
    compacted, the proxy comes back: the watch ends with WatchCompacted."""
    host, port = "127.0.0.1", etcd.members[0].client_port
    proxy_port = reactor.listenTCP(0, ProxyFactory(host, port), interface="127.0.0.1")
    proxy_url = f"http://127.0.0.1:{proxy_port.getHost().port}"
    direct = make_client(loop, url=etcd.url)
    via_proxy = make_client(loop, url=proxy_url, timeout=2.0)
    got: list[WatchBatch] = []
    watch = await via_proxy.watch(KeySet(prefix, prefix=True), got.append)
    try:
        await direct.put(prefix + b"k", b"seen")
        await until(lambda: len(got) == 1)
        # Cut the stream: stop listening and drop the proxied connections.
        listening = proxy_port.getHost().port
        await dual(proxy_port.stopListening())
        watch._stream.abort()  # type: ignore[union-attr]
        for i in range(3):
            last = await direct.put(prefix + b"k", b"missed %d" % i)
        await direct.compact(last.revision, physical=True)
        proxy_port = reactor.listenTCP(listening, ProxyFactory(host, port),
                                       interface="127.0.0.1")
        with pytest.raises(e.WatchCompacted) as info:
            await watch.finished
        assert info.value.compact_revision == last.revision
        assert len(got) == 1  # no silent gap: nothing after the first event
        with pytest.raises(e.WatchCompacted):  # iterating the ended watch says so too
            async for _ in watch:
                pass

        # The recovery recipe: snapshot, then watch from its revision + 1.
        again: list[WatchBatch] = []
        snapshot, fresh = await direct.get_and_watch(KeySet(prefix, prefix=True), again.append)
        try:
            assert snapshot.kvs[0].value == b"missed 2"
            after = await direct.put(prefix + b"k", b"new")
            await until(lambda: len(again) == 1)
            assert again[0].events[0].revision == after.revision
        finally:
            await fresh.cancel()
    finally:
        await watch.cancel()
        await dual(proxy_port.stopListening())
        await direct.close()
        await via_proxy.close()
