"""The live map's merge rules (:class:`etcdwamp.wamp.mapcopy.MapCopy`) and its session
handling (:class:`etcdwamp.wamp.livemap.LiveMap`) against a fake WAMP session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed

from etcdwamp.wamp.livemap import LiveMap
from etcdwamp.wamp.mapcopy import MapCopy, Row


def put(key: str, value: Any, revision: int) -> dict[str, Any]:
    return {"op": "put", "key": key, "value": value, "revision": revision}


def delete(key: str, revision: int) -> dict[str, Any]:
    return {"op": "delete", "key": key, "value": None, "revision": revision}


def item(key: str, value: Any, revision: int) -> dict[str, Any]:
    return {"key": key, "value": value, "revision": revision}


def values(rows: Any) -> dict[str, Any]:
    return {k: (r.value, r.revision) for k, r in rows.items()}


def test_events_before_the_snapshot_wait_and_only_those_above_it_apply() -> None:
    """Buffered events at or below the snapshot's revision change nothing; one above it
    applies once the snapshot is in."""
    copy = MapCopy()
    assert copy.event(put("a", 1, 5)) is False  # buffered
    assert copy.event(put("b", 2, 8)) is False
    assert copy.rows == {}
    copy.snapshot(6, [item("a", 1, 5)])
    assert values(copy.rows) == {"a": (1, 5), "b": (2, 8)}
    assert copy.revision == 8


def test_an_event_at_or_below_the_rows_revision_is_dropped() -> None:
    """Re-delivered and older events for a key change nothing; a newer one replaces it."""
    copy = MapCopy()
    copy.snapshot(10, [item("a", "old", 3)])
    assert copy.event(put("a", "new", 12)) is True
    assert copy.event(put("a", "new", 12)) is False  # re-delivered
    assert copy.event(put("a", "older", 11)) is False
    assert copy.event(put("a", "x", 9)) is False  # in the snapshot already
    assert values(copy.rows) == {"a": ("new", 12)}


def test_a_delete_leaves_a_tombstone_that_older_puts_do_not_revive() -> None:
    """After a delete at 12, a put at 11 (late, re-delivered) does not bring the key back;
    a put at 13 does."""
    copy = MapCopy()
    copy.snapshot(10, [item("a", 1, 4)])
    assert copy.event(delete("a", 12)) is True
    assert copy.event(put("a", 1, 11)) is False
    assert "a" not in copy.rows
    assert copy.event(put("a", 2, 13)) is True
    assert values(copy.rows) == {"a": (2, 13)}


def test_a_new_snapshot_replaces_the_copy_and_forgets_tombstones() -> None:
    """A resync snapshot drops rows it lacks and resets tombstones to its own revision."""
    copy = MapCopy()
    copy.snapshot(10, [item("a", 1, 4), item("gone", 0, 5)])
    copy.event(delete("a", 12))
    copy.begin_read()
    assert copy.reading
    assert copy.event(put("c", 3, 21)) is False
    copy.snapshot(20, [item("a", 9, 15)])
    assert values(copy.rows) == {"a": (9, 15), "c": (3, 21)}
    assert copy.revision == 21


def test_the_rows_stay_while_a_read_is_under_way() -> None:
    """begin_read keeps the copy for showing (a reconnect in progress) and buffers."""
    copy = MapCopy()
    copy.snapshot(10, [item("a", 1, 4)])
    copy.begin_read()
    assert copy.event(put("a", 2, 11)) is False
    assert values(copy.rows) == {"a": (1, 4)}


def test_a_marked_row_keeps_its_error() -> None:
    """A row whose stored value cannot be read keeps its ``error`` marker."""
    copy = MapCopy()
    error = {"uri": "etcd.error.bad_value", "message": "unreadable"}
    copy.snapshot(3, [{"key": "a", "value": None, "revision": 2, "error": error}])
    assert copy.rows["a"] == Row(None, 2, error)


@pytest.mark.parametrize("event", [
    {"op": "put", "key": "a", "value": 1},
    {"op": "put", "key": "a", "value": 1, "revision": "7"},
    {"op": "touch", "key": "a", "value": 1, "revision": 7},
])
def test_a_malformed_event_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MapCopy().event(event)


class FakeSession:
    """Records subscriptions; each get_and_watch call returns a Deferred the test fires."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.calls: list[tuple[Deferred[Any], Any]] = []
        self.order: list[str] = []
        #: the calls cancelled, in order
        self.cancelled: list[str] = []

    def subscribe(self, handler: Callable[..., Any], topic: str) -> Deferred[object]:
        self.order.append("subscribe " + topic)
        self.handlers[topic] = handler
        return succeed(object())

    def call(self, procedure: str, *args: Any, options: Any = None) -> Deferred[Any]:
        self.order.append("call " + procedure)
        d: Deferred[Any] = Deferred(lambda d: self.cancelled.append(procedure))
        self.calls.append((d, options))
        return d

    def publish(self, event: dict[str, Any]) -> None:
        self.handlers["etcd.map.notes.on_change"](event)


def test_it_subscribes_first_then_reads_and_applies_what_arrived_meanwhile() -> None:
    """Both subscriptions precede get_and_watch; an event that comes during the read
    applies on top of the snapshot; state goes reading -> live."""
    states: list[str] = []
    live = LiveMap("notes", on_state=states.append)
    s = FakeSession()
    done = live.attach(s)
    assert s.order == ["subscribe etcd.map.notes.on_change",
                       "subscribe etcd.map.notes.on_resync",
                       "call etcd.map.notes.get_and_watch"]
    s.publish(put("b", 2, 11))
    s.calls[0][1].on_progress({"revision": 10, "items": [item("a", 1, 3)]})
    s.calls[0][0].callback({"revision": 10, "items": [item("z", 0, 4)]})
    assert done.called
    assert values(live.rows) == {"a": (1, 3), "z": (0, 4), "b": (2, 11)}
    assert states == ["reading", "live"]


def test_a_reconnect_keeps_the_rows_then_resumes_exactly_on_the_new_session() -> None:
    """After a leave the copy keeps its rows; the new session's snapshot replaces them
    (a write made while away included), an event the snapshot already has changes
    nothing, and a late event of the old session is ignored."""
    changes: list[int | None] = []
    live = LiveMap("notes", on_value=lambda rows, revision: changes.append(revision))
    old = FakeSession()
    live.attach(old)
    old.calls[0][0].callback({"revision": 10, "items": [item("a", 1, 3)]})
    live.detach(old)
    assert live.state == "disconnected"
    assert values(live.rows) == {"a": (1, 3)}

    new = FakeSession()
    live.attach(new)
    new.publish(put("a", 2, 12))  # during the read: in the snapshot too
    new.publish(put("c", 3, 14))  # after the snapshot's revision
    old.publish(put("a", 99, 15))  # the old session is gone
    new.calls[0][0].callback({"revision": 13, "items": [item("a", 2, 12), item("b", 5, 11)]})
    assert values(live.rows) == {"a": (2, 12), "b": (5, 11), "c": (3, 14)}
    assert live.state == "live"
    assert changes == [10, 14]
    new.publish(put("c", 3, 14))  # re-delivered by the new node's publisher
    assert changes == [10, 14]


def test_resyncs_during_a_read_cost_one_more_read() -> None:
    """Two on_resync notices while a read is under way lead to exactly one more read."""
    live = LiveMap("notes")
    s = FakeSession()
    live.attach(s)
    s.calls[0][0].callback({"revision": 10, "items": []})
    s.handlers["etcd.map.notes.on_resync"]({"compact_revision": 11})
    s.handlers["etcd.map.notes.on_resync"]({"compact_revision": 11})
    assert len(s.calls) == 2
    s.handlers["etcd.map.notes.on_resync"]({"compact_revision": 12})
    s.calls[1][0].callback({"revision": 20, "items": [item("a", 1, 19)]})
    assert len(s.calls) == 3
    s.calls[2][0].callback({"revision": 21, "items": [item("a", 1, 19)]})
    assert live.snapshots == 3 and live.state == "live"
    assert values(live.rows) == {"a": (1, 19)}


def test_a_failed_read_on_the_current_session_reaches_on_error() -> None:
    """get_and_watch failing is reported once and leaves the copy as it was."""
    errors: list[BaseException] = []
    live = LiveMap("notes", on_error=errors.append)
    s = FakeSession()
    d = live.attach(s)
    d.addErrback(lambda f: None)
    s.calls[0][0].errback(RuntimeError("refused"))
    assert [str(e) for e in errors] == ["refused"]
    assert live.rows == {}


def test_a_map_name_that_is_no_name_is_refused() -> None:
    with pytest.raises(ValueError):
        LiveMap("no.tes")


def test_a_resync_before_the_first_read_starts_is_covered_by_it() -> None:
    """on_resync arriving while the subscriptions are still being made starts no second,
    concurrent read: the one read that follows (it starts after the notice) is enough."""
    live = LiveMap("notes")
    s = FakeSession()
    pending: Deferred[object] = Deferred()
    subscribe = s.subscribe

    def slow_subscribe(handler: Callable[..., Any], topic: str) -> Deferred[object]:
        subscribe(handler, topic)
        return pending if topic.endswith("on_resync") else succeed(object())

    s.subscribe = slow_subscribe  # type: ignore[method-assign]
    live.attach(s)
    s.handlers["etcd.map.notes.on_resync"]({"compact_revision": 5})
    assert s.calls == []
    pending.callback(object())
    assert len(s.calls) == 1
    s.calls[0][0].callback({"revision": 11, "items": [item("a", 1, 11)]})
    assert len(s.calls) == 1
    assert live.state == "live" and values(live.rows) == {"a": (1, 11)}


def test_stop_during_a_read_cancels_it_and_reports_no_error() -> None:
    """stop() while a resync's get_and_watch is under way cancels that call at once;
    on_error hears nothing, the rows stay."""
    errors: list[BaseException] = []
    live = LiveMap("notes", on_error=errors.append)
    s = FakeSession()
    live.attach(s)
    s.calls[0][0].callback({"revision": 10, "items": [item("a", 1, 3)]})
    s.handlers["etcd.map.notes.on_resync"]({"compact_revision": 11})
    assert len(s.calls) == 2
    live.stop()
    assert s.cancelled == ["etcd.map.notes.get_and_watch"]
    assert errors == [] and live.state == "stopped"
    assert values(live.rows) == {"a": (1, 3)}


def test_cancelling_attach_cancels_its_read() -> None:
    """Cancelling the Deferred attach returned cancels get_and_watch (not reported to
    on_error); the map is not stopped and a later resync reads again."""
    errors: list[BaseException] = []
    live = LiveMap("notes", on_error=errors.append)
    s = FakeSession()
    d = live.attach(s)
    failures: list[Any] = []
    d.addErrback(failures.append)
    d.cancel()
    assert failures[0].check(CancelledError)
    assert s.cancelled == ["etcd.map.notes.get_and_watch"]
    assert errors == [] and live.state == "reading"
    live.resync()
    s.calls[1][0].callback({"revision": 4, "items": [item("a", 1, 4)]})
    assert live.state == "live" and values(live.rows) == {"a": (1, 4)}


def test_a_full_buffer_is_dropped_and_marks_the_snapshot_incomplete() -> None:
    """A read that never ends cannot grow the buffer past ``max_pending``: the buffer is
    dropped, later events too, and ``overflowed`` says the snapshot must be read again;
    the next begin_read starts clean."""
    copy = MapCopy(max_pending=2)
    assert copy.event(put("a", 1, 5)) is False
    assert copy.event(put("b", 2, 6)) is False
    assert not copy.overflowed
    assert copy.event(put("c", 3, 7)) is False
    assert copy.overflowed
    assert copy.event(put("d", 4, 8)) is False
    copy.snapshot(4, [])
    assert copy.rows == {} and copy.overflowed  # nothing of the dropped events applied
    copy.begin_read()
    assert not copy.overflowed
    assert copy.event(put("e", 5, 9)) is False
    copy.snapshot(8, [item("a", 1, 5), item("b", 2, 6), item("c", 3, 7), item("d", 4, 8)])
    assert values(copy.rows) == {"a": (1, 5), "b": (2, 6), "c": (3, 7), "d": (4, 8),
                                 "e": (5, 9)}


def test_max_pending_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        MapCopy(max_pending=0)
    with pytest.raises(ValueError):
        LiveMap("notes", max_pending=0)


def test_events_dropped_during_a_read_cost_one_more_read() -> None:
    """More events during a read than the buffer holds: the snapshot that comes back is
    read once more (the dropped events' changes are in the second one), then live."""
    live = LiveMap("notes", max_pending=2)
    s = FakeSession()
    live.attach(s)
    for revision in (11, 12, 13):
        s.publish(put(f"k{revision}", revision, revision))
    s.calls[0][0].callback({"revision": 10, "items": []})
    assert len(s.calls) == 2 and live.state == "reading"
    s.calls[1][0].callback({"revision": 13, "items": [
        item("k11", 11, 11), item("k12", 12, 12), item("k13", 13, 13)]})
    assert len(s.calls) == 2 and live.state == "live"
    assert values(live.rows) == {"k11": (11, 11), "k12": (12, 12), "k13": (13, 13)}
