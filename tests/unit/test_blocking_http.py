"""etcdwamp.blocking_http: one POST and its whole answer, against canned answers
served on a loopback socket (the framing cases etcd's gateway and proxies send)."""

from __future__ import annotations

import time

import pytest
from canned_http import serving

from etcdwamp.blocking_http import Broken, Connection, Expired


def connect(port: int) -> Connection:
    connection = Connection("127.0.0.1", port, tls=None, clock=time.monotonic)
    connection.open(time.monotonic() + 5)
    return connection


def test_a_post_carries_host_length_and_headers_and_reads_a_content_length_body() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: x\r\n\r\n{\"a\":1}"
    with serving(answer, answer) as (port, received):
        connection = connect(port)
        status, body = connection.post("/v3/kv/range", b'{"key":"YQ=="}',
                                       {"Authorization": "tok"}, time.monotonic() + 5)
        assert (status, body) == (200, b'{"a":1}')
        assert not connection.closed  # kept for the next request
        assert connection.post("/p", b"{}", {}, time.monotonic() + 5) == (200, b'{"a":1}')
        connection.close()
    head = received[0].split(b"\r\n")
    assert head[0] == b"POST /v3/kv/range HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in head
    assert b"Content-Length: 14" in head and b"Authorization: tok" in head
    assert received[0].endswith(b'\r\n\r\n{"key":"YQ=="}')


def test_a_chunked_answer_is_joined_and_its_trailers_skipped() -> None:
    answer = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n")
    with serving(answer) as (port, _):
        connection = connect(port)
        assert connection.post("/p", b"", {}, time.monotonic() + 5) == (404, b"abcdefg")
        connection.close()


def test_connection_close_and_a_body_read_to_the_end() -> None:
    with serving(b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") as (
            port, _):
        connection = connect(port)
        assert connection.post("/p", b"", {}, time.monotonic() + 5) == (200, b"ok")
        assert connection.closed  # the server said so: the next request needs a new one
    with serving(b"HTTP/1.1 200 OK\r\n\r\nuntil close") as (port, _):
        connection = connect(port)
        assert connection.post("/p", b"", {}, time.monotonic() + 5) == (200, b"until close")
        assert connection.closed


def test_no_content_and_an_interim_continue_have_no_body() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"
    with serving(answer, hold=True) as (port, _):
        connection = connect(port)
        # With the connection held open, reading a body here would wait until the deadline.
        assert connection.post("/p", b"", {}, time.monotonic() + 5) == (204, b"")


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
])
def test_what_is_not_a_complete_http_answer_is_broken(answer: bytes) -> None:
    with serving(answer) as (port, _):
        connection = connect(port)
        with pytest.raises(Broken):
            connection.post("/p", b"", {}, time.monotonic() + 5)
        assert connection.closed  # never reused after a broken exchange


def test_an_answer_that_does_not_come_expires_at_the_deadline() -> None:
    with serving(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", hold=True) as (port, _):
        connection = connect(port)
        started = time.monotonic()
        with pytest.raises(Expired):
            connection.post("/p", b"", {}, started + 0.3)
        waited = time.monotonic() - started
        assert 0.25 < waited < 3, waited
        assert connection.closed


def test_a_deadline_already_passed_sends_nothing() -> None:
    with serving() as (port, received):
        connection = connect(port)
        with pytest.raises(Expired):
            connection.post("/p", b"", {}, time.monotonic() - 1)
        connection.close()
    assert received == []
