"""A canned HTTP server on a loopback socket, for the blocking client's unit tests."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["serving"]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def serving(*answers: bytes,
            hold: bool = False) -> Iterator[tuple[int, list[bytes]]]:
    """A server on 127.0.0.1 taking one connection, on which it reads one request per
    answer and writes the answer as given; ``hold``: after the answers, keep the
    connection open until the test ends (else close it). Yields its port and the requests
    it read, which stay empty if no client came."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    wake_r, wake_w = socket.socketpair()
    received: list[bytes] = []

    def serve() -> None:
        ready, _, _ = select.select([listener, wake_r], [], [], 30)
        if listener not in ready:
            return  # the test ended without connecting
        conn, _ = listener.accept()
        with conn:
            try:
                for answer in answers:
                    received.append(_read_request(conn))
                    conn.sendall(answer)
            except ConnectionError:
                return
            if hold:
                select.select([wake_r], [], [], 30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        wake_w.send(b"x")
        thread.join(30)
        for sock in (listener, wake_r, wake_w):
            sock.close()
