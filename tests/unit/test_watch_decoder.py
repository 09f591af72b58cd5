"""The incremental watch-stream decoder, fed in every way TCP may cut a stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdwamp import errors as e
from etcdwamp.wire import KeySet
from etcdwamp.wire.watch import (
    EventType,
    WatchDecoder,
    WatchFilter,
    WatchResponse,
    watch_cancel_body,
    watch_create_body,
)

HEADER = {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437",
          "revision": "7", "raft_term": "2"}

CREATED = {"result": {"header": HEADER, "created": True}}
EVENTS = {"result": {"header": HEADER, "events": [
    {"kv": {"key": "Zm9v", "create_revision": "6", "mod_revision": "6", "version": "1",
            "value": "YmFy"}},
    {"type": "DELETE", "kv": {"key": "YmF6", "mod_revision": "7"},
     "prev_kv": {"key": "YmF6", "create_revision": "3", "mod_revision": "5", "version": "2",
                 "value": "cXV4"}},
]}}
PROGRESS = {"result": {"header": {**HEADER, "revision": "9"}}}
CANCELED = {"result": {"header": HEADER, "watch_id": "3", "canceled": True,
                       "compact_revision": "5",
                       "cancel_reason": "mvcc: required revision has been compacted"}}


def frames(*objs: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in objs)


STREAM = frames(CREATED, EVENTS, PROGRESS, CANCELED)


def decode_all(chunks: list[bytes]) -> list[Any]:
    d = WatchDecoder()
    out: list[Any] = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.close())
    return out


def check_stream(out: list[Any]) -> None:
    assert len(out) == 4
    created, events, progress, canceled = out
    assert isinstance(created, WatchResponse) and created.created and not created.events
    assert not created.is_progress_notify
    assert [ev.type for ev in events.events] == [EventType.PUT, EventType.DELETE]
    put, delete = events.events
    assert (put.kv.key, put.kv.value, put.revision) == (b"foo", b"bar", 6)
    assert put.prev_kv is None
    assert delete.kv.key == b"baz" and delete.revision == 7
    assert delete.prev_kv is not None and delete.prev_kv.value == b"qux"
    assert progress.is_progress_notify and progress.header.revision == 9
    assert canceled.canceled and canceled.watch_id == 3 and canceled.compact_revision == 5
    assert "compacted" in canceled.cancel_reason


def test_whole_stream_in_one_chunk() -> None:
    check_stream(decode_all([STREAM]))


def test_byte_by_byte() -> None:
    check_stream(decode_all([STREAM[i:i + 1] for i in range(len(STREAM))]))


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_split_points(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    check_stream(decode_all(chunks))


def test_pending_bytes_are_held_until_the_newline() -> None:
    d = WatchDecoder()
    first = frames(CREATED)
    assert d.feed(first[:-5]) == []
    assert d.pending == len(first) - 5
    assert len(d.feed(first[-5:])) == 1
    assert d.pending == 0


def test_last_frame_without_newline_is_kept_on_close() -> None:
    d = WatchDecoder()
    assert d.feed(json.dumps(EVENTS).encode()) == []
    (resp,) = d.close()
    assert isinstance(resp, WatchResponse) and len(resp.events) == 2


def test_blank_lines_are_ignored() -> None:
    assert len(decode_all([b"\n\r\n" + frames(CREATED) + b"\n"])) == 1


def test_a_frame_after_a_leading_newline_comes_out_at_once() -> None:
    """Not only on close: a stream of keep-alive newlines must not hold frames back."""
    d = WatchDecoder()
    (resp,) = d.feed(b"\n" + frames(CREATED))
    assert isinstance(resp, WatchResponse) and resp.created
    assert d.feed(b"\n") == [] and d.pending == 0
    assert len(d.feed(frames(PROGRESS))) == 1


@pytest.mark.parametrize("err", [
    {"error": {"grpc_code": 11, "http_code": 400,
               "message": "etcdserver: mvcc: required revision has been compacted",
               "http_status": "Bad Request"}},
    {"error": {"code": 11, "message": "etcdserver: mvcc: required revision has been compacted",
               "details": []}},
])
def test_error_frames_become_exceptions_without_losing_earlier_frames(
        err: dict[str, Any]) -> None:
    out = decode_all([frames(CREATED, err)])
    assert isinstance(out[0], WatchResponse)
    assert isinstance(out[1], e.RevisionCompacted) and out[1].code == 11


def test_an_error_frame_without_text_ends_the_watch_naming_its_status() -> None:
    """A bare ``{"error": {"grpc_code", "http_code"}}`` is UNAVAILABLE said in words,
    not a quote of a body nobody sent."""
    out = decode_all([frames(CREATED, {"error": {"grpc_code": 14, "http_code": 503}})])
    assert isinstance(out[0], WatchResponse)
    err = out[1]
    assert isinstance(err, e.Unavailable) and (err.code, err.http_status) == (14, 503)
    assert str(err) == ("stream error frame without a message: UNAVAILABLE, HTTP 503 "
                        "(gRPC code 14)")


def test_garbage_is_a_protocol_error() -> None:
    out = decode_all([b"{not json}\n" + frames(CREATED)])
    assert isinstance(out[0], e.ProtocolError)
    assert str(out[0]) == "stream frame is not JSON: b'{not json}'"
    assert isinstance(out[1], WatchResponse)


def test_a_long_bad_frame_is_quoted_only_in_part() -> None:
    line = b"<html>" + b"x" * 500
    (err,) = WatchDecoder().feed(line + b"\n")
    assert isinstance(err, e.ProtocolError)
    assert str(err) == f"stream frame is not JSON: {line[:200]!r}"


@pytest.mark.parametrize(("frame", "message"), [
    ([1], "watch frame should be a JSON object, got [1]"),
    ({"header": {}}, "watch frame without a result: {'header': {}}"),
    ({"result": {"events": "nope"}}, "watch events should be a list, got 'nope'"),
    ({"result": {"events": [7]}}, "watch event should be an object, got 7"),
    ({"result": {"events": [{"type": "MOVE"}]}}, "unknown watch event type 'MOVE'"),
])
def test_malformed_frames_are_protocol_errors_saying_what_is_wrong(
        frame: Any, message: str) -> None:
    (err,) = decode_all([json.dumps(frame).encode() + b"\n"])
    assert isinstance(err, e.ProtocolError)
    assert str(err) == message


def test_cancel_reason_and_fragment() -> None:
    """No reason is an empty one; a reason that is not text is shown as text;
    ``fragment`` marks a response etcd split in parts."""
    created, odd, part = decode_all([frames(
        CREATED,
        {"result": {"header": HEADER, "canceled": True, "cancel_reason": 5}},
        {"result": {"header": HEADER, "fragment": True, "events": EVENTS["result"]["events"]}},
    )])
    assert created.cancel_reason == "" and not created.fragment
    assert odd.canceled and odd.cancel_reason == "5"
    assert part.fragment is True and len(part.events) == 2


def test_oversized_frame_is_refused() -> None:
    d = WatchDecoder(max_frame_bytes=100)
    assert d.feed(b"x" * 100) == [] and d.pending == 100  # the limit itself is allowed
    out = d.feed(b"x")
    assert isinstance(out[0], e.ProtocolError) and d.pending == 0
    assert str(out[0]) == "stream frame exceeds 100 bytes"


def test_create_and_cancel_bodies() -> None:
    body = watch_create_body(KeySet(b"p/", prefix=True), start_revision=2**40, prev_kv=True,
                             filters=[WatchFilter.NODELETE, "noput"], progress_notify=True)
    assert body == {"create_request": {
        "key": "cC8=", "range_end": "cDA=", "start_revision": str(2**40),
        "filters": ["NODELETE", "NOPUT"], "prev_kv": True, "progress_notify": True,
    }}
    assert watch_create_body(b"k") == {"create_request": {"key": "aw=="}}
    assert watch_create_body(b"k", watch_id=4, fragment=True) == {
        "create_request": {"key": "aw==", "fragment": True, "watch_id": "4"}}
    assert watch_cancel_body(5) == {"cancel_request": {"watch_id": "5"}}
    assert watch_cancel_body(0) == {"cancel_request": {"watch_id": "0"}}  # etcd's first id


def test_bad_create_and_cancel_arguments_are_refused_saying_which() -> None:
    with pytest.raises(ValueError) as info:
        watch_create_body(b"k", filters=["NOPE"])
    assert str(info.value) == "watch filter must be NOPUT or NODELETE, got 'NOPE'"
    with pytest.raises(TypeError) as type_info:
        watch_create_body(b"k", filters=[1])  # type: ignore[list-item]
    assert str(type_info.value) == "watch filters must be WatchFilter, not int"
    with pytest.raises(TypeError):
        watch_create_body("k")  # type: ignore[arg-type]
    for call, name in ((lambda: watch_create_body(b"k", start_revision=-1), "start_revision"),
                       (lambda: watch_create_body(b"k", watch_id=-1), "watch_id"),
                       (lambda: watch_cancel_body(-1), "watch_id")):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == f"{name} must be between 0 and {2**63 - 1}, got -1"
