"""Maintenance requests as etcd receives them (path, exact JSON, deadline,
whether a call may be re-sent after an open outcome), the refusals of bad
arguments before anything is sent, how answers are read, and the snapshot
stream decoder's errors and frame limit."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from wire_headers import HEADER, PARSED_HEADER

from etcdwamp import errors as e
from etcdwamp.wire import Request
from etcdwamp.wire.maintenance import (
    HASH_KV_PATH,
    SNAPSHOT_PATH,
    Alarm,
    AlarmMember,
    AlarmResult,
    DefragmentResult,
    HashKVResult,
    HashResult,
    MoveLeaderResult,
    SnapshotChunk,
    SnapshotDecoder,
    alarm_activate_request,
    alarm_disarm_request,
    alarm_list_request,
    defragment_request,
    hash_kv_request,
    hash_request,
    move_leader_request,
    parse_alarms,
    parse_hash,
    parse_hash_kv,
)

UINT64_MAX = 2**64 - 1


def sent(req: Request[Any]) -> tuple[str, dict[str, Any], bool]:
    """What goes to etcd: the path, the JSON body, whether it may be re-sent."""
    return req.path, dict(req.body), req.idempotent


# -- requests ---------------------------------------------------------------------


@pytest.mark.parametrize(("req", "path", "body"), [
    (alarm_list_request, "/maintenance/alarm", {"action": "GET"}),
    (lambda: alarm_activate_request(UINT64_MAX, Alarm.NOSPACE), "/maintenance/alarm",
     {"action": "ACTIVATE", "memberID": "18446744073709551615", "alarm": "NOSPACE"}),
    (lambda: alarm_activate_request(1, "corrupt"), "/maintenance/alarm",
     {"action": "ACTIVATE", "memberID": "1", "alarm": "CORRUPT"}),
    (lambda: alarm_disarm_request(UINT64_MAX, "NoSpace"), "/maintenance/alarm",
     {"action": "DEACTIVATE", "memberID": "18446744073709551615", "alarm": "NOSPACE"}),
    (lambda: alarm_disarm_request(1, Alarm.CORRUPT), "/maintenance/alarm",
     {"action": "DEACTIVATE", "memberID": "1", "alarm": "CORRUPT"}),
    (defragment_request, "/maintenance/defragment", {}),
    (hash_request, "/maintenance/hash", {}),
    (hash_kv_request, "/maintenance/hashkv", {"revision": "0"}),
    (lambda: hash_kv_request(2**63 - 1), "/maintenance/hashkv",
     {"revision": "9223372036854775807"}),
    (lambda: move_leader_request(UINT64_MAX), "/maintenance/transfer-leadership",
     {"targetID": "18446744073709551615"}),
    (lambda: move_leader_request(1), "/maintenance/transfer-leadership", {"targetID": "1"}),
])
def test_each_call_sends_its_path_and_body_and_may_be_resent(
        req: Callable[[], Request[Any]], path: str, body: dict[str, Any]) -> None:
    """All of them do no harm twice: raising or disarming an alarm that is
    already so changes nothing, reads and defragmentation change no data."""
    assert sent(req()) == (path, body, True)
    assert (HASH_KV_PATH, SNAPSHOT_PATH) == ("/maintenance/hashkv", "/maintenance/snapshot")


def test_only_defragmentation_waits_without_the_client_s_deadline() -> None:
    assert defragment_request().timeout == math.inf
    for req in (alarm_list_request(), hash_request(), hash_kv_request(),
                move_leader_request(1), alarm_disarm_request(1, "nospace")):
        assert req.timeout is None, req.path


@pytest.mark.parametrize("call", [alarm_activate_request, alarm_disarm_request])
def test_an_alarm_is_named_by_member_or_name_and_none_is_refused(
        call: Callable[[int, Any], Request[Any]]) -> None:
    verb = "activate" if call is alarm_activate_request else "disarm"
    for none in ("NONE", "none", Alarm.NONE):
        with pytest.raises(ValueError, match=rf"^name the alarm to {verb} "
                                             rf"\(NOSPACE or CORRUPT\)$"):
            call(1, none)
    for bad in ("SMOKE", "", 1, None):
        with pytest.raises(ValueError, match=rf"^alarm must be one of NONE, NOSPACE, CORRUPT, "
                                             rf"got {bad!r}$"):
            call(1, bad)


@pytest.mark.parametrize("call", [
    lambda m: alarm_activate_request(m, "nospace"),
    lambda m: alarm_disarm_request(m, "nospace"),
    move_leader_request,
])
def test_a_member_id_is_a_positive_uint64(call: Callable[[Any], Request[Any]]) -> None:
    for bad in (0, -1, UINT64_MAX + 1):
        with pytest.raises(ValueError, match=rf"^member_id must be between 1 and {UINT64_MAX}, "
                                             rf"got {bad}$"):
            call(bad)
    with pytest.raises(TypeError, match=r"^member_id must be an int, not str$"):
        call("1")


def test_hash_kv_revision_is_zero_or_more() -> None:
    assert hash_kv_request(0).body == {"revision": "0"}
    with pytest.raises(ValueError, match=r"^revision must be between 0 and "):
        hash_kv_request(-1)
    with pytest.raises(TypeError, match=r"^revision must be an int, not bool$"):
        hash_kv_request(True)


# -- answers ----------------------------------------------------------------------


def test_alarm_answers_list_each_member_and_kind() -> None:
    answer = {"header": HEADER, "alarms": [
        {"memberID": "18446744073709551615", "alarm": "NOSPACE"},
        {"memberID": "3", "alarm": "CORRUPT"},
        {"memberID": "4"},  # NONE, the zero value, left out
    ]}
    expected = AlarmResult(PARSED_HEADER, (
        AlarmMember(UINT64_MAX, Alarm.NOSPACE), AlarmMember(3, Alarm.CORRUPT),
        AlarmMember(4, Alarm.NONE)))
    assert alarm_list_request().parse(answer) == expected
    assert alarm_activate_request(1, "nospace").parse(answer) == expected
    assert alarm_disarm_request(1, "nospace").parse(answer) == expected
    assert parse_alarms({"header": HEADER}) == AlarmResult(PARSED_HEADER, ())
    assert parse_alarms({"alarms": None}).alarms == ()


@pytest.mark.parametrize(("answer", "message"), [
    ({"alarms": {"alarm": "NOSPACE"}}, r"^alarms should be a JSON array, got \{'alarm': "
                                       r"'NOSPACE'\}$"),
    ({"alarms": "NOSPACE"}, r"^alarms should be a JSON array, got 'NOSPACE'$"),
    ({"alarms": ["NOSPACE"]}, r"^an alarm should be a JSON object, got 'NOSPACE'$"),
    ({"alarms": [{"memberID": "1", "alarm": "SMOKE"}]}, r"^unknown alarm 'SMOKE'$"),
    ({"alarms": [{"memberID": "1", "alarm": 1}]}, r"^unknown alarm 1$"),
    ({"alarms": [{"memberID": "x", "alarm": "NOSPACE"}]}, r"'memberID'"),
])
def test_a_malformed_alarm_answer_is_a_protocol_error(answer: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(e.ProtocolError, match=message):
        parse_alarms(answer)


def test_an_unknown_alarm_keeps_why_it_is_unknown() -> None:
    with pytest.raises(e.ProtocolError) as info:
        parse_alarms({"alarms": [{"alarm": "SMOKE"}]})
    assert isinstance(info.value.__cause__, ValueError)


def test_defragment_and_move_leader_answer_their_header() -> None:
    assert defragment_request().parse({"header": HEADER}) == DefragmentResult(PARSED_HEADER)
    assert move_leader_request(2).parse({"header": HEADER}) == MoveLeaderResult(PARSED_HEADER)


def test_hash_answers_are_uint32_hashes() -> None:
    assert hash_request().parse({"header": HEADER, "hash": "4294967295"}) == \
        HashResult(PARSED_HEADER, 2**32 - 1)
    assert parse_hash({"hash": 0}).hash == 0
    assert parse_hash({}).hash == 0  # left out as the zero value
    assert hash_kv_request().parse({"header": HEADER, "hash": "17", "compact_revision": "5"}) \
        == HashKVResult(PARSED_HEADER, hash=17, compact_revision=5)
    assert parse_hash_kv({"hash": 2**32 - 1}).compact_revision == 0
    for parse in (parse_hash, parse_hash_kv):
        for bad in (2**32, -1):
            with pytest.raises(e.ProtocolError, match=rf"^hash should be a uint32, got {bad}$"):
                parse({"hash": str(bad)})


# -- the snapshot stream --------------------------------------------------------------


def frame(obj: Any) -> bytes:
    """One line of the stream."""
    return json.dumps(obj).encode() + b"\n"


def test_snapshot_frames_give_the_bytes_and_what_remains() -> None:
    decoder = SnapshotDecoder()
    stream = frame({"result": {"blob": base64.b64encode(b"abc").decode(),
                               "remaining_bytes": "2"}}) + \
        frame({"result": {"blob": "ZGU=", "remaining_bytes": 0}})
    assert decoder.feed(stream[:10]) == []
    assert decoder.feed(stream[10:]) == [SnapshotChunk(b"abc", 2), SnapshotChunk(b"de", 0)]
    # a last frame without its newline still counts; an empty blob is left out
    assert decoder.feed(b'{"result": {"remaining_bytes": "3"}}') == []
    assert decoder.close() == [SnapshotChunk(b"", 3)]
    assert decoder.close() == []


@pytest.mark.parametrize(("data", "error", "message"), [
    (b"[1, 2]\n", e.ProtocolError, r"^snapshot frame should be a JSON object, got \[1, 2\]$"),
    (b'"x"\n', e.ProtocolError, r"^snapshot frame should be a JSON object, got 'x'$"),
    (b"{not json\n", e.ProtocolError, r"^stream frame is not JSON"),
    (b'{"header": {}}\n', e.ProtocolError,
     r"^snapshot frame without a result: \{'header': \{\}\}$"),
    (b'{"result": "YQ=="}\n', e.ProtocolError, r"^snapshot frame without a result: "),
    (b'{"result": {"blob": 5}}\n', e.ProtocolError, r"^snapshot blob should be base64, got 5$"),
    (b'{"result": {"blob": "YQ"}}\n', e.ProtocolError, r"^snapshot blob is not valid base64$"),
    # a lax decoder would drop the "*" and read b"a"
    (b'{"result": {"blob": "Y*Q=="}}\n', e.ProtocolError, r"^snapshot blob is not valid base64$"),
    (b'{"result": {"blob": "YQ==", "remaining_bytes": "x"}}\n', e.ProtocolError,
     r"'remaining_bytes'"),
    (b'{"error": {"grpc_code": 8, "http_code": 429, "message": "etcdserver: too many"}}\n',
     e.ResourceExhausted, r"^etcdserver: too many"),
    (b'{"error": {"code": 14, "message": "etcdserver: leader changed"}, "result": {}}\n',
     e.Unavailable, r"^etcdserver: leader changed"),
])
def test_a_bad_or_error_frame_ends_the_snapshot_with_a_typed_error(
        data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        SnapshotDecoder().feed(data)
    decoder = SnapshotDecoder()
    assert decoder.feed(data.rstrip(b"\n")) == []
    with pytest.raises(error, match=message):
        decoder.close()


def test_an_empty_error_field_is_no_error() -> None:
    assert SnapshotDecoder().feed(b'{"error": null, "result": {"blob": "YQ=="}}\n') == \
        [SnapshotChunk(b"a", 0)]


def test_error_texts_quote_at_most_200_characters_of_a_bad_frame() -> None:
    with pytest.raises(e.ProtocolError) as info:
        SnapshotDecoder().feed(frame({"header": "h" * 1000}))
    assert len(info.value.args[0]) == len("snapshot frame without a result: ") + 200
    with pytest.raises(e.ProtocolError) as info:
        SnapshotDecoder().feed(frame({"result": {"blob": ["b" * 1000]}}))
    assert len(info.value.args[0]) == 200


def test_a_snapshot_frame_may_be_16_mib_and_no_more() -> None:
    """A frame that grows beyond the limit without its newline is dropped with an error."""
    limit = 16 * 1024 * 1024
    decoder = SnapshotDecoder()
    assert decoder.feed(b"x" * limit) == []
    with pytest.raises(e.ProtocolError, match=rf"^stream frame exceeds {limit} bytes$"):
        decoder.feed(b"x")
    small = SnapshotDecoder(max_frame_bytes=10)
    assert small.feed(b'{"result":') == []
    with pytest.raises(e.ProtocolError, match=r"^stream frame exceeds 10 bytes$"):
        small.feed(b"{")
