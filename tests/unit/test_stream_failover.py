"""Watches on a fake 3-member cluster (one store, three host names) on a
task.Clock: a stream that a member ends with "no leader", that cannot be
opened, or whose member hangs (found by the stream probes) resumes on another
member at once, from the revision after the last delivered event."""

from __future__ import annotations

from typing import Any

import pytest
from fake_gateway import Rig, unb64

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.watch import Watch, WatchBatch

ONE, TWO, THREE = "http://one.test:2379", "http://two.test:2379", "http://three.test:2379"
ENDPOINTS = [ONE, TWO, THREE]
WATCH, STATUS = "/watch", "/maintenance/status"
UNDER_W = KeySet(b"w/", prefix=True)


def watching(**client_args: Any) -> tuple[Rig, Watch, list[WatchBatch]]:
    rig = Rig.make(endpoints=ENDPOINTS, **client_args)
    got: list[WatchBatch] = []
    watch = rig.client.watch(UNDER_W, got.append)
    rig.run(watch.created)
    assert [c.host for c in rig.etcd.calls_to(WATCH)] == ["one.test"]
    return rig, watch, got


def values(got: list[WatchBatch]) -> list[bytes]:
    return [ev.kv.value for b in got for ev in b.events]


def revisions(got: list[WatchBatch]) -> list[int]:
    return [ev.revision for b in got for ev in b.events]


def stream_hosts(rig: Rig) -> list[str]:
    return [c.host for c in rig.etcd.calls_to(WATCH)]


def last_start_revision(rig: Rig) -> int:
    [create] = rig.etcd.calls_to(WATCH)[-1].body
    return int(create["create_request"]["start_revision"])


def probes(rig: Rig) -> list[tuple[float, str]]:
    return [(c.at, c.host) for c in rig.etcd.calls_to(STATUS)]


def assert_once_in_order(got: list[WatchBatch], expected: list[bytes]) -> None:
    assert values(got) == expected
    assert revisions(got) == sorted(set(revisions(got)))


def test_a_stream_ended_with_no_leader_resumes_at_once_on_another_member() -> None:
    rig, watch, got = watching()
    rig.run(rig.client.put(b"w/a", b"1"))
    delivered_at = revisions(got)[-1]
    # one.test is cut off: it ends its require-leader stream and refuses requests.
    rig.etcd.unavailable_hosts.add("one.test")
    rig.etcd.end_streams("one.test")
    rig.etcd.put(b"w/b", b"2")  # while the watch is away
    rig.flush()
    rig.etcd.put(b"w/c", b"3")
    rig.flush()
    assert stream_hosts(rig) == ["one.test", "two.test"]
    watch_calls = rig.etcd.calls_to(WATCH)
    assert watch_calls[1].at == watch_calls[0].at == 0.0  # no pause before another member
    assert watch_calls[1].leader_required
    assert last_start_revision(rig) == delivered_at + 1
    assert_once_in_order(got, [b"1", b"2", b"3"])
    assert not rig.client.transport.health.is_healthy(ONE)
    assert watch.reconnects == 1
    rig.run(watch.cancel())


def test_a_stream_that_cannot_be_opened_moves_on_without_a_pause() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.unavailable_hosts.update({"one.test", "two.test"})
    got: list[WatchBatch] = []
    watch = rig.client.watch(UNDER_W, got.append)
    rig.run(watch.created)
    assert stream_hosts(rig) == ["one.test", "two.test", "three.test"]
    assert {c.at for c in rig.etcd.calls_to(WATCH)} == {0.0}
    rig.run(rig.client.put(b"w/a", b"1"))
    assert values(got) == [b"1"]
    rig.run(watch.cancel())


def test_when_every_member_fails_the_stream_pauses_between_rounds() -> None:
    """Each member once, at once; then a pause that doubles, then each again."""
    rig, watch, got = watching()
    rig.etcd.unavailable_hosts.update({"one.test", "two.test", "three.test"})
    rig.etcd.end_streams("one.test")
    rig.flush()
    rig.advance_to(0.05 + 0.1 + 0.2 + 0.001, step=0.001)
    calls = rig.etcd.calls_to(WATCH)[1:]
    rounds: dict[float, list[str]] = {}
    for c in calls:
        rounds.setdefault(round(c.at, 3), []).append(c.host)
    # The first round has the two others (the stream's own member counts as
    # tried); each later one every member, the demotion ending first first.
    assert list(rounds) == [0.0, 0.05, 0.15, 0.35]
    assert rounds[0.0] == ["two.test", "three.test"]
    for later in (0.05, 0.15, 0.35):
        assert rounds[later] == ["one.test", "two.test", "three.test"]
    rig.etcd.unavailable_hosts.clear()
    rig.etcd.put(b"w/a", b"1")
    rig.advance_to(1.0)
    assert values(got) == [b"1"]
    rig.run(watch.cancel())


@pytest.mark.parametrize("interval,timeout", [(2.0, 2.0), (1.0, 0.5), (0.25, 3.0)])
def test_a_hung_member_is_left_within_probe_interval_plus_probe_timeout(
        interval: float, timeout: float) -> None:
    """The worst case: the member hangs right after answering a probe."""
    rig, watch, got = watching(probe_interval=interval, probe_timeout=timeout)
    rig.run(rig.client.put(b"w/a", b"1"))
    step = 0.125  # exact in binary: the clock lands on each probe's time
    rig.advance_to(interval * 3, step=step)
    assert probes(rig) == [(interval * i, "one.test") for i in (1, 2, 3)]
    hung_at = rig.clock.seconds()
    rig.etcd.hung_hosts.add("one.test")
    rig.etcd.put(b"w/b", b"2")
    rig.etcd.put(b"w/c", b"3")
    detection = interval + timeout
    rig.advance_to(hung_at + detection - step, step=step)
    assert stream_hosts(rig) == ["one.test"], "moved before the probe could have failed"
    assert values(got) == [b"1"]
    rig.advance_to(hung_at + detection, step=step)
    assert stream_hosts(rig) == ["one.test", "two.test"]
    assert rig.etcd.calls_to(WATCH)[-1].at == hung_at + detection
    assert_once_in_order(got, [b"1", b"2", b"3"])
    assert not rig.client.transport.health.is_healthy(ONE)
    rig.run(rig.client.put(b"w/d", b"4"))
    assert_once_in_order(got, [b"1", b"2", b"3", b"4"])
    # The new member is probed now, the hung one no longer.
    assert rig.client.transport.probes.probing() == [TWO]
    rig.run(watch.cancel())


def test_a_probe_answered_no_leader_moves_the_stream() -> None:
    rig, watch, got = watching()
    rig.etcd.unavailable_hosts.add("one.test")  # its open stream says nothing yet
    rig.etcd.put(b"w/a", b"1")
    rig.advance_to(2.0)
    assert probes(rig) == [(2.0, "one.test")]
    assert stream_hosts(rig) == ["one.test", "two.test"]
    assert rig.etcd.calls_to(WATCH)[-1].at == 2.0
    assert values(got) == [b"1"]
    rig.run(watch.cancel())


def test_probes_run_only_while_a_stream_is_open_and_leave_no_timer() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.advance_to(10.0)
    assert probes(rig) == []
    watch = rig.client.watch(UNDER_W)
    rig.run(watch.created)
    rig.advance_to(16.0)
    assert probes(rig) == [(12.0, "one.test"), (14.0, "one.test"), (16.0, "one.test")]
    assert all(c.leader_required for c in rig.etcd.calls_to(STATUS))
    rig.run(watch.cancel())
    assert rig.clock.getDelayedCalls() == []
    assert rig.client.transport.probes.probing() == []
    rig.advance_to(30.0)
    assert len(probes(rig)) == 3


def test_a_probe_in_flight_is_cancelled_with_the_last_stream() -> None:
    rig = Rig.make(endpoints=ENDPOINTS)
    rig.etcd.hold.add(STATUS)
    watch = rig.client.watch(UNDER_W)
    rig.run(watch.created)
    rig.advance(2.0)
    assert len(rig.etcd.held) == 1  # the probe waits for its answer
    rig.run(watch.cancel())
    rig.flush()
    assert rig.clock.getDelayedCalls() == []
    assert rig.etcd.held[0].gone  # its connection was dropped
    assert not rig.client.transport.health.demoted()


def test_two_streams_on_one_member_share_its_probe_and_both_move() -> None:
    rig, first, got_first = watching()
    got_second: list[WatchBatch] = []
    second = rig.client.watch(b"x", got_second.append)
    rig.run(second.created)
    rig.advance_to(4.0)
    assert probes(rig) == [(2.0, "one.test"), (4.0, "one.test")]
    rig.etcd.hung_hosts.add("one.test")
    rig.etcd.put(b"w/a", b"1")
    rig.etcd.put(b"x", b"2")
    rig.advance_to(8.0)
    assert sorted(stream_hosts(rig)) == ["one.test", "one.test", "two.test", "two.test"]
    assert values(got_first) == [b"1"] and values(got_second) == [b"2"]
    rig.advance_to(10.0)
    assert [p for p in probes(rig) if p[0] > 8.0] == [(10.0, "two.test")]  # one probe for both
    rig.run(first.cancel())
    rig.advance_to(12.0)
    assert probes(rig)[-1] == (12.0, "two.test")  # still probed for the second
    rig.run(second.cancel())
    assert rig.clock.getDelayedCalls() == []


def test_without_probes_a_hung_member_stalls_its_stream() -> None:
    """probe_interval=None turns probes off: documented as a stall."""
    rig, watch, got = watching(probe_interval=None)
    rig.etcd.hung_hosts.add("one.test")
    rig.etcd.put(b"w/a", b"1")
    rig.advance_to(60.0)
    assert probes(rig) == [] and stream_hosts(rig) == ["one.test"] and values(got) == []
    rig.run(watch.cancel())


@pytest.mark.parametrize("args,error,match", [
    ({"probe_interval": -1}, ValueError, "probe_interval"),
    ({"probe_interval": float("inf")}, ValueError, "probe_interval"),
    ({"probe_interval": "2"}, TypeError, "probe_interval"),
    ({"probe_interval": True}, TypeError, "probe_interval"),
    ({"probe_timeout": 0}, ValueError, "probe_timeout"),
    ({"probe_timeout": None}, TypeError, "probe_timeout"),
])
def test_probe_options_are_checked(args: dict[str, Any], error: type[Exception],
                                   match: str) -> None:
    with pytest.raises(error, match=match):
        Client(None, url=ONE, **args)


@pytest.mark.parametrize("off", [None, 0])
def test_probe_interval_none_or_zero_turns_probes_off(off: float | None) -> None:
    client = Client(None, url=ONE, probe_interval=off)
    assert not client.transport.probes.enabled


def test_the_resume_revision_carries_over_the_move() -> None:
    """Each key set resumes at its own revision on the new member."""
    rig = Rig.make(endpoints=ENDPOINTS)
    got: list[WatchBatch] = []
    watch = rig.client.watch([b"a", b"b"], got.append)
    rig.run(watch.created)
    rig.run(rig.client.put(b"a", b"a1"))
    rig.run(rig.client.put(b"b", b"b1"))
    rig.run(rig.client.put(b"a", b"a2"))
    rev_b1, rev_a2 = got[1].revision, got[2].revision
    rig.etcd.end_streams("one.test")
    rig.etcd.put(b"b", b"b2")
    rig.flush()
    body = rig.etcd.calls_to(WATCH)[-1].body
    starts = {unb64(m["create_request"]["key"]): int(m["create_request"]["start_revision"])
              for m in body}
    assert starts == {b"a": rev_a2 + 1, b"b": rev_b1 + 1}
    assert values(got) == [b"a1", b"b1", b"a2", b"b2"]
    rig.run(watch.cancel())
