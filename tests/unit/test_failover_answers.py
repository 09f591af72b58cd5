"""Which answers move a request to the next endpoint, and which end it as an
outcome the caller must treat as unknown (fake gateway at three host names,
one shared store, on a task.Clock)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_gateway import API, FakeEtcd
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.client import Client

ENDPOINTS = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]


def cluster(**client_args: Any) -> tuple[Client, FakeEtcd, StubTreq, Clock]:
    clock = Clock()
    etcd = FakeEtcd(clock)
    stub = StubTreq(etcd)
    client = Client(clock, endpoints=ENDPOINTS, http_client=stub, timeout=2.0,
                    api_prefix=API, **client_args)
    return client, etcd, stub, clock


def outcome(d: Any, stub: StubTreq) -> Any:
    for _ in range(10):
        stub.flush()
    got: list[Any] = []
    d.addBoth(got.append)
    assert got, "still pending"
    return got[0]


def test_every_request_requires_a_leader_unless_told_not_to() -> None:
    client, etcd, stub, _ = cluster()
    outcome(client.put(b"k", b"v"), stub)
    outcome(client.get(b"k"), stub)
    assert [c.leader_required for c in etcd.calls] == [True, True]
    client, etcd, stub, _ = cluster(require_leader=False)
    outcome(client.get(b"k"), stub)
    assert [c.leader_required for c in etcd.calls] == [False]


def test_a_write_answered_no_leader_moves_on_and_is_applied_once() -> None:
    """"no leader" is answered before etcd proposes anything: safe to send elsewhere."""
    client, etcd, stub, _ = cluster()
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.put(b"k", b"v"), stub)
    assert not isinstance(result, Failure), result
    assert [c.host for c in etcd.calls_to("/kv/put")] == ["one.test", "two.test"]
    assert etcd.value(b"k") == b"v"
    assert not client.transport.health.is_healthy("http://one.test:2379")
    # The next call starts with a member that has a leader.
    outcome(client.get(b"k"), stub)
    assert etcd.calls_to("/kv/range")[0].host == "two.test"


@pytest.mark.parametrize("message", [
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: leader changed",
])
def test_a_write_answered_with_an_open_outcome_raises_indefinite_answer(message: str) -> None:
    client, etcd, stub, _ = cluster()
    etcd.unavailable_message = message
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.put(b"k", b"v"), stub)
    assert isinstance(result, Failure) and result.check(e.IndefiniteAnswer), result
    exc = result.value
    assert isinstance(exc, e.OutcomeUnknown)
    assert not isinstance(exc, e.ServerError)  # never caught as "etcd refused it"
    assert (exc.code, exc.message, exc.http_status) == (14, message, 503)
    assert len(etcd.calls_to("/kv/put")) == 1  # never re-sent


def test_a_read_answered_request_timed_out_moves_on() -> None:
    client, etcd, stub, _ = cluster()
    etcd.put(b"k", b"v")
    etcd.unavailable_message = "etcdserver: request timed out"
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.get(b"k"), stub)
    assert result.kvs[0].value == b"v"
    assert [c.host for c in etcd.calls_to("/kv/range")] == ["one.test", "two.test"]


def test_no_leader_anywhere_fails_with_no_leader() -> None:
    client, etcd, stub, _ = cluster()
    etcd.unavailable_hosts.update({"one.test", "two.test", "three.test"})
    result = outcome(client.put(b"k", b"v"), stub)
    assert isinstance(result, Failure) and result.check(e.NoLeader), result
    assert len(etcd.calls_to("/kv/put")) == 3
    assert etcd.value(b"k") is None


def test_an_election_without_leader_is_not_a_member_without_leader() -> None:
    """"election: no leader" (nobody campaigns) must not look like NoLeader."""
    from etcdwamp.wire import error_from_response
    err = error_from_response(404, b'{"code": 2, "message": "election: no leader"}')
    assert not isinstance(err, e.NoLeader)
    err = error_from_response(503, b'{"code": 14, "message": "etcdserver: no leader"}')
    assert isinstance(err, e.NoLeader) and isinstance(err, e.Unavailable)


@pytest.mark.parametrize("status,code,message,indefinite", [
    (503, 14, "etcdserver: request timed out", True),
    (503, 14, "etcdserver: leader changed", True),
    (503, 14, "etcdserver: server stopped", True),
    (504, 4, "context deadline exceeded", True),
    (499, 1, "context canceled", True),
    (502, 2, "HTTP 502: Bad Gateway", True),
    (503, 14, "etcdserver: no leader", False),
    (503, 14, "etcdserver: not capable", False),
    (503, 14, "etcdserver: unhealthy cluster", False),  # member add/remove refused
    (503, 14, "etcdserver: not leader", False),
    (429, 8, "etcdserver: too many requests", False),
    (400, 3, "etcdserver: request is too large", False),
    (403, 7, "etcdserver: permission denied", False),
    (500, 13, "etcdserver: corrupt cluster", False),
])
def test_which_answers_leave_a_write_s_outcome_open(status: int, code: int, message: str,
                                                    indefinite: bool) -> None:
    import json

    from etcdwamp.wire import error_from_response
    from etcdwamp.wire.errors import is_indefinite
    err = error_from_response(status, json.dumps({"code": code, "message": message}).encode())
    assert is_indefinite(err) is indefinite


def test_attempt_timeout_is_checked() -> None:
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="attempt_timeout"):
            cluster(attempt_timeout=bad)


def test_asking_a_cluster_without_raft_leader_who_leads_an_election_raises() -> None:
    """Not None ("nobody campaigns"): the members cannot know."""
    client, etcd, stub, _ = cluster()
    etcd.unavailable_hosts.update({"one.test", "two.test", "three.test"})
    result = outcome(client.election(b"e").leader(), stub)
    assert isinstance(result, Failure) and result.check(e.NoLeader), result
