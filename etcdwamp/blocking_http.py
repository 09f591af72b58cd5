"""One blocking HTTP/1.1 connection that POSTs and reads whole answers, for
:mod:`etcdwamp.blocking`.

Why not :mod:`http.client`: importing it (and the :mod:`email` package it parses
headers with) costs a fifth of a one-shot command's start-up budget, and etcd's
gateway needs little of it: a POST with a JSON body, an answer with
``Content-Length`` or ``chunked`` transfer coding, keep-alive. Every socket
operation waits only until the caller's deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

__all__ = ["Broken", "Connection", "Expired"]

_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100


class Expired(Exception):
    """The deadline passed before the operation ended."""


class Broken(Exception):
    """The connection closed, or the answer is not HTTP/1.x, before it was complete."""


class Connection:
    """A connection to ``host``:``port`` (TLS with ``tls``), opened by :meth:`open`.

    :param clock: seconds, on the same scale as the deadlines given
    """

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None,
                 clock: Callable[[], float]) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._clock = clock
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        #: the server will close the connection after this answer (or it broke)
        self.closed = True
        #: a byte of the current exchange's answer arrived
        self.received = False
        host_text = f"[{host}]" if ":" in host else host
        self._host_header = f"{host_text}:{port}".encode("ascii")

    def open(self, deadline: float) -> None:
        """Connect (and complete the TLS handshake): no byte of a request is sent yet.

        :raises OSError: as the socket or TLS layer raise it (``TimeoutError`` at the deadline)
        """
        sock = socket.create_connection((self.host, self.port), timeout=self._left(deadline))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buffer = bytearray()
        self.closed = False

    def post(self, path: str, body: bytes, headers: Mapping[str, str],
             deadline: float) -> tuple[int, bytes]:
        """Send one POST and read its whole answer: status and body.

        :raises Expired: the deadline passed (the request may have been sent)
        :raises Broken: the connection closed or the answer is not HTTP
        :raises OSError: the socket failed
        """
        sock = self._sock
        if sock is None or self.closed:
            raise Broken("the connection is not open")
        self.closed = True  # until the answer is complete: a broken exchange ends it
        self.received = False
        lines = [b"POST " + path.encode("ascii") + b" HTTP/1.1", b"Host: " + self._host_header,
                 b"Content-Length: " + str(len(body)).encode("ascii")]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        self._sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body, deadline)
        status, fields = self._head(deadline)
        if status in (204, 304):
            content = b""  # no body, whatever the headers say
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = self._chunked(deadline)
        elif b"content-length" in fields:
            try:
                length = int(fields[b"content-length"])
            except ValueError:
                raise Broken(f"bad Content-Length {fields[b'content-length']!r}") from None
            content = self._exactly(length, deadline)
        else:
            content = self._to_close(deadline)
            return status, content
        self.closed = fields.get(b"connection", b"").lower() == b"close"
        return status, content

    def close(self) -> None:
        """Close the socket (nothing more can be sent on it)."""
        self.closed = True
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- reading ------------------------------------------------------------------

    def _head(self, deadline: float) -> tuple[int, dict[bytes, bytes]]:
        line = self._line(deadline)
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Broken(f"not an HTTP answer: {line[:80]!r}")
        status = int(parts[1])
        fields: dict[bytes, bytes] = {}
        for _ in range(_MAX_HEADERS):
            line = self._line(deadline)
            if not line:
                if status == 100:  # an interim answer: the real one follows
                    return self._head(deadline)
                return status, fields
            name, sep, value = line.partition(b":")
            if not sep:
                raise Broken(f"bad header line {line[:80]!r}")
            fields[name.strip().lower()] = value.strip()
        raise Broken(f"more than {_MAX_HEADERS} header lines")

    def _chunked(self, deadline: float) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._line(deadline).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise Broken(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while self._line(deadline):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size, deadline))
            if self._line(deadline):
                raise Broken("a chunk not followed by CRLF")

    def _line(self, deadline: float) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 2]
                return line
            if len(self._buffer) > _MAX_HEADER_LINE:
                raise Broken("a header line longer than 64 KiB")
            self._fill(deadline)

    def _exactly(self, n: int, deadline: float) -> bytes:
        while len(self._buffer) < n:
            self._fill(deadline)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _to_close(self, deadline: float) -> bytes:
        while True:
            try:
                self._fill(deadline)
            except Broken:
                data = bytes(self._buffer)
                self._buffer.clear()
                return data

    def _fill(self, deadline: float) -> None:
        sock = self._sock
        assert sock is not None
        sock.settimeout(self._left(deadline))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise Expired from None
        if not data:
            raise Broken("the server closed the connection")
        self.received = True
        self._buffer += data

    def _sendall(self, data: bytes, deadline: float) -> None:
        sock = self._sock
        assert sock is not None
        sock.settimeout(self._left(deadline))
        try:
            sock.sendall(data)
        except TimeoutError:
            raise Expired from None

    def _left(self, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise Expired
        return left
