"""The client with ``transport="grpc"`` against a real etcd, on both loops: the same
calls, results and exceptions as on the gateway, watches included."""

from __future__ import annotations

import asyncio
import time
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
    http: Any = grpc.transport.http
    assert len(http._muxes) == 1  # the watch's shared stream
    await watch.cancel()
    assert http._muxes == {}  # the last watch left: the shared stream ended with it


@ensure
async def test_two_thousand_watches_share_one_stream_and_see_each_event_once(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    """2,000 watches made at once on a new client (before its connection is open)
    share one Watch stream; a put on each key reaches its own watch, exactly once."""
    grpc, _ = pair(loop, etcd.url, clients)
    n = 2000
    keys = [prefix + b"%05d" % i for i in range(n)]
    seen: list[list[bytes]] = [[] for _ in range(n)]

    def on_batch_for(i: int) -> Any:
        return lambda batch: seen[i].extend(ev.kv.key for ev in batch.events)

    watches = [grpc.watch(key, on_batch_for(i)) for i, key in enumerate(keys)]
    for watch in watches:
        await watch
    http: Any = grpc.transport.http
    assert [mux.watchers for mux in http._muxes.values()] == [n]
    for start in range(0, n, 100):  # 100 puts in flight at a time
        for put in [grpc.put(key, b"v") for key in keys[start:start + 100]]:
            await put
    from waiting import until
    await until(lambda: all(seen))
    # A second event on the first key, after all others: a late repeat of any
    # earlier event would have come before it (one stream, in order).
    await grpc.put(keys[0], b"again")
    await until(lambda: len(seen[0]) == 2)
    assert seen == [[keys[0], keys[0]], *([key] for key in keys[1:])]
    assert all(watch.reconnects == 0 for watch in watches)
    for watch in watches:
        await watch.cancel()
    assert http._muxes == {}


@ensure
async def test_a_watch_waiting_for_a_connection_that_fails_moves_to_the_next_endpoint(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    """The watch's stream waits on the shared stream for the first endpoint's
    connection; that connection is refused: the watch tries the next endpoint,
    the first is reported down (as a refused connection is on the gateway)."""
    from etcdwamp.testing._processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    grpc = make_client(loop, endpoints=[dead, etcd.url], transport="grpc",
                       connect_timeout=1.0)
    clients.append(grpc)
    seen: list[bytes] = []
    watch = await grpc.watch(prefix, lambda batch: seen.extend(
        ev.kv.value for ev in batch.events))
    assert watch.reconnects == 1
    assert grpc.transport.health.is_down(dead)
    await grpc.put(prefix, b"1")
    from waiting import until
    await until(lambda: seen == [b"1"])
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


class _DarkProxy:
    """A TCP proxy to etcd that can go dark: forward nothing more, keep the sockets open,
    refuse new connections (a member cut off by the network, as the client sees it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.frozen = False
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]

        async def pump(a: asyncio.StreamReader, b: asyncio.StreamWriter) -> None:
            while not self.frozen:
                data = await a.read(65536)
                if not data or self.frozen:
                    break
                b.write(data)
            await asyncio.Event().wait()  # dark: hold the sockets, forward nothing

        self.tasks += [asyncio.ensure_future(pump(reader, up_writer)),
                       asyncio.ensure_future(pump(up_reader, writer))]

    def freeze(self) -> None:
        self.frozen = True
        self.server.close()

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.transport.abort()


@ensure
async def test_a_member_gone_dark_is_left_not_waited_for_again(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    """A put on a connection whose member went dark times out (its outcome is
    unknown); the connection is then dropped once a PING goes unanswered, so the next
    put does not wait out its timeout on it again but fails over."""
    from urllib.parse import urlsplit
    parts = urlsplit(etcd.url)
    proxy = _DarkProxy(parts.hostname or "", parts.port or 0)
    if loop == "asyncio":
        dark = await proxy.start()
    else:
        from twisted.internet.defer import Deferred
        dark = await Deferred.fromFuture(asyncio.ensure_future(proxy.start()))
    client = make_client(loop, transport="grpc", endpoints=[dark, etcd.url], timeout=2.0)
    clients.append(client)
    try:
        await client.put(prefix + b"a", b"1")  # through the proxy, which answers
        proxy.freeze()
        with pytest.raises(errors.RequestTimeout):
            await client.put(prefix + b"b", b"2")
        http: Any = client.transport.http
        from waiting import until
        await until(lambda: dark not in http._connections, timeout=10,
                    why="the dark connection was not dropped")
        started = time.monotonic()
        await client.put(prefix + b"c", b"3")
        assert time.monotonic() - started < 1.0
        assert (await client.get(prefix + b"c")).kvs[0].value == b"3"
    finally:
        proxy.stop()


@ensure
async def test_calls_wait_for_a_stream_under_etcds_stream_limit(
        etcd_factory: Any, loop: str, prefix: bytes, clients: list[Client]) -> None:
    """etcd with --max-concurrent-streams 4: 40 concurrent gets all succeed (each waits
    for a stream to end), none fails with Busy."""
    cluster = etcd_factory(1, extra_args=["--max-concurrent-streams", "4"])
    client = make_client(loop, url=cluster.url, transport="grpc")
    clients.append(client)
    await client.put(prefix + b"k", b"v")
    gets = [client.get(prefix + b"k") for _ in range(40)]
    for get in gets:
        assert (await get).kvs[0].value == b"v"


@ensure
async def test_a_closed_grpc_client_can_be_used_again(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    client = make_client(loop, url=etcd.url, transport="grpc")
    clients.append(client)
    await client.put(prefix + b"k", b"1")
    await client.close()
    assert (await client.get(prefix + b"k")).kvs[0].value == b"1"


@ensure
async def test_a_silent_member_is_connect_failed_and_a_read_falls_over(
        etcd: EtcdCluster, loop: str, prefix: bytes, clients: list[Client]) -> None:
    """A member that accepts TCP and never speaks HTTP/2: nothing was sent to it, so a
    write there is ConnectFailed (not OutcomeUnknown, as on the gateway, where the
    request itself went out) and a read falls over to the next member in time."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        writer = make_client(loop, url=etcd.url, transport="grpc")
        clients.append(writer)
        await writer.put(prefix + b"k", b"v")
        client = make_client(loop, transport="grpc", endpoints=[url, etcd.url], timeout=1.0)
        clients.append(client)
        assert (await client.get(prefix + b"k")).kvs[0].value == b"v"
        only_silent = make_client(loop, transport="grpc", url=url, timeout=0.5)
        clients.append(only_silent)
        with pytest.raises(errors.ConnectFailed):
            await only_silent.put(prefix + b"k", b"never")
        assert (await writer.get(prefix + b"k")).kvs[0].value == b"v"
    finally:
        silent.close()
