"""Election.observe() on a fake 3-member cluster on a task.Clock: a stream the
member ends with "no leader", or whose member hangs, resumes on another member
without repeating the leader value it yielded last."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from fake_gateway import Rig
from twisted.internet.defer import Deferred

ENDPOINTS = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]
OBSERVE = "/election/observe"
NAME = b"jobs"


def observing(rig: Rig, until: int) -> tuple[list[bytes], Deferred[Any]]:
    """Observe NAME until ``until`` values were seen."""
    seen: list[bytes] = []

    async def consume() -> None:
        # aclosing: the stream stops when the loop is left, not when (or if)
        # the generator is collected.
        async with aclosing(rig.client.election(NAME).observe()) as leaders:
            async for kv in leaders:
                seen.append(kv.value)
                if len(seen) == until:
                    return

    done = Deferred.fromCoroutine(consume())
    rig.flush()
    return seen, done


def hosts(rig: Rig) -> list[str]:
    return [c.host for c in rig.etcd.calls_to(OBSERVE)]


def test_a_stream_ended_with_no_leader_resumes_elsewhere_without_a_repeat() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.lead(NAME, b"a1")
    seen, done = observing(rig, until=2)
    assert seen == [b"a1"]
    rig.etcd.unavailable_hosts.add("one.test")
    rig.etcd.end_streams("one.test")
    rig.flush()
    # two.test answered with the current leader again: a1, not yielded twice.
    assert hosts(rig) == ["one.test", "two.test"] and seen == [b"a1"]
    assert {c.at for c in rig.etcd.calls_to(OBSERVE)} == {0.0}  # no pause
    assert not rig.client.transport.health.is_healthy(ENDPOINTS[0])
    rig.etcd.lead(NAME, b"a2")
    rig.flush()
    assert seen == [b"a1", b"a2"] and done.called
    assert rig.clock.getDelayedCalls() == []  # leaving the loop stopped the probes


def test_a_hung_member_is_left_and_the_latest_value_seen() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.lead(NAME, b"a1")
    seen, done = observing(rig, until=2)
    rig.advance_to(2.0)  # one probe answered
    rig.etcd.hung_hosts.add("one.test")
    rig.etcd.lead(NAME, b"a2")  # proclaimed while one.test says nothing
    rig.advance_to(5.75)
    assert seen == [b"a1"] and hosts(rig) == ["one.test"]
    rig.advance_to(6.0)  # probe sent at 4 s, timed out at 6 s
    assert hosts(rig) == ["one.test", "two.test"]
    assert seen == [b"a1", b"a2"] and done.called


def test_waiting_for_a_first_leader_outlasts_the_client_timeout() -> None:
    """etcd sends nothing, not even headers, until someone leads: that is no
    timeout, and the member is not demoted for it (its probes answer)."""
    rig = Rig.make(endpoints=ENDPOINTS, timeout=5.0)
    seen, done = observing(rig, until=1)
    rig.advance_to(60.0)
    assert hosts(rig) == ["one.test"] and seen == []
    assert not rig.client.transport.health.demoted()
    rig.etcd.lead(NAME, b"first")
    rig.flush()
    assert seen == [b"first"] and done.called


def test_an_opening_on_a_hung_member_is_given_up_by_its_probe() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.hung_hosts.add("one.test")
    rig.etcd.lead(NAME, b"a1")
    seen, done = observing(rig, until=1)
    rig.advance_to(3.75)
    assert hosts(rig) == ["one.test"] and seen == []
    rig.advance_to(4.0)  # probe at 2 s, no answer by 4 s
    assert hosts(rig) == ["one.test", "two.test"]
    assert seen == [b"a1"] and done.called
    assert rig.clock.getDelayedCalls() == []


def test_cancelling_the_observer_stops_stream_and_probes() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    seen, done = observing(rig, until=1)
    rig.advance_to(3.0)
    assert seen == [] and rig.client.transport.probes.probing() == [ENDPOINTS[0]]
    done.cancel()
    done.addErrback(lambda _: None)
    rig.flush()
    assert rig.client.transport.probes.probing() == []
    assert rig.clock.getDelayedCalls() == []
    assert rig.etcd.streams == []
