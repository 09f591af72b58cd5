"""Cancellation against real servers: a hung HTTP endpoint, a real etcd, and a
recording proxy (tests/integration/proxies.py) in front of that etcd.

The hung endpoint is a real HTTP server on a loopback port that takes requests
and never answers; it records each request and whether the client dropped the
connection. The proxy forwards whole requests to etcd and records them; the
requests its ``hold`` predicate picks it swallows instead, so a request can be
caught in flight. Both let a test count exactly what reached which server.

Every test runs on both event loops (tests/integration/loops.py) and cancels
the way a user of that loop does (:class:`Awaited`): Twisted code cancels the
Deferred, which must fail with Twisted's ``CancelledError`` at once; asyncio
code cancels the task awaiting the call, which must end with
``asyncio.CancelledError`` on its very next step, before any I/O is handled.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from loops import ensure, make_client
from proxies import RecordingProxy
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from waiting import until

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp._deferred import Dual
from etcdwamp.client import Client
from etcdwamp.range_pages import READ_AHEAD
from etcdwamp.testing import EtcdCluster

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


def new_client(made: list[Client], loop: str, endpoints: list[str]) -> Client:
    c = make_client(loop, endpoints=endpoints, api_prefix="/v3", timeout=30.0)
    made.append(c)
    return c


def failure_of(d: Deferred[Any]) -> Failure:
    """The Failure ``d`` has already fired with (the test fails if it has not)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the cancelled Deferred did not fire at once"
    assert isinstance(results[0], Failure), f"succeeded with {results[0]!r}"
    return results[0]


class Awaited:
    """A call (a Dual) or a coroutine awaited as a user of ``loop`` awaits it:
    Twisted code holds the Deferred (a coroutine runs on Twisted's driver),
    asyncio code awaits it in a task."""

    def __init__(self, loop: str, work: Deferred[Any] | Coroutine[Any, Any, Any]) -> None:
        self._task: asyncio.Task[Any] | None = None
        self._deferred: Deferred[Any] | None = None
        self._call: Dual[Any] | None = None
        if isinstance(work, Deferred):
            assert isinstance(work, Dual), f"a public call handed out a plain {work!r}"
            self._call = work
        if loop == "asyncio":
            async def wait() -> Any:
                return await work

            self._task = asyncio.ensure_future(wait())
        elif isinstance(work, Deferred):
            self._deferred = work
        else:
            self._deferred = Deferred.fromCoroutine(work)

    @property
    def done(self) -> bool:
        """Whether the call ended (either way)."""
        if self._task is not None:
            return self._task.done()
        assert self._deferred is not None
        return self._deferred.called

    async def cancel(self, *, via_call: bool = False) -> None:
        """Cancel it and check it failed at once with the loop's CancelledError.

        ``via_call``: on asyncio, cancel the call (the Dual the client
        returned) instead of the task awaiting it; the task must end the same
        way. (On Twisted both are the Deferred's ``cancel()``.)"""
        if self._task is None:
            assert self._deferred is not None
            self._deferred.cancel()
            assert failure_of(self._deferred).check(CancelledError)
            return
        task = self._task
        if via_call:
            assert self._call is not None, "only a call can be cancelled via the call"
            self._call.cancel()
        else:
            task.cancel()
        # call_soon runs callbacks in order: this one runs right after the
        # task's next step, before the loop polls for I/O again. A task that
        # still waited for the network would not be done by then.
        ended: Dual[bool] = Dual()
        asyncio.get_running_loop().call_soon(lambda: ended.callback(task.done()))
        assert await ended, "the cancelled task did not end on its next step"
        assert task.cancelled(), f"the task did not end with asyncio.CancelledError: {task!r}"

    async def result(self) -> Any:
        """Its outcome (waits for it)."""
        if self._task is not None:
            return await self._task
        assert self._deferred is not None
        return await self._deferred


async def with_timeout(loop: str, call: Dual[Any], seconds: float) -> Any:
    """Give up on ``call`` after ``seconds`` with each loop's own idiom:
    ``addTimeout`` (Twisted's TimeoutError) or ``asyncio.wait_for``
    (the builtin TimeoutError)."""
    if loop == "asyncio":
        return await asyncio.wait_for(call, seconds)
    return await call.addTimeout(seconds, reactor)


async def round_trip(made: list[Client], loop: str, proxy: RecordingProxy) -> None:
    """A request of our own through the proxy to etcd and back. Anything the
    cancelled client would have sent on (a failover, a retry) was started at
    the cancel, so it arrives at the proxy before this has made its round trip."""
    await new_client(made, loop, [proxy.url]).status()


# -- requests -----------------------------------------------------------------------------

@ensure
async def test_cancelled_get_reaches_only_the_hung_endpoint(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        loop: str, prefix: bytes) -> None:
    """A get to [hung, etcd] cancelled while the hung endpoint holds it fails
    with CancelledError at once, the connection is dropped, and neither the
    hung endpoint nor etcd receives it again (no resend, no failover)."""
    hung_url, server = hung
    client = new_client(clients, loop, [hung_url, proxy.url])
    call = Awaited(loop, client.get(prefix + b"k"))
    await until(lambda: server.paths, why="the get reaches the hung endpoint")
    await call.cancel()
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, loop, proxy)
    assert server.paths == ["/v3/kv/range"]
    assert proxy.forwarded_paths == ["/v3/maintenance/status"]  # only the round trip


@ensure
async def test_cancelled_put_on_the_hung_endpoint_writes_nothing(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        client: Client, prefix: bytes) -> None:
    """A put cancelled at the hung endpoint is CancelledError (not
    ConnectionLost) and the key is not written anywhere. (On asyncio this
    test cancels the call the client returned, not the task awaiting it.)"""
    loop = client.framework
    hung_url, server = hung
    writer = new_client(clients, loop, [hung_url, proxy.url])
    call = Awaited(loop, writer.put(prefix + b"k", b"v"))
    await until(lambda: server.paths, why="the put reaches the hung endpoint")
    await call.cancel(via_call=True)
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, loop, proxy)
    assert server.paths == ["/v3/kv/put"]
    assert "/v3/kv/put" not in proxy.forwarded_paths
    assert (await client.get(prefix + b"k")).kvs == ()


@ensure
async def test_a_cancelled_call_nobody_awaits_logs_nothing_when_collected(
        hung: tuple[str, HungEndpoint], clients: list[Client], client: Client,
        prefix: bytes) -> None:
    """``d = etcd.put(...); d.cancel()`` and dropping ``d``: the cancellation was
    asked for, so no "Unhandled error in Deferred" when ``d`` is collected, on
    either loop; a failure nobody asked for still is reported."""
    hung_url, server = hung
    writer = new_client(clients, client.framework, [hung_url])
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        d = writer.put(prefix + b"k", b"v")
        await until(lambda: server.paths, why="the put reaches the hung endpoint")
        d.cancel()
        del d
        await until(lambda: server.dropped == 1, why="the client drops the connection")
        gc.collect()
        assert [e for e in events if e.get("log_failure") is not None] == []
        # The observer is live: an error nobody consumed is still reported.
        bad: Dual[None] = Dual()
        bad.errback(ValueError("nobody looked"))
        del bad
        gc.collect()
        assert [e["log_failure"].type for e in events if e.get("log_failure")] == [ValueError]
    finally:
        globalLogPublisher.removeObserver(events.append)


@ensure
async def test_timeout_on_a_hung_endpoint(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        loop: str, prefix: bytes) -> None:
    """The loop's own timeout (``addTimeout`` / ``asyncio.wait_for``) shorter
    than the client's raises that loop's TimeoutError and aborts the one
    request; etcd never gets it."""
    hung_url, server = hung
    client = new_client(clients, loop, [hung_url, proxy.url])
    expected = asyncio.TimeoutError if loop == "asyncio" else TimeoutError
    with pytest.raises(expected):
        await with_timeout(loop, client.get(prefix + b"k"), 0.3)
    await until(lambda: server.dropped == 1, why="the client drops the connection")
    await round_trip(clients, loop, proxy)
    assert server.paths == ["/v3/kv/range"]
    assert proxy.forwarded_paths == ["/v3/maintenance/status"]


@ensure
async def test_cancelling_watch_creation_on_a_hung_endpoint_does_not_reconnect(
        hung: tuple[str, HungEndpoint], proxy: RecordingProxy, clients: list[Client],
        loop: str, prefix: bytes) -> None:
    hung_url, server = hung
    client = new_client(clients, loop, [hung_url, proxy.url])
    watch = client.watch(prefix + b"k")
    created = Awaited(loop, watch.created)
    await until(lambda: server.paths, why="the watch stream reaches the hung endpoint")
    await created.cancel()
    finished = watch.finished
    await until(lambda: finished.called, why="the watch finishes")
    await until(lambda: server.dropped == 1, why="the client drops the stream")
    await round_trip(clients, loop, proxy)
    assert server.paths == ["/v3/watch"] and watch.reconnects == 0
    assert "/v3/watch" not in proxy.forwarded_paths


# -- range_iter ---------------------------------------------------------------------------

async def fill(client: Client, prefix: bytes, n: int) -> None:
    await client.txn(Transaction(success=[OpSet(prefix + b"%03d" % i, b"v") for i in range(n)]))


@ensure
async def test_cancelled_range_iter_consumer_stops_paging(
        proxy: RecordingProxy, clients: list[Client], client: Client, prefix: bytes) -> None:
    """30 keys, 5 per page: the consumer is cancelled while the pages after its
    tenth key are in flight (the next one and those read ahead); it fails with
    CancelledError, every read in flight is dropped and no later page is requested."""
    loop = client.framework
    await fill(client, prefix, 30)
    reader = new_client(clients, loop, [proxy.url])
    seen: list[bytes] = []

    async def consume() -> None:
        async for kv in reader.range_iter(KeySet(prefix, prefix=True), page_size=5):
            seen.append(kv.key)
            if len(seen) == 10:
                proxy.hold = lambda path, body: True  # catch the next pages in flight

    consumer = Awaited(loop, consume())
    await until(lambda: proxy.held, why="a page reaches the proxy")
    await consumer.cancel()
    assert 10 <= len(seen) < 30
    # A read ahead may still be on its way to the proxy when the consumer is
    # cancelled: count the held pages once no connection holds one any more.
    await until(lambda: proxy.held and not any(c.holding for c in proxy.connections)
                and proxy.dropped_while_held == len(proxy.held),
                why=lambda: "the client drops them "
                f"({len(proxy.held)} held, {proxy.dropped_while_held} dropped)")
    held = len(proxy.held_paths)
    assert held >= 1  # the page awaited, and those read ahead
    proxy.hold = lambda path, body: False
    await round_trip(clients, loop, proxy)
    *pages, last = proxy.forwarded_paths
    assert last == "/v3/maintenance/status" and set(pages) == {"/v3/kv/range"}
    assert proxy.held_paths == ["/v3/kv/range"] * held


@ensure
async def test_range_iter_consumer_that_breaks_requests_no_more_pages(
        proxy: RecordingProxy, clients: list[Client], client: Client, prefix: bytes) -> None:
    """Breaking out in page two: the pages read ahead may have been sent (at most
    READ_AHEAD beyond the page being read, and the rest of a page that overflowed),
    no later one: far fewer requests than reading the 100 keys to the end takes."""
    loop = client.framework
    await fill(client, prefix, 100)
    reader = new_client(clients, loop, [proxy.url])
    assert len([kv async for kv in reader.range_iter(KeySet(prefix, prefix=True),
                                                     page_size=5)]) == 100
    whole = len(proxy.forwarded_paths)
    seen = []
    async for kv in reader.range_iter(KeySet(prefix, prefix=True), page_size=5):
        seen.append(kv.key)
        if len(seen) == 7:
            break
    await round_trip(clients, loop, proxy)
    *pages, last = proxy.forwarded_paths[whole:]
    assert last == "/v3/maintenance/status" and set(pages) == {"/v3/kv/range"}
    assert 2 <= len(pages) <= 2 * (2 + READ_AHEAD) < whole


# -- locks and elections ---------------------------------------------------------------

class Contender:
    """A lock or an election candidacy behind one interface: ``take()``
    (acquire / campaign), ``give_up()`` (release / resign), ``holds``."""

    def __init__(self, client: Client, kind: str, name: bytes) -> None:
        self.kind = kind
        self.lock = client.lock(name, ttl=30) if kind == "lock" else None
        self.election = client.election(name, ttl=30) if kind == "election" else None

    def take(self) -> Deferred[Any]:
        if self.lock is not None:
            return self.lock.acquire()
        assert self.election is not None
        return self.election.campaign(b"candidate")

    def give_up(self) -> Deferred[None]:
        if self.lock is not None:
            return self.lock.release()
        assert self.election is not None
        return self.election.resign()

    @property
    def holds(self) -> bool:
        if self.lock is not None:
            return self.lock.held
        assert self.election is not None
        return self.election.is_leader

    @property
    def lease_id(self) -> int:
        owner = self.lock if self.lock is not None else self.election
        assert owner is not None and owner.lease is not None
        lease = owner.lease
        return lease.id


@pytest.mark.parametrize("kind", ["lock", "election"])
@ensure
async def test_cancelled_candidacy_leaves_no_candidate(
        clients: list[Client], client: Client, etcd: EtcdCluster, prefix: bytes,
        kind: str) -> None:
    """B waits for a lock A holds (or for A's leadership to end); B's acquire
    (campaign) is cancelled: CancelledError at once, B's lease is revoked and
    its key gone, so C takes over as soon as A releases (resigns)."""
    loop = client.framework
    name = prefix + kind.encode()
    candidates = KeySet(name + b"/", prefix=True)
    holder = Contender(client, kind, name)
    await holder.take()

    waiter = Contender(new_client(clients, loop, [etcd.url]), kind, name)
    acquiring = Awaited(loop, waiter.take())

    async def keys() -> list[Any]:
        return list((await client.get(candidates)).kvs)

    async def two_candidates() -> bool:
        return len(await keys()) == 2

    await until(two_candidates, why="B's candidate key is written")
    b_lease = next(kv.lease for kv in await keys() if kv.lease != holder.lease_id)
    await acquiring.cancel()

    async def b_gone() -> bool:
        info = await client.lease_time_to_live(b_lease)
        return info.ttl == -1 and len(await keys()) == 1

    await until(b_gone, why="B's lease is revoked and its key deleted")
    assert not waiter.holds

    third = Contender(new_client(clients, loop, [etcd.url]), kind, name)
    taking = Awaited(loop, third.take())
    await until(two_candidates, why="C's candidate key is written")
    assert not taking.done
    await holder.give_up()
    await until(lambda: taking.done, why="C takes over once A gave up")
    await taking.result()
    assert third.holds
    await third.give_up()


# -- elections ----------------------------------------------------------------------------

@ensure
async def test_cancelled_observer_drops_its_stream(
        proxy: RecordingProxy, clients: list[Client], client: Client, prefix: bytes) -> None:
    """An observer waiting for the next leader is cancelled: it fails with
    CancelledError at once and the connection of its stream is closed."""
    loop = client.framework
    name = prefix + b"election"
    leader = client.election(name, ttl=5)
    await leader.campaign(b"one")
    observer = new_client(clients, loop, [proxy.url]).election(name)
    seen: list[bytes] = []

    async def observe() -> None:
        async for kv in observer.observe():
            seen.append(kv.value)

    watching = Awaited(loop, observe())
    await until(lambda: seen == [b"one"], why=lambda: f"seen: {seen}")
    # The stream is open, and it is the only connection through the proxy.
    assert proxy.forwarded_paths == ["/v3/election/observe"]
    assert len(proxy.connections) == 1
    await watching.cancel()
    await until(lambda: not proxy.connections, why="the observe stream is closed")
    await leader.resign()
