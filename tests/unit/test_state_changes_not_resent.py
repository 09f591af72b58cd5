"""A request that changes state is never sent to a second member after the
first one left its outcome open, even when sending it twice would be
harmless on its own: a hung member applies what it buffered once it runs
again, after any later change made through the others, and so undoes that
change (seen on a real cluster: a proclaim timed out on a SIGSTOPped member,
was re-sent to another, the caller proclaimed a newer value, and the hung
member's copy replaced it on SIGCONT). Fake gateway at three host names on a
task.Clock."""

from __future__ import annotations

from typing import Any

import pytest
from fake_gateway import API, FakeEtcd
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.wire import Request
from etcdwamp.wire.auth import (
    auth_disable_request,
    auth_enable_request,
    role_grant_permission_request,
    user_change_password_request,
    user_grant_role_request,
)
from etcdwamp.wire.cluster import member_update_request
from etcdwamp.wire.concurrency import LeaderKey, proclaim_request

ENDPOINTS = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]
LEADER = LeaderKey(name=b"e", key=b"e/1", rev=5, lease=7)

#: requests whose late application on a member that hung would undo a later change
STATE_CHANGES: dict[str, Request[Any]] = {
    "proclaim": proclaim_request(LEADER, b"stale"),
    "user grant role": user_grant_role_request("alice", "reader"),
    "role grant permission": role_grant_permission_request("reader", b"k", "read"),
    "change password": user_change_password_request("alice", "old secret"),
    "auth enable": auth_enable_request(),
    "auth disable": auth_disable_request(),
    "member update": member_update_request(1, ["http://127.0.0.1:2380"]),
}


def settle(d: Any, stub: StubTreq, clock: Clock, seconds: float) -> Any:
    """Move bytes and time for ``seconds``; the result or Failure of ``d``."""
    for _ in range(int(seconds * 10) + 1):
        stub.flush()
        clock.advance(0.1)
    stub.flush()
    got: list[Any] = []
    d.addBoth(got.append)
    assert got, "still pending"
    return got[0]


def rig() -> tuple[Client, FakeEtcd, StubTreq, Clock]:
    clock = Clock()
    etcd = FakeEtcd(clock)
    stub = StubTreq(etcd)
    client = Client(clock, endpoints=ENDPOINTS, http_client=stub, timeout=3.0, api_prefix=API)
    return client, etcd, stub, clock


@pytest.mark.parametrize("name", sorted(STATE_CHANGES))
def test_a_state_change_a_hung_member_did_not_answer_is_not_resent(name: str) -> None:
    client, etcd, stub, clock = rig()
    etcd.hung_hosts.add("one.test")
    result = settle(client.transport.call(STATE_CHANGES[name]), stub, clock, 4.0)
    assert isinstance(result, Failure) and result.check(e.RequestTimeout), result
    assert [c.host for c in etcd.calls] == ["one.test"]  # sent once, to the hung member


@pytest.mark.parametrize("name", sorted(STATE_CHANGES))
def test_a_state_change_answered_request_timed_out_is_not_resent(name: str) -> None:
    client, etcd, stub, clock = rig()
    etcd.unavailable_message = "etcdserver: request timed out"
    etcd.unavailable_hosts.add("one.test")
    result = settle(client.transport.call(STATE_CHANGES[name]), stub, clock, 0.0)
    assert isinstance(result, Failure) and result.check(e.IndefiniteAnswer), result
    assert [c.host for c in etcd.calls] == ["one.test"]
