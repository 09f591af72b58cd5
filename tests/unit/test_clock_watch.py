"""Watch reconnection on a ``task.Clock`` over the fake gateway: when the
stream breaks, attempts come after growing delays, and the watch resumes right
after the last revision it delivered (no event lost, none repeated)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from fake_gateway import Rig, unb64

from etcdwamp import KeySet
from etcdwamp.watch import Watch, WatchBatch

WATCH = "/watch"
UNDER_W = KeySet(b"w/", prefix=True)


def watching(keys: bytes | KeySet | list[bytes | KeySet] = UNDER_W
             ) -> tuple[Rig, Watch, list[WatchBatch]]:
    rig = Rig.make()
    got: list[WatchBatch] = []
    watch = rig.client.watch(keys, got.append)
    rig.run(watch.created)
    return rig, watch, got


def values(got: list[WatchBatch]) -> list[bytes]:
    return [ev.kv.value for b in got for ev in b.events]


def attempt_times(rig: Rig) -> list[float]:
    return [c.at for c in rig.etcd.calls_to(WATCH)]


def start_revisions(rig: Rig) -> dict[bytes, int]:
    """Where the latest stream asked each key set to start (0: from now)."""
    body = rig.etcd.calls_to(WATCH)[-1].body
    return {unb64(m["create_request"]["key"]): int(m["create_request"].get("start_revision", 0))
            for m in body}


def to_next_timer(rig: Rig) -> None:
    """Advance the clock exactly to the earliest thing the client scheduled."""
    calls = rig.clock.getDelayedCalls()
    assert calls, "the client scheduled nothing: it gave up reconnecting"
    rig.advance(min(c.getTime() for c in calls) - rig.clock.seconds())


def test_reconnects_after_growing_delays_and_resumes_after_the_last_event() -> None:
    rig, watch, got = watching()
    rig.run(rig.client.put(b"w/a", b"1"))
    assert values(got) == [b"1"]
    delivered_at = got[-1].events[-1].revision

    rig.etcd.unavailable.add(WATCH)  # every reconnect is refused for now
    rig.etcd.break_streams()
    rig.flush()
    broke_at = rig.clock.seconds()
    # History goes on while the watch is away.
    rig.etcd.put(b"w/b", b"2")
    rig.etcd.put(b"elsewhere", b"x")
    rig.etcd.put(b"w/c", b"3")

    while len(attempt_times(rig)) < 1 + 12:
        to_next_timer(rig)
    times = [broke_at, *attempt_times(rig)[1:]]
    delays = [b - a for a, b in pairwise(times)]
    assert delays[0] > 0
    cap = max(delays)
    top = delays.index(cap)
    assert top >= 3, f"delays should grow over several attempts: {delays}"
    for shorter, longer in pairwise(delays[:top + 1]):
        assert shorter < longer <= 2 * shorter + 1e-9, delays
    for shorter, longer in pairwise(delays[:top]):
        assert longer == pytest.approx(2 * shorter), delays  # doubling up to the cap
    assert delays[top:] == pytest.approx([cap] * len(delays[top:])), delays
    assert values(got) == [b"1"]

    rig.etcd.unavailable.clear()
    to_next_timer(rig)
    assert start_revisions(rig) == {b"w/": delivered_at + 1}
    assert values(got) == [b"1", b"2", b"3"]  # the missed ones, once, in order
    assert [ev.revision for b in got for ev in b.events] == sorted(
        {ev.revision for b in got for ev in b.events})
    rig.run(rig.client.put(b"w/d", b"4"))
    assert values(got) == [b"1", b"2", b"3", b"4"]

    # A stream that worked resets the backoff to its first delay.
    rig.etcd.unavailable.add(WATCH)
    rig.etcd.break_streams()
    rig.flush()
    again_at = rig.clock.seconds()
    to_next_timer(rig)
    to_next_timer(rig)
    retry = attempt_times(rig)[-2:]
    assert retry[0] - again_at == pytest.approx(delays[0])
    assert retry[1] - retry[0] == pytest.approx(delays[1])
    rig.run(watch.cancel())


def test_no_reconnect_before_the_delay() -> None:
    rig, watch, _ = watching()
    rig.etcd.break_streams()
    rig.flush()
    [timer] = rig.clock.getDelayedCalls()
    delay = timer.getTime() - rig.clock.seconds()
    rig.advance(delay * 0.99)
    assert len(attempt_times(rig)) == 1
    rig.advance(delay * 0.01)
    assert len(attempt_times(rig)) == 2
    assert watch.reconnects == 1
    rig.run(watch.cancel())


def test_resume_after_a_progress_notification_skips_what_it_covered() -> None:
    rig, watch, got = watching()
    rig.run(rig.client.put(b"w/a", b"1"))
    for i in range(3):
        rig.etcd.put(b"elsewhere/%d" % i, b"x")
    rig.etcd.progress()  # "nothing for you up to here"
    rig.flush()
    current = rig.etcd.revision
    rig.etcd.break_streams()
    rig.flush()
    to_next_timer(rig)
    assert start_revisions(rig) == {b"w/": current + 1}
    rig.run(rig.client.put(b"w/b", b"2"))
    assert values(got) == [b"1", b"2"]
    rig.run(watch.cancel())


def test_a_watch_that_saw_nothing_resumes_after_its_creation() -> None:
    """Created "from now" at revision R, it must come back at R + 1, not "from
    now" again: changes made while it was away would be lost."""
    rig, watch, got = watching()
    created_at = rig.etcd.revision
    rig.etcd.break_streams()
    rig.flush()
    rig.etcd.put(b"w/while-away", b"1")
    to_next_timer(rig)
    assert start_revisions(rig) == {b"w/": created_at + 1}
    assert values(got) == [b"1"]
    rig.run(watch.cancel())


def test_each_key_set_resumes_at_its_own_revision() -> None:
    rig, watch, got = watching([b"a", b"b"])
    rig.run(rig.client.put(b"a", b"a1"))
    rig.run(rig.client.put(b"b", b"b1"))
    rig.run(rig.client.put(b"a", b"a2"))
    rev_b1, rev_a2 = got[1].revision, got[2].revision
    rig.etcd.break_streams()
    rig.flush()
    rig.etcd.put(b"b", b"b2")
    to_next_timer(rig)
    assert start_revisions(rig) == {b"a": rev_a2 + 1, b"b": rev_b1 + 1}
    assert values(got) == [b"a1", b"b1", b"a2", b"b2"]
    rig.run(watch.cancel())


def test_cancel_stops_reconnecting() -> None:
    rig, watch, _ = watching()
    rig.etcd.unavailable.add(WATCH)
    rig.etcd.break_streams()
    rig.flush()
    to_next_timer(rig)
    tries = len(attempt_times(rig))
    rig.run(watch.cancel())
    rig.advance(600.0)
    assert len(attempt_times(rig)) == tries
    assert rig.clock.getDelayedCalls() == []
