"""How a gRPC connection ends from our side: the client's close sends a GOAWAY and
closes the socket only once it is sent (an abort would drop it unsent); a member that
went dark (no PING answer) or never answered is dropped at once; and GrpcHTTP.close
drops, after ``check_timeout`` on its clock, a socket that did not close."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from etcdwamp import errors
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.http import GrpcHTTP

ENDPOINT = "http://127.0.0.1:2379"


class Pipe:
    """A socket's write side: what was written, and how it was ended."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.ended: list[str] = []

    def write(self, data: bytes) -> None:
        assert not self.ended, "written after the end"
        self.out += data

    def close(self) -> None:
        self.ended.append("close")

    def abort(self) -> None:
        self.ended.append("abort")


def connected() -> tuple[GrpcConnection, Pipe, h2.connection.H2Connection]:
    """A connection whose peer (the h2 library as a server) sent its SETTINGS."""
    pipe = Pipe()
    conn = GrpcConnection("127.0.0.1:2379", endpoint=ENDPOINT)
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    conn.connection_made(pipe)
    server.receive_data(bytes(pipe.out))
    pipe.out.clear()
    conn.data_received(server.data_to_send())
    assert conn.ready.called
    server.receive_data(bytes(pipe.out))  # our SETTINGS acknowledgement
    pipe.out.clear()
    return conn, pipe, server


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return getattr(box[0], "value", box[0])


def test_close_sends_a_goaway_then_closes_the_socket_once_it_is_sent() -> None:
    conn, pipe, server = connected()
    call = conn.unary(b"/etcdserverpb.KV/Range", b"")
    conn.close()
    assert isinstance(outcome(call), errors.ConnectionLost), "calls fail at once"
    assert pipe.ended == ["close"], "a close that sends what was written, not an abort"
    events = server.receive_data(bytes(pipe.out))
    goodbyes = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert [g.error_code for g in goodbyes] == [h2.errors.ErrorCodes.NO_ERROR]
    assert not conn.closed.called, "closed once the socket is gone"
    conn.connection_lost("Connection was closed cleanly.")
    assert conn.closed.called


def test_abort_after_close_drops_a_socket_that_did_not_drain() -> None:
    conn, pipe, _ = connected()
    conn.close()
    conn.close(abort=True)
    assert pipe.ended == ["close", "abort"]
    conn.connection_lost("Connection lost.")
    conn.close(abort=True)  # gone: nothing more to drop
    assert pipe.ended == ["close", "abort"]


def test_a_member_that_does_not_answer_the_ping_is_dropped_without_a_goodbye() -> None:
    conn, pipe, server = connected()
    clock = Clock()
    conn.check_alive(clock, 1.0)
    ping = bytes(pipe.out)
    assert any(isinstance(e, h2.events.PingReceived) for e in server.receive_data(ping))
    clock.advance(1.0)
    assert pipe.ended == ["abort"], "its socket may never drain: dropped at once"
    assert bytes(pipe.out) == ping, "no GOAWAY written for it"


def test_grpc_http_close_drops_sockets_still_open_after_check_timeout() -> None:
    clock = Clock()
    conns: list[tuple[GrpcConnection, Pipe]] = []

    def connect(endpoint: str) -> Deferred[GrpcConnection]:
        conn, pipe, _ = connected()
        conns.append((conn, pipe))
        d: Deferred[GrpcConnection] = Deferred()
        d.callback(conn)
        return d

    http = GrpcHTTP(connect, clock=clock, check_timeout=1.0)
    outcome(http.connection(ENDPOINT))
    outcome(http.connection("http://127.0.0.2:2379"))
    (drains, drains_pipe), (stuck, stuck_pipe) = conns
    closing = http.close()
    assert drains_pipe.ended == stuck_pipe.ended == ["close"]
    drains.connection_lost("Connection was closed cleanly.")
    clock.advance(0.9)
    assert not closing.called and stuck_pipe.ended == ["close"]
    clock.advance(0.1)
    assert stuck_pipe.ended == ["close", "abort"] and drains_pipe.ended == ["close"]
    stuck.connection_lost("Connection lost.")
    assert closing.called


def test_grpc_http_close_leaves_no_timer_when_every_socket_closed_in_time() -> None:
    clock = Clock()
    made: list[GrpcConnection] = []

    def connect(endpoint: str) -> Deferred[GrpcConnection]:
        conn, _, _ = connected()
        made.append(conn)
        d: Deferred[GrpcConnection] = Deferred()
        d.callback(conn)
        return d

    http = GrpcHTTP(connect, clock=clock, check_timeout=1.0)
    outcome(http.connection(ENDPOINT))
    closing = http.close()
    made[0].connection_lost("Connection was closed cleanly.")
    assert closing.called and clock.getDelayedCalls() == []
