"""What HTTP failures mean, on both event loops (tests/integration/loops.py),
against real servers (refused and timed-out calls to a hung member are in
test_endpoints.py, cancellation in test_cancel.py).

A connection lost after the request was sent: recording proxies in front of a
real etcd (tests/integration/proxies.py) forward a request and then drop the
client's connection instead of passing etcd's answer back. The rules
(etcdwamp/client.py): the answer is unknown, so an idempotent request is sent
once more on the same endpoint (a pooled connection the server closed as it
was reused is the usual cause), then to the next endpoint; a write is not
re-sent anywhere and fails with ConnectionLost, an OutcomeUnknown, because
etcd may have applied it (here it did).

A member that cannot be reached at all (its SYNs go unanswered): the request
was never sent, so whether connecting outlasts ``connect_timeout`` or the
call's own timeout, it is ConnectFailed, and a write fails over like a read.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from loops import ensure, make_client
from proxies import RecordingProxy
from twisted.internet.defer import gatherResults
from waiting import until

from etcdwamp import errors as e
from etcdwamp._deferred import dual
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

RANGE, PUT = "/v3/kv/range", "/v3/kv/put"


@pytest.fixture
def proxy_factory(etcd: EtcdCluster) -> Iterator[Callable[[], RecordingProxy]]:
    """Recording proxies in front of the shared etcd (stopped after the test)."""
    made: list[RecordingProxy] = []

    def make() -> RecordingProxy:
        made.append(RecordingProxy(etcd.url))
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.stop()


def through(made: list[Client], loop: str, *proxies: RecordingProxy) -> Client:
    c = make_client(loop, endpoints=[p.url for p in proxies], api_prefix="/v3", timeout=10.0)
    made.append(c)
    return c


def first_only(path: str) -> Callable[[str, bytes], bool]:
    """A ``cut`` predicate picking the first request to ``path``."""
    picked: list[str] = []

    def cut(p: str, body: bytes) -> bool:
        if p == path and not picked:
            picked.append(p)
            return True
        return False

    return cut


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
@ensure
async def test_read_is_sent_once_more_after_losing_its_connection(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], client: Client,
        prefix: bytes, reset: bool) -> None:
    """etcd answered the get, the answer was lost on the way (the connection
    was reset, or closed cleanly): the get is sent again on the same endpoint
    and its second answer is the result."""
    await client.put(prefix + b"k", b"v")
    proxy = proxy_factory()
    proxy.cut = first_only(RANGE)
    proxy.cut_with_reset = reset
    reader = through(clients, client.framework, proxy)
    got = await reader.get(prefix + b"k")
    assert got.kvs[0].value == b"v"
    assert proxy.forwarded_paths == [RANGE, RANGE]
    assert proxy.cut_paths == [RANGE] and proxy.cut_answered == 1


@ensure
async def test_read_fails_over_after_losing_its_connection_twice(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], client: Client,
        prefix: bytes) -> None:
    """Both attempts on the first endpoint lose their answer: the third goes
    to the next endpoint, which then is the one calls go to first."""
    await client.put(prefix + b"k", b"v")
    lossy, healthy = proxy_factory(), proxy_factory()
    lossy.cut = lambda path, body: True
    reader = through(clients, client.framework, lossy, healthy)
    got = await reader.get(prefix + b"k")
    assert got.kvs[0].value == b"v"
    assert lossy.forwarded_paths == [RANGE, RANGE] and lossy.cut_answered == 2
    assert healthy.forwarded_paths == [RANGE]
    assert reader.endpoint == healthy.url


@ensure
async def test_read_that_loses_every_answer_is_connection_lost(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], loop: str,
        prefix: bytes) -> None:
    """One endpoint, every answer lost: the get is tried twice, then fails
    with ConnectionLost naming the endpoint."""
    proxy = proxy_factory()
    proxy.cut = lambda path, body: True
    reader = through(clients, loop, proxy)
    with pytest.raises(e.ConnectionLost) as info:
        await reader.get(prefix + b"k")
    assert info.value.endpoint == proxy.url
    assert proxy.forwarded_paths == [RANGE, RANGE] and proxy.cut_answered == 2


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
@ensure
async def test_write_that_loses_its_answer_is_outcome_unknown_and_not_resent(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], client: Client,
        prefix: bytes, reset: bool) -> None:
    """etcd applied the put, its answer was lost: the caller gets
    ConnectionLost (an OutcomeUnknown), and neither endpoint sees the put again."""
    lossy, healthy = proxy_factory(), proxy_factory()
    lossy.cut = first_only(PUT)
    lossy.cut_with_reset = reset
    writer = through(clients, client.framework, lossy, healthy)
    with pytest.raises(e.ConnectionLost) as info:
        await writer.put(prefix + b"k", b"v")
    assert isinstance(info.value, e.OutcomeUnknown)
    assert info.value.endpoint == lossy.url
    assert lossy.cut_answered == 1  # etcd did answer: the write was applied
    assert (await client.get(prefix + b"k")).kvs[0].value == b"v"
    assert lossy.forwarded_paths == [PUT]
    assert healthy.forwarded_paths == []
    # The endpoint itself is fine: the next call goes there again and succeeds.
    await writer.put(prefix + b"k", b"w")
    assert lossy.forwarded_paths == [PUT, PUT] and healthy.forwarded_paths == []


# -- a member that cannot be reached ---------------------------------------------------------

@pytest.fixture
def unreachable() -> Iterator[str]:
    """A loopback URL whose connections never complete: a listening socket that
    never accepts, its accept queue (``listen(0)``) filled by two connections
    of our own, so Linux drops every further SYN, as it would for a host gone
    from the network."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    fillers = []
    for _ in range(2):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    try:
        yield f"http://{address[0]}:{address[1]}"
    finally:
        for sock in [*fillers, server]:
            sock.close()


@ensure
async def test_connect_timeout_fails_a_write_over(
        unreachable: str, proxy_factory: Callable[[], RecordingProxy], clients: list[Client],
        client: Client, prefix: bytes) -> None:
    """Connecting to the first member outlasts ``connect_timeout``: the put was
    never sent, so it goes to the next member and succeeds."""
    proxy = proxy_factory()
    writer = make_client(client.framework, endpoints=[unreachable, proxy.url],
                         api_prefix="/v3", timeout=10.0, connect_timeout=0.3)
    clients.append(writer)
    await writer.put(prefix + b"k", b"v")
    assert proxy.forwarded_paths == [PUT]
    assert writer.endpoint == proxy.url
    assert (await client.get(prefix + b"k")).kvs[0].value == b"v"


@ensure
async def test_timeout_while_connecting_is_connect_failed(
        unreachable: str, clients: list[Client], loop: str, prefix: bytes) -> None:
    """The call's timeout runs out while still connecting (``connect_timeout``
    is longer): nothing was sent, so even a write is ConnectFailed, not the
    OutcomeUnknown of a request that went unanswered."""
    writer = make_client(loop, endpoints=[unreachable], api_prefix="/v3", timeout=0.3,
                         connect_timeout=30.0)
    clients.append(writer)
    with pytest.raises(e.ConnectFailed) as info:
        await writer.put(prefix + b"k", b"v")
    assert not isinstance(info.value, e.OutcomeUnknown)


# -- TLS spoken to a plain-HTTP server ------------------------------------------------------

@ensure
async def test_https_to_a_plain_http_etcd_says_no_tls_there(
        etcd: EtcdCluster, clients: list[Client], loop: str, prefix: bytes) -> None:
    """An ``https://`` endpoint that serves plain HTTP hangs up on the TLS
    handshake: the error is ConnectionLost saying what is wrong, in words."""
    wrong = make_client(loop, url=etcd.url.replace("http://", "https://"), timeout=5.0)
    clients.append(wrong)
    with pytest.raises(e.ConnectionLost) as info:
        await wrong.get(prefix + b"k")
    message = str(info.value)
    assert "no TLS there? an endpoint that serves plain HTTP needs http://" in message, message
    assert "Failure" not in message and "twisted" not in message, message


# -- the connection pool ------------------------------------------------------------------

@ensure
async def test_long_lived_requests_do_not_starve_the_others(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], client: Client,
        prefix: bytes) -> None:
    """``pool_size`` bounds the idle connections kept, not the requests in
    flight: with pool_size=1, a watch stream and a lock acquire waiting for
    its holder each hold a connection, and puts and gets still go through."""
    proxy = proxy_factory()
    lonely = make_client(client.framework, url=proxy.url, api_prefix="/v3", timeout=5.0,
                         pool_size=1)
    clients.append(lonely)
    watch = lonely.watch(prefix + b"w")
    await watch.created
    holder = client.lock(prefix + b"lock")
    await holder.acquire()
    waiter = lonely.lock(prefix + b"lock")
    waiting = waiter.acquire()
    try:
        await lonely.put(prefix + b"k", b"v")
        assert (await lonely.get(prefix + b"k")).kvs[0].value == b"v"
        assert not waiting.called
        await holder.release()
        await waiting
        assert waiter.held
        await waiter.release()
    finally:
        await watch.cancel()


@ensure
async def test_pool_keeps_at_most_pool_size_idle_connections(
        proxy_factory: Callable[[], RecordingProxy], clients: list[Client], loop: str,
        prefix: bytes) -> None:
    """Ten gets at once open ten connections; once they are answered, all but
    ``pool_size`` (2) of them are closed."""
    proxy = proxy_factory()
    reader = make_client(loop, url=proxy.url, api_prefix="/v3", timeout=5.0, pool_size=2)
    clients.append(reader)
    await dual(gatherResults([reader.get(prefix + b"%d" % i) for i in range(10)],
                             consumeErrors=True))
    assert proxy.peak_connections == 10
    await until(lambda: len(proxy.connections) <= 2,
                why=lambda: f"{len(proxy.connections)} connections stay open")
    assert len(proxy.connections) == 2
