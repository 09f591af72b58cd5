"""GrpcConnection's bookkeeping, against the ``h2`` library as the server in memory:
how calls end (answer, gRPC error, reset, refusal, connection loss, a broken peer),
cancellation, a consumer that raises, and a GOAWAY."""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from h2_frames import frame_types
from h2_peer import HEAD, OK, Peer
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.grpc.framing import frame


def outcome(d: Any) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the call has not ended"
    return box[0]


def test_a_unary_call_gets_its_one_message() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/etcdserverpb.KV/Range", b"req")
    peer.pump()
    [sid] = peer.requests
    peer.answer(sid, b"answer")
    assert outcome(d) == b"answer" and peer.conn.in_flight == 0


@pytest.mark.parametrize("cut", [1, 4, 5, 7])
def test_a_unary_answer_split_across_data_frames_is_reassembled(cut: int) -> None:
    peer = Peer()
    d = peer.conn.unary(b"/etcdserverpb.KV/Range", b"req")
    peer.pump()
    [sid] = peer.requests
    data = frame(b"answer")
    peer.server.send_headers(sid, HEAD)
    peer.server.send_data(sid, data[:cut])
    peer.pump()
    assert not d.called, "half an answer is no answer"
    peer.server.send_data(sid, data[cut:])
    peer.server.send_headers(sid, OK, end_stream=True)
    peer.pump()
    assert outcome(d) == b"answer" and peer.conn.in_flight == 0


@pytest.mark.parametrize("count", [0, 2])
def test_a_unary_answer_of_other_than_one_message_is_a_protocol_error(count: int) -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    peer.answer(peer.requests[0], *[b"x"] * count)
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(errors.ProtocolError)


def test_two_messages_in_one_data_frame_are_a_protocol_error_too() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    [sid] = peer.requests
    peer.server.send_headers(sid, HEAD)
    peer.server.send_data(sid, frame(b"one") + frame(b"two"))
    peer.server.send_headers(sid, OK, end_stream=True)
    peer.pump()
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(errors.ProtocolError)
    assert "2 messages" in str(failure.value)


def test_a_compressed_answer_fails_the_call_and_resets_its_stream() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    [sid] = peer.requests
    peer.server.send_headers(sid, HEAD)
    peer.server.send_data(sid, b"\1" + frame(b"zipped")[1:])
    peer.pump()
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(errors.ProtocolError)
    assert peer.reset == [sid] and peer.conn.in_flight == 0


def test_a_grpc_error_is_the_gateways_exception() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    peer.answer(peer.requests[0], trailers=[
        (b"grpc-status", b"5"), (b"grpc-message", b"etcdserver: requested lease not found")])
    failure = outcome(d)
    assert failure.check(errors.LeaseNotFound), failure


def test_cancel_resets_the_stream_at_once() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    d.cancel()
    assert outcome(d).check(CancelledError)
    peer.pump()
    assert peer.reset == peer.requests
    # A late answer for it is dropped quietly; the connection carries on.
    d2 = peer.conn.unary(b"/m", b"")
    peer.pump()
    peer.answer(peer.requests[1], b"ok")
    assert outcome(d2) == b"ok"


def test_refused_before_processing_is_connect_failed_else_connection_lost() -> None:
    peer = Peer()
    refused, reset = peer.conn.unary(b"/m", b""), peer.conn.unary(b"/m", b"")
    peer.pump()
    first, second = peer.requests
    peer.server.reset_stream(first, h2.errors.ErrorCodes.REFUSED_STREAM)
    peer.server.send_headers(second, HEAD)
    peer.server.reset_stream(second, h2.errors.ErrorCodes.INTERNAL_ERROR)
    peer.pump()
    assert outcome(refused).check(errors.ConnectFailed)
    assert outcome(reset).check(errors.ConnectionLost)


def test_losing_the_connection_fails_every_call_and_refuses_new_ones() -> None:
    peer = Peer()
    calls = [peer.conn.unary(b"/m", b"") for _ in range(3)]
    stream = peer.conn.stream(b"/s", lambda m: None)
    peer.conn.connection_lost("reset by peer")
    for d in [*calls, stream.finished]:
        assert outcome(d).check(errors.ConnectionLost)
    assert peer.conn.closed.called and not peer.conn.usable
    with pytest.raises(errors.ConnectFailed):
        peer.conn.unary(b"/m", b"")


def test_a_peer_breaking_http2_ends_the_connection() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.conn.data_received(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # bad
    assert outcome(d).check(errors.ConnectionLost)
    assert peer.pipe.closed
    assert 7 in frame_types(bytes(peer.pipe.out))  # a GOAWAY went out before closing


def test_a_stream_delivers_messages_and_a_raising_consumer_ends_only_its_stream() -> None:
    peer = Peer()
    got: list[bytes] = []

    def consumer(message: bytes) -> None:
        if message == b"bad":
            raise ValueError("consumer bug")
        got.append(message)

    stream = peer.conn.stream(b"/s", consumer, first=b"create")
    other = peer.conn.unary(b"/m", b"")
    peer.pump()
    sid, other_sid = peer.requests
    peer.server.send_headers(sid, HEAD)
    peer.server.send_data(sid, frame(b"one") + frame(b"two"))
    peer.pump()
    assert got == [b"one", b"two"]
    stream.send(b"more")
    peer.server.send_data(sid, frame(b"bad"))
    peer.pump()
    assert outcome(stream.finished).check(ValueError)
    assert peer.reset == [sid]
    peer.answer(other_sid, b"fine")
    assert outcome(other) == b"fine"


def test_after_a_goaway_no_new_calls_go_on_the_connection() -> None:
    peer = Peer()
    d = peer.conn.unary(b"/m", b"")
    peer.pump()
    # GOAWAY, last stream id = the call's, NO_ERROR (the server drains gracefully).
    peer.conn.data_received(struct.pack(">I", 8)[1:] + b"\x07\x00\x00\x00\x00\x00"
                            + struct.pack(">II", peer.requests[0], 0))
    assert not peer.conn.usable
    with pytest.raises(errors.ConnectFailed):
        peer.conn.unary(b"/m", b"")
    peer.answer(peer.requests[0], b"still answered")  # below the last id: runs to its end
    assert outcome(d) == b"still answered"
