"""Which answers move a request to the next endpoint, and which end it as an
outcome the caller must treat as unknown (fake gateway at three host names,
one shared store, on a task.Clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_gateway import API, FakeEtcd
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.wire import KeySet

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


@pytest.mark.parametrize(("call", "path", "resent"), [
    (lambda c: c.delete(b"k"), "/kv/deleterange", False),
    (lambda c: c.delete(KeySet(b"p/", prefix=True)), "/kv/deleterange", False),
    (lambda c: c.compact(1), "/kv/compaction", True),
    (lambda c: c.status(), "/maintenance/status", True),
])
def test_after_an_open_outcome_only_what_is_safe_to_repeat_is_sent_again(
        call: Callable[[Client], Deferred[Any]], path: str, resent: bool) -> None:
    """A delete sent again could remove a key written after the first one was
    applied: the caller hears the outcome is open. A compaction or a status
    read does no harm twice: it moves on to the next member."""
    client, etcd, stub, _ = cluster()
    etcd.unavailable_message = "etcdserver: request timed out"
    etcd.unavailable_hosts.add("one.test")
    result = outcome(call(client), stub)
    if resent:
        assert not isinstance(result, Failure), result
        assert [c.host for c in etcd.calls_to(path)] == ["one.test", "two.test"]
    else:
        assert isinstance(result, Failure) and result.check(e.IndefiniteAnswer), result
        assert [c.host for c in etcd.calls_to(path)] == ["one.test"]


def test_a_compaction_is_purged_physically_only_when_asked() -> None:
    client, etcd, stub, _ = cluster()
    outcome(client.compact(3), stub)
    outcome(client.compact(4, physical=True), stub)
    assert [c.body for c in etcd.calls_to("/kv/compaction")] == [
        {"revision": "3"}, {"revision": "4", "physical": True}]
    assert etcd.compacted == [3, 4]


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


def test_a_lock_that_waited_its_whole_timeout_does_not_demote_its_member() -> None:
    """A blocking request times out because another holder keeps the lock, not
    because the member hangs: the member stays healthy."""
    from fake_gateway import Rig
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.hang.add("/lock/lock")  # held elsewhere: etcd answers once it is free
    lock = rig.client.lock(b"job")
    d = lock.acquire(timeout=1.0)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    rig.advance_to(1.5)
    assert len(failures) == 1 and failures[0].check(e.RequestTimeout), failures
    assert rig.client.transport.health.demoted() == {}


def test_a_member_without_leader_refusing_prefix_detection_is_skipped() -> None:
    """Without ``api_prefix`` the first exchange with a member is a status
    request, which a member without leader refuses under require-leader: the
    call moves on (the request itself was never sent there), reads and writes."""
    clock = Clock()
    etcd = FakeEtcd(clock)
    stub = StubTreq(etcd)
    client = Client(clock, endpoints=ENDPOINTS, http_client=stub, timeout=2.0)
    etcd.put(b"k", b"v")
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.get(b"k"), stub)
    assert not isinstance(result, Failure), result
    assert result.kvs[0].value == b"v"
    assert not client.transport.health.is_healthy("http://one.test:2379")
    assert [c.host for c in etcd.calls_to("/kv/range")] == ["two.test"]
    # A write on a new client: the same, nothing sent to the member twice.
    client = Client(clock, endpoints=ENDPOINTS, http_client=stub, timeout=2.0)
    result = outcome(client.put(b"w", b"x"), stub)
    assert not isinstance(result, Failure), result
    assert [c.host for c in etcd.calls_to("/kv/put")] == ["two.test"]
    assert etcd.value(b"w") == b"x"


def test_a_read_whose_deadline_ran_out_on_etcd_s_side_moves_on() -> None:
    client, etcd, stub, _ = cluster()
    etcd.put(b"k", b"v")
    etcd.unavailable_code, etcd.unavailable_message = 4, "context deadline exceeded"
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.get(b"k"), stub)
    assert result.kvs[0].value == b"v"
    assert [c.host for c in etcd.calls_to("/kv/range")] == ["one.test", "two.test"]


def test_a_write_refused_as_unavailable_leaves_its_member_demoted() -> None:
    """Refused before proposing ("unhealthy cluster"): raised as Unavailable, and
    the member stays demoted rather than becoming the preferred one."""
    client, etcd, stub, _ = cluster()
    etcd.unavailable_message = "etcdserver: unhealthy cluster"
    etcd.unavailable_hosts.add("one.test")
    result = outcome(client.put(b"k", b"v"), stub)
    assert isinstance(result, Failure) and result.check(e.Unavailable), result
    assert not result.check(e.OutcomeUnknown)
    assert not client.transport.health.is_healthy("http://one.test:2379")
    assert client.endpoint == "http://two.test:2379"
