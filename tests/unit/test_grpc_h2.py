"""etcdwamp.grpc.h2.H2Connection against the ``h2`` library as the server peer, in memory
(a cross-implementation check), and against hand-made frames for the edge cases."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hpack import Encoder  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from etcdwamp.errors import Busy, InvalidRequest, ProtocolError
from etcdwamp.grpc.h2 import (
    PREFACE,
    ConnectionDraining,
    Data,
    ErrorCode,
    Event,
    GoAway,
    H2Connection,
    H2ProtocolError,
    H2Stream,
    PingAcknowledged,
    Reset,
    Response,
    StreamClosed,
    StreamLimitReached,
    Trailers,
)

PATH = b"/etcdserverpb.KV/Range"
OK_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


class Server:
    """An ``h2`` server connection wired to one of our clients in memory."""

    def __init__(self, client: H2Connection, **settings: int) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings({getattr(h2.settings.SettingCodes, name.upper()): value
                                       for name, value in settings.items()})
        self.client = client
        self.events: list[Any] = []  # the server's
        self.client_events: list[Event] = []
        self.pump(client.initiate())

    def pump(self, to_server: bytes = b"") -> list[Event]:
        """Deliver bytes both ways until both sides are quiet; the client's new events."""
        new: list[Event] = []
        while True:
            if to_server:
                for event in self.conn.receive_data(to_server):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        # The server consumes at once, as a gRPC server does.
                        self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                            event.stream_id)
            to_client = self.conn.data_to_send()
            if not to_client:
                break
            events, to_server = self.client.receive(to_client)
            new += events
        self.client_events += new
        return new

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def body(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.of(h2.events.DataReceived)
                        if e.stream_id == stream_id)

    def answer(self, stream_id: int, body: bytes = b"\0\0\0\0\0") -> list[Event]:
        self.conn.send_headers(stream_id, RESPONSE_HEADERS)
        self.conn.send_data(stream_id, body)
        self.conn.send_headers(stream_id, OK_TRAILERS, end_stream=True)
        return self.pump()


def connected(**settings: int) -> tuple[H2Connection, Server]:
    client = H2Connection("127.0.0.1:2379")
    return client, Server(client, **settings)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IBI", len(payload) << 8 | kind, flags, stream_id) + payload


def frames_of(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, flags, payload) of each frame in ``data``."""
    found = []
    while data:
        length_kind, flags, _ = struct.unpack_from(">IBI", data)
        found.append((length_kind & 0xFF, flags, data[9:9 + (length_kind >> 8)]))
        data = data[9 + (length_kind >> 8):]
    return found


SERVER_SETTINGS = frame(0x4, 0, 0)


def raw_client() -> H2Connection:
    """A client that has seen the server's (empty) SETTINGS, for hand-made frames."""
    client = H2Connection("127.0.0.1:2379")
    client.initiate()
    events, out = client.receive(SERVER_SETTINGS)
    assert events == [] and out == frame(0x4, 0x1, 0)  # the ACK
    return client


def test_unary_call_round_trip() -> None:
    """A unary call reaches an h2 server as a gRPC POST with our headers and body, and
    its answer arrives as Response, Data, Trailers."""
    client, server = connected()
    stream_id, out = client.request(PATH, [(b"token", b"tok"), (b"grpc-timeout", b"5S")],
                                    b"\0\0\0\0\2\x0a\0")
    server.pump(out)
    [request] = server.of(h2.events.RequestReceived)
    assert request.stream_id == stream_id == 1
    assert request.headers == [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", PATH),
        (b":authority", b"127.0.0.1:2379"), (b"content-type", b"application/grpc"),
        (b"te", b"trailers"), (b"token", b"tok"), (b"grpc-timeout", b"5S"),
    ]
    assert server.body(1) == b"\0\0\0\0\2\x0a\0"
    assert server.of(h2.events.StreamEnded)[0].stream_id == 1
    events = server.answer(1, b"\0\0\0\0\1x")
    assert events == [Response(1, tuple(RESPONSE_HEADERS)), Data(1, b"\0\0\0\0\1x"),
                      Trailers(1, tuple(OK_TRAILERS))]
    assert client.open_streams == 0


class CallerStream(H2Stream):
    """A caller's own state of a stream, kept in the stream's object."""

    __slots__ = ("mine",)

    def __init__(self) -> None:
        super().__init__()
        self.mine = "kept"


def test_a_request_keeps_its_state_in_the_stream_object_it_is_given() -> None:
    """One object per stream: the caller's subclass holds the connection's state of
    the stream; flow control runs through it; one object opens one stream only."""
    client, server = connected(initial_window_size=3)
    mine = CallerStream()
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\2ab", stream=mine)
    assert mine.stream_id == stream_id == 1 and mine.mine == "kept"
    assert mine.pending, "what the window of 3 bytes did not admit waits in it"
    server.pump(out)
    assert server.body(1) == b"\0\0\0\0\2ab", "sent once the window opened"
    with pytest.raises(InvalidRequest):
        client.request(PATH, stream=mine)
    assert client.request(PATH)[0] == 3, "the refused request used no stream id"
    events = server.answer(1, b"\0\0\0\0\1x")
    assert Data(1, b"\0\0\0\0\1x") in events and client.open_streams == 1


def test_preface_settings_and_connection_window() -> None:
    """The preface disables push, and opens a 16 MiB window per stream and a 64 MiB
    connection window: the h2 server sees exactly that."""
    _client, server = connected()
    remote = server.conn.remote_settings
    assert remote[h2.settings.SettingCodes.ENABLE_PUSH] == 0
    assert remote[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 16 * 1024 * 1024
    assert server.conn.outbound_flow_control_window == 64 * 1024 * 1024
    assert server.of(h2.events.SettingsAcknowledged)  # the client acked the server's


def test_stream_ids_are_odd_and_increasing() -> None:
    """Each request opens the next odd stream id; several run at once."""
    client, server = connected()
    ids = [client.request(PATH, body=b"\0\0\0\0\0")[0] for _ in range(3)]
    assert ids == [1, 3, 5]
    assert client.open_streams == 3
    server.pump()


def test_trailers_only_answer_is_reported_as_trailers() -> None:
    """A HEADERS frame that ends the stream (gRPC's Trailers-Only error answer) is
    one Trailers event, with :status among the headers."""
    client, server = connected()
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0")
    server.pump(out)
    server.conn.send_headers(stream_id, [*RESPONSE_HEADERS, (b"grpc-status", b"11"),
                                         (b"grpc-message", b"etcdserver%3A%20compacted")],
                             end_stream=True)
    assert server.pump() == [Trailers(stream_id, (
        *RESPONSE_HEADERS, (b"grpc-status", b"11"),
        (b"grpc-message", b"etcdserver%3A%20compacted")))]
    assert client.open_streams == 0


def test_continuation_both_ways() -> None:
    """A header block larger than a frame goes as HEADERS + CONTINUATION, both ways."""
    client, server = connected()
    big = b"x" * 40_000
    stream_id, out = client.request(PATH, [(b"token", big)], b"\0\0\0\0\0")
    assert [(kind, flags) for kind, flags, _ in frames_of(out)] == [
        (0x1, 0), (0x9, 0), (0x9, 0x4), (0x0, 0x1)]  # HEADERS, CONTINUATION x2, DATA
    server.pump(out)
    [request] = server.of(h2.events.RequestReceived)
    assert (b"token", big) in request.headers
    server.conn.send_headers(stream_id, [*RESPONSE_HEADERS, (b"x-big", big)])
    sent = server.conn.data_to_send()
    assert sent[3] == 0x1 and not sent[4] & 0x4  # HEADERS without END_HEADERS
    events, _ = client.receive(sent)
    assert events == [Response(stream_id, (*RESPONSE_HEADERS, (b"x-big", big)))]


def test_flow_control_blocks_and_resumes_a_request() -> None:
    """A body larger than the server's 65,535-byte windows goes out as far as they
    allow, and the rest when the server's WINDOW_UPDATEs arrive."""
    client = H2Connection("127.0.0.1:2379")
    server = Server(client)
    body = bytes(range(256)) * 1000
    stream_id, out = client.request(PATH, body=body)
    assert len(out) < 65_535 + 9 * 8 + 200  # no more than the window (plus frame heads)
    server.pump(out)
    assert server.body(stream_id) == body
    assert server.of(h2.events.StreamEnded)


def test_send_is_buffered_until_the_window_opens() -> None:
    """``send`` on a streaming call returns what fits; the rest, and the end of the
    stream asked for meanwhile, come out of ``receive`` when the window opens."""
    client = raw_client()
    stream_id, out = client.request(PATH, end_stream=False)
    data = b"a" * 70_000
    out = client.send(stream_id, data)
    assert len(out) == 65_535 + 9 * 4  # 4 frames of at most 16,384 bytes
    assert client.send(stream_id, b"tail", end_stream=True) == b""
    with pytest.raises(StreamClosed):
        client.send(stream_id, b"more")
    # The connection window opens first: the stream's is still closed.
    _, out = client.receive(frame(0x8, 0, 0, struct.pack(">I", 100_000)))
    assert out == b""
    _, out = client.receive(frame(0x8, 0, stream_id, struct.pack(">I", 100_000)))
    assert out == frame(0x0, 0x1, stream_id, b"a" * (70_000 - 65_535) + b"tail")


def test_settings_raising_the_initial_window_resumes_blocked_streams() -> None:
    """A SETTINGS that raises INITIAL_WINDOW_SIZE opens every stream's window at once."""
    client = raw_client()
    client.receive(frame(0x8, 0, 0, struct.pack(">I", 1_000_000)))
    stream_id, out = client.request(PATH, body=b"b" * 65_600)
    assert out.endswith(b"b" * (65_535 - 3 * 16_384))
    _events, out = client.receive(frame(0x4, 0, 0, struct.pack(">HI", 0x4, 65_600)))
    assert out == frame(0x4, 0x1, 0) + frame(0x0, 0x1, stream_id, b"b" * 65)


def test_bigger_peer_frame_size_gives_bigger_frames() -> None:
    """The peer's MAX_FRAME_SIZE bounds our DATA frames: raised, 30 kB go in one."""
    client, server = connected(max_frame_size=32_768)
    _stream_id, out = client.request(PATH, body=b"c" * 30_000)
    server.pump(out)
    assert [len(e.data) for e in server.of(h2.events.DataReceived)] == [30_000]


def test_receive_windows_are_replenished() -> None:
    """Data past our windows arrives: we send WINDOW_UPDATE as half of a window is used."""
    client = H2Connection("127.0.0.1:2379", window_size=100_000,
                          connection_window_size=100_000)
    server = Server(client)
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0")
    server.pump(out)
    body = b"d" * 450_000
    server.conn.send_headers(stream_id, RESPONSE_HEADERS)
    sent = 0
    while sent < len(body):  # the h2 server sends what its view of our window allows
        room = min(server.conn.local_flow_control_window(stream_id), len(body) - sent)
        assert room > 0, "the client did not open its window"
        for start in range(sent, sent + room, 16_384):
            server.conn.send_data(stream_id, body[start:min(start + 16_384, sent + room)])
        sent += room
        server.pump()
    server.conn.send_headers(stream_id, OK_TRAILERS, end_stream=True)
    server.pump()
    got = b"".join(e.data for e in server.client_events if isinstance(e, Data))
    assert got == body
    assert isinstance(server.client_events[-1], Trailers)


def test_server_reset() -> None:
    """An RST_STREAM from the server is a Reset event and frees the stream."""
    client, server = connected()
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0")
    server.pump(out)
    server.conn.reset_stream(stream_id, error_code=ErrorCode.INTERNAL_ERROR)
    assert server.pump() == [Reset(stream_id, ErrorCode.INTERNAL_ERROR)]
    assert client.open_streams == 0
    with pytest.raises(StreamClosed):
        client.send(stream_id, b"x")


def test_cancel_sends_rst_and_drops_later_frames() -> None:
    """``cancel`` resets the stream (CANCEL); what the server had in flight for it is
    dropped quietly, though still counted in the connection window."""
    client = raw_client()
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    assert client.cancel(stream_id) == frame(0x3, 0, stream_id, struct.pack(">I", 8))
    assert client.cancel(stream_id) == b""
    assert client.open_streams == 0
    block = Encoder().encode(RESPONSE_HEADERS)
    late = (frame(0x1, 0x4, stream_id, block) + frame(0x0, 0, stream_id, b"late")
            + frame(0x3, 0, stream_id, struct.pack(">I", 0)))
    assert client.receive(late) == ([], b"")
    with pytest.raises(H2ProtocolError):  # a stream we never opened is another matter
        client.receive(frame(0x0, 0, 5, b"x"))


def test_cancel_with_h2_server() -> None:
    """The h2 server sees our cancel as a reset with CANCEL."""
    client, server = connected()
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0", end_stream=False)
    server.pump(out)
    server.pump(client.cancel(stream_id))
    [reset] = server.of(h2.events.StreamReset)
    assert (reset.stream_id, reset.error_code) == (stream_id, ErrorCode.CANCEL)


def test_goaway_refuses_streams_above_the_last_id() -> None:
    """GOAWAY: an event, streams above its last id are reset as REFUSED_STREAM, the rest
    may finish, and no new stream opens."""
    client, server = connected()
    first, out1 = client.request(PATH, body=b"\0\0\0\0\0")
    second, out2 = client.request(PATH, body=b"\0\0\0\0\0")
    server.pump(out1 + out2)
    server.conn.close_connection(error_code=0, additional_data=b"bye", last_stream_id=first)
    assert server.pump() == [GoAway(first, 0, b"bye"), Reset(second, ErrorCode.REFUSED_STREAM)]
    assert not client.can_open()
    with pytest.raises(ConnectionDraining):
        client.request(PATH)
    events, _ = client.receive(  # the stream below the last id still completes
        frame(0x1, 0x5, first, Encoder().encode([(b"grpc-status", b"0")])))
    assert events == [Trailers(first, ((b"grpc-status", b"0"),))]


def test_ping_both_ways() -> None:
    """A server PING is acknowledged with its bytes; our ping's ack is an event."""
    client, server = connected()
    server.conn.ping(b"12345678")
    server.pump()
    [ack] = server.of(h2.events.PingAckReceived)
    assert ack.ping_data == b"12345678"
    assert server.pump(client.ping(b"abcdefgh")) == [PingAcknowledged(b"abcdefgh")]
    with pytest.raises(InvalidRequest):
        client.ping(b"short")


def test_max_concurrent_streams_is_respected() -> None:
    """Past the server's MAX_CONCURRENT_STREAMS ``request`` raises StreamLimitReached (a
    Busy: nothing sent); when a stream ends a new one may open."""
    client, server = connected(max_concurrent_streams=1)
    assert client.peer_settings[0x3] == 1
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0")
    server.pump(out)
    assert not client.can_open()
    with pytest.raises(StreamLimitReached) as caught:
        client.request(PATH, body=b"\0\0\0\0\0")
    assert isinstance(caught.value, Busy)
    server.answer(stream_id)
    assert client.can_open()
    assert client.request(PATH, body=b"\0\0\0\0\0")[0] == stream_id + 2


def test_trailers_before_our_end_reset_our_half() -> None:
    """A server that ends a streaming call (trailers) while we still send: we reset our
    half with NO_ERROR, so the stream no longer counts."""
    client, server = connected()
    stream_id, out = client.request(PATH, body=b"\0\0\0\0\0", end_stream=False)
    server.pump(out)
    server.conn.send_headers(stream_id, [*RESPONSE_HEADERS, *OK_TRAILERS], end_stream=True)
    to_client = server.conn.data_to_send()
    events, out = client.receive(to_client)
    assert events == [Trailers(stream_id, (*RESPONSE_HEADERS, *OK_TRAILERS))]
    assert out == frame(0x3, 0, stream_id, struct.pack(">I", 0))
    assert client.open_streams == 0


def test_smaller_header_table_size_is_signalled() -> None:
    """A server that lowers HEADER_TABLE_SIZE gets a table size update at the start of
    our next header block, and decodes the block."""
    client, server = connected(header_table_size=0)
    _stream_id, out = client.request(PATH, body=b"\0\0\0\0\0")
    assert out[9] == 0x20
    server.pump(out)
    assert server.of(h2.events.RequestReceived)[0].headers[2] == (b":path", PATH)
    assert client.request(PATH)[1][9] != 0x20  # once


def test_padding_and_priority_are_stripped() -> None:
    """Padded DATA and padded HEADERS with the PRIORITY flag give the bare contents."""
    client = raw_client()
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    block = Encoder().encode(RESPONSE_HEADERS)
    headers = frame(0x1, 0x4 | 0x8 | 0x20, stream_id,
                    b"\3" + b"\0\0\0\0\x10" + block + b"\0\0\0")
    data = frame(0x0, 0x8, stream_id, b"\x04hello\0\0\0\0")
    events, _ = client.receive(headers + data)
    assert events == [Response(stream_id, tuple(RESPONSE_HEADERS)), Data(stream_id, b"hello")]
    with pytest.raises(H2ProtocolError):
        client.receive(frame(0x0, 0x8, stream_id, b"\x09abc"))


def test_continuation_hand_made_and_interrupted() -> None:
    """CONTINUATION frames join one block; any other frame between them is an error."""
    client = raw_client()
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    block = Encoder().encode([*RESPONSE_HEADERS, *OK_TRAILERS])
    frames = (frame(0x1, 0x1, stream_id, block[:3]) + frame(0x9, 0, stream_id, block[3:7])
              + frame(0x9, 0x4, stream_id, block[7:]))
    assert client.receive(frames)[0] == [Trailers(stream_id, (*RESPONSE_HEADERS,
                                                              *OK_TRAILERS))]
    other = raw_client()
    other.request(PATH, body=b"\0\0\0\0\0")
    with pytest.raises(H2ProtocolError):
        other.receive(frame(0x1, 0, 1, block[:3]) + frame(0x6, 0, 0, b"12345678"))


# One exchange, as an h2 server answers it, fed to fresh clients split anywhere.
def _exchange() -> tuple[bytes, list[Event]]:
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    client = H2Connection("127.0.0.1:2379")
    server.receive_data(client.initiate()
                        + client.request(PATH, [(b"token", b"t")], b"\0\0\0\0\0")[1])
    server.send_headers(1, RESPONSE_HEADERS)
    server.send_data(1, b"\0\0\0\0\3abc", pad_length=4)
    server.ping(b"pingpong")
    server.send_headers(1, OK_TRAILERS, end_stream=True)
    return server.data_to_send(), [Response(1, tuple(RESPONSE_HEADERS)),
                                   Data(1, b"\0\0\0\0\3abc"), Trailers(1, tuple(OK_TRAILERS))]


EXCHANGE, EXCHANGE_EVENTS = _exchange()


def _fresh() -> H2Connection:
    client = H2Connection("127.0.0.1:2379")
    client.initiate()
    client.request(PATH, [(b"token", b"t")], b"\0\0\0\0\0")
    return client


def test_split_at_every_byte() -> None:
    """Input split at any one point, or fed byte by byte, gives the same events and the
    same answer bytes."""
    whole_events, whole_out = _fresh().receive(EXCHANGE)
    assert whole_events == EXCHANGE_EVENTS
    for split in range(len(EXCHANGE) + 1):
        client = _fresh()
        first, out1 = client.receive(EXCHANGE[:split])
        second, out2 = client.receive(EXCHANGE[split:])
        assert (first + second, out1 + out2) == (whole_events, whole_out), split
    client = _fresh()
    events, out = [], b""
    for i in range(len(EXCHANGE)):
        got, more = client.receive(EXCHANGE[i:i + 1])
        events += got
        out += more
    assert (events, out) == (whole_events, whole_out)


@given(st.lists(st.integers(min_value=0, max_value=len(EXCHANGE)), max_size=12))
def test_split_anywhere(cuts: list[int]) -> None:
    """Any chunking of the exchange gives the same events."""
    client = _fresh()
    events: list[Event] = []
    bounds = [0, *sorted(cuts), len(EXCHANGE)]
    for start, end in itertools.pairwise(bounds):
        events += client.receive(EXCHANGE[start:end])[0]
    assert events == EXCHANGE_EVENTS


@pytest.mark.parametrize(("frames", "code"), [
    (frame(0x0, 0, 0, b"x" * 16_385), ErrorCode.FRAME_SIZE_ERROR),
    (frame(0x5, 0x4, 1, b"\0\0\0\2"), ErrorCode.PROTOCOL_ERROR),  # PUSH_PROMISE
    (frame(0x1, 0x4, 1, b"\xff\xff\xff\x7f"), ErrorCode.COMPRESSION_ERROR),
    (frame(0x0, 0, 1, b"body"), ErrorCode.PROTOCOL_ERROR),  # DATA before HEADERS
    (frame(0x1, 0x4, 2, b"\x88"), ErrorCode.PROTOCOL_ERROR),  # an even stream
    (frame(0x4, 0, 0, b"\0\4\x80\0\0\0"), ErrorCode.FLOW_CONTROL_ERROR),
    (frame(0x4, 0, 0, b"\0\5\0\0\0\1"), ErrorCode.PROTOCOL_ERROR),  # MAX_FRAME_SIZE 1
    (frame(0x4, 0, 0, b"\0\4\0"), ErrorCode.FRAME_SIZE_ERROR),
    (frame(0x6, 0, 0, b"1234"), ErrorCode.FRAME_SIZE_ERROR),
    (frame(0x8, 0, 0, b"\0\0\0\0"), ErrorCode.PROTOCOL_ERROR),
    (frame(0x8, 0, 0, b"\x7f\xff\xff\xff"), ErrorCode.FLOW_CONTROL_ERROR),
    (frame(0x7, 0, 0, b"\0\0"), ErrorCode.FRAME_SIZE_ERROR),
    (frame(0x3, 0, 0, b"\0\0\0\0"), ErrorCode.PROTOCOL_ERROR),
    (frame(0x9, 0x4, 1, b"\x88"), ErrorCode.PROTOCOL_ERROR),  # CONTINUATION alone
])
def test_protocol_errors(frames: bytes, code: ErrorCode) -> None:
    """Each violation raises H2ProtocolError (a ProtocolError) with its error code."""
    client = raw_client()
    client.request(PATH, body=b"\0\0\0\0\0")
    with pytest.raises(H2ProtocolError) as caught:
        client.receive(frames)
    assert caught.value.error_code == code
    assert isinstance(caught.value, ProtocolError)


def test_first_frame_must_be_settings() -> None:
    """A server that does not start with SETTINGS is not speaking HTTP/2 to us."""
    client = H2Connection("127.0.0.1:2379")
    client.initiate()
    with pytest.raises(H2ProtocolError, match="does not speak HTTP/2"):
        client.receive(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_zero_window_update_on_a_stream_resets_only_it() -> None:
    """A zero WINDOW_UPDATE for a stream is a stream error: RST_STREAM and a Reset."""
    client = raw_client()
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    events, out = client.receive(frame(0x8, 0, stream_id, b"\0\0\0\0"))
    assert events == [Reset(stream_id, ErrorCode.PROTOCOL_ERROR)]
    assert out == frame(0x3, 0, stream_id, struct.pack(">I", 1))
    assert client.can_open()


@pytest.mark.parametrize("header", [
    (b"Token", b"x"), (b":path", b"/x"), (b"connection", b"close"), (b"te", b"gzip"),
    (b"token", b"a\r\nb"), (b"", b"x"),
])
def test_bad_headers_are_refused_before_anything_is_sent(header: tuple[bytes, bytes]) -> None:
    """A header HTTP/2 forbids is an InvalidRequest, and no stream id is used."""
    client = raw_client()
    with pytest.raises(InvalidRequest):
        client.request(PATH, [header])
    assert client.open_streams == 0
    assert client.request(PATH)[0] == 1


def test_preface_bytes() -> None:
    """The client speaks first: the fixed preface, then SETTINGS and WINDOW_UPDATE."""
    out = H2Connection("h:1").initiate()
    assert out.startswith(PREFACE)
    assert out[len(PREFACE) + 3] == 0x4
    assert out[-13 + 3] == 0x8


def test_same_header_block_after_a_table_change() -> None:
    """A block of table references decodes to what the table holds now: the decoded
    blocks kept for etcd's repeated answers are dropped when a block changes the table."""
    client = raw_client()
    first, _ = client.request(PATH, body=b"\0\0\0\0\0")
    second, _ = client.request(PATH, body=b"\0\0\0\0\0")
    index_62 = b"\xbe"  # the newest entry of the dynamic table
    events, _ = client.receive(
        frame(0x1, 0x4, first, b"\x40\x03x-a\x011")  # literal with indexing: x-a: 1
        + frame(0x1, 0x5, first, index_62)
        + frame(0x1, 0x4, second, b"\x40\x03x-b\x012")  # x-b: 2 is now entry 62
        + frame(0x1, 0x5, second, index_62))
    assert events == [Response(first, ((b"x-a", b"1"),)), Trailers(first, ((b"x-a", b"1"),)),
                      Response(second, ((b"x-b", b"2"),)),
                      Trailers(second, ((b"x-b", b"2"),))]


def test_bytearray_and_memoryview_input() -> None:
    """Input as a bytearray or memoryview gives events that hold bytes."""
    for kind in (bytearray, memoryview):
        client = _fresh()
        events, _ = client.receive(kind(EXCHANGE))
        assert events == EXCHANGE_EVENTS
        assert all(type(e.data) is bytes for e in events if isinstance(e, Data))


def test_close_sends_goaway_and_opens_no_more_streams() -> None:
    """``close`` is a GOAWAY the h2 server sees; afterwards ``request`` raises
    ConnectionDraining and sends nothing."""
    client, server = connected()
    server.pump(client.close(ErrorCode.PROTOCOL_ERROR, b"why"))
    [ended] = server.of(h2.events.ConnectionTerminated)
    assert (ended.error_code, ended.additional_data) == (ErrorCode.PROTOCOL_ERROR, b"why")
    assert not client.can_open()
    with pytest.raises(ConnectionDraining):
        client.request(PATH)


@given(window=st.integers(min_value=512, max_value=70_000),
       frame_size=st.integers(min_value=16_384, max_value=40_000),
       streams=st.lists(st.lists(st.integers(min_value=0, max_value=50_000), min_size=1,
                                 max_size=4), min_size=1, max_size=4))
def test_streaming_sends_arrive_whole_under_any_windows(
        window: int, frame_size: int, streams: list[list[int]]) -> None:
    """Whatever the server's stream window and frame size, the messages of several
    streaming calls, sent interleaved, reach the h2 server whole and in order, each
    stream ended once."""
    client, server = connected(initial_window_size=window, max_frame_size=frame_size)
    sent: dict[int, bytes] = {}
    ids = []
    for number, sizes in enumerate(streams):
        stream_id, out = client.request(PATH, end_stream=False)
        server.pump(out)
        ids.append((stream_id, [bytes([number]) * size for size in sizes]))
        sent[stream_id] = b""
    for position in range(max(len(chunks) for _, chunks in ids)):
        for stream_id, chunks in ids:
            if position < len(chunks):
                last = position == len(chunks) - 1
                server.pump(client.send(stream_id, chunks[position], end_stream=last))
                sent[stream_id] += chunks[position]
    for stream_id, body in sent.items():
        assert server.body(stream_id) == body
    assert sorted(e.stream_id for e in server.of(h2.events.StreamEnded)) == sorted(sent)
    assert all(len(e.data) <= frame_size for e in server.of(h2.events.DataReceived))


def test_header_list_size_limit() -> None:
    """A header list above ``max_header_list_size`` is refused (the HPACK state is lost
    with it, so the connection is); so is a CONTINUATION run far beyond it."""
    client = H2Connection("127.0.0.1:2379", max_header_list_size=200)
    client.initiate()
    client.receive(SERVER_SETTINGS)
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    with pytest.raises(H2ProtocolError) as caught:
        client.receive(frame(0x1, 0x4, stream_id, Encoder().encode([(b"x-big", b"v" * 300)])))
    assert caught.value.error_code == ErrorCode.COMPRESSION_ERROR
    client = H2Connection("127.0.0.1:2379", max_header_list_size=200)
    client.initiate()
    client.receive(SERVER_SETTINGS)
    stream_id, _ = client.request(PATH, body=b"\0\0\0\0\0")
    with pytest.raises(H2ProtocolError) as caught:
        client.receive(frame(0x1, 0, stream_id, b"\0" * 300)
                       + frame(0x9, 0, stream_id, b"\0" * 3000))
    assert caught.value.error_code == ErrorCode.ENHANCE_YOUR_CALM


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10), st.integers(0, 255),
                          st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
                          st.binary(max_size=40)), max_size=8))
def test_any_frames_give_events_or_a_protocol_error(
        frames: list[tuple[int, int, int, bytes]]) -> None:
    """Whatever frames a peer sends, ``receive`` returns events or raises
    H2ProtocolError: never another exception (IndexError, struct.error, ...)."""
    client = raw_client()
    client.request(PATH, body=b"\0\0\0\0\0")
    client.request(PATH, body=b"\0\0\0\0\0", end_stream=False)
    try:
        for kind, flags, stream_id, payload in frames:
            client.receive(frame(kind, flags, stream_id, payload))
    except H2ProtocolError:
        pass
