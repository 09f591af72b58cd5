"""The watch's resume bookkeeping, frame by frame (pure: no reactor, no HTTP)."""

from __future__ import annotations

import json

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import Header, KeySet, KeyValue
from etcdwamp.wire.watch import EventType, WatchEvent, WatchResponse
from etcdwamp.wire.watch_state import ALL_CREATED, WatchBatch, WatchState

A = KeySet(b"a")
B = KeySet(b"b/", prefix=True)


def frame(watch_id: int, revision: int, *events: int, created: bool = False,
          canceled: bool = False, compact_revision: int = 0, reason: str = "") -> WatchResponse:
    """A frame of watch ``watch_id`` at store ``revision`` with puts at ``events``."""
    return WatchResponse(
        header=Header(1, 2, revision, 3), watch_id=watch_id, created=created,
        canceled=canceled, compact_revision=compact_revision, cancel_reason=reason,
        fragment=False,
        events=tuple(WatchEvent(EventType.PUT, KeyValue(b"a", b"v%d" % r, r, r, 1, 0), None)
                     for r in events))


def revisions(step: object) -> list[int]:
    assert isinstance(step, WatchBatch)
    return [ev.revision for ev in step.events]


def test_created_sets_the_resume_revision_and_reports_when_all_are_created() -> None:
    state = WatchState([A, B])
    state.start_stream()
    assert state.resume_revision(A) == 0
    assert state.receive(frame(0, 10, created=True)) is None  # B not yet created
    assert state.resume_revision(A) == 11
    assert not state.stream_created
    assert state.receive(frame(1, 12, created=True)) is ALL_CREATED
    assert state.resume_revision(B) == 13
    assert state.stream_created


def test_created_keeps_an_explicit_start_revision() -> None:
    state = WatchState([A], start_revision=5)
    state.start_stream()
    assert state.receive(frame(0, 10, created=True)) is ALL_CREATED
    assert state.resume_revision(A) == 5


def test_events_advance_the_resume_revision_and_become_a_batch() -> None:
    state = WatchState([A, B])
    state.start_stream()
    state.receive(frame(0, 10, created=True))
    step = state.receive(frame(0, 14, 12, 14))
    assert isinstance(step, WatchBatch) and step.keyset == A and step.revision == 14
    assert revisions(step) == [12, 14]
    assert state.resume_revision(A) == 15
    assert state.resume_revision(B) == 0  # untouched


def test_events_already_delivered_are_dropped() -> None:
    """After a reconnect etcd replays from the resume revision; anything older
    (from a stale stream) is never delivered twice."""
    state = WatchState([A], start_revision=20)
    state.start_stream()
    assert state.receive(frame(0, 25, 18, 19)) is None
    assert revisions(state.receive(frame(0, 25, 19, 20, 21))) == [20, 21]
    assert state.resume_revision(A) == 22


def test_progress_notification_moves_the_resume_revision_forward_only() -> None:
    state = WatchState([A], start_revision=5)
    state.start_stream()
    assert state.receive(frame(0, 30)) is None
    assert state.resume_revision(A) == 31
    assert state.receive(frame(0, 7)) is None  # an older notification: no step back
    assert state.resume_revision(A) == 31


def test_compaction_and_cancellation_end_the_stream_with_typed_errors() -> None:
    state = WatchState([A, B])
    state.start_stream()
    compacted = state.receive(frame(1, 50, canceled=True, compact_revision=40))
    assert isinstance(compacted, e.WatchCompacted)
    assert compacted.keyset == B
    canceled = state.receive(frame(0, 50, canceled=True, reason="no space"))
    assert isinstance(canceled, e.WatchCanceled) and "no space" in str(canceled)


def test_refused_token_and_unknown_ids_are_errors() -> None:
    state = WatchState([A])
    state.start_stream()
    refused = state.receive(frame(-1, 0, canceled=True,
                                  reason="rpc error: code = Unauthenticated desc = x"))
    assert isinstance(refused, e.Unauthenticated)
    assert isinstance(state.receive(frame(3, 9, 9)), e.ProtocolError)


def test_create_body_resumes_each_key_set_where_it_stopped() -> None:
    state = WatchState([A, B], start_revision=0)
    state.start_stream()
    state.receive(frame(0, 10, created=True))
    state.receive(frame(0, 12, 12))
    body = state.create_body(prev_kv=True)
    requests = [json.loads(part) for part in body.replace(b"}{", b"}\n{").split(b"\n")]
    assert [r["create_request"].get("start_revision") for r in requests] == ["13", None]
    assert [r["create_request"].get("watch_id", "0") for r in requests] == ["0", "1"]
    assert all(r["create_request"]["prev_kv"] for r in requests)


def test_added_and_removed_key_sets_count_from_the_next_stream() -> None:
    state = WatchState([A])
    state.start_stream()
    state.add(B, 7)
    # The running stream still only knows watch id 0.
    assert isinstance(state.receive(frame(1, 9, created=True)), e.ProtocolError)
    state.start_stream()
    assert state.receive(frame(1, 9, created=True)) is None  # A not yet created here
    assert state.resume_revision(B) == 7
    with pytest.raises(ValueError, match="already watched"):
        state.add(B, 1)
    state.remove(A)
    assert state.keysets == (B,)
    with pytest.raises(KeyError):
        state.remove(A)
    with pytest.raises(KeyError):
        state.resume_revision(A)


@pytest.mark.parametrize("reason", [
    "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token",
    "etcdserver: invalid auth token",
])
def test_a_refused_token_ends_the_stream_as_unauthenticated(reason: str) -> None:
    """etcd tells a watch its token is refused only in the text of a cancel
    reason for watch id -1, in either spelling."""
    state = WatchState([A])
    state.start_stream()
    refused = state.receive(frame(-1, 0, created=True, canceled=True, reason=reason))
    assert isinstance(refused, e.Unauthenticated)
    assert refused.code == 16 and refused.message == reason


def test_other_cancels_of_watch_id_minus_1_are_not_taken_for_a_refused_token() -> None:
    state = WatchState([A])
    state.start_stream()
    for reason in ("", "rpc error: code = PermissionDenied desc = etcdserver: permission denied"):
        got = state.receive(frame(-1, 0, canceled=True, reason=reason))
        assert isinstance(got, e.ProtocolError) and not isinstance(got, e.Unauthenticated)
    # A watch id etcd did not cancel is no refusal either, whatever its reason says.
    got = state.receive(frame(-1, 0, reason="etcdserver: invalid auth token"))
    assert isinstance(got, e.ProtocolError)


def test_watch_ids_outside_the_stream_are_protocol_errors() -> None:
    state = WatchState([A, B])
    state.start_stream()
    assert isinstance(state.receive(frame(-1, 9, 9)), e.ProtocolError)
    assert isinstance(state.receive(frame(2, 9, 9)), e.ProtocolError)
    assert revisions(state.receive(frame(1, 9, 9))) == [9]  # the last id is valid
    assert revisions(state.receive(frame(0, 9, 9))) == [9]  # and so is the first


@pytest.mark.parametrize("canceled", [True, False])
def test_compaction_tells_the_first_revision_still_kept(canceled: bool) -> None:
    """The caller re-reads and resumes from ``compact_revision``: it must be etcd's."""
    state = WatchState([A, B], start_revision=3)
    state.start_stream()
    compacted = state.receive(frame(0, 50, canceled=canceled, compact_revision=40))
    assert isinstance(compacted, e.WatchCompacted)
    assert (compacted.compact_revision, compacted.keyset) == (40, A)
    assert "40" in str(compacted)
    assert state.resume_revision(A) == 3  # nothing was delivered


def test_a_cancel_without_reason_still_says_etcd_cancelled_it() -> None:
    state = WatchState([A])
    state.start_stream()
    canceled = state.receive(frame(0, 5, canceled=True))
    assert isinstance(canceled, e.WatchCanceled)
    assert str(canceled) == "watch canceled by etcd"


def test_create_body_asks_for_progress_notifications_and_passes_filters() -> None:
    """Progress notifications move the resume revision on while nothing changes,
    so a reconnect does not replay history that was already current."""
    state = WatchState([A], start_revision=4)
    created = json.loads(state.create_body(filters=["noput"]))["create_request"]
    assert created == {"key": "YQ==", "start_revision": "4", "filters": ["NOPUT"],
                       "progress_notify": True}
    quiet = json.loads(state.create_body(progress_notify=False))["create_request"]
    assert quiet == {"key": "YQ==", "start_revision": "4"}


def test_a_batch_carries_the_revision_of_its_response_and_the_events_from_the_resume_one() -> None:
    state = WatchState([A], start_revision=10)
    state.start_stream()
    batch = state.receive(frame(0, 12, 10, 11))
    assert isinstance(batch, WatchBatch)
    assert batch.revision == 12 and revisions(batch) == [10, 11]
    assert state.resume_revision(A) == 12
    assert state.receive(frame(0, 12, 11)) is None  # already delivered
    assert A in state and B not in state


def test_a_new_state_reads_its_first_stream_without_start_stream() -> None:
    state = WatchState([A])
    assert state.receive(frame(0, 4, created=True)) is ALL_CREATED


def test_errors_name_what_is_missing_or_unknown() -> None:
    state = WatchState([A])
    with pytest.raises(KeyError) as missing:
        state.resume_revision(B)
    assert missing.value.args == (B,)
    with pytest.raises(KeyError) as not_removed:
        state.remove(B)
    assert not_removed.value.args == (B,)
    unknown = state.receive(frame(3, 9, 9))
    assert str(unknown) == "watch response for unknown watch id 3"


def test_create_body_is_compact_json_one_request_after_another() -> None:
    state = WatchState([A, B], start_revision=2)
    assert state.create_body(progress_notify=False) == (
        b'{"create_request":{"key":"YQ==","start_revision":"2"}}'
        b'{"create_request":{"key":"Yi8=","range_end":"YjA=","start_revision":"2",'
        b'"watch_id":"1"}}')


def test_all_created_shows_its_name() -> None:
    assert repr(ALL_CREATED) == "ALL_CREATED"
