"""Auth token renewal on a ``task.Clock`` over the fake gateway: a token that
etcd no longer accepts is replaced once, and the refused request is sent again."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from fake_gateway import Call, Rig
from twisted.internet.defer import gatherResults
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.watch import WatchBatch

USERS = {"app": "apppw"}
TOKEN_TTL = 60.0


def auth_rig(token_ttl: float = TOKEN_TTL, **client_args: Any) -> Rig:
    return Rig.make(users=USERS, token_ttl=token_ttl, user="app", password="apppw",
                    **client_args)


def calls_since(rig: Rig, start: int) -> list[tuple[str, str | None]]:
    return [(c.path, c.token) for c in rig.etcd.calls[start:]]


def test_expired_token_is_renewed_once_and_the_request_retried() -> None:
    rig = auth_rig()
    rig.run(rig.client.put(b"k", b"1"))
    assert calls_since(rig, 0) == [("/auth/authenticate", None), ("/kv/put", "token1")]

    rig.advance(TOKEN_TTL - 1)  # still valid: no renewal before it is needed
    mark = len(rig.etcd.calls)
    rig.run(rig.client.put(b"k", b"2"))
    assert calls_since(rig, mark) == [("/kv/put", "token1")]

    rig.advance(2)  # now past the token's TTL
    mark = len(rig.etcd.calls)
    rig.run(rig.client.put(b"k", b"3"))
    assert calls_since(rig, mark) == [
        ("/kv/put", "token1"),  # refused: invalid auth token
        ("/auth/authenticate", None),
        ("/kv/put", "token2"),
    ]
    assert rig.etcd.value(b"k") == b"3"

    mark = len(rig.etcd.calls)
    rig.run(rig.client.get(b"k"))
    assert calls_since(rig, mark) == [("/kv/range", "token2")]


def test_concurrent_requests_share_one_renewal() -> None:
    """Three requests refused with the same expired token: one authenticate,
    three retries with the new token."""
    rig = auth_rig()
    rig.run(rig.client.put(b"k", b"v"))
    rig.advance(TOKEN_TTL + 1)
    mark = len(rig.etcd.calls)
    rig.etcd.hold.add("/kv/range")
    gets = gatherResults([rig.client.get(b"k") for _ in range(3)])
    assert len(rig.etcd.held) == 3  # all three in flight with the old token
    rig.etcd.hold.clear()
    rig.etcd.release()
    results = rig.run(gets)
    assert [r.kvs[0].value for r in results] == [b"v", b"v", b"v"]
    seen = rig.etcd.calls[mark:]
    assert [c.path for c in seen].count("/auth/authenticate") == 1
    assert sorted((c.path, c.token) for c in seen if c.path == "/kv/range") == (
        [("/kv/range", "token1")] * 3 + [("/kv/range", "token2")] * 3)
    renewal = next(i for i, c in enumerate(seen) if c.path == "/auth/authenticate")
    assert all(c.token == "token2" for c in seen[renewal + 1:])


def test_a_retry_refused_again_is_not_retried_forever() -> None:
    """Tokens that die at once (TTL 0): one renewal and one retry, then the error."""
    rig = auth_rig(token_ttl=0.0)
    with pytest.raises(e.Unauthenticated):
        rig.run(rig.client.put(b"k", b"v"))
    assert [c.path for c in rig.etcd.calls] == [
        "/auth/authenticate", "/kv/put", "/auth/authenticate", "/kv/put"]
    assert rig.etcd.value(b"k") is None


def test_wrong_password_is_authentication_failed_without_a_retry_loop() -> None:
    rig = Rig.make(users=USERS, user="app", password="wrong")
    with pytest.raises(e.AuthenticationFailed):
        rig.run(rig.client.put(b"k", b"v"))
    assert [c.path for c in rig.etcd.calls] == ["/auth/authenticate"]


def test_lease_keep_alive_survives_a_token_expiry() -> None:
    """The renewal loop runs for longer than a token lives: a renewal refused
    for its token re-authenticates and still renews in time."""
    rig = auth_rig(token_ttl=10.0)
    lease = rig.run(rig.client.lease(9, keep_alive=True))
    rig.advance_to(40.0)
    keepalives: list[Call] = rig.etcd.calls_to("/lease/keepalive")
    assert rig.etcd.lease_alive(lease.id) and not lease.is_lost
    assert len(rig.etcd.calls_to("/auth/authenticate")) >= 4
    # Each renewal was eventually accepted (every third of the TTL).
    assert lease.renewals == 13
    assert {c.at for c in keepalives} == {3.0 * i for i in range(1, 14)}


def test_watch_reconnect_authenticates_again_when_its_token_expired() -> None:
    """etcd checks the token only when a watch is created: a long-running
    stream outlives its token, and the reconnect after a break must get a new one."""
    rig = auth_rig(probe_interval=None)  # the stream's own requests only
    got: list[WatchBatch] = []
    watch = rig.client.watch(b"k", got.append)
    rig.run(watch.created)
    rig.run(rig.client.put(b"k", b"1"))
    rig.advance(TOKEN_TTL + 1)
    rig.etcd.break_streams()
    rig.flush()
    rig.etcd.put(b"k", b"2")
    rig.advance_to(rig.clock.seconds() + 10.0)  # many reconnect backoffs
    assert [ev.kv.value for b in got for ev in b.events] == [b"1", b"2"]
    # One reconnect refused for its stale token, one authenticate, one
    # reconnect with the new token that holds: no retry loop.
    assert [(c.path, c.token) for c in rig.etcd.calls if c.at > TOKEN_TTL] == [
        ("/watch", "token1"), ("/auth/authenticate", None), ("/watch", "token2")]
    assert len(rig.etcd.streams) == 1 and rig.etcd.streams[0].targets
    rig.run(watch.cancel())


def test_watch_ends_when_authenticating_again_is_refused() -> None:
    """The password changed while the stream ran: the reconnect's new login
    fails, which no retry will heal, so the watch ends with that error."""
    rig = auth_rig(probe_interval=None)  # a probe would renew the token before the change
    watch = rig.client.watch(b"k")
    rig.run(watch.created)
    ended: list[object] = []
    watch.finished.addBoth(ended.append)
    rig.advance(TOKEN_TTL + 1)
    rig.etcd.users = {"app": "changed"}
    rig.etcd.break_streams()
    rig.advance_to(rig.clock.seconds() + 10.0)
    assert len(ended) == 1 and isinstance(ended[0], Failure)
    assert ended[0].check(e.AuthenticationFailed)
    assert len(rig.etcd.calls_to("/auth/authenticate")) == 2
    assert rig.clock.getDelayedCalls() == []


def test_watch_whose_fresh_tokens_are_refused_too_backs_off() -> None:
    """Tokens that die at once: every reconnect authenticates and is refused
    again; the watch keeps trying (it may heal) but with growing pauses."""
    rig = auth_rig(token_ttl=0.0)
    watch = rig.client.watch(b"k")
    rig.advance_to(10.0, step=0.01)
    tries = [c.at for c in rig.etcd.calls_to("/watch")]
    assert 4 <= len(tries) <= 10, tries
    pauses = [round(b - a, 2) for a, b in pairwise(tries)]
    assert pauses == sorted(pauses) and pauses[-1] > pauses[0], f"pauses must grow: {pauses}"
    assert len(rig.etcd.calls_to("/auth/authenticate")) == len(tries)
    assert not watch.finished.called
    rig.run(watch.cancel())
