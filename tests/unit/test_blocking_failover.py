"""etcdwamp.blocking.BlockingClient across endpoints, against canned gateway answers:
the same failover rules as the Twisted transport (etcdwamp.failover), one request
at a time. (Against real etcd: tests/integration/test_cli.py and
test_blocking_client.py.)"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from canned_http import serving

from etcdwamp import errors
from etcdwamp.blocking import BlockingClient

_HEADER = {"cluster_id": "1", "member_id": "2", "revision": "7", "raft_term": "3"}


def answer(status: int, body: object) -> bytes:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reason = {200: b"OK", 404: b"Not Found", 503: b"Service Unavailable"}.get(status, b"X")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, len(content)) + content)


PUT_OK = answer(200, {"header": _HEADER})
NO_LEADER = answer(503, {"code": 14, "message": "etcdserver: no leader"})
TIMED_OUT = answer(503, {"code": 14, "message": "etcdserver: request timed out"})


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@contextmanager
def hung() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a SIGSTOPped member)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield url(sock.getsockname()[1])


def dead() -> str:
    """An endpoint nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return url(sock.getsockname()[1])


def paths(requests: list[bytes]) -> list[str]:
    return [r.split(b" ", 2)[1].decode() for r in requests]


def test_a_write_moves_on_past_no_leader_and_carries_require_leader() -> None:
    with (serving(NO_LEADER) as (first, to_first), serving(PUT_OK) as (second, to_second),
          BlockingClient([url(first), url(second)]) as client):
        result = client.put(b"k", b"v")
    assert result.header.revision == 7
    assert paths(to_first) == paths(to_second) == ["/v3/kv/put"]
    assert b"Grpc-Metadata-hasleader: true" in to_second[0]


def test_a_write_answered_with_an_indefinite_error_is_not_resent() -> None:
    with (serving(TIMED_OUT) as (first, _), serving(PUT_OK) as (second, to_second),
          BlockingClient([url(first), url(second)]) as client,
          pytest.raises(errors.IndefiniteAnswer, match="request timed out")):
        client.put(b"k", b"v")
    assert to_second == []


def test_a_read_moves_on_past_unavailable() -> None:
    range_ok = answer(200, {"header": _HEADER, "kvs": [
        {"key": "aw==", "value": "dg==", "create_revision": "5", "mod_revision": "6",
         "version": "2"}], "count": "1"})
    with (serving(TIMED_OUT) as (first, _), serving(range_ok) as (second, _),
          BlockingClient([url(first), url(second)]) as client):
        result = client.get(b"k")
    assert [(kv.key, kv.value, kv.mod_revision) for kv in result.kvs] == [(b"k", b"v", 6)]


def test_a_write_after_a_dead_endpoint_goes_to_the_next() -> None:
    with serving(PUT_OK) as (live, to_live), BlockingClient([dead(), url(live)]) as client:
        assert client.put(b"k", b"v").header.revision == 7
    assert paths(to_live) == ["/v3/kv/put"]


def test_every_endpoint_dead_is_connect_failed_naming_each() -> None:
    endpoints = [dead(), dead()]
    with (BlockingClient(endpoints, timeout=5) as client,
          pytest.raises(errors.ConnectFailed, match="no etcd endpoint reachable") as caught):
        client.put(b"k", b"v")
    assert all(e in str(caught.value) for e in endpoints)


def test_a_hung_member_costs_a_read_one_attempt_and_a_write_its_outcome() -> None:
    range_ok = answer(200, {"header": _HEADER, "count": "0"})
    with (hung() as stuck, serving(range_ok) as (live, _),
          BlockingClient([stuck, url(live)], timeout=10, attempt_timeout=0.3) as client):
        started = time.monotonic()
        assert client.get(b"k").count == 0
        assert time.monotonic() - started < 3  # 0.3 s on the hung one, not 10 s
    with (hung() as stuck, serving(PUT_OK) as (live, to_live),
          BlockingClient([stuck, url(live)], timeout=0.5) as client,
          pytest.raises(errors.RequestTimeout, match=r"within 0\.5 s")):
        client.put(b"k", b"v")  # sent: resending it elsewhere could apply it twice
    assert to_live == []


def test_a_gateway_without_v3_is_asked_at_v3beta() -> None:
    not_served = answer(404, b"Not Found\n")
    with (serving(not_served, PUT_OK, PUT_OK) as (port, received),
          BlockingClient([url(port)]) as client):
        client.put(b"k", b"v")
        client.put(b"k", b"w")  # the prefix found is kept
    assert paths(received) == ["/v3/kv/put", "/v3beta/kv/put", "/v3beta/kv/put"]


def test_an_etcd_not_found_answer_is_its_error_not_a_missing_prefix() -> None:
    lease_missing = answer(404, {"code": 5, "message": "etcdserver: requested lease not found"})
    with (serving(lease_missing) as (port, received), BlockingClient([url(port)]) as client,
          pytest.raises(errors.LeaseNotFound)):
        client.put(b"k", b"v", lease=12345)
    assert paths(received) == ["/v3/kv/put"]
    assert json.loads(received[0].split(b"\r\n\r\n", 1)[1])["lease"] == "12345"


def test_a_login_comes_first_and_its_token_goes_with_the_request() -> None:
    token = answer(200, {"header": _HEADER, "token": "tok.123"})
    with (serving(token, PUT_OK) as (port, received),
          BlockingClient([url(port)], user="app", password="pw") as client):
        client.put(b"k", b"v")
    assert paths(received) == ["/v3/auth/authenticate", "/v3/kv/put"]
    assert json.loads(received[0].split(b"\r\n\r\n", 1)[1]) == {"name": "app", "password": "pw"}
    assert b"Authorization: tok.123" in received[1]


def test_a_request_over_the_size_limit_is_refused_before_connecting() -> None:
    with (BlockingClient([dead()], max_request_bytes=1024) as client,
          pytest.raises(errors.RequestTooLarge)):
        client.put(b"k", b"v" * 2048)
