"""The client's ``timeout`` bounds a whole call, failover included, on a
``task.Clock`` over the fake gateway served at three endpoint URLs (StubTreq
routes every host to the same :class:`FakeEtcd`, so "three members" share one
store; what is checked here is when the client gives up, not replication)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fake_gateway import API, FakeEtcd
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.wire import status_request

ENDPOINTS = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]
TIMEOUT = 2.0
RANGE = "/kv/range"


def cluster(*, users: dict[str, str] | None = None, token_ttl: float = 300.0,
            **client_args: Any) -> tuple[Client, FakeEtcd, StubTreq, Clock]:
    clock = Clock()
    etcd = FakeEtcd(clock, users=users, token_ttl=token_ttl)
    stub = StubTreq(etcd)
    client_args.setdefault("api_prefix", API)
    client = Client(clock, endpoints=ENDPOINTS, http_client=stub, timeout=TIMEOUT,
                    **client_args)
    return client, etcd, stub, clock


def flush(stub: StubTreq) -> None:
    for _ in range(5):
        stub.flush()


STEP = 1 / 16  # exact in binary: the steps add up to the times the tests name


def advance(clock: Clock, stub: StubTreq, seconds: float) -> None:
    """Move time in small steps, each followed by the I/O it causes."""
    end = clock.seconds() + seconds
    while clock.seconds() + STEP <= end:
        clock.advance(STEP)
        flush(stub)
    if clock.seconds() < end:
        clock.advance(end - clock.seconds())
        flush(stub)


def when_it_fails(d: Deferred[Any], clock: Clock, stub: StubTreq,
                  limit: float = 10 * TIMEOUT) -> tuple[float, Failure]:
    """The clock's time when ``d`` failed, and the failure."""
    seen: list[tuple[float, Any]] = []
    d.addBoth(lambda r: seen.append((clock.seconds(), r)))
    flush(stub)
    while not seen and clock.seconds() < limit:
        advance(clock, stub, STEP)
    assert seen, f"still pending after {limit}s"
    at, result = seen[0]
    assert isinstance(result, Failure), f"expected a failure, got {result!r}"
    return at, result


def ends_when_the_budget_is_spent(seen: list[tuple[float, Any]], clock: Clock,
                                  stub: StubTreq, left: float, what: str) -> None:
    """The call (its outcome and time go to ``seen``) fails with RequestTimeout
    exactly when the ``left`` seconds of its budget have passed, at TIMEOUT."""
    advance(clock, stub, left - STEP)
    assert not seen, f"{what} gets what is left of the budget, no less"
    advance(clock, stub, STEP)
    assert seen, f"{what} got more than what was left of the budget"
    at, result = seen[0]
    assert at == TIMEOUT, at
    assert isinstance(result, Failure) and result.check(e.RequestTimeout), result


def test_a_read_to_three_members_that_never_answer_tries_each_and_fails_at_the_timeout() -> None:
    """Each attempt gets ``attempt_timeout``, the last one what is left, and the
    call ends at its timeout, not at three times it."""
    client, etcd, stub, clock = cluster(attempt_timeout=0.5)
    etcd.hang.add(RANGE)
    at, failure = when_it_fails(client.get(b"k"), clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at
    assert [c.at for c in etcd.calls_to(RANGE)] == [0.0, 0.5, 1.0]


def test_by_default_each_attempt_gets_an_equal_share_of_what_is_left() -> None:
    """Three endpoints, 2 s: a third each (to the clock's step), not 2 s for the first."""
    client, etcd, stub, clock = cluster()
    etcd.hang.add(RANGE)
    at, failure = when_it_fails(client.get(b"k"), clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at
    times = [c.at for c in etcd.calls_to(RANGE)]
    assert len(times) == 3
    for got, share in zip(times, (0.0, TIMEOUT / 3, 2 * TIMEOUT / 3), strict=True):
        assert share <= got < share + STEP, times


def test_a_write_is_not_cut_into_shares() -> None:
    """A write cannot move on once sent, so its one attempt gets the whole timeout."""
    client, etcd, stub, clock = cluster(attempt_timeout=0.5)
    etcd.hang.add("/kv/put")
    at, failure = when_it_fails(client.put(b"k", b"v"), clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at
    assert len(etcd.calls_to("/kv/put")) == 1


def test_a_write_that_never_gets_an_answer_fails_at_the_timeout() -> None:
    client, etcd, stub, clock = cluster()
    etcd.hang.add("/kv/put")
    at, failure = when_it_fails(client.put(b"k", b"v"), clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at


def test_failover_attempts_share_one_deadline() -> None:
    """Each member answers Unavailable after 0.5s (within its share of the
    2s): the read moves on to the next with what is left of the budget, and
    the third attempt, given the 1s left, ends the call at the timeout with
    RequestTimeout."""
    client, etcd, stub, clock = cluster()
    etcd.hold.add(RANGE)
    read = client.get(b"k")
    seen: list[tuple[float, Any]] = []
    read.addBoth(lambda r: seen.append((clock.seconds(), r)))
    flush(stub)
    for attempt in (1, 2):
        assert len(etcd.held) == 1 and len(etcd.calls_to(RANGE)) == attempt
        advance(clock, stub, 0.5)
        etcd.unavailable.add(RANGE)
        etcd.release()  # answered 503, as a member without leader does
        etcd.unavailable.clear()
        flush(stub)
        assert not seen, f"gave up after attempt {attempt}: {seen}"
    assert len(etcd.calls_to(RANGE)) == 3
    ends_when_the_budget_is_spent(seen, clock, stub, 1.0, "the last attempt")
    assert len(etcd.calls_to(RANGE)) == 3


def test_failover_still_happens_within_the_budget() -> None:
    """A member without leader answers Unavailable at once; the read goes on to
    the next member, which answers."""
    client, etcd, stub, _ = cluster()
    etcd.put(b"k", b"v")
    etcd.hold.add(RANGE)
    read = client.get(b"k")
    flush(stub)
    etcd.unavailable.add(RANGE)
    etcd.hold.clear()
    etcd.release()
    etcd.unavailable.clear()  # only the first member is without leader
    got: list[Any] = []
    read.addBoth(got.append)
    flush(stub)
    assert len(got) == 1 and not isinstance(got[0], Failure), got
    assert got[0].kvs[0].value == b"v"
    assert len(etcd.calls_to(RANGE)) == 2


def test_gateway_prefix_detection_is_inside_the_timeout() -> None:
    """Without a configured prefix the client probes the gateway first; a probe
    that hangs uses the call's budget, it does not get one of its own."""
    client, etcd, stub, clock = cluster(api_prefix=None)
    etcd.hang.add("/maintenance/status")
    at, failure = when_it_fails(client.get(b"k"), clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at
    assert etcd.calls_to(RANGE) == []


def test_logging_in_again_is_inside_the_timeout() -> None:
    """The token expired: the request is refused, the new login takes 1.5s, and
    the resent request, which hangs, only gets the 0.5s left."""
    client, etcd, stub, clock = cluster(users={"app": "pw"}, token_ttl=60.0, user="app",
                                        password="pw")
    put = client.put(b"k", b"1")
    flush(stub)
    assert etcd.value(b"k") == b"1" and put.called
    clock.advance(61.0)
    etcd.hold.add("/auth/authenticate")
    start = clock.seconds()
    read = client.get(b"k")
    seen: list[tuple[float, Any]] = []
    read.addBoth(lambda r: seen.append((clock.seconds() - start, r)))
    flush(stub)
    assert len(etcd.held) == 1  # the new login is under way
    assert [(c.path, c.token) for c in etcd.calls if c.at > 60] == [
        (RANGE, "token1"), ("/auth/authenticate", None)]
    advance(clock, stub, 1.5)
    etcd.hang.add(RANGE)
    etcd.hold.clear()
    etcd.release()
    flush(stub)
    assert len(etcd.calls_to(RANGE)) == 2 and not seen
    ends_when_the_budget_is_spent(seen, clock, stub, 0.5, "the resent request")


def test_a_caller_waiting_for_another_callers_login_ends_at_its_own_timeout() -> None:
    """One caller's login hangs (for up to the client's 2s); a call with a 0.5s
    timeout that needs the token too ends at its 0.5s, not when the login ends."""
    client, etcd, stub, clock = cluster(users={"app": "pw"}, user="app", password="pw")
    etcd.hang.add("/auth/authenticate")
    first = client.get(b"k")
    flush(stub)
    short = client.call(replace(status_request(), timeout=0.5))
    at, failure = when_it_fails(short, clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == 0.5, at
    at, failure = when_it_fails(first, clock, stub)
    assert failure.check(e.RequestTimeout), failure
    assert at == TIMEOUT, at
    # The login moved on from member to member within the client's timeout.
    assert len(etcd.calls_to("/auth/authenticate")) == 3


def test_the_next_call_avoids_the_member_that_timed_out() -> None:
    """A write that timed out could not move on; the member it hung on is
    demoted, so the next call starts elsewhere at once."""
    client, etcd, stub, clock = cluster()
    etcd.put(b"k", b"v")
    assert client.endpoint == ENDPOINTS[0]
    etcd.hang.add("/kv/put")
    when_it_fails(client.put(b"k", b"w"), clock, stub)
    assert client.endpoint == ENDPOINTS[1]
    assert not client.transport.health.is_healthy(ENDPOINTS[0])
    etcd.hang.clear()
    got: list[Any] = []
    client.get(b"k").addBoth(got.append)
    flush(stub)
    assert len(got) == 1 and got[0].kvs[0].value == b"v"
    assert client.endpoint == ENDPOINTS[1]
