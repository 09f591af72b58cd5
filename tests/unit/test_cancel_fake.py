"""Cancellation over a fake HTTP client and ``task.Clock``: no etcd, no network.

The fake answers what a test scripts and leaves every other request pending
forever, recording whether it was cancelled. When cancelled it fails the way
Twisted's Agent fails an aborted request (``ResponseNeverReceived`` wrapping the
``CancelledError``, or ``ConnectingCancelledError`` while connecting), because
that failure, mistaken for a lost connection, is what used to be retried.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet import error as ierror
from twisted.internet.address import IPv4Address
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    ensureDeferred,
    inlineCallbacks,
)
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.pmap.database import Database, MapTransaction
from etcdwamp.transport import TwistedHTTP
from etcdwamp.wire import status_request

HEADER = {"cluster_id": "1", "member_id": "2", "revision": "42", "raft_term": "3"}
ENDPOINTS = ["http://first.test:2379", "http://second.test:2379", "http://third.test:2379"]

# A handler answers (status, JSON) for a path, or None to leave the request pending.
Handler = Callable[[str, dict[str, Any]], "tuple[int, Any] | None"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hang(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    return None


class FakeTransport:
    """The transport a response body is delivered over; records being stopped."""

    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True

    def loseConnection(self) -> None:
        self.stopped = True


class FakeResponse:
    """A response whose headers arrived; the body is ``body``, complete or not."""

    def __init__(self, code: int, body: bytes, *, complete: bool = True) -> None:
        self.code = code
        self.body = body
        self.complete = complete
        self.length = len(body) if complete else UNKNOWN_LENGTH
        self.transport = FakeTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        if self.body:
            protocol.dataReceived(self.body)
        if self.complete:
            protocol.connectionLost(Failure(ResponseDone()))


def agent_abort() -> Failure:
    """What HTTP11ClientProtocol fails a request with when it is cancelled."""
    return Failure(ResponseNeverReceived([Failure(CancelledError())]))


def agent_connect_abort() -> Failure:
    """What the Agent fails a request with when cancelled while connecting."""
    return Failure(ierror.ConnectingCancelledError(IPv4Address("TCP", "127.0.0.1", 1)))


def parse_body(data: bytes) -> Any:
    """One JSON object, or a list of them for a watch stream's create requests."""
    decoder = json.JSONDecoder()
    text, objects, at = data.decode(), [], 0
    while at < len(text):
        obj, at = decoder.raw_decode(text, at)
        objects.append(obj)
    return objects[0] if len(objects) == 1 else objects


@dataclass
class Post:
    url: str
    body: Any
    headers: Any
    deferred: Deferred[Any] = field(repr=False)
    cancelled: bool = False

    @property
    def path(self) -> str:
        return "/" + self.url.split("/", 3)[3]


class FakeHTTP(TwistedHTTP):
    """An injected treq-style client: answers via ``handler``, else hangs."""

    def __init__(self, handler: Handler = hang,
                 on_cancel: Callable[[], Failure] = agent_abort) -> None:
        self.handler = handler
        self.on_cancel = on_cancel
        self.posts: list[Post] = []
        #: endpoints refusing connections (the request fails at once, unsent)
        self.refuse: set[str] = set()

    def post(self, url: str, data: bytes, headers: Any, **kwargs: Any) -> Deferred[Any]:
        body = parse_body(data)
        if any(url.startswith(r) for r in self.refuse):
            refused: Deferred[Any] = Deferred()
            self.posts.append(Post(url, body, headers, refused))
            refused.errback(ierror.ConnectionRefusedError())
            return refused

        def cancel(d: Deferred[Any]) -> None:
            post.cancelled = True
            d.errback(self.on_cancel())

        d: Deferred[Any] = Deferred(cancel)
        post = Post(url, body, headers, d)
        self.posts.append(post)
        answer = self.handler(post.path, body)
        if answer is not None:
            status, content = answer
            raw = content if isinstance(content, bytes) else json.dumps(content).encode()
            d.callback(FakeResponse(status, raw))
        return d

    def paths(self) -> list[str]:
        return [p.path for p in self.posts]


def make(handler: Handler = hang, *, on_cancel: Callable[[], Failure] = agent_abort,
         **kwargs: Any) -> tuple[Client, FakeHTTP, Clock]:
    http = FakeHTTP(handler, on_cancel)
    clock = Clock()
    kwargs.setdefault("api_prefix", "/v3")
    kwargs.setdefault("timeout", 5.0)
    client = Client(clock, endpoints=ENDPOINTS, http_client=http, clock=clock, **kwargs)
    return client, http, clock


def outcome(d: Deferred[Any]) -> Any:
    """The result or Failure ``d`` has already fired with (fails if it has not)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def assert_cancelled(d: Deferred[Any]) -> None:
    result = outcome(d)
    assert isinstance(result, Failure), f"expected CancelledError, got result {result!r}"
    assert result.check(CancelledError), f"expected CancelledError, got {result.value!r}"


def assert_nothing_more(http: FakeHTTP, clock: Clock, count: int) -> None:
    """No further request, even after every timeout and backoff could have run."""
    clock.advance(3600)
    assert len(http.posts) == count, http.paths()


def coro(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Deferred[Any]:
    return Deferred.fromCoroutine(fn())


# -- every request method ---------------------------------------------------------------

OPERATIONS: dict[str, Callable[[Client], Deferred[Any]]] = {
    "get": lambda c: c.get(b"k"),
    "get_range": lambda c: c.get(KeySet(b"p", prefix=True)),
    "put": lambda c: c.put(b"k", b"v"),
    "delete": lambda c: c.delete(b"k"),
    "txn": lambda c: c.txn(Transaction(success=[OpSet(b"k", b"v")])),
    "read_only_txn": lambda c: c.txn(Transaction()),
    "status": lambda c: c.status(),
    "compact": lambda c: c.compact(5),
    "lease_grant": lambda c: c.lease_grant(10),
    "lease_revoke": lambda c: c.lease_revoke(7),
    "lease_time_to_live": lambda c: c.lease_time_to_live(7),
    "lease": lambda c: c.lease(10, keep_alive=True),
    "call": lambda c: c.call(status_request()),
    "user_add": lambda c: c.user_add("u", "p"),
}


@pytest.mark.parametrize("on_cancel", [agent_abort, agent_connect_abort, None],
                         ids=["response-never-received", "connecting-cancelled", "no-canceller"])
@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_cancel_fails_at_once_aborts_and_never_resends(
        name: str, on_cancel: Callable[[], Failure] | None) -> None:
    """Cancelling any client Deferred fails it with CancelledError in the same
    turn, cancels the one request sent, and sends nothing to another endpoint
    (not even for idempotent requests or once the timeout would have run)."""
    client, http, clock = make(on_cancel=on_cancel or (lambda: Failure(CancelledError())))
    d = OPERATIONS[name](client)
    assert len(http.posts) == 1 and http.posts[0].url.startswith(ENDPOINTS[0])
    d.cancel()
    assert_cancelled(d)
    assert http.posts[0].cancelled
    assert clock.getDelayedCalls() == []  # the request's timer went with it
    assert_nothing_more(http, clock, 1)


def test_cancel_during_prefix_detection_tries_no_other_prefix() -> None:
    """The gateway prefix probe is part of the request: cancelling stops it too."""
    client, http, clock = make(api_prefix=None)
    d = client.get(b"k")
    assert http.paths() == ["/v3/maintenance/status"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[0].cancelled
    assert_nothing_more(http, clock, 1)


def test_cancel_while_reading_the_body_drops_the_connection() -> None:
    """Headers arrived, the body did not: cancelling stops the body's transport
    (the connection is dropped, not left to finish) and fails at once."""
    responses: list[FakeResponse] = []

    class SlowBody(FakeHTTP):
        def post(self, url: str, data: bytes, headers: Any, **kwargs: Any) -> Deferred[Any]:
            d = super().post(url, data, headers, **kwargs)
            responses.append(FakeResponse(200, b'{"header":', complete=False))
            d.callback(responses[-1])
            return d

    http = SlowBody()
    clock = Clock()
    client = Client(clock, endpoints=ENDPOINTS, http_client=http, clock=clock, api_prefix="/v3")
    d = client.get(b"k")
    assert not d.called and not responses[0].transport.stopped
    d.cancel()
    assert_cancelled(d)
    assert responses[0].transport.stopped
    assert_nothing_more(http, clock, 1)


def test_add_timeout_gives_timeout_error_and_aborts() -> None:
    """``addTimeout`` shorter than the client's timeout: TimeoutError (not
    RequestTimeout), the request aborted and not sent elsewhere."""
    client, http, clock = make(timeout=10.0)
    d = client.get(b"k").addTimeout(1.0, clock)
    clock.advance(0.9)
    assert not d.called
    clock.advance(0.2)
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(TimeoutError), failure
    assert http.posts[0].cancelled
    assert_nothing_more(http, clock, 1)


def test_the_clients_own_timeout_is_a_request_timeout() -> None:
    """The contrast to cancellation: when the client's own timeout cuts a call
    short it fails with RequestTimeout, read or write; the timeout bounds the
    whole call, so a read that spent it on one endpoint goes no further."""
    client, http, clock = make(timeout=2.0)
    read = client.get(b"k")
    clock.advance(2.0)
    failure = outcome(read)
    assert isinstance(failure, Failure) and failure.check(e.RequestTimeout), failure
    assert len(http.posts) == 1 and http.posts[0].cancelled
    write = client.put(b"k", b"v")
    clock.advance(2.0)
    failure = outcome(write)
    assert isinstance(failure, Failure) and failure.check(e.RequestTimeout), failure
    assert_nothing_more(http, clock, 2)


def test_cancel_after_a_failover_stops_there() -> None:
    """A request that failed over from a refusing endpoint and is then
    cancelled goes no further."""
    client, http, clock = make()
    http.refuse.add(ENDPOINTS[0])
    d = client.put(b"k", b"v")
    assert [p.url.split("/v3")[0] for p in http.posts] == ENDPOINTS[:2]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    assert_nothing_more(http, clock, 2)


# -- authentication ---------------------------------------------------------------------

def auth_then_hang(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    if path == "/v3/auth/authenticate":
        return 200, {"header": HEADER, "token": "tok"}
    return None


def test_cancel_with_auth_is_not_retried_with_a_new_token() -> None:
    """The auth retry (on Unauthenticated) never sees a cancellation."""
    client, http, clock = make(auth_then_hang, user="u", password="p")
    d = client.put(b"k", b"v")
    assert http.paths() == ["/v3/auth/authenticate", "/v3/kv/put"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    assert_nothing_more(http, clock, 2)


def test_cancel_while_authenticating_releases_the_auth_lock() -> None:
    """Cancelled during authentication: no request follows, and the next call
    authenticates afresh (the lock serialising renewals was released)."""
    client, http, clock = make(user="u", password="p")
    d = client.get(b"k")
    assert http.paths() == ["/v3/auth/authenticate"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[0].cancelled
    assert_nothing_more(http, clock, 1)
    http.handler = auth_then_hang
    again = client.get(b"k")
    assert http.paths() == ["/v3/auth/authenticate", "/v3/auth/authenticate", "/v3/kv/range"]
    again.cancel()


# -- range_iter ---------------------------------------------------------------------------

def paged(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    """Page one (keys a, b; more) answers at once; every later page hangs."""
    if path == "/v3/kv/range" and body["key"] == b64(b"p/"):
        kvs = [{"key": b64(b"p/" + k), "value": b64(b"v"), "mod_revision": "3",
                "create_revision": "3", "version": "1"} for k in (b"a", b"b")]
        return 200, {"header": HEADER, "kvs": kvs, "more": True, "count": "9"}
    return None


def test_cancelled_consumer_of_range_iter_stops_reading() -> None:
    """The consuming coroutine is cancelled while range_iter awaits page two:
    CancelledError at once, page two aborted, no page three."""
    client, http, clock = make(paged)
    seen: list[bytes] = []

    async def consume() -> None:
        async for kv in client.range_iter(KeySet(b"p/", prefix=True), page_size=2):
            seen.append(kv.key)

    d = coro(consume)
    assert seen == [b"p/a", b"p/b"] and len(http.posts) == 2
    assert http.posts[1].body["key"] == b64(b"p/b\x00")  # page two is pending
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    assert_nothing_more(http, clock, 2)


def test_cancelled_next_page_ends_the_iterator() -> None:
    """Cancelling the Deferred of one ``__anext__`` propagates CancelledError
    out of range_iter (as autobahn does when a WAMP caller cancels), and the
    iterator is finished: asking again requests nothing."""
    client, http, clock = make(paged)
    it = client.range_iter(KeySet(b"p/", prefix=True), page_size=2)

    async def next_key() -> bytes:
        return (await it.__anext__()).key

    assert outcome(coro(next_key)) == b"p/a"
    assert outcome(coro(next_key)) == b"p/b"
    d = coro(next_key)
    assert len(http.posts) == 2
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    finished = outcome(coro(next_key))
    assert isinstance(finished, Failure) and finished.check(StopAsyncIteration)
    assert_nothing_more(http, clock, 2)


@pytest.mark.parametrize("how", ["break", "aclose"])
def test_consumer_that_stops_early_requests_no_further_page(how: str) -> None:
    """Breaking out of (or aclose()-ing) range_iter mid-page: no next page."""
    client, http, clock = make(paged)
    it = client.range_iter(KeySet(b"p/", prefix=True), page_size=2)

    async def consume() -> list[bytes]:
        keys = []
        if how == "break":
            async for kv in it:
                keys.append(kv.key)
                break
        else:
            keys.append((await it.__anext__()).key)
            await it.aclose()
        return keys

    assert outcome(coro(consume)) == [b"p/a"]
    assert_nothing_more(http, clock, 1)


# -- locks and elections ----------------------------------------------------------------

def lease_then_hang(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    if path == "/v3/lease/grant":
        return 200, {"header": HEADER, "ID": "77", "TTL": str(body["TTL"])}
    if path in ("/v3/kv/lease/revoke", "/v3/lease/revoke"):
        return 200, {"header": HEADER}
    return None


@pytest.mark.parametrize("kind", ["lock", "election"])
def test_cancelled_acquire_fails_at_once_and_revokes_its_lease(kind: str) -> None:
    """acquire()/campaign() cancelled while waiting: CancelledError in the same
    turn, the waiting request aborted, the lease revoked (deleting the
    candidate key) and no keep-alive afterwards."""
    client, http, clock = make(lease_then_hang)
    if kind == "lock":
        lock = client.lock(b"L", ttl=10)
        d = lock.acquire()
        waiting_path = "/v3/lock/lock"
    else:
        election = client.election(b"E", ttl=10)
        d = election.campaign(b"me")
        waiting_path = "/v3/election/campaign"
    assert http.paths() == ["/v3/lease/grant", waiting_path]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    revokes = [p for p in http.posts if p.path.endswith("/revoke")]
    assert len(revokes) == 1 and revokes[0].body == {"ID": "77"}
    assert_nothing_more(http, clock, 3)  # grant, lock/campaign, revoke: no keep-alive
    if kind == "lock":
        assert not lock.held and lock.key is None
    else:
        assert not election.is_leader


def test_cancelled_lease_grant_starts_no_keep_alive() -> None:
    client, http, clock = make()
    d = client.lease(10, keep_alive=True)
    d.cancel()
    assert_cancelled(d)
    assert_nothing_more(http, clock, 1)


# -- lease keep-alive ---------------------------------------------------------------------

def test_stopping_keep_alive_cancels_the_renewal_without_a_failure() -> None:
    """A renewal in flight when the keep-alive stops is cancelled (connection
    dropped); that is no failed renewal: no retry, no loss."""
    client, http, clock = make(lease_then_hang)
    lease = outcome(client.lease(9, keep_alive=True))
    clock.advance(3.0)  # ttl / 3: the first renewal goes out and hangs
    assert http.paths() == ["/v3/lease/grant", "/v3/lease/keepalive"]
    lease.stop_keep_alive()
    assert http.posts[1].cancelled
    assert_nothing_more(http, clock, 2)
    assert not lease.is_lost and lease.renewals == 0


# -- pmap ---------------------------------------------------------------------------------
# (ensureDeferred: these tests are about cancelling, whether pmap hands out a
# coroutine or, as issue #10 asks, a Deferred.)

def snapshot_then_hang(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    """Answers the read a transaction starts with (count only, at no revision)."""
    if path == "/v3/kv/range" and body.get("count_only") and "revision" not in body:
        return 200, {"header": HEADER, "count": "0"}
    return None


def test_database_run_is_not_retried_after_cancel() -> None:
    """Database.run retries conflicts only: cancelled while ``fn`` reads, it
    fails with CancelledError at once and ``fn`` ran once."""
    client, http, clock = make(snapshot_then_hang)
    db = Database(client)
    calls: list[int] = []

    async def fn(txn: MapTransaction) -> bytes | None:
        calls.append(1)
        return await txn.get_raw(b"k")

    d = ensureDeferred(db.run(fn))
    assert http.paths() == ["/v3/kv/range", "/v3/kv/range"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled and calls == [1]
    assert_nothing_more(http, clock, 2)


def test_database_run_cancelled_during_commit_is_not_retried() -> None:
    client, http, clock = make(snapshot_then_hang)
    db = Database(client)
    calls: list[int] = []

    async def fn(txn: MapTransaction) -> None:
        calls.append(1)
        txn.put_raw(b"k", b"v")

    d = ensureDeferred(db.run(fn))
    assert http.paths() == ["/v3/kv/range", "/v3/kv/txn"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled and calls == [1]
    assert_nothing_more(http, clock, 2)


@pytest.mark.parametrize("step", ["start", "range", "count", "commit"])
def test_transaction_operations_cancel(step: str) -> None:
    """Each step of ``db.begin`` cancels like a client call."""
    client, http, clock = make(hang if step == "start" else snapshot_then_hang)
    txn = Database(client).begin(write=True)
    if step == "start":
        d = ensureDeferred(txn.start())
    else:
        outcome(ensureDeferred(txn.start()))
        if step == "range":
            async def scan() -> None:
                async for _ in txn.range_raw(KeySet(b"p", prefix=True)):
                    pass
            d = coro(scan)
        elif step == "count":
            d = ensureDeferred(txn.count_raw(KeySet(b"p", prefix=True)))
        else:
            txn.put_raw(b"k", b"v")
            d = ensureDeferred(txn.commit())
    before = len(http.posts)
    d.cancel()
    assert_cancelled(d)
    assert http.posts[-1].cancelled
    assert_nothing_more(http, clock, before)


# -- watches ------------------------------------------------------------------------------

def test_cancelling_watch_creation_cancels_the_watch_without_reconnecting() -> None:
    """``watch.created`` cancelled while the stream is being opened:
    CancelledError at once, the stream request aborted, the watch finished,
    no reconnect ever."""
    client, http, clock = make()
    watch = client.watch(b"k")
    d = watch.created
    assert http.paths() == ["/v3/watch"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[0].cancelled
    assert outcome(watch.finished) is None
    assert_nothing_more(http, clock, 1)
    assert watch.reconnects == 0


def test_cancelling_await_watch_cancels_the_watch() -> None:
    """``await watch`` in a coroutine whose Deferred is cancelled."""
    client, http, clock = make()
    watch = client.watch(b"k")

    async def created() -> Any:
        return await watch

    d = coro(created)
    d.cancel()
    assert_cancelled(d)
    assert http.posts[0].cancelled
    assert outcome(watch.finished) is None
    assert_nothing_more(http, clock, 1)


def test_watch_cancel_while_connecting_finishes_at_once() -> None:
    """watch.cancel() before the stream opened aborts the attempt; other
    waiters for the creation get CancelledError instead of waiting forever."""
    client, http, clock = make()
    watch = client.watch(b"k")
    waiter = watch.created
    stopped = watch.cancel()
    assert outcome(stopped) is None
    assert http.posts[0].cancelled
    assert_cancelled(waiter)
    assert_nothing_more(http, clock, 1)
    assert watch.reconnects == 0


def test_watch_cancel_during_backoff_finishes_at_once() -> None:
    """A watch waiting out its reconnect backoff stops without waiting it out."""
    def refused() -> Failure:
        return Failure(ierror.ConnectionRefusedError())

    client, http, clock = make()
    watch = client.watch(b"k")
    # The stream cannot connect to any endpoint: it tries each at once, then pauses.
    for i in range(len(ENDPOINTS)):
        http.posts[i].deferred.errback(refused())
    assert len(http.posts) == len(ENDPOINTS)
    assert clock.getDelayedCalls(), "the watch should be backing off"
    stopped = watch.cancel()
    assert outcome(stopped) is None
    assert clock.getDelayedCalls() == []
    assert_nothing_more(http, clock, len(ENDPOINTS))


def test_watch_cancel_while_streaming_drops_the_stream() -> None:
    """cancel() on a created watch stops the stream's transport; its end is
    then no failure and causes no reconnect."""
    client, http, clock = make()
    watch = client.watch(b"k")
    created = {"result": {"header": HEADER, "created": True}}
    response = FakeResponse(200, json.dumps(created).encode() + b"\n", complete=False)
    http.posts[0].deferred.callback(response)
    assert outcome(watch.created) is None
    stopped = watch.cancel()
    assert response.transport.stopped
    response.protocol.connectionLost(Failure(ierror.ConnectionLost()))
    assert outcome(stopped) is None
    assert_nothing_more(http, clock, 1)
    assert watch.reconnects == 0


def test_cancelled_add_stops_watching_that_key_set() -> None:
    """add() cancelled before etcd confirmed the new key set: CancelledError at
    once, the key set is dropped again and the watch goes on with the others."""
    client, http, clock = make(probe_interval=None)  # the fake answers no probe
    watch = client.watch(b"k")
    created = {"result": {"header": HEADER, "created": True}}
    first = FakeResponse(200, json.dumps(created).encode() + b"\n", complete=False)
    http.posts[0].deferred.callback(first)
    assert outcome(watch.created) is None
    adding = watch.add(b"other", start_revision=5)
    assert first.transport.stopped  # the stream reconnects with both key sets
    first.protocol.connectionLost(Failure(ierror.ConnectionLost()))
    assert len(http.posts) == 2 and not adding.called
    adding.cancel()
    assert_cancelled(adding)
    assert watch.keysets == (KeySet(b"k"),)
    assert [c["create_request"]["key"] for c in http.posts[1].body] == [b64(b"k"), b64(b"other")]
    assert http.posts[1].cancelled  # the attempt with both key sets was dropped
    assert len(http.posts) == 3 and http.posts[2].body["create_request"]["key"] == b64(b"k")
    http.posts[2].deferred.callback(
        FakeResponse(200, json.dumps(created).encode() + b"\n", complete=False))
    assert not watch.finished.called
    assert_nothing_more(http, clock, 3)
    watch.cancel()


def test_cancelled_get_and_watch_leaves_no_watch_running() -> None:
    """Cancelled while its watch is being created: CancelledError, and the
    watch it started is cancelled too (its stream request aborted)."""
    def snapshot(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        if path == "/v3/kv/range":
            return 200, {"header": HEADER}
        return None

    client, http, clock = make(snapshot)
    d = client.get_and_watch(b"k")
    assert http.paths() == ["/v3/kv/range", "/v3/watch"]
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    assert_nothing_more(http, clock, 2)


# -- inlineCallbacks ----------------------------------------------------------------------

def small_etcd(path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    """Answers for one lease (77), one lock and one election, as the gateway
    shapes them; the lock and the campaign are granted at once."""
    kv = {"key": b64(b"E/77"), "value": b64(b"me"), "create_revision": "40",
          "mod_revision": "41", "version": "2", "lease": "77"}
    answers: dict[str, Any] = {
        "/v3/lease/grant": {"header": HEADER, "ID": "77", "TTL": "10"},
        "/v3/lease/keepalive": {"result": {"header": HEADER, "ID": "77", "TTL": "10"}},
        "/v3/lease/revoke": {"header": HEADER},
        "/v3/lease/timetolive": {"header": HEADER, "ID": "77", "TTL": "9",
                                 "grantedTTL": "10", "keys": [b64(b"L/77")]},
        "/v3/lock/lock": {"header": HEADER, "key": b64(b"L/77")},
        "/v3/kv/range": {"header": HEADER, "count": "1",
                         "kvs": [{**kv, "key": b64(b"L/77"), "value": ""}]},
        "/v3/lock/unlock": {"header": HEADER},
        "/v3/election/campaign": {"header": HEADER, "leader": {
            "name": b64(b"E"), "key": b64(b"E/77"), "rev": "40", "lease": "77"}},
        "/v3/election/proclaim": {"header": HEADER},
        "/v3/election/leader": {"header": HEADER, "kv": kv},
        "/v3/election/resign": {"header": HEADER},
    }
    return (200, answers[path]) if path in answers else None


def a_deferred(d: object) -> Deferred[Any]:
    assert isinstance(d, Deferred), f"{d!r} is not a Deferred"
    return d


def test_lease_lock_and_election_methods_yield_from_inline_callbacks() -> None:
    """Every awaitable of Lease, Lock and Election is a Deferred, so an
    ``inlineCallbacks`` generator can ``yield`` each one (Twisted's
    inlineCallbacks would also take a coroutine: the type is checked too)."""
    client, http, _ = make(small_etcd)
    seen: dict[str, Any] = {}

    @inlineCallbacks
    def use_all() -> Generator[Deferred[Any], Any, None]:
        lease = yield a_deferred(client.lease(10))
        seen["refresh"] = yield a_deferred(lease.refresh())
        seen["remaining"] = yield a_deferred(lease.remaining())
        seen["keys"] = yield a_deferred(lease.keys())
        yield a_deferred(lease.revoke())
        lock = client.lock(b"L")
        seen["token"] = yield a_deferred(lock.acquire())
        seen["held"] = lock.held
        yield a_deferred(lock.release())
        election = client.election(b"E")
        seen["leader_key"] = yield a_deferred(election.campaign(b"me"))
        yield a_deferred(election.proclaim(b"me"))
        seen["leader"] = yield a_deferred(election.leader())
        yield a_deferred(election.resign())

    assert outcome(use_all()) is None
    assert seen["refresh"] == 10 and seen["remaining"] == 9 and seen["keys"] == [b"L/77"]
    assert seen["token"] == 40 and seen["held"]
    assert seen["leader_key"].key == b"E/77" and seen["leader"].value == b"me"
    assert http.paths() == [
        "/v3/lease/grant", "/v3/lease/keepalive", "/v3/lease/timetolive",
        "/v3/lease/timetolive", "/v3/lease/revoke",
        "/v3/lease/grant", "/v3/lock/lock", "/v3/kv/range", "/v3/lock/unlock",
        "/v3/lease/revoke",
        "/v3/lease/grant", "/v3/election/campaign", "/v3/election/proclaim",
        "/v3/election/leader", "/v3/election/resign", "/v3/lease/revoke"]


@pytest.mark.parametrize("kind", ["lock", "election"])
def test_cancelling_an_inline_callbacks_caller_cancels_the_wait(kind: str) -> None:
    """Cancelling the Deferred of an ``inlineCallbacks`` generator that yielded
    acquire()/campaign() reaches the waiting request and revokes its lease."""
    client, http, clock = make(lease_then_hang)

    @inlineCallbacks
    def wait() -> Generator[Deferred[Any], Any, Any]:
        if kind == "lock":
            return (yield a_deferred(client.lock(b"L").acquire()))
        return (yield a_deferred(client.election(b"E").campaign(b"me")))

    d = wait()
    assert len(http.posts) == 2
    d.cancel()
    assert_cancelled(d)
    assert http.posts[1].cancelled
    assert [p.path for p in http.posts[2:]] == ["/v3/lease/revoke"]
    assert_nothing_more(http, clock, 3)
