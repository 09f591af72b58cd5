"""gRPC's message framing and status, over the bytes of an HTTP/2 stream (pure code).

A gRPC message travels as a 5-byte prefix (a compressed flag, a 4-byte big-endian
length) and the protobuf bytes; DATA frames split and join messages freely, so
:class:`MessageDecoder` reassembles them. The call's outcome is in the trailers
(``grpc-status``, percent-encoded ``grpc-message``): :func:`grpc_status` reads it and
:func:`status_error` turns it into the exception the gateway transport raises for the
same etcd error (one table, in :mod:`etcdwamp.wire.errors`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from urllib.parse import unquote

from ..errors import ProtocolError, ServerError
from ..wire.errors import error_from_status

__all__ = ["MessageDecoder", "MessageTooLarge", "frame", "grpc_status", "status_error",
           "whole_message"]

_PREFIX = struct.Struct(">BI")

#: what gRPC makes of an HTTP status when an answer has no ``grpc-status``
#: (grpc's doc/http-grpc-status-mapping.md)
_CODE_BY_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class MessageTooLarge(ProtocolError):
    """An answer's message is larger than the decoder's limit: the call's answer is lost.

    :ivar size: the message's length
    :ivar limit: the decoder's ``max_message_size``
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"received a gRPC message of {size} bytes, larger than "
                         f"the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def frame(message: bytes) -> bytes:
    """``message`` as one uncompressed gRPC message (5-byte prefix + bytes)."""
    return _PREFIX.pack(0, len(message)) + message


def whole_message(data: bytes, max_message_size: int) -> bytes | None:
    """The message ``data`` holds if it is exactly one whole uncompressed message of at
    most ``max_message_size`` bytes, else None: then a :class:`MessageDecoder` reads it
    (and says what is wrong with it). A unary answer is usually one DATA frame: it
    needs no decoder then."""
    if len(data) < 5 or data[0]:
        return None
    length = _PREFIX.unpack_from(data)[1]
    if length != len(data) - 5 or length > max_message_size:
        return None
    return data[5:]


class MessageDecoder:
    """Whole gRPC messages out of the DATA bytes of one stream, split anywhere.

    A large message arrives in many DATA frames: its pieces are kept in a list and
    joined once, when the last one arrives, so that reading it costs time linear in
    its size.

    :param max_message_size: the largest message accepted (a larger one raises
        :class:`MessageTooLarge` as soon as its prefix arrives, before it is buffered)
    """

    __slots__ = ("_buffered", "_max", "_parts", "_want")

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._parts: list[bytes] = []
        self._buffered = 0  # bytes in _parts
        self._want = 5  # bytes the message in progress needs in all (its prefix first)

    def feed(self, data: bytes) -> list[bytes]:
        """The messages that ``data`` completes (maybe none), in order.

        :raises ProtocolError: a compressed message (we never ask for compression),
            or a flag byte gRPC does not define
        :raises MessageTooLarge: a message above ``max_message_size``
        """
        if not data:
            return []
        self._parts.append(bytes(data))
        self._buffered += len(data)
        if self._buffered < self._want:
            return []
        buffer = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        messages = []
        position = 0
        size = len(buffer)
        while size - position >= 5:
            flag, length = _PREFIX.unpack_from(buffer, position)
            if flag:
                raise ProtocolError("a compressed gRPC message, though we asked for none"
                                    if flag == 1 else f"a gRPC message flag of {flag}")
            if length > self._max:
                raise MessageTooLarge(length, self._max)
            end = position + 5 + length
            if end > size:
                break
            messages.append(buffer[position + 5:end])
            position = end
        rest = buffer[position:] if position else buffer
        self._parts = [rest] if rest else []
        self._buffered = len(rest)
        if len(rest) >= 5:
            self._want = 5 + _PREFIX.unpack_from(rest)[1]
        else:
            self._want = 5
        return messages

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete message wait (``0`` at a message boundary)."""
        return self._buffered

    def end(self) -> None:
        """Check that the stream ended at a message boundary.

        :raises ProtocolError: it ended inside a message
        """
        if self._buffered:
            raise ProtocolError(f"the stream ended inside a gRPC message "
                                f"({self._buffered} bytes of it arrived)")


def grpc_status(trailers: Iterable[tuple[bytes, bytes]]) -> tuple[int, str]:
    """The gRPC status code and message of a call from its trailers (or Trailers-Only
    headers).

    Without ``grpc-status`` the code comes from a non-200 ``:status`` as gRPC maps it,
    else it is UNKNOWN (2). ``grpc-message`` is percent-decoded UTF-8; malformed
    escapes stay as they are (gRPC's rule: never lose the message).

    :raises ProtocolError: ``grpc-status`` is not a decimal number
    """
    code: int | None = None
    message = ""
    http_status: bytes | None = None
    for name, value in trailers:
        if name == b"grpc-status":
            if not value.isdigit():
                raise ProtocolError(f"grpc-status is not a number: {value[:20]!r}")
            code = int(value)
        elif name == b"grpc-message":
            message = unquote(value.decode("utf-8", "replace"), errors="replace")
        elif name == b":status":
            http_status = value
    if code is None:
        if http_status is not None and http_status != b"200" and http_status.isdigit():
            code = _CODE_BY_HTTP.get(int(http_status), 2)
            message = message or f"HTTP status {http_status.decode()} without a gRPC status"
        else:
            code = 2
            message = message or "the answer ended without a gRPC status"
    return code, message


def status_error(code: int, message: str) -> ServerError:
    """The exception etcdwamp raises for a non-OK gRPC status (returned, not raised):
    the same class the gateway transport raises for the same etcd error.

    :raises ValueError: ``code`` is 0 (OK is no error)
    """
    if code == 0:
        raise ValueError("gRPC status 0 (OK) is not an error")
    # A gRPC answer carries its status in trailers after an HTTP 200.
    return error_from_status(code, message, http_status=200)
