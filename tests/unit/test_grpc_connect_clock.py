"""The gRPC transport's timers run on the injected clock, not on the reactor: the
connect timeout (TCP, TLS and etcd's SETTINGS together) and the liveness check after
a call timed out. A ``MemoryReactorClock`` stands in for the sockets and is never
advanced past a timeout; a separate ``task.Clock`` is the clock."""

from __future__ import annotations

from typing import Any

import pytest
from h2_frames import frame_types
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.client import Client
from etcdwamp.grpc.sockets import connect_twisted

ENDPOINT = "http://127.0.0.1:2379"
#: an empty SETTINGS frame: what an HTTP/2 server says first
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PING = 6


def outcome(d: Any) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0].value if isinstance(box[0], Failure) else box[0]


def accept(reactor: MemoryReactorClock) -> tuple[Any, StringTransport]:
    """Complete the TCP connection the client asked the reactor for."""
    factory = reactor.tcpClients[-1][2]
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2379))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_the_connect_timeout_runs_on_the_clock_and_stops_the_tcp_attempt() -> None:
    reactor, clock = MemoryReactorClock(), Clock()
    attempt = connect_twisted(reactor, ENDPOINT, timeout=2.0, clock=clock)
    assert reactor.tcpClients[0][3] is None, "the connector has no reactor timer of its own"
    reactor.advance(60)
    assert not attempt.called, "the reactor's time does not time the attempt"
    clock.advance(1.9)
    assert not attempt.called
    clock.advance(0.1)
    failed = outcome(attempt)
    assert isinstance(failed, errors.ConnectFailed)
    assert str(failed) == f"cannot connect to {ENDPOINT}: not connected within 2 s"
    assert reactor.connectors[0].stoppedConnecting


def test_a_socket_up_without_settings_times_out_on_the_clock_and_is_dropped() -> None:
    reactor, clock = MemoryReactorClock(), Clock()
    attempt = connect_twisted(reactor, ENDPOINT, timeout=2.0, clock=clock)
    _, transport = accept(reactor)
    assert not attempt.called
    clock.advance(2.0)
    failed = outcome(attempt)
    assert isinstance(failed, errors.ConnectFailed)
    assert str(failed) == f"cannot connect to {ENDPOINT}: no HTTP/2 answer within 2 s"
    assert transport.disconnected, "aborted: a peer that does not answer may never drain"


def test_the_attempt_settles_once_settings_arrive_and_its_timer_is_gone() -> None:
    reactor, clock = MemoryReactorClock(), Clock()
    attempt = connect_twisted(reactor, ENDPOINT, timeout=2.0, clock=clock)
    protocol, _ = accept(reactor)
    protocol.dataReceived(SETTINGS)
    assert outcome(attempt).usable
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("reach", ["connect", "answer"])
def test_the_clients_grpc_timers_run_on_its_clock(reach: str) -> None:
    """Through ``Client(transport="grpc", clock=...)``: a member that never connects
    fails the call by the clock's connect timeout; one that connects but never answers
    times the call out by the clock, then fails the PING check by the clock."""
    reactor, clock = MemoryReactorClock(), Clock()
    client = Client(reactor, ENDPOINT, transport="grpc", clock=clock, timeout=5.0,
                    connect_timeout=2.0, probe_interval=None)
    call = client.get(b"k")
    reactor.advance(60)
    assert not call.called, "nothing runs on the reactor's time"
    if reach == "connect":
        clock.advance(5.0)
        failed = outcome(call)
        assert isinstance(failed, errors.EtcdError)
        assert "not connected within 2 s" in str(failed)
        return
    protocol, transport = accept(reactor)
    protocol.dataReceived(SETTINGS)
    sent = transport.value()
    assert sent, "the call went out"
    clock.advance(5.0)
    assert isinstance(outcome(call), errors.EtcdError)
    assert PING in frame_types(transport.value()[len(sent):]), "the liveness check asks"
    assert not transport.disconnecting
    clock.advance(1.0)
    assert transport.disconnected, "no answer to the PING in time: dropped (aborted)"


def test_a_tls_endpoint_that_never_settles_names_the_handshake_too() -> None:
    # The handshake may be what never ended: asyncio calls a TLS connection made only
    # after it, Twisted once TCP is up; the message must not send the operator off to
    # look at ports and networks alone.
    reactor, clock = MemoryReactorClock(), Clock()
    attempt = connect_twisted(reactor, "https://127.0.0.1:2379", timeout=2.0, clock=clock)
    clock.advance(2.0)
    failed = outcome(attempt)
    assert isinstance(failed, errors.ConnectFailed)
    assert str(failed) == ("cannot connect to https://127.0.0.1:2379: "
                           "not connected (or no TLS handshake) within 2 s")
