"""A sans-IO HTTP/2 client connection that carries gRPC calls (RFC 9113, RFC 7541).

Why our own and not the ``h2`` library: a general HTTP/2 state machine costs about
110 µs of client-side CPU per unary call, more than a whole gRPC call of another
Python etcd client. A gRPC client needs a small part of HTTP/2: POST requests on
client streams, flow control both ways, header blocks, and the control frames.

:class:`H2Connection` holds that part as pure state, in the style of h11: the caller
writes what :meth:`~H2Connection.initiate`, :meth:`~H2Connection.request`,
:meth:`~H2Connection.send` and :meth:`~H2Connection.cancel` return, and feeds what
it reads to :meth:`~H2Connection.receive`, which returns events and bytes to write.
Nothing here reads a socket, a clock or starts a thread.

Errors come in the two kinds h11 has: the peer broke HTTP/2 (:class:`H2ProtocolError`,
the connection is unusable), or the caller cannot do that now (:class:`StreamLimitReached`,
:class:`ConnectionDraining`, :class:`StreamClosed`; nothing was sent).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

try:
    from hpack import Decoder, HPACKError  # type: ignore[import-untyped]
    from hpack.table import HeaderTable  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("etcdwamp.grpc needs hpack: pip install 'etcdwamp[grpc]'") from exc

from ..errors import Busy, InvalidRequest, ProtocolError, TransportError

__all__ = [
    "ConnectionDraining",
    "Data",
    "ErrorCode",
    "Event",
    "GoAway",
    "H2Connection",
    "H2ProtocolError",
    "H2Stream",
    "Headers",
    "PingAcknowledged",
    "Reset",
    "Response",
    "StreamClosed",
    "StreamLimitReached",
    "Trailers",
]

#: a header list as it travels: (name, value) pairs of bytes, in order
Headers = tuple[tuple[bytes, bytes], ...]


class ErrorCode(enum.IntEnum):
    """HTTP/2 error codes (RFC 9113 section 7), as in RST_STREAM and GOAWAY."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class H2ProtocolError(ProtocolError):
    """The peer broke HTTP/2: drop the connection (after writing :meth:`H2Connection.close`'s
    bytes with :attr:`error_code`, as RFC 9113 asks).

    :ivar error_code: the :class:`ErrorCode` the violation calls for
    """

    def __init__(self, message: str, error_code: ErrorCode = ErrorCode.PROTOCOL_ERROR) -> None:
        super().__init__(f"HTTP/2 {error_code.name}: {message}")
        self.error_code = error_code


class StreamLimitReached(Busy):
    """The peer's ``MAX_CONCURRENT_STREAMS`` are all open: nothing was sent; queue the call
    until a stream ends (:meth:`H2Connection.can_open`)."""


class ConnectionDraining(TransportError):
    """The connection takes no new streams (GOAWAY received or sent, or stream ids used up):
    nothing was sent; open another connection."""


class StreamClosed(TransportError):
    """The stream cannot carry more data (ended, reset or never opened): nothing was sent."""


@dataclass(frozen=True, slots=True)
class Response:
    """The response headers of a stream (``:status``, ``content-type``, ...)."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class Data:
    """Body bytes of a stream (gRPC messages, split anywhere)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Trailers:
    """The end of a stream and its trailers (``grpc-status``, ...).

    A gRPC "Trailers-Only" answer (one HEADERS frame that ends the stream) is reported
    as Trailers only, with ``:status`` among them; a stream the peer ended with DATA
    has empty trailers.
    """

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class Reset:
    """The stream ended abnormally: the peer reset it, or it was above a GOAWAY's last
    stream id (then ``error_code`` is REFUSED_STREAM: the peer did not process it)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class GoAway:
    """The peer closes the connection: streams up to ``last_stream_id`` may still finish,
    no new stream may open."""

    last_stream_id: int
    error_code: int
    debug: bytes


@dataclass(frozen=True, slots=True)
class PingAcknowledged:
    """The peer answered a :meth:`H2Connection.ping` with these 8 bytes."""

    data: bytes


Event = Response | Data | Trailers | Reset | GoAway | PingAcknowledged

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PUSH_PROMISE, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9

_END_STREAM = 0x1
_ACK = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY_FLAG = 0x20

_HEADER_TABLE_SIZE, _ENABLE_PUSH, _MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
_INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE, _MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

_MAX_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65_535
_DEFAULT_FRAME_SIZE = 16_384
_MAX_STREAM_ID = 2**31 - 1

_FRAME_HEADER = struct.Struct(">IBI")  # (length << 8 | type), flags, stream id
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")
_GOAWAY_HEAD = struct.Struct(">II")


def _frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    return _FRAME_HEADER.pack(length << 8 | kind, flags, stream_id)


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _FRAME_HEADER.pack(len(payload) << 8 | kind, flags, stream_id) + payload


# HPACK, encoding side: literals only (no dynamic table, no Huffman), so the peer's
# table never depends on us and an encoded block can be cached.
_STATIC_NAME_INDEX: dict[bytes, int] = {}
for _index, (_name, _) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_NAME_INDEX.setdefault(_name, _index)
# Never-indexed literals (RFC 7541 6.2.3) keep credentials out of any intermediary's table.
# The bytes of one-byte indexed fields (RFC 7541 6.1: index 1..126): a block of only these
# reads the table without changing it.
_ONE_BYTE_INDEXED = bytes(range(0x81, 0xFF))
_SENSITIVE = frozenset((b"authorization", b"token"))
# Connection-specific headers are forbidden in HTTP/2; te is ours to set.
_FORBIDDEN = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                        b"transfer-encoding", b"upgrade", b"host", b"te"))


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_literal(name: bytes, value: bytes) -> bytes:
    """One header as a literal without indexing (never indexed for credentials)."""
    first = 0x10 if name in _SENSITIVE else 0x00
    index = _STATIC_NAME_INDEX.get(name)
    if index is None:
        head = bytes((first,)) + _hpack_int(len(name), 7, 0) + name
    else:
        head = _hpack_int(index, 4, first)
    return head + _hpack_int(len(value), 7, 0) + value


class H2Stream:
    """What the connection knows of one client stream.

    :meth:`H2Connection.request` makes one, or fills in the one it is given: a subclass
    of it may hold the caller's own state of the stream (one object per stream, not
    two: a gRPC client has many in flight, each object of which the cyclic garbage
    collector walks). The caller reads :attr:`stream_id` and touches nothing else.
    """

    __slots__ = ("end_pending", "got_headers", "local_closed", "pending", "receiving",
                 "recv_consumed", "send_window", "stream_id")

    def __init__(self) -> None:
        super().__init__()  # (cooperative: a subclass may have other bases)
        self.stream_id = 0  # set by request()
        self.send_window = 0  # set by request(): the peer's initial window
        self.recv_consumed = 0  # received since our last WINDOW_UPDATE
        self.pending = bytearray()  # DATA that waits for flow-control window
        self.end_pending = False  # END_STREAM goes with the last pending byte
        self.local_closed = False  # END_STREAM sent
        self.receiving = True  # the peer has not ended the stream
        self.got_headers = False


class H2Connection:
    """The client side of one HTTP/2 connection, for gRPC calls (sans-IO).

    Write :meth:`initiate`'s bytes first. Every method returns the bytes to write, in
    the order they are returned; :meth:`receive` also returns the events.

    :param authority: the ``:authority`` of every request (``host:port``)
    :param scheme: ``"http"`` (h2c with prior knowledge) or ``"https"``
    :param window_size: our receive window per stream (etcd may send that much of
        one answer before we acknowledge it)
    :param connection_window_size: our receive window of the whole connection
    :param max_header_list_size: the largest decoded header list we accept
    """

    def __init__(
        self,
        authority: str,
        *,
        scheme: str = "http",
        window_size: int = 16 * 1024 * 1024,
        connection_window_size: int = 64 * 1024 * 1024,
        max_header_list_size: int = 64 * 1024,
    ) -> None:
        if scheme not in ("http", "https"):
            raise InvalidRequest(f"scheme must be 'http' or 'https', not {scheme!r}")
        for name, size in (("window_size", window_size),
                           ("connection_window_size", connection_window_size)):
            if not _DEFAULT_WINDOW <= size <= _MAX_WINDOW:
                raise InvalidRequest(f"{name} must be in [65535, 2**31 - 1]")
        self._window_size = window_size
        self._connection_window_size = connection_window_size
        self._max_header_list_size = max_header_list_size
        self._decoder = Decoder(max_header_list_size=max_header_list_size)
        # grpc-go answers every call with the same few header blocks of table references
        # once its dynamic table holds them (b"\x88\xc0"): their decoded lists, valid as
        # long as no block changes the table (see _on_header_block).
        self._decoded: dict[bytes, Headers] = {}
        # :method POST (static index 3), :scheme (6 http, 7 https); then :path; then the rest.
        self._head = b"\x83" + (b"\x86" if scheme == "http" else b"\x87")
        _check_value(authority.encode("ascii"))
        self._tail = (_hpack_literal(b":authority", authority.encode("ascii"))
                      + _hpack_literal(b"content-type", b"application/grpc")
                      + _hpack_literal(b"te", b"trailers"))
        self._blocks: dict[bytes, bytes] = {}  # path → encoded constant header block
        self._header_cache: dict[tuple[bytes, bytes], bytes] = {}
        self._table_size_update = b""  # RFC 7541 4.2: owed at the next block's start
        self._encoder_table_size = 4096

        self._streams: dict[int, H2Stream] = {}
        self._blocked: dict[int, H2Stream] = {}  # streams with pending DATA, in order
        self._next_stream_id = 1
        self._buffer = b""
        self._got_settings = False
        self._draining = False
        #: the settings the peer sent (id → value), for inspection
        self.peer_settings: dict[int, int] = {}
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame_size = _DEFAULT_FRAME_SIZE
        self._peer_max_streams: int | None = None
        self._send_window = _DEFAULT_WINDOW
        self._recv_consumed = 0
        # A HEADERS frame without END_HEADERS: (stream id, END_STREAM, block so far).
        self._continuing: tuple[int, bool, bytearray] | None = None

    # -- what the caller sends ------------------------------------------------------

    def initiate(self) -> bytes:
        """The connection preface: the magic, our SETTINGS and a WINDOW_UPDATE that
        opens the connection window to ``connection_window_size``."""
        settings = (_SETTING.pack(_ENABLE_PUSH, 0)
                    + _SETTING.pack(_INITIAL_WINDOW_SIZE, self._window_size)
                    + _SETTING.pack(_MAX_HEADER_LIST_SIZE, self._max_header_list_size))
        out = PREFACE + _frame(_SETTINGS, 0, 0, settings)
        increment = self._connection_window_size - _DEFAULT_WINDOW
        if increment:
            out += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(increment))
        return out

    @property
    def settings_received(self) -> bool:
        """Whether the peer's first SETTINGS arrived (it speaks HTTP/2)."""
        return self._got_settings

    @property
    def open_streams(self) -> int:
        """How many streams are open (count against the peer's MAX_CONCURRENT_STREAMS)."""
        return len(self._streams)

    def can_open(self) -> bool:
        """Whether :meth:`request` may open a stream now."""
        if self._draining or self._next_stream_id > _MAX_STREAM_ID:
            return False
        return self._peer_max_streams is None or len(self._streams) < self._peer_max_streams

    def request(self, path: bytes, headers: Sequence[tuple[bytes, bytes]] = (),
                body: bytes = b"", *, end_stream: bool = True,
                stream: H2Stream | None = None) -> tuple[int, bytes]:
        """Open a stream with a gRPC POST to ``path`` (``b"/etcdserverpb.KV/Range"``).

        :param headers: more headers after the fixed ones (``token``, ``grpc-timeout``):
            lowercase names, no pseudo-headers, no connection-specific ones
        :param body: the first DATA (whole gRPC messages); what the flow-control windows
            do not admit now is sent when they open
        :param end_stream: whether the request ends here (unary calls); else continue
            with :meth:`send`
        :param stream: a new :class:`H2Stream` (of a subclass) to keep the stream's
            state in; else one is made
        :returns: the new stream id and the bytes to write
        :raises StreamLimitReached: the peer's concurrent stream limit is reached
        :raises ConnectionDraining: the connection takes no new streams
        :raises InvalidRequest: a header is not allowed, or ``stream`` was opened before
        """
        if stream is not None and stream.stream_id:
            raise InvalidRequest(f"stream {stream.stream_id} was opened already")
        if not self.can_open():
            if self._draining or self._next_stream_id > _MAX_STREAM_ID:
                raise ConnectionDraining("the HTTP/2 connection takes no new streams")
            raise StreamLimitReached(
                f"all {self._peer_max_streams} concurrent streams of the connection are open")
        block = self._blocks.get(path)
        if block is None:
            block = self._path_block(path)
        if headers:
            block += self._encode(headers)
        if self._table_size_update:
            block = self._table_size_update + block
            self._table_size_update = b""
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        if stream is None:
            stream = H2Stream()
        stream.stream_id = stream_id
        stream.send_window = self._peer_initial_window
        self._streams[stream_id] = stream
        end_now = end_stream and not body
        out = self._header_frames(stream_id, block, end_now)
        if end_now:
            stream.local_closed = True
        elif body or end_stream:
            out += self._send_data(stream, body, end_stream)
        return stream_id, out

    def send(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> bytes:
        """DATA on an open stream (the next messages of a streaming call).

        What the windows do not admit is buffered and returned by a later
        :meth:`receive` once the peer opens them.

        :raises StreamClosed: the stream is unknown, reset, or already ended by us
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.end_pending or stream.local_closed:
            raise StreamClosed(f"stream {stream_id} is closed for sending")
        return self._send_data(stream, data, end_stream)

    def cancel(self, stream_id: int) -> bytes:
        """RST_STREAM(CANCEL) for a stream; later frames for it are dropped quietly.

        Cancelling a stream that already ended returns ``b""``.
        """
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return b""
        self._blocked.pop(stream_id, None)
        return _frame(_RST_STREAM, 0, stream_id, _U32.pack(ErrorCode.CANCEL))

    def ping(self, data: bytes) -> bytes:
        """A PING with 8 opaque bytes; the answer is a :class:`PingAcknowledged` event."""
        if len(data) != 8:
            raise InvalidRequest("a PING carries exactly 8 bytes")
        return _frame(_PING, 0, 0, data)

    def close(self, error_code: int = ErrorCode.NO_ERROR, debug: bytes = b"") -> bytes:
        """A GOAWAY: no new streams from now on (write it, then close the socket
        once the open streams have ended, or at once after an error)."""
        self._draining = True
        return _frame(_GOAWAY, 0, 0, _GOAWAY_HEAD.pack(0, error_code) + debug)

    # -- what the peer sends --------------------------------------------------------

    def receive(self, data: bytes) -> tuple[list[Event], bytes]:
        """Parse bytes read from the peer (split anywhere).

        :returns: the events of every complete frame, and the bytes to write in answer
            (SETTINGS and PING acknowledgements, WINDOW_UPDATEs, DATA that waited for
            window)
        :raises H2ProtocolError: the peer broke HTTP/2; the connection is unusable
        """
        # bytes(), not a bytearray or memoryview: header blocks are dict keys, events hold bytes.
        buffer = self._buffer + data if self._buffer else bytes(data)
        events: list[Event] = []
        out: list[bytes] = []
        position = 0
        size = len(buffer)
        while size - position >= 9:
            length_kind, flags, stream_id = _FRAME_HEADER.unpack_from(buffer, position)
            length = length_kind >> 8
            kind = length_kind & 0xFF
            if not self._got_settings and kind != _SETTINGS:
                raise H2ProtocolError("the server's first frame is not SETTINGS: "
                                      "it does not speak HTTP/2 (prior knowledge)")
            if length > _DEFAULT_FRAME_SIZE:  # our SETTINGS_MAX_FRAME_SIZE
                raise H2ProtocolError(f"a frame of {length} bytes", ErrorCode.FRAME_SIZE_ERROR)
            end = position + 9 + length
            if end > size:
                break
            payload = buffer[position + 9:end]
            position = end
            stream_id &= _MAX_STREAM_ID
            if self._continuing is not None and kind != _CONTINUATION:
                raise H2ProtocolError("a header block was interrupted")
            if kind == _DATA:
                self._on_data(stream_id, flags, payload, events, out)
            elif kind == _HEADERS:
                self._on_headers(stream_id, flags, payload, events, out)
            elif kind == _CONTINUATION:
                self._on_continuation(stream_id, flags, payload, events, out)
            elif kind == _WINDOW_UPDATE:
                self._on_window_update(stream_id, payload, events, out)
            elif kind == _SETTINGS:
                self._on_settings(stream_id, flags, payload, out)
            elif kind == _PING:
                self._on_ping(stream_id, flags, payload, events, out)
            elif kind == _RST_STREAM:
                self._on_rst_stream(stream_id, payload, events)
            elif kind == _GOAWAY:
                self._on_goaway(stream_id, payload, events)
            elif kind == _PRIORITY:
                if stream_id == 0:
                    raise H2ProtocolError("PRIORITY on stream 0")
                if length != 5:
                    raise H2ProtocolError("PRIORITY is not 5 bytes", ErrorCode.FRAME_SIZE_ERROR)
            elif kind == _PUSH_PROMISE:
                raise H2ProtocolError("PUSH_PROMISE although we disabled push")
            # RFC 9113 5.5: frames of unknown types are ignored.
        self._buffer = buffer[position:]
        return events, b"".join(out)

    # -- internals ------------------------------------------------------------------

    def _path_block(self, path: bytes) -> bytes:
        if not isinstance(path, bytes) or not path.startswith(b"/"):
            raise InvalidRequest("a gRPC path is bytes starting with '/'")
        _check_value(path)
        block = self._head + _hpack_literal(b":path", path) + self._tail
        if len(self._blocks) < 256:  # a client calls a few dozen methods
            self._blocks[path] = block
        return block

    def _encode(self, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        cache = self._header_cache
        parts = []
        for header in headers:
            encoded = cache.get(header)
            if encoded is None:
                name, value = header
                if (not isinstance(name, bytes) or not name or name.lower() != name
                        or name.startswith(b":") or name in _FORBIDDEN):
                    raise InvalidRequest(f"header name {name!r} is not allowed")
                _check_value(name)
                _check_value(value)
                encoded = _hpack_literal(name, value)
                if len(cache) >= 1024:  # values such as grpc-timeout vary
                    cache.clear()
                cache[header] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def _header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> bytes:
        limit = self._peer_max_frame_size
        flags = _END_STREAM if end_stream else 0
        if len(block) <= limit:
            return _frame_header(len(block), _HEADERS, flags | _END_HEADERS, stream_id) + block
        frames = [_frame(_HEADERS, flags, stream_id, block[:limit])]
        for start in range(limit, len(block), limit):
            last = start + limit >= len(block)
            frames.append(_frame(_CONTINUATION, _END_HEADERS if last else 0, stream_id,
                                 block[start:start + limit]))
        return b"".join(frames)

    def _send_data(self, stream: H2Stream, data: bytes, end_stream: bool) -> bytes:
        size = len(data)
        if not size and not end_stream:
            return b""
        if (not stream.pending and size <= stream.send_window and size <= self._send_window
                and size <= self._peer_max_frame_size):
            # The common case: all of it fits in one frame now.
            stream.send_window -= size
            self._send_window -= size
            if end_stream:
                stream.local_closed = True
                self._forget_if_done(stream)
            return _frame_header(size, _DATA, _END_STREAM if end_stream else 0,
                                 stream.stream_id) + data
        stream.pending += data
        stream.end_pending = end_stream
        return self._flush(stream)

    def _flush(self, stream: H2Stream) -> bytes:
        """As much of the stream's pending DATA as the windows admit."""
        frames = []
        pending = stream.pending
        while pending:
            size = min(len(pending), stream.send_window, self._send_window,
                       self._peer_max_frame_size)
            if size <= 0:
                break
            chunk = bytes(pending[:size])
            del pending[:size]
            stream.send_window -= size
            self._send_window -= size
            flags = _END_STREAM if stream.end_pending and not pending else 0
            frames.append(_frame_header(size, _DATA, flags, stream.stream_id) + chunk)
        if pending:
            self._blocked[stream.stream_id] = stream
        else:
            self._blocked.pop(stream.stream_id, None)
            if stream.end_pending:
                if not frames:  # END_STREAM alone needs no window
                    frames.append(_frame_header(0, _DATA, _END_STREAM, stream.stream_id))
                stream.end_pending = False
                stream.local_closed = True
                self._forget_if_done(stream)
        return b"".join(frames)

    def _flush_blocked(self, out: list[bytes]) -> None:
        for stream in list(self._blocked.values()):
            if self._send_window <= 0:
                break
            if stream.send_window > 0:
                out.append(self._flush(stream))

    def _forget_if_done(self, stream: H2Stream) -> None:
        if stream.local_closed and not stream.receiving:
            self._streams.pop(stream.stream_id, None)

    def _closed_stream(self, stream_id: int, what: str) -> None:
        """Check that a frame for a stream we do not track is for one that was closed
        (dropped quietly), not for one that never opened (a protocol error)."""
        if stream_id == 0 or stream_id % 2 == 0 or stream_id >= self._next_stream_id:
            raise H2ProtocolError(f"{what} on stream {stream_id}, which we never opened")

    def _end_of_stream(self, stream: H2Stream, out: list[bytes]) -> None:
        stream.receiving = False
        if not stream.local_closed:
            # The call is over (gRPC status received): tell the peer our half ends too,
            # as grpc-go does, so the stream stops counting against the limit.
            out.append(_frame(_RST_STREAM, 0, stream.stream_id, _U32.pack(ErrorCode.NO_ERROR)))
            stream.pending.clear()
            self._blocked.pop(stream.stream_id, None)
        self._streams.pop(stream.stream_id, None)

    def _on_data(self, stream_id: int, flags: int, payload: bytes, events: list[Event],
                 out: list[bytes]) -> None:
        size = len(payload)
        # Flow control counts the whole payload, padding included, even on closed streams.
        # The caller consumes at once, so the window is replenished on receipt, once half
        # of it is used: with frames of at most 16 kB the peer cannot overrun a window of
        # at least 64 kB as we count it, so there is no overrun check.
        if size:
            self._recv_consumed += size
            if self._recv_consumed >= self._connection_window_size // 2:
                out.append(_frame(_WINDOW_UPDATE, 0, 0, _U32.pack(self._recv_consumed)))
                self._recv_consumed = 0
        stream = self._streams.get(stream_id)
        if stream is None or not stream.receiving:
            self._closed_stream(stream_id, "DATA")
            return
        if not stream.got_headers:
            raise H2ProtocolError(f"DATA before HEADERS on stream {stream_id}")
        if flags & _PADDED:
            payload = _unpad(payload, 0)
        if payload:
            events.append(Data(stream_id, payload))
        if flags & _END_STREAM:
            events.append(Trailers(stream_id, ()))
            self._end_of_stream(stream, out)
            return
        stream.recv_consumed += size
        if stream.recv_consumed >= self._window_size // 2:
            out.append(_frame(_WINDOW_UPDATE, 0, stream_id, _U32.pack(stream.recv_consumed)))
            stream.recv_consumed = 0

    def _on_headers(self, stream_id: int, flags: int, payload: bytes, events: list[Event],
                    out: list[bytes]) -> None:
        if stream_id == 0:
            raise H2ProtocolError("HEADERS on stream 0")
        skip = 5 if flags & _PRIORITY_FLAG else 0  # stream dependency and weight: ignored
        if flags & _PADDED:
            block = _unpad(payload, skip)
        elif len(payload) < skip:
            raise H2ProtocolError("HEADERS shorter than its priority fields")
        else:
            block = payload[skip:]
        end_stream = bool(flags & _END_STREAM)
        if flags & _END_HEADERS:
            self._on_header_block(stream_id, end_stream, block, events, out)
        else:
            self._continuing = (stream_id, end_stream, bytearray(block))

    def _on_continuation(self, stream_id: int, flags: int, payload: bytes,
                         events: list[Event], out: list[bytes]) -> None:
        if self._continuing is None or self._continuing[0] != stream_id:
            raise H2ProtocolError(f"CONTINUATION on stream {stream_id} out of a header block")
        _, end_stream, block = self._continuing
        block += payload
        # A compressed block is at most a little larger than the list it decodes to.
        if len(block) > 2 * self._max_header_list_size + 1024:
            raise H2ProtocolError("a header block larger than our header list limit",
                                  ErrorCode.ENHANCE_YOUR_CALM)
        if flags & _END_HEADERS:
            self._continuing = None
            self._on_header_block(stream_id, end_stream, bytes(block), events, out)

    def _on_header_block(self, stream_id: int, end_stream: bool, block: bytes,
                         events: list[Event], out: list[bytes]) -> None:
        headers = self._decoded.get(block)
        if headers is None:
            # Decoded even for a stream we dropped: the peer's HPACK table changes either way.
            try:
                headers = tuple(self._decoder.decode(block, raw=True))
            except HPACKError as exc:
                raise H2ProtocolError(f"undecodable header block ({type(exc).__name__})",
                                      ErrorCode.COMPRESSION_ERROR) from None
            if block.translate(None, _ONE_BYTE_INDEXED):
                # Not only references to table entries: the block may have changed the
                # table, so what the cached blocks decode to may have changed too.
                self._decoded.clear()
            elif len(self._decoded) < 64:
                self._decoded[block] = headers
        stream = self._streams.get(stream_id)
        if stream is None or not stream.receiving:
            self._closed_stream(stream_id, "HEADERS")
            return
        if not stream.got_headers:
            stream.got_headers = True
            if not end_stream:
                events.append(Response(stream_id, headers))
                return
        elif not end_stream:
            raise H2ProtocolError(f"a second HEADERS without END_STREAM on stream {stream_id}")
        events.append(Trailers(stream_id, headers))
        self._end_of_stream(stream, out)

    def _on_settings(self, stream_id: int, flags: int, payload: bytes, out: list[bytes]) -> None:
        if stream_id != 0:
            raise H2ProtocolError("SETTINGS on a stream")
        if flags & _ACK:
            if payload:
                raise H2ProtocolError("SETTINGS ACK with a payload", ErrorCode.FRAME_SIZE_ERROR)
            return
        if len(payload) % 6:
            raise H2ProtocolError("SETTINGS not a multiple of 6 bytes",
                                  ErrorCode.FRAME_SIZE_ERROR)
        self._got_settings = True
        for offset in range(0, len(payload), 6):
            ident, value = _SETTING.unpack_from(payload, offset)
            if ident == _INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise H2ProtocolError("INITIAL_WINDOW_SIZE above 2**31 - 1",
                                          ErrorCode.FLOW_CONTROL_ERROR)
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta  # may go negative (RFC 9113 6.9.2)
                    if stream.send_window > _MAX_WINDOW:
                        raise H2ProtocolError("a stream window above 2**31 - 1",
                                              ErrorCode.FLOW_CONTROL_ERROR)
            elif ident == _MAX_FRAME_SIZE:
                if not _DEFAULT_FRAME_SIZE <= value <= 2**24 - 1:
                    raise H2ProtocolError(f"MAX_FRAME_SIZE {value} out of range")
                self._peer_max_frame_size = value
            elif ident == _MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif ident == _HEADER_TABLE_SIZE:
                # We never add to the peer's table; a smaller limit still needs the size
                # update (to 0: below any limit) at the start of our next block.
                if value < self._encoder_table_size:
                    self._encoder_table_size = 0
                    self._table_size_update = b"\x20"
            elif ident == _ENABLE_PUSH and value > 1:
                raise H2ProtocolError(f"ENABLE_PUSH {value}")
            self.peer_settings[ident] = value
        out.append(_frame(_SETTINGS, _ACK, 0))
        self._flush_blocked(out)

    def _on_window_update(self, stream_id: int, payload: bytes, events: list[Event],
                          out: list[bytes]) -> None:
        if len(payload) != 4:
            raise H2ProtocolError("WINDOW_UPDATE is not 4 bytes", ErrorCode.FRAME_SIZE_ERROR)
        increment = _U32.unpack(payload)[0] & _MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise H2ProtocolError("WINDOW_UPDATE of 0 for the connection")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise H2ProtocolError("connection window above 2**31 - 1",
                                      ErrorCode.FLOW_CONTROL_ERROR)
            self._flush_blocked(out)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            self._closed_stream(stream_id, "WINDOW_UPDATE")
            return
        stream.send_window += increment
        if increment == 0 or stream.send_window > _MAX_WINDOW:
            # A stream error: this stream ends, the connection goes on.
            code = ErrorCode.PROTOCOL_ERROR if increment == 0 else ErrorCode.FLOW_CONTROL_ERROR
            self._streams.pop(stream_id, None)
            self._blocked.pop(stream_id, None)
            out.append(_frame(_RST_STREAM, 0, stream_id, _U32.pack(code)))
            if stream.receiving:
                events.append(Reset(stream_id, code))
            return
        if stream.pending and stream_id in self._blocked:
            out.append(self._flush(stream))

    def _on_ping(self, stream_id: int, flags: int, payload: bytes, events: list[Event],
                 out: list[bytes]) -> None:
        if stream_id != 0:
            raise H2ProtocolError("PING on a stream")
        if len(payload) != 8:
            raise H2ProtocolError("PING is not 8 bytes", ErrorCode.FRAME_SIZE_ERROR)
        if flags & _ACK:
            events.append(PingAcknowledged(payload))
        else:
            out.append(_frame(_PING, _ACK, 0, payload))

    def _on_rst_stream(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            raise H2ProtocolError("RST_STREAM is not 4 bytes", ErrorCode.FRAME_SIZE_ERROR)
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            self._closed_stream(stream_id, "RST_STREAM")
            return
        self._blocked.pop(stream_id, None)
        if stream.receiving:
            events.append(Reset(stream_id, _U32.unpack(payload)[0]))

    def _on_goaway(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise H2ProtocolError("GOAWAY on a stream")
        if len(payload) < 8:
            raise H2ProtocolError("GOAWAY shorter than 8 bytes", ErrorCode.FRAME_SIZE_ERROR)
        last, code = _GOAWAY_HEAD.unpack_from(payload)
        last &= _MAX_STREAM_ID
        self._draining = True
        events.append(GoAway(last, code, payload[8:]))
        for refused in [s for s in self._streams if s > last]:
            stream = self._streams.pop(refused)
            self._blocked.pop(refused, None)
            if stream.receiving:
                events.append(Reset(refused, ErrorCode.REFUSED_STREAM))


def _unpad(payload: bytes, skip: int) -> bytes:
    """The payload of a PADDED frame without its pad length byte, ``skip`` bytes after
    it, and the padding."""
    if not payload:
        raise H2ProtocolError("a PADDED frame without its pad length")
    pad = payload[0]
    end = len(payload) - pad
    if end < 1 + skip:
        raise H2ProtocolError("padding longer than the frame")
    return payload[1 + skip:end]


def _check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"header names and values are bytes, not {type(value).__name__}")
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise InvalidRequest("a header holds CR, LF or NUL")
