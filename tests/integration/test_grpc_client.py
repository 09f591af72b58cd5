"""The client with ``transport="grpc"`` against a real etcd, on both loops: the same
calls, results and exceptions as on the gateway, watches included."""

from __future__ import annotations

from typing import Any

import pytest
from loops import LOOPS, ensure, make_client

from etcdwamp import KeySet, Transaction, errors
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire import CompValue, OpGet, OpSet

pytestmark = pytest.mark.integration


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pair(loop: str, url: str, clients: list[Client]) -> tuple[Client, Client]:
    grpc = make_client(loop, url=url, transport="grpc")
    gateway = make_client(loop, url=url)
    clients += [grpc, gateway]
    return grpc, gateway


@ensure
async def test_kv_calls_answer_as_on_the_gateway(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    grpc, gateway = pair(loop, etcd.url, clients)
    put = await grpc.put(prefix + b"a", b"1", prev_kv=True)
    assert put.prev_kv is None and put.header.revision > 0
    await grpc.put(prefix + b"b", b"2")
    for client in (grpc, gateway):
        got = await client.get(KeySet(prefix, prefix=True))
        assert [(kv.key, kv.value) for kv in got.kvs] == [(prefix + b"a", b"1"),
                                                           (prefix + b"b", b"2")]
    same = [await c.get(KeySet(prefix, prefix=True), revision=put.header.revision)
            for c in (grpc, gateway)]
    assert same[0].kvs == same[1].kvs and same[0].count == same[1].count
    txn = await grpc.txn(Transaction(
        compare=[CompValue(prefix + b"a", "==", b"1")],
        success=[OpSet(prefix + b"a", b"3"), OpGet(prefix + b"b")], failure=[]))
    assert txn.succeeded
    deleted = await grpc.delete(KeySet(prefix, prefix=True), prev_kv=True)
    assert deleted.deleted == 2
    status = await grpc.status()
    assert status.version.startswith("3.")


@ensure
async def test_errors_are_the_gateways(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    grpc, gateway = pair(loop, etcd.url, clients)
    caught: list[Any] = []
    for client in (grpc, gateway):
        with pytest.raises(errors.EtcdError) as exc:
            await client.get(prefix, revision=10**9)
        caught.append(exc.value)
    assert type(caught[0]) is type(caught[1]) and caught[0].code == caught[1].code
    with pytest.raises(errors.LeaseNotFound):
        await grpc.lease_revoke(123456789)


@ensure
async def test_a_watch_delivers_every_event_once(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    grpc, _ = pair(loop, etcd.url, clients)
    seen: list[bytes] = []
    watch = grpc.watch(KeySet(prefix, prefix=True),
                       lambda batch: seen.extend(ev.kv.value for ev in batch.events))
    await watch
    assert watch.streaming
    for i in range(20):
        await grpc.put(prefix + b"k", b"%d" % i)
    from waiting import until
    await until(lambda: len(seen) == 20)
    assert seen == [b"%d" % i for i in range(20)]
    await watch.cancel()


@ensure
async def test_leases_and_keepalive(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    grpc, _ = pair(loop, etcd.url, clients)
    lease = await grpc.lease(10)
    await grpc.put(prefix + b"leased", b"x", lease=lease.id)
    ttl = await lease.refresh()
    assert 0 < ttl <= 10
    await lease.revoke()
    assert not (await grpc.get(prefix + b"leased")).kvs


@ensure
async def test_coalesced_puts_over_grpc(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    client = make_client(loop, url=etcd.url, transport="grpc", coalesce=True)
    clients.append(client)
    puts = [client.put(prefix + b"%04d" % i, b"v%d" % i) for i in range(300)]
    revisions = [(await put).header.revision for put in puts]
    assert len(set(revisions)) < 300  # batched into shared transactions
    got = await client.get(KeySet(prefix, prefix=True))
    assert [kv.value for kv in got.kvs] == [b"v%d" % i for i in range(300)]
