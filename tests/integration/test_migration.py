"""Code written for txaioetcd's documented API, with only the import changed, against real etcd.

Each test takes a usage from txaioetcd's README, examples or docstrings (written here
anew) and checks that etcdwamp either does the same thing or refuses at once with an
error that names the difference. What must never happen is that such code runs and
silently does something else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from loops import ensure, make_client
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from etcdwamp import errors
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster


def test_the_names_txaioetcd_code_imports() -> None:
    """``from txaioetcd import ...`` lines work with ``etcdwamp`` in their place,
    including ``from txaioetcd import _pmap as pmap`` from its tutorials."""
    import etcdwamp
    from etcdwamp import (  # noqa: F401  (importability is the point)
        Client,
        CompCreated,
        CompModified,
        CompValue,
        CompVersion,
        Database,
        Expired,
        Failed,
        KeySet,
        KeyValue,
        OpDel,
        OpGet,
        OpSet,
        Transaction,
    )
    from etcdwamp import _pmap as pmap

    assert Expired is errors.LeaseExpired
    assert Failed is errors.TxnFailed
    assert issubclass(Expired, etcdwamp.errors.EtcdError)
    assert pmap.MapUuidCbor is etcdwamp.pmap.MapUuidCbor
    missing = [name for name in etcdwamp.pmap.MAP_TYPES if not hasattr(pmap, name)]
    assert missing == []


@ensure
async def test_readme_client_snippets_in_inline_callbacks_style(etcd: EtcdCluster,
                                                               prefix: bytes) -> None:
    """set / get by key, range and prefix / delete by range and prefix / status."""
    from etcdwamp import KeySet

    @inlineCallbacks
    def main(etcd_client: Client) -> Any:
        status = yield etcd_client.status()
        assert status.version.startswith("3.")
        for i in range(10):
            yield etcd_client.set(prefix + b"mykey%d" % i, b"woa;)")
        one = yield etcd_client.get(prefix + b"mykey1")
        assert one.kvs[0].value == b"woa;)"
        ranged = yield etcd_client.get(KeySet(prefix + b"mykey1", prefix + b"mykey5"))
        assert [kv.key for kv in ranged.kvs] == [prefix + b"mykey%d" % i for i in range(1, 5)]
        prefixed = yield etcd_client.get(KeySet(prefix + b"mykey", prefix=True))
        assert prefixed.count == 10
        deleted = yield etcd_client.delete(KeySet(prefix + b"mykey3", prefix + b"mykey7"))
        assert deleted.deleted == 4
        deleted = yield etcd_client.delete(KeySet(prefix + b"mykey", prefix=True))
        assert deleted.deleted == 6

    client = Client(reactor, etcd.url)
    try:
        await main(client)
    finally:
        await client.close()


@ensure
async def test_submit_raises_failed_as_txaioetcd_did(etcd: EtcdCluster, prefix: bytes) -> None:
    """``submit``: success returns the result; compares that do not hold raise ``Failed``
    with the failure ops' responses, so ``except Failed`` branches still run."""
    from etcdwamp import CompVersion, Failed, OpGet, OpSet, Transaction

    client = Client(reactor, etcd.url)
    try:
        txn = Transaction(compare=[CompVersion(prefix + b"k", "==", 0)],
                          success=[OpSet(prefix + b"k", b"first")],
                          failure=[OpGet(prefix + b"k")])
        result = await client.submit(txn)
        assert result.succeeded
        assert (await client.get(prefix + b"k")).kvs[0].value == b"first"
        with pytest.raises(Failed) as caught:
            await client.submit(txn)  # the key exists now: version != 0
        assert caught.value.responses[0].kvs[0].value == b"first"
        assert isinstance(caught.value, errors.EtcdError)
        assert (await client.txn(txn)).succeeded is False  # txn() keeps returning
    finally:
        await client.close()


@dataclass
class User:
    """Stands in for the tutorials' User class: marshal() to a dict, parse() back."""

    oid: uuid.UUID
    name: str

    def marshal(self) -> dict[str, Any]:
        return {"oid": self.oid.bytes, "name": self.name}

    @staticmethod
    def parse(data: dict[str, Any]) -> User:
        return User(uuid.UUID(bytes=data["oid"]), data["name"])


@ensure
async def test_tutorial_users_table(etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    """txaioetcd's etcdb tutorial: a UUID → CBOR table of User objects, store, load,
    delete; the same code on asyncio with only the client's class changed."""
    from etcdwamp import Database
    from etcdwamp import _pmap as pmap

    tab_users = pmap.MapUuidCbor(1, marshal=lambda user: user.marshal(), unmarshal=User.parse)
    client = make_client(loop, etcd.url)
    db = Database(client, prefix=prefix)
    try:
        assert await db.status() > 0
        oid = uuid.uuid4()
        async with db.begin(write=True) as txn:
            tab_users[txn, oid] = User(oid, "alice")
        async with db.begin() as txn:
            loaded = await tab_users[txn, oid]
        assert loaded == User(oid, "alice")
        async with db.begin(write=True) as txn:
            del tab_users[txn, oid]
        async with db.begin() as txn:
            assert await tab_users[txn, oid] is None
    finally:
        await client.close()


@ensure
async def test_txaioetcd_calls_that_mean_something_else_here_are_refused(
        etcd: EtcdCluster, prefix: bytes) -> None:
    """Arguments etcdwamp spells differently raise TypeError before anything is sent,
    rather than being ignored."""
    client = Client(reactor, etcd.url)
    try:
        lease = await client.lease(30)
        with pytest.raises(TypeError, match="lease must be an int"):
            await client.set(prefix + b"k", b"v", lease=lease)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.get(prefix + b"k", None)  # type: ignore[misc]  # a default value
        with pytest.raises(TypeError, match="return_previous"):
            await client.delete(prefix + b"k", return_previous=True)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="timeout"):
            client.lock(prefix + b"lock", timeout=10)  # type: ignore[call-arg]
        with pytest.raises(AttributeError):
            lease.lease_id  # type: ignore[attr-defined]  # noqa: B018  (txaioetcd's name)
        assert (await client.get(prefix + b"k")).count == 0
        await lease.revoke()
    finally:
        await client.close()


@ensure
async def test_refreshing_a_lost_lease_raises_expired(etcd: EtcdCluster) -> None:
    from etcdwamp import Expired

    client = Client(reactor, etcd.url)
    try:
        lease = await client.lease(30)
        await client.lease_revoke(lease.id)
        with pytest.raises(Expired):
            await lease.refresh()
    finally:
        await client.close()


@ensure
async def test_values_of_txaioetcd_compressed_maps_read_back(etcd: EtcdCluster, loop: str,
                                                             prefix: bytes) -> None:
    """txaioetcd's ``compress=COMPRESS_ZLIB`` stored ``zlib.compress(cbor)`` without a flag
    byte; a ``compress=True`` map reads those and its own (flagged) values alike."""
    import zlib

    import cbor2

    from etcdwamp import Database, pmap

    table = pmap.MapUuidCbor(3, compress=True)
    client = make_client(loop, etcd.url)
    db = Database(client, prefix=prefix)
    old_id, new_id = uuid.UUID(int=1), uuid.UUID(int=2)
    value = {"name": "alice", "notes": "x" * 200}
    try:
        # Written the way txaioetcd wrote it: slot, UUID bytes; bare zlib stream.
        await client.put(prefix + b"\x00\x03" + old_id.bytes, zlib.compress(cbor2.dumps(value)))
        async with db.begin(write=True) as txn:
            table[txn, new_id] = value
        stored = await client.get(prefix + b"\x00\x03" + new_id.bytes)
        assert stored.kvs[0].value[:1] == b"\x01"  # etcdwamp's own format: flagged
        async with db.begin() as txn:
            assert await table[txn, old_id] == value
            assert await table[txn, new_id] == value
    finally:
        await client.close()


@ensure
async def test_a_txaioetcd_watch_callback_stops_the_watch_loudly(etcd: EtcdCluster,
                                                                  prefix: bytes) -> None:
    """txaioetcd's watch callback took one KeyValue. Given a batch, it raises
    AttributeError on its first call: the watch ends with that error (and a note on
    how to fix it) instead of logging every later event away."""
    from etcdwamp import KeySet

    seen: list[tuple[bytes, bytes]] = []

    def on_change(kv: Any) -> None:
        seen.append((kv.key, kv.value))

    client = Client(reactor, etcd.url)
    try:
        watch = client.watch([KeySet(prefix, prefix=True)], on_change)
        await watch.created
        await client.put(prefix + b"a", b"1")
        with pytest.raises(AttributeError) as caught:
            await watch.finished.addTimeout(30, reactor)
        assert "on_event=lambda event: old_callback(event.kv)" in "".join(
            getattr(caught.value, "__notes__", []))
        assert seen == []
    finally:
        await client.close()


@ensure
async def test_on_event_gives_a_txaioetcd_callback_each_key_value(etcd: EtcdCluster,
                                                                  prefix: bytes) -> None:
    from waiting import until

    from etcdwamp import KeySet, OpSet, Transaction

    seen: list[tuple[bytes, bytes]] = []

    def on_change(kv: Any) -> None:
        seen.append((kv.key, kv.value))

    client = Client(reactor, etcd.url)
    try:
        watch = client.watch([KeySet(prefix, prefix=True)],
                             on_event=lambda event: on_change(event.kv))
        await watch.created
        # Two events in one etcd response (one revision), then one more.
        await client.txn(Transaction(success=[OpSet(prefix + b"a", b"1"),
                                              OpSet(prefix + b"b", b"2")]))
        await client.put(prefix + b"c", b"3")
        await until(lambda: len(seen) >= 3, why=lambda: f"events seen: {seen}")
        assert seen == [(prefix + b"a", b"1"), (prefix + b"b", b"2"), (prefix + b"c", b"3")]
        await watch.cancel()
        with pytest.raises(ValueError, match="not both"):
            client.watch(prefix, lambda batch: None, on_event=lambda event: None)
    finally:
        await client.close()


@ensure
async def test_client_without_url_uses_the_command_lines_endpoints(
        etcd: EtcdCluster, prefix: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """txaioetcd's tutorials call ``Client(reactor)``: it finds etcd as ``etcdwamp`` does."""
    from etcdwamp import Database

    monkeypatch.delenv("ETCDWAMP_ENDPOINTS", raising=False)
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", etcd.url.split("://", 1)[1])
    client = Client(reactor)
    try:
        assert client.endpoints == (etcd.url,)
        await client.put(prefix + b"k", b"v")
        assert await Database(client).status() > 0
        assert (await client.get(prefix + b"k")).kvs[0].value == b"v"
    finally:
        await client.close()
    monkeypatch.setenv("ETCDWAMP_ENDPOINTS", "10.9.9.9:2379,http://10.9.9.8:2379")
    assert Client(reactor).endpoints == ("http://10.9.9.9:2379", "http://10.9.9.8:2379")
    monkeypatch.delenv("ETCDWAMP_ENDPOINTS")
    monkeypatch.delenv("ETCDCTL_ENDPOINTS")
    assert Client(reactor).endpoints == ("http://127.0.0.1:2379",)
    with pytest.raises(ValueError, match="no etcd endpoint"):
        Client(reactor, endpoints=[])
