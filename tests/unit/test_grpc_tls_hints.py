"""What a gRPC connection's ConnectFailed says when the peer did not answer HTTP/2:
the hints of etcdwamp/grpc/tls_hints.py, and GrpcConnection adding them only for a
connection that was made and ended before the peer's SETTINGS."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.sockets import _TwistedProtocol
from etcdwamp.grpc.tls_hints import NO_TLS_HINT, TLS_THERE_HINT, answer_hint, handshake_met_no_tls

ENDPOINT = "http://127.0.0.1:2379"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
TLS_ALERT = b"\x15\x03\x01\x00\x02\x02\x46"  # protocol_version, fatal
HTTP1_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
HTTP1_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                b"Client sent an HTTP request to an HTTPS server.\n")


class Pipe:
    def __init__(self) -> None:
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def failure_of(conn: GrpcConnection) -> str:
    box: list[Any] = []
    conn.ready.addBoth(box.append)
    assert box and isinstance(box[0], Failure), "ready has not failed"
    assert isinstance(box[0].value, errors.ConnectFailed)
    return str(box[0].value)


def made(scheme: str = "http") -> GrpcConnection:
    conn = GrpcConnection("127.0.0.1:2379", scheme=scheme, endpoint=ENDPOINT)
    conn.connection_made(Pipe())
    return conn


@pytest.mark.parametrize(("scheme", "first", "says"), [
    ("http", None, TLS_THERE_HINT),
    ("https", None, ""),
    ("http", TLS_ALERT, "it answered in TLS: an endpoint that serves TLS needs https://"),
    ("https", TLS_ALERT, ""),
    ("http", HTTP1_TO_TLS, "that it serves TLS: such an endpoint needs https://"),
    ("http", HTTP1_BAD, "it answered HTTP/1, not HTTP/2: not an etcd client port?"),
    ("https", HTTP1_BAD, "it answered HTTP/1, not HTTP/2: not an etcd client port?"),
    ("http", b"SSH-2.0-OpenSSH_9.2\r\n", ""),
])
def test_answer_hint_names_what_the_first_bytes_were(scheme: str, first: bytes | None,
                                                     says: str) -> None:
    hint = answer_hint(scheme, first)
    assert (says in hint) if says else hint == ""


@pytest.mark.parametrize(("exc", "no_tls"), [
    (None, True),
    (ConnectionResetError(), True),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), True),
    (SSL.Error([("SSL routines", "", "wrong version number")]), True),
    (SSL.Error([("SSL routines", "", "packet length too long")]), True),
    (SSL.Error([("SSL routines", "", "certificate verify failed")]), False),
    (SSL.Error([("SSL routines", "", "tls alert bad certificate")]), False),
    (SSL.Error([]), False),
    (ValueError("other"), False),
])
def test_handshake_met_no_tls_only_for_hang_ups_and_non_tls_bytes(exc: BaseException | None,
                                                                  no_tls: bool) -> None:
    if isinstance(exc, ssl.SSLEOFError):
        exc.reason = "UNEXPECTED_EOF_WHILE_READING"  # as the ssl module sets it
    assert handshake_met_no_tls(exc) is no_tls


def test_a_cleartext_connection_closed_without_a_word_asks_for_tls() -> None:
    conn = made()
    conn.connection_lost("Connection was closed cleanly.")
    assert failure_of(conn) == (f"cannot connect to {ENDPOINT}: no HTTP/2 answer"
                                f"{TLS_THERE_HINT}: Connection was closed cleanly.")


@pytest.mark.parametrize(("answer", "says", "at_once"), [
    (TLS_ALERT, "it answered in TLS", False), (HTTP1_TO_TLS, "that it serves TLS", True),
    (HTTP1_BAD, "it answered HTTP/1, not HTTP/2", True)])
def test_a_peer_answering_tls_or_http1_is_named(answer: bytes, says: str,
                                                at_once: bool) -> None:
    """HTTP/1 breaks HTTP/2 at once; a TLS alert is shorter than a frame header, so
    the connection waits for more until the peer hangs up."""
    conn = made()
    conn.data_received(answer)
    assert conn.ready.called is at_once
    if not at_once:
        conn.connection_lost("Connection was closed cleanly.")
    message = failure_of(conn)
    assert says in message, message
    expected = (f"cannot connect to {ENDPOINT}: {ENDPOINT} broke HTTP/2 (" if at_once
                else f"cannot connect to {ENDPOINT}: no HTTP/2 answer (")
    assert message.startswith(expected), message


def test_no_hint_when_the_socket_never_connected_or_etcd_spoke_http2() -> None:
    never = GrpcConnection("127.0.0.1:2379", endpoint=ENDPOINT)
    never.connection_lost("Connection refused")
    assert failure_of(never) == f"cannot connect to {ENDPOINT}: Connection refused"
    spoke = made()
    spoke.data_received(SETTINGS)
    assert spoke.ready.called
    spoke.connection_lost("Connection was closed cleanly.")  # later: calls fail, no hint
    assert spoke._lost is not None and "TLS" not in str(spoke._lost)


@pytest.mark.parametrize(("reason", "handshake_done", "hinted"), [
    (Failure(ConnectionLost()), False, True),
    (Failure(SSL.Error([("SSL routines", "", "wrong version number")])), False, True),
    (Failure(SSL.Error([("SSL routines", "", "certificate verify failed")])), False, False),
    (Failure(ConnectionLost()), True, False),
])
def test_twisted_sockets_name_an_https_handshake_that_met_no_tls(
        reason: Failure, handshake_done: bool, hinted: bool) -> None:
    conn = made("https")
    protocol = _TwistedProtocol(conn)
    if handshake_done:
        protocol.handshakeCompleted()
    protocol.connectionLost(reason)
    message = failure_of(conn)
    assert (f"the TLS handshake failed{NO_TLS_HINT}: " in message) is hinted, message
    assert TLS_THERE_HINT not in message
