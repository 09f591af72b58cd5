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
    assert isinstance(out[1], WatchResponse)
    out = decode_all([b'{"result": {"events": "nope"}}\n'])
    assert isinstance(out[0], e.ProtocolError)


def test_oversized_frame_is_refused() -> None:
    d = WatchDecoder(max_frame_bytes=100)
    out = d.feed(b"x" * 101)
    assert isinstance(out[0], e.ProtocolError) and d.pending == 0


def test_create_and_cancel_bodies() -> None:
    body = watch_create_body(KeySet(b"p/", prefix=True), start_revision=2**40, prev_kv=True,
                             filters=[WatchFilter.NODELETE, "noput"], progress_notify=True)
    assert body == {"create_request": {
        "key": "cC8=", "range_end": "cDA=", "start_revision": str(2**40),
        "filters": ["NODELETE", "NOPUT"], "prev_kv": True, "progress_notify": True,
    }}
    assert watch_create_body(b"k") == {"create_request": {"key": "aw=="}}
    assert watch_cancel_body(5) == {"cancel_request": {"watch_id": "5"}}
    with pytest.raises(ValueError):
        watch_create_body(b"k", filters=["NOPE"])
    with pytest.raises(TypeError):
        watch_create_body("k")  # type: ignore[arg-type]
