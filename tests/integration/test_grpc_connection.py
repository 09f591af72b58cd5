"""GrpcConnection over real sockets (Twisted's and asyncio's) against a real etcd:
unary calls multiplexed on one connection, a streaming Watch, cancellation that resets
the stream at once, a gRPC error status as the gateway's exception, and a stopped
member failing the calls in flight with ConnectionLost and new ones with ConnectFailed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from loops import LOOPS, ensure
from test_grpc_h2_etcd import field, fields, varint
from twisted.internet.defer import CancelledError

from etcdwamp import errors
from etcdwamp._deferred import Dual
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.sockets import connect_asyncio, connect_twisted
from etcdwamp.testing import EtcdCluster

pytestmark = pytest.mark.integration

PUT = b"/etcdserverpb.KV/Put"
RANGE = b"/etcdserverpb.KV/Range"
WATCH = b"/etcdserverpb.Watch/Watch"


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(loop: str, endpoint: str) -> Dual[GrpcConnection]:
    if loop == "asyncio":
        return connect_asyncio(endpoint, timeout=5)
    from twisted.internet import reactor
    return connect_twisted(reactor, endpoint, timeout=5)


def values_of(range_answer: bytes) -> list[bytes]:
    out = []
    for number, kv in fields(range_answer):
        if number == 2:  # kvs
            assert isinstance(kv, bytes)
            out += [v for n, v in fields(kv) if n == 5 and isinstance(v, bytes)]
    return out


@ensure
async def test_calls_share_one_connection(etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    conn = await connect(loop, etcd.url)
    try:
        puts = [conn.unary(PUT, field(1, prefix + b"%03d" % i) + field(2, b"v%d" % i))
                for i in range(50)]
        assert conn.in_flight == 50  # all at once, one connection
        for put in puts:
            await put
        answer = await conn.unary(RANGE, field(1, prefix) + field(2, prefix + b"\xff"))
        assert values_of(answer) == [b"v%d" % i for i in range(50)]
        assert conn.in_flight == 0
    finally:
        conn.close()


@ensure
async def test_an_error_status_is_the_gateways_exception(
        etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    conn = await connect(loop, etcd.url)
    try:
        # A range at a future revision: etcd's "required revision is a future revision".
        d = conn.unary(RANGE, field(1, prefix) + varint(4 << 3) + varint(10**9))
        with pytest.raises(errors.EtcdError) as caught:
            await d
        assert "future revision" in str(caught.value)
        assert conn.usable  # the connection carries on
    finally:
        conn.close()


@ensure
async def test_a_watch_streams_and_cancelling_it_resets_the_stream(
        etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    conn = await connect(loop, etcd.url)
    try:
        got: list[bytes] = []
        arrived: list[Dual[None]] = [Dual()]

        def on_message(message: bytes) -> None:
            got.append(message)
            if not arrived[0].called:
                arrived[0].callback(None)

        create = field(1, field(1, prefix) + field(2, prefix + b"\xff"))  # create_request
        stream = conn.stream(WATCH, on_message, first=create)
        await arrived[0]  # created
        arrived[0] = Dual()
        await conn.unary(PUT, field(1, prefix + b"k") + field(2, b"hello"))
        await arrived[0]  # the event
        event_message = got[-1]
        assert b"hello" in event_message
        stream.cancel()
        # Each loop's own CancelledError.
        with pytest.raises(asyncio.CancelledError if loop == "asyncio" else CancelledError):
            await stream.finished
        assert conn.in_flight == 0
        # Later calls on the same connection still work.
        answer = await conn.unary(RANGE, field(1, prefix + b"k"))
        assert values_of(answer) == [b"hello"]
    finally:
        conn.close()


@ensure
async def test_a_stopped_member_fails_calls_in_flight_then_refuses_new_ones(
        etcd_factory: Callable[..., EtcdCluster], loop: str, prefix: bytes) -> None:
    cluster = etcd_factory(1)
    conn = await connect(loop, cluster.url)
    watching = conn.stream(WATCH, lambda m: None,
                           first=field(1, field(1, prefix) + field(2, prefix + b"\xff")))
    cluster.members[0].stop()
    with pytest.raises(errors.ConnectionLost):
        await watching.finished
    assert not conn.usable
    with pytest.raises(errors.ConnectFailed):
        conn.unary(RANGE, field(1, prefix))
    with pytest.raises(errors.ConnectFailed):
        await connect(loop, cluster.url)


def test_endpoints_must_be_http_urls_with_a_port() -> None:
    from etcdwamp.grpc.sockets import authority_of
    assert authority_of("http://127.0.0.1:2379") == ("http", "127.0.0.1", 2379,
                                                      "127.0.0.1:2379")
    assert authority_of("https://[::1]:2379")[3] == "[::1]:2379"
    for bad in ("127.0.0.1:2379", "ftp://h:1", "http://h"):
        with pytest.raises(errors.InvalidRequest):
            authority_of(bad)


