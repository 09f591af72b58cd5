"""GrpcHTTP.exchange, the unary call behind the transport's HTTP seam, against the h2
library as the server in memory: the answer and a gRPC error as the gateway gives them,
cancellation before and after the call was sent, a replaced connection closed once its
last call ends, and an ended exchange freed without the cyclic garbage collector."""

from __future__ import annotations

import gc
import json
import struct
import weakref
from typing import Any

import pytest
from h2_frames import frame_types
from h2_peer import Peer as Server
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.gateway_frames import HTTP_BY_CODE
from etcdwamp.grpc.http import GrpcHTTP

ENDPOINT = "http://127.0.0.1:2379"
RANGE = "/v3/kv/range"
_PING = 6


def http_over(*servers: Server, clock: Clock | None = None) -> GrpcHTTP:
    """A GrpcHTTP whose connections to ENDPOINT are ``servers``' in turn."""
    queue = list(servers)

    def connect(endpoint: str) -> Deferred[GrpcConnection]:
        d: Deferred[GrpcConnection] = Deferred()
        d.callback(queue.pop(0).conn)
        return d

    return GrpcHTTP(connect, clock=clock)


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the exchange has not ended"
    return box[0].value if isinstance(box[0], Failure) else box[0]


def test_an_answer_comes_back_as_status_200_and_its_message() -> None:
    server = Server()
    http = http_over(server)
    d = http.exchange(ENDPOINT, RANGE, b"request", None)
    server.pump()
    [sid] = server.requests
    assert not d.called
    server.answer(sid, b"the answer")
    assert outcome(d) == (200, b"the answer")
    assert server.conn.in_flight == 0


def test_a_grpc_error_comes_back_as_the_gateways_error_answer() -> None:
    server = Server()
    http = http_over(server)
    d = http.exchange(ENDPOINT, RANGE, b"", None)
    server.pump()
    server.answer(server.requests[0], b"", trailers=[
        (b"grpc-status", b"5"), (b"grpc-message", b"etcdserver: requested lease not found")])
    status, content = outcome(d)
    assert status == HTTP_BY_CODE[5]
    assert json.loads(content) == {"code": 5, "message": "etcdserver: requested lease not found",
                                   "error": "etcdserver: requested lease not found"}


def test_cancelling_a_sent_exchange_resets_its_stream_and_asks_the_member_for_a_ping() -> None:
    server = Server()
    clock = Clock()
    http = http_over(server, clock=clock)
    d = http.exchange(ENDPOINT, RANGE, b"", None)
    server.pump()
    server.pipe.written.clear()
    d.cancel()
    assert isinstance(outcome(d), CancelledError)
    assert _PING in frame_types(bytes(server.pipe.written)), "the liveness check started"
    server.pump()
    assert server.reset == server.requests and server.conn.in_flight == 0
    clock.advance(1.0)
    assert server.pipe.ended == [], "the member answered the PING: the connection stays"
    again = http.exchange(ENDPOINT, RANGE, b"", None)
    server.pump()
    server.answer(server.requests[1], b"next")
    assert outcome(again) == (200, b"next")


def test_cancelling_before_the_connection_is_made_fails_with_connect_failed() -> None:
    abandoned: list[str] = []

    def connect(endpoint: str) -> Deferred[GrpcConnection]:
        return Deferred(lambda _: abandoned.append(endpoint))

    http = GrpcHTTP(connect)
    d = http.exchange(ENDPOINT, RANGE, b"", None)
    d.cancel()
    assert isinstance(outcome(d), errors.ConnectFailed), "nothing reached etcd"
    assert abandoned == [ENDPOINT], "the attempt nobody waits for is abandoned"


@pytest.mark.parametrize("end", ["answered", "cancelled"])
def test_a_replaced_connection_closes_when_its_last_call_ends(end: str) -> None:
    old, new = Server(), Server()
    http = http_over(old, new, clock=Clock())
    first = http.exchange(ENDPOINT, RANGE, b"", None)
    old.pump()
    # GOAWAY at the call's stream: it runs to its end, new calls go elsewhere.
    old.conn.data_received(struct.pack(">I", 8)[1:] + b"\x07\x00\x00\x00\x00\x00"
                           + struct.pack(">II", old.requests[0], 0))
    second = http.exchange(ENDPOINT, RANGE, b"", None)
    new.pump()
    assert new.requests and old.pipe.ended == [], "the old one still carries a call"
    if end == "answered":
        old.answer(old.requests[0], b"first")
        assert outcome(first) == (200, b"first")
    else:
        first.cancel()
        assert isinstance(outcome(first), CancelledError)
    assert old.pipe.ended == ["close"]
    new.answer(new.requests[0], b"second")
    assert outcome(second) == (200, b"second")


def test_an_ended_exchange_is_freed_without_the_garbage_collector() -> None:
    """Nothing of a finished call keeps a reference cycle: at 64 calls in flight every
    cycle left behind is work for the cyclic collector."""
    server = Server()
    http = http_over(server)
    gc.disable()
    try:
        d = http.exchange(ENDPOINT, RANGE, b"", None)
        server.pump()
        server.answer(server.requests[0], b"answer")
        assert outcome(d) == (200, b"answer")
        gone = weakref.ref(d)
        del d
        assert gone() is None
    finally:
        gc.enable()
