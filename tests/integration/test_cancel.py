"""Cancellation against real servers: a hung HTTP endpoint, a real etcd, and a
recording proxy (tests/integration/proxies.py) in front of that etcd.

The hung endpoint is a real HTTP server on a loopback port that takes requests
and never answers; it records each request and whether the client dropped the
connection. The proxy forwards whole requests to etcd and records them; the
requests its ``hold`` predicate picks it swallows instead, so a request can be
caught in flight. Both let a test count exactly what reached which server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from proxies import RecordingProxy
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from waiting import until

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

ensure = pytest_twisted.ensureDeferred


# -- the hung endpoint ------------------------------------------------------------------

class HungEndpoint(Resource):
    """Answers no request; records each one and whether its connection was dropped."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.dropped = 0
        self.pending: list[Request] = []

    def render_POST(self, request: Request) -> int:
        self.paths.append(request.path.decode())
        self.pending.append(request)

        def gone(_: Failure) -> None:
            self.dropped += 1
            self.pending.remove(request)

        request.notifyFinish().addErrback(gone)
        return NOT_DONE_YET


@pytest.fixture
def hung() -> Iterator[tuple[str, HungEndpoint]]:
    resource = HungEndpoint()
    port: IListeningPort = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port.getHost().port}", resource
    finally:
        for request in list(resource.pending):
            request.channel.transport.abortConnection()
        port.stopListening()


# -- the recording proxy ------------------------------------------------------------------

@pytest.fixture
def proxy(etcd: EtcdCluster) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(etcd.url)
    try:
        yield recording
    finally:
        recording.stop()


@pytest_twisted.async_yield_fixture
async def clients() -> AsyncIterator[list[Client]]:
    """Clients a test makes (closed afterwards)."""
    made: list[Client] = []
    try:
        yield made
    finally:
        for c in made:
            await c.close()


def new_client(made: list[Client], endpoints: list[str]) -> Client:
    c = Client(reactor, endpoints=endpoints, api_prefix="/v3", timeout=30.0)
    made.append(c)
    return c


def failure_of(d: Deferred[Any]) -> Failure:
    """The Failure ``d`` has already fired with (the test fails if it has not)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the cancelled Deferred did not fire at once"
    assert isinstance(results[0], Failure), f"succeeded with {results[0]!r}"
    return results[0]


async def round_trip(made: list[Client], proxy: RecordingProxy) -> None:
    """A request of our own through the proxy to etcd and back. Anything the
    cancelled client would have sent on (a failover, a retry) was started at
    the cancel, so it arrives at the proxy before this has made its round trip."""
    await new_client(made, [proxy.url]).status()


# -- requests -----------------------------------------------------------------------------

@ensure
async def test_cancelled_get_reaches_only_the_hung_endpoint(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        prefix: bytes) -> None:
    """A get to [hung, etcd] cancelled while the hung endpoint holds it fails
    with CancelledError at once, the connection is dropped, and neither the
    hung endpoint nor etcd receives it again (no resend, no failover)."""
    hung_url, server = hung
    client = new_client(clients, [hung_url, proxy.url])
    d = client.get(prefix + b"k")
    await until(lambda: server.paths, why="the get reaches the hung endpoint")
    d.cancel()
    assert failure_of(d).check(CancelledError)
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, proxy)
    assert server.paths == ["/v3/kv/range"]
    assert proxy.forwarded_paths == ["/v3/maintenance/status"]  # only the round trip


@ensure
async def test_cancelled_put_on_the_hung_endpoint_writes_nothing(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        client: Client, prefix: bytes) -> None:
    """A put cancelled at the hung endpoint is CancelledError (not
    ConnectionLost) and the key is not written anywhere."""
    hung_url, server = hung
    writer = new_client(clients, [hung_url, proxy.url])
    d = writer.put(prefix + b"k", b"v")
    await until(lambda: server.paths, why="the put reaches the hung endpoint")
    d.cancel()
    assert failure_of(d).check(CancelledError)
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, proxy)
    assert server.paths == ["/v3/kv/put"]
    assert "/v3/kv/put" not in proxy.forwarded_paths
    assert (await client.get(prefix + b"k")).kvs == ()


@ensure
async def test_add_timeout_on_a_hung_endpoint(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        prefix: bytes) -> None:
    """``addTimeout`` shorter than the client's timeout raises TimeoutError and
    aborts the one request; etcd never gets it."""
    hung_url, server = hung
    client = new_client(clients, [hung_url, proxy.url])
    with pytest.raises(TimeoutError):
        await client.get(prefix + b"k").addTimeout(0.3, reactor)
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, proxy)
    assert server.paths == ["/v3/kv/range"]
    assert proxy.forwarded_paths == ["/v3/maintenance/status"]


@ensure
async def test_cancelling_watch_creation_on_a_hung_endpoint_does_not_reconnect(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        prefix: bytes) -> None:
    hung_url, server = hung
    client = new_client(clients, [hung_url, proxy.url])
    watch = client.watch(prefix + b"k")
    created = watch.created
    await until(lambda: server.paths, why="the watch stream reaches the hung endpoint")
    created.cancel()
    assert failure_of(created).check(CancelledError)
    finished = watch.finished
    await until(lambda: finished.called, why="the watch finishes")
    await until(lambda: server.dropped == 1, why="the client drops the stream")
    await round_trip(clients, proxy)
    assert server.paths == ["/v3/watch"] and watch.reconnects == 0
    assert "/v3/watch" not in proxy.forwarded_paths


# -- range_iter ---------------------------------------------------------------------------

async def fill(client: Client, prefix: bytes, n: int) -> None:
    await client.txn(Transaction(success=[OpSet(prefix + b"%03d" % i, b"v") for i in range(n)]))


@ensure
async def test_cancelled_range_iter_consumer_stops_paging(
        proxy: RecordingProxy, clients: list[Client], client: Client, prefix: bytes) -> None:
    """30 keys, 5 per page: the consumer is cancelled while page three is in
    flight; it fails with CancelledError, page three's connection is dropped
    and no later page is requested."""
    await fill(client, prefix, 30)
    reader = new_client(clients, [proxy.url])
    seen: list[bytes] = []

    async def consume() -> None:
        async for kv in reader.range_iter(KeySet(prefix, prefix=True), page_size=5):
            seen.append(kv.key)
            if len(seen) == 10:
                proxy.hold = lambda path, body: True  # catch page three in flight

    d = Deferred.fromCoroutine(consume())
    await until(lambda: proxy.held, why="page three reaches the proxy")
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert len(seen) == 10
    await until(lambda: proxy.dropped_while_held == 1, why="the client drops page three")
    proxy.hold = lambda path, body: False
    await round_trip(clients, proxy)
    assert proxy.forwarded_paths == ["/v3/kv/range"] * 2 + ["/v3/maintenance/status"]
    assert proxy.held_paths == ["/v3/kv/range"]


@ensure
async def test_range_iter_consumer_that_breaks_requests_no_more_pages(
        proxy: RecordingProxy, clients: list[Client], client: Client, prefix: bytes) -> None:
    await fill(client, prefix, 30)
    reader = new_client(clients, [proxy.url])
    seen = []
    async for kv in reader.range_iter(KeySet(prefix, prefix=True), page_size=5):
        seen.append(kv.key)
        if len(seen) == 7:
            break
    await round_trip(clients, proxy)
    assert proxy.forwarded_paths == ["/v3/kv/range"] * 2 + ["/v3/maintenance/status"]


# -- locks --------------------------------------------------------------------------------

@ensure
async def test_cancelled_lock_acquire_leaves_no_candidate(
        clients: list[Client], client: Client, etcd: EtcdCluster, prefix: bytes) -> None:
    """B waits for a lock A holds; B's acquire is cancelled: CancelledError at
    once, B's lease is revoked and its key gone, so C gets the lock as soon as
    A releases it."""
    name = prefix + b"lock"
    candidates = KeySet(name + b"/", prefix=True)
    holder = client.lock(name, ttl=30)
    await holder.acquire()
    assert holder.lease is not None

    waiter = new_client(clients, [etcd.url]).lock(name, ttl=30)
    acquiring = waiter.acquire()

    async def keys() -> list[Any]:
        return list((await client.get(candidates)).kvs)

    async def two_candidates() -> bool:
        return len(await keys()) == 2

    await until(two_candidates, why="B's candidate key is written")
    b_lease = next(kv.lease for kv in await keys() if kv.lease != holder.lease.id)
    acquiring.cancel()
    assert failure_of(acquiring).check(CancelledError)

    async def b_gone() -> bool:
        info = await client.lease_time_to_live(b_lease)
        return info.ttl == -1 and len(await keys()) == 1

    await until(b_gone, why="B's lease is revoked and its key deleted")
    assert not waiter.held

    third = new_client(clients, [etcd.url]).lock(name, ttl=30)
    taking = third.acquire()
    await until(two_candidates, why="C's candidate key is written")
    assert not taking.called
    await holder.release()
    await until(lambda: taking.called, why="C gets the lock once A released it")
    assert third.held
    await third.release()
