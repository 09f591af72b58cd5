"""etcdwamp.grpc.framing: gRPC message prefixes, the incremental decoder, and the status
in trailers mapped to the same exceptions as the gateway's error answers."""

from __future__ import annotations

import contextlib
import itertools
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdwamp import errors as e
from etcdwamp.grpc.framing import (
    MessageDecoder,
    MessageTooLarge,
    frame,
    grpc_status,
    status_error,
    whole_message,
)
from etcdwamp.wire.errors import error_from_response


def test_frame_prefix() -> None:
    """A message gets a zero flag byte and its length as 4 big-endian bytes."""
    assert frame(b"") == b"\0\0\0\0\0"
    assert frame(b"\x0a\x01a") == b"\0\0\0\0\3\x0a\x01a"
    assert frame(b"x" * 300)[:5] == b"\0\0\0\x01\x2c"


@given(st.lists(st.binary(max_size=40), max_size=6),
       st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_decoder_reassembles_messages_split_anywhere(messages: list[bytes],
                                                      cuts: list[int]) -> None:
    """Messages framed back to back and cut at any points come out whole, in order."""
    stream = b"".join(frame(m) for m in messages)
    decoder = MessageDecoder(max_message_size=100)
    got: list[bytes] = []
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(bounds):
        got += decoder.feed(stream[start:end])
    assert got == messages
    assert decoder.buffered == 0
    decoder.end()


@pytest.mark.parametrize("data", [
    frame(b"ab") + frame(b"c"),  # two messages
    frame(b"abc")[:-1],  # part of one
    frame(b"abc") + b"\0",  # one and the start of the next
    b"\1" + frame(b"abc")[1:],  # compressed
    frame(b"x" * 101),  # above the limit
    b"\0\0\0",  # not even a prefix
])
def test_whole_message_is_only_exactly_one_message_else_the_decoders(data: bytes) -> None:
    """The decoder-free read of a unary answer takes a frame of exactly one whole
    message, within the limit; anything else is left to the decoder."""
    assert whole_message(frame(b"abc"), 100) == b"abc"
    assert whole_message(frame(b""), 100) == b""
    assert whole_message(data, 100) is None


def test_decoder_keeps_a_partial_message() -> None:
    """A message cut short waits for the rest; a stream ending inside it is an error."""
    decoder = MessageDecoder(max_message_size=100)
    assert decoder.feed(frame(b"abc") + frame(b"hello")[:4]) == [b"abc"]
    assert decoder.buffered == 4
    with pytest.raises(e.ProtocolError):
        decoder.end()
    assert decoder.feed(frame(b"hello")[4:]) == [b"hello"]
    decoder.end()


def test_compressed_message_is_a_protocol_error() -> None:
    """We never negotiate compression, so a compressed message is the peer's error."""
    with pytest.raises(e.ProtocolError, match="compressed"):
        MessageDecoder(max_message_size=100).feed(b"\1\0\0\0\1x")
    with pytest.raises(e.ProtocolError):
        MessageDecoder(max_message_size=100).feed(b"\2\0\0\0\1x")


def test_message_above_the_limit_is_refused_from_its_prefix() -> None:
    """A message larger than the limit raises as soon as its prefix is read."""
    decoder = MessageDecoder(max_message_size=10)
    assert decoder.feed(frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(MessageTooLarge) as caught:
        decoder.feed(b"\0\0\0\0\x0b")
    assert (caught.value.size, caught.value.limit) == (11, 10)
    assert isinstance(caught.value, e.ProtocolError)


@pytest.mark.parametrize(("trailers", "expected"), [
    ([(b"grpc-status", b"0")], (0, "")),
    ([(b"grpc-status", b"11"),
      (b"grpc-message", b"etcdserver: mvcc: required revision has been compacted")],
     (11, "etcdserver: mvcc: required revision has been compacted")),
    ([(b"grpc-message", b"caf%C3%A9 50%25 %E2%82%AC"), (b"grpc-status", b"3")],
     (3, "café 50% €")),
    ([(b"grpc-status", b"2"), (b"grpc-message", b"bad %zz and %C3")], (2, "bad %zz and \ufffd")),
    ([(b":status", b"503")], (14, "HTTP status 503 without a gRPC status")),
    ([(b":status", b"404"), (b"grpc-message", b"nope")], (12, "nope")),
    ([(b":status", b"200")], (2, "the answer ended without a gRPC status")),
    ([], (2, "the answer ended without a gRPC status")),
])
def test_grpc_status(trailers: list[tuple[bytes, bytes]], expected: tuple[int, str]) -> None:
    """Status and percent-decoded message; without grpc-status, gRPC's HTTP mapping."""
    assert grpc_status(trailers) == expected


def test_malformed_grpc_status_is_a_protocol_error() -> None:
    """A grpc-status that is not a decimal number cannot be trusted either way."""
    with pytest.raises(e.ProtocolError):
        grpc_status([(b"grpc-status", b"OK")])


# etcd's errors as its gRPC server sends them (code, message); the gateway sends the
# same pair in its JSON body, so both transports must raise the same class.
ETCD_STATUSES = [
    (11, "etcdserver: mvcc: required revision has been compacted", e.RevisionCompacted),
    (11, "etcdserver: mvcc: required revision is a future revision", e.FutureRevision),
    (3, "etcdserver: too many operations in txn request", e.TooManyOps),
    (3, "etcdserver: request is too large", e.RequestTooLarge),
    (8, "grpc: received message larger than max (3145762 vs. 2097152)", e.RequestTooLarge),
    (3, "etcdserver: key is not provided", e.EmptyKey),
    (5, "etcdserver: requested lease not found", e.LeaseNotFound),
    (14, "etcdserver: no leader", e.NoLeader),
    (14, "etcdserver: request timed out", e.Unavailable),
    (8, "etcdserver: mvcc: database space exceeded", e.NoSpace),
    (16, "etcdserver: invalid auth token", e.Unauthenticated),
    (7, "etcdserver: permission denied", e.PermissionDenied),
    (1, "context canceled", e.ServerError),
]


@pytest.mark.parametrize(("code", "message", "cls"), ETCD_STATUSES)
def test_status_error_matches_the_gateway(code: int, message: str, cls: type) -> None:
    """A gRPC status becomes exactly the exception the gateway path raises for it."""
    err = status_error(code, message)
    assert type(err) is cls
    assert (err.code, err.message) == (code, message)
    gateway = error_from_response(400, json.dumps({"code": code, "message": message}).encode())
    assert type(gateway) is type(err)


def test_status_ok_is_no_error() -> None:
    """Status 0 has no exception: asking for one is a bug of the caller."""
    with pytest.raises(ValueError):
        status_error(0, "")


def test_large_message_in_many_pieces_takes_linear_time() -> None:
    """A 16 MiB message fed in 4 KiB pieces (4,096 DATA frames' worth) is read in time
    linear in its size. A buffer grown by concatenation would copy ~34 GB here
    (seconds); joining the pieces once takes milliseconds, so 1 s is a wide margin."""
    message = bytes(range(256)) * (16 * 4096)
    stream = frame(message) + frame(b"next")
    decoder = MessageDecoder(max_message_size=len(message))
    got: list[bytes] = []
    started = time.perf_counter()
    for start in range(0, len(stream), 4096):
        got += decoder.feed(stream[start:start + 4096])
    elapsed = time.perf_counter() - started
    assert got == [message, b"next"]
    assert decoder.buffered == 0
    assert elapsed < 1.0, f"{elapsed:.2f} s"


@given(st.binary(max_size=60), st.lists(st.tuples(
    st.sampled_from([b"grpc-status", b"grpc-message", b":status", b"x"]),
    st.binary(max_size=20)), max_size=4))
def test_garbage_gives_results_or_a_protocol_error(data: bytes,
                                                   trailers: list[tuple[bytes, bytes]]) -> None:
    """Any DATA bytes and any trailers give messages and a status, or ProtocolError."""
    with contextlib.suppress(e.ProtocolError):
        MessageDecoder(max_message_size=30).feed(data)
    try:
        code, message = grpc_status(trailers)
    except e.ProtocolError:
        return
    assert code >= 0 and isinstance(message, str)
