"""The protobuf codec against the JSON path, with the same golden cases.

Every golden answer captured from etcd 3.4's gateway goes through both encodings: the
request built by the wire layer's builder is the one etcd took (its body means the
recorded one), our encoder's bytes equal ``ParseDict`` of that JSON body, and the answer as
protobuf (``ParseDict`` of the recorded JSON) decodes into the very result ``parse``
gives for the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from test_watch_decoder import CANCELED, CREATED, EVENTS, PROGRESS, frames
from test_wire_golden import load

from etcdwamp import errors as e
from etcdwamp.grpc import codec
from etcdwamp.grpc.pb import kv_pb2, rpc_pb2
from etcdwamp.wire import (
    CompModified,
    CompValue,
    CompVersion,
    KeySet,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
    alarm_disarm_request,
    alarm_list_request,
    compact_request,
    defragment_request,
    delete_request,
    hash_request,
    lease_grant_request,
    lease_revoke_request,
    lease_ttl_request,
    member_add_request,
    member_list_request,
    member_remove_request,
    member_update_request,
    put_request,
    range_request,
    status_request,
    txn_request,
)
from etcdwamp.wire.auth import (
    role_delete_request,
    role_get_request,
    role_list_request,
    role_revoke_permission_request,
    user_add_request,
    user_change_password_request,
    user_delete_request,
    user_get_request,
    user_list_request,
    user_revoke_role_request,
)
from etcdwamp.wire.batch import batch_request
from etcdwamp.wire.concurrency import lease_keepalive_request
from etcdwamp.wire.leases import lease_leases_request
from etcdwamp.wire.requests import Request
from etcdwamp.wire.results import KeyValue, parse_range
from etcdwamp.wire.watch import WatchDecoder, watch_cancel_body, watch_create_body

LEASE = 896394522664998152
MEMBER = 572226588418194965
PREFIX = KeySet(b"p/", prefix=True)

# golden file -> the request our builders make for it (its body is the recorded one)
GOLDEN: dict[str, Callable[[], Request[Any]]] = {
    "compaction": lambda: compact_request(14, physical=True),
    "delete_missing": lambda: delete_request(b"nope"),
    "delete_prefix": lambda: delete_request(PREFIX),
    "delete_single_prev_kv": lambda: delete_request(b"empty", prev_kv=True),
    "lease_grant": lambda: lease_grant_request(60),
    "lease_keepalive": lambda: lease_keepalive_request(LEASE),
    "lease_leases": lease_leases_request,
    "lease_revoke": lambda: lease_revoke_request(LEASE),
    "lease_timetolive": lambda: lease_ttl_request(LEASE, keys=True),
    "put_new": lambda: put_request(b"foo", b"bar"),
    "put_prev_kv": lambda: put_request(b"foo", b"baz", prev_kv=True),
    "put_with_lease": lambda: put_request(b"leased", b"v", lease=LEASE),
    "range_count_only": lambda: range_request(PREFIX, count_only=True),
    "range_empty_value": lambda: range_request(b"empty"),
    "range_keys_only": lambda: range_request(PREFIX, keys_only=True),
    "range_missing": lambda: range_request(b"nope"),
    "range_prefix_limit": lambda: range_request(PREFIX, limit=2),
    "range_revision": lambda: range_request(b"p/a", revision=7),
    "range_serializable": lambda: range_request(b"foo", serializable=True),
    "range_single": lambda: range_request(b"foo"),
    "range_sort_descend": lambda: range_request(PREFIX, sort_order="DESCEND",
                                                sort_target="KEY"),
    "status": status_request,
    "v3beta_status": status_request,
    "txn_failure": lambda: txn_request(Transaction(
        compare=[CompModified(b"foo", ">", 1000000)], failure=[OpGet(b"foo")])),
    "txn_success": lambda: txn_request(Transaction(
        compare=[CompValue(b"foo", "==", b"baz")],
        success=[OpSet(b"t", b"1"), OpGet(b"foo"), OpDel(b"t2")])),
    "txn_nested": lambda: txn_request(Transaction(success=[Transaction(
        compare=[CompVersion(b"absent", "==", 0)], success=[OpSet(b"n", b"1")])])),
    "ops_alarm_disarm": lambda: alarm_disarm_request(7934129372817744535, "NOSPACE"),
    "ops_alarm_list_empty": alarm_list_request,
    "ops_alarm_list_nospace": alarm_list_request,
    "ops_defragment": defragment_request,
    "ops_hash": hash_request,
    "ops_lease_leases": lease_leases_request,
    "ops_member_add_learner": lambda: member_add_request(["http://127.0.0.1:1"], learner=True),
    "ops_member_list": member_list_request,
    "ops_member_remove": lambda: member_remove_request(MEMBER),
    "ops_member_update": lambda: member_update_request(MEMBER, ["http://127.0.0.1:2"]),
    "ops_role_delete": lambda: role_delete_request("reader"),
    "ops_role_get": lambda: role_get_request("reader"),
    "ops_role_list": role_list_request,
    "ops_role_revoke": lambda: role_revoke_permission_request("reader", b"one"),
    "ops_user_add": lambda: user_add_request("root", "rootpw"),
    "ops_user_changepw": lambda: user_change_password_request("alice", "b"),
    "ops_user_delete": lambda: user_delete_request("alice"),
    "ops_user_get": lambda: user_get_request("alice"),
    "ops_user_list": user_list_request,
    "ops_user_revoke": lambda: user_revoke_role_request("alice", "reader"),
}

# The hot requests the codec decodes without JSON: each must be among the golden cases.
FAST = {"range_single", "range_prefix_limit", "put_prev_kv", "delete_single_prev_kv",
        "txn_success", "txn_nested", "lease_grant", "lease_keepalive", "status"}


def request_and_record(name: str) -> tuple[Request[Any], dict[str, Any]]:
    record = load(name)
    assert record["status"] == 200, record
    request = GOLDEN[name]()
    assert "/v3" + request.path in (record["path"], record["path"].replace("/v3beta", "/v3"))
    # The same request: equal bodies, or (a default written out) equal messages.
    cls = codec.method(request.path).request_class
    assert message_of(cls, dict(request.body)) == message_of(cls, record["request"]), name
    return request, record


def message_of(cls: Any, obj: dict[str, Any]) -> Any:
    message = cls()
    json_format.ParseDict(obj, message)
    return message


def answer_payload(request: Request[Any], record: dict[str, Any]) -> bytes:
    """The recorded JSON answer as the protobuf answer etcd's gRPC server sends."""
    method = codec.method(request.path)
    obj = record["response"]["result"] if method.server_streaming else record["response"]
    data: bytes = message_of(method.response_class, obj).SerializeToString()
    return data


def test_every_golden_answer_of_200_is_covered() -> None:
    """No golden answer is left out of the comparison (the snapshot stream has no
    request object: its frames are compared in their own test)."""
    from test_wire_golden import GOLDEN as DIRECTORY

    answered = {p.stem for p in DIRECTORY.glob("*.json") if load(p.stem)["status"] == 200}
    assert answered - set(GOLDEN) == {"ops_snapshot_stream"}
    assert set(GOLDEN) >= FAST


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_our_encoding_is_parse_dict_of_the_json_body(name: str) -> None:
    request, record = request_and_record(name)
    expected = message_of(codec.method(request.path).request_class,
                          record["request"]).SerializeToString()
    assert codec.encode(request) == expected
    assert codec.encode_generic(request) == expected


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_decoding_the_protobuf_answer_gives_what_parse_gives_for_the_json(name: str) -> None:
    request, record = request_and_record(name)
    payload = answer_payload(request, record)
    expected = request.parse(record["response"])
    assert codec.decode(request, payload) == expected
    assert codec.decode_generic(request, payload) == expected


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_our_answer_json_is_message_to_dict(name: str) -> None:
    request, record = request_and_record(name)
    message = codec.method(request.path).response_class.FromString(
        answer_payload(request, record))
    assert codec.message_json(message) == \
        json_format.MessageToDict(message, preserving_proto_field_name=True)


@pytest.mark.parametrize("name", sorted(FAST))
def test_hot_answers_are_decoded_without_json(name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken for the hot requests (the JSON one would fail here), and
    its key-values hold every number."""
    request, record = request_and_record(name)
    payload = answer_payload(request, record)
    monkeypatch.setattr(json_format, "MessageToDict", None)
    result = codec.decode(request, payload)
    assert result == request.parse(record["response"])


def test_range_key_values_carry_their_numbers() -> None:
    request, record = request_and_record("range_prefix_limit")
    result = codec.decode(request, answer_payload(request, record))
    expected = parse_range(record["response"])
    assert [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            for kv in result.kvs] == \
        [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
         for kv in expected.kvs]
    assert result.more is True and result.count == 3
    assert hash(result.kvs[0]) == hash(expected.kvs[0])


BATCH_ANSWER = {"header": {"revision": "5"}, "succeeded": True, "responses": [
    {"response_put": {"header": {"revision": "5"}}},
    {"response_range": {"header": {"revision": "5"}, "count": "1",
                        "kvs": [{"key": "Yg==", "value": "Mg==", "mod_revision": "4",
                                 "create_revision": "4", "version": "1"}]}}]}


def test_a_coalesced_batch_is_decoded_without_json_to_the_same_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    batch = batch_request([put_request(b"a", b"1"), range_request(b"b")])
    payload = message_of(rpc_pb2.TxnResponse, BATCH_ANSWER).SerializeToString()
    assert codec.encode(batch) == message_of(rpc_pb2.TxnRequest,
                                             dict(batch.body)).SerializeToString()
    expected = batch.parse(BATCH_ANSWER)
    assert codec.decode_generic(batch, payload) == expected
    monkeypatch.setattr(codec, "message_json", None)
    assert codec.decode(batch, payload) == expected


def test_a_batch_answer_that_does_not_match_its_ops_is_refused_on_both_paths() -> None:
    batch = batch_request([range_request(b"b"), put_request(b"a", b"1")])  # swapped
    payload = message_of(rpc_pb2.TxnResponse, BATCH_ANSWER).SerializeToString()
    for decode in (codec.decode, codec.decode_generic):
        with pytest.raises(e.ProtocolError, match="do not match"):
            decode(batch, payload)


def test_methods_of_the_hot_paths() -> None:
    assert codec.method("/kv/range").name == "/etcdserverpb.KV/Range"
    assert codec.method("/kv/txn").request_class is rpc_pb2.TxnRequest
    watch = codec.method("/watch")
    assert watch.name == "/etcdserverpb.Watch/Watch"
    assert watch.client_streaming and watch.server_streaming
    assert not codec.method("/kv/put").server_streaming
    with pytest.raises(ValueError, match="no method"):
        codec.method("/kv/nosuch")


def test_a_body_that_is_not_the_messages_json_is_refused() -> None:
    for path in ("/kv/put", "/auth/user/get"):  # the fast and the generic encoder
        with pytest.raises(ValueError, match="not the request's JSON"):
            codec.encode(Request(path, {"nosuch": 1}, parse_range, idempotent=True))
    with pytest.raises(ValueError, match="not the request's JSON"):
        codec.encode(Request("/kv/range", {"key": "Zm9v", "sort_order": "SIDEWAYS"},
                             parse_range, idempotent=True))


def test_garbage_answers_are_protocol_errors() -> None:
    for request in (range_request(b"k"), user_list_request()):
        with pytest.raises(e.ProtocolError, match="not a valid protobuf"):
            codec.decode(request, b"\xff\xff\xff")
    with pytest.raises(e.ProtocolError):
        codec.decode_watch(b"\x0a\x05ab")


def test_a_lease_grant_with_an_error_fails_as_on_the_gateway() -> None:
    payload = rpc_pb2.LeaseGrantResponse(error="lease exists").SerializeToString()
    request = lease_grant_request(5)
    with pytest.raises(e.ProtocolError, match="lease exists"):
        codec.decode(request, payload)
    with pytest.raises(e.ProtocolError, match="lease exists"):
        codec.decode_generic(request, payload)


def test_snapshot_frames_are_the_gateways_frames() -> None:
    """The snapshot stream (no request object): each protobuf message is the gateway's
    frame again, so the wire layer's SnapshotDecoder reads the same chunks from it."""
    import json

    from etcdwamp.wire import SnapshotDecoder

    stream = str(load("ops_snapshot_stream")["stream"]).encode("ascii")
    recorded = [json.loads(line) for line in stream.splitlines() if line.strip()]
    assert len(recorded) >= 2
    rebuilt = b""
    for frame in recorded:
        payload = message_of(rpc_pb2.SnapshotResponse, frame["result"]).SerializeToString()
        again = codec.answer_json("/maintenance/snapshot", payload)
        assert again == frame
        rebuilt += json.dumps(again).encode() + b"\n"
    assert SnapshotDecoder().feed(rebuilt) == SnapshotDecoder().feed(stream)


# -- the watch stream ----------------------------------------------------------------

@pytest.mark.parametrize("frame", [CREATED, EVENTS, PROGRESS, CANCELED],
                         ids=["created", "events", "progress", "canceled"])
def test_watch_responses_decode_to_what_the_stream_decoder_yields(frame: dict[str, Any]) -> None:
    payload = message_of(rpc_pb2.WatchResponse, frame["result"]).SerializeToString()
    (expected,) = WatchDecoder().feed(frames(frame))
    assert codec.decode_watch(payload) == expected
    assert codec.decode_watch_generic(payload) == expected


def test_watch_event_key_values_carry_every_number() -> None:
    payload = message_of(rpc_pb2.WatchResponse, EVENTS["result"]).SerializeToString()
    put, delete = codec.decode_watch(payload).events
    assert (put.kv.create_revision, put.kv.mod_revision, put.kv.version) == (6, 6, 1)
    assert delete.revision == 7 and delete.prev_kv is not None
    assert delete.prev_kv.version == 2 and delete.prev_kv.value == b"qux"


def test_an_unknown_watch_event_type_is_a_protocol_error() -> None:
    payload = rpc_pb2.WatchResponse(events=[kv_pb2.Event(type=7)]).SerializeToString()
    with pytest.raises(e.ProtocolError, match="unknown watch event type"):
        codec.decode_watch(payload)


WATCH_BODIES = {
    "create, every option": watch_create_body(
        KeySet(b"a", range_end=b"b"), start_revision=12, prev_kv=True,
        filters=["NOPUT", "NODELETE"], progress_notify=True, watch_id=9, fragment=True),
    "create, a prefix": watch_create_body(PREFIX),
    "create, one key": watch_create_body(b"k", filters=["NODELETE"]),
    "cancel": watch_cancel_body(9),
    "cancel 0": watch_cancel_body(0),
    "progress": {"progress_request": {}},
}


@pytest.mark.parametrize("name", sorted(WATCH_BODIES))
def test_watch_requests_encode_as_parse_dict_does(name: str) -> None:
    body = WATCH_BODIES[name]
    assert codec.encode_watch(body) == \
        message_of(rpc_pb2.WatchRequest, body).SerializeToString()


def test_watch_create_keeps_every_option() -> None:
    message = rpc_pb2.WatchRequest.FromString(
        codec.encode_watch(WATCH_BODIES["create, every option"]))
    create = message.create_request
    assert (create.key, create.range_end, create.start_revision, create.watch_id) == \
        (b"a", b"b", 12, 9)
    assert create.prev_kv and create.progress_notify and create.fragment
    assert list(create.filters) == [rpc_pb2.WatchCreateRequest.NOPUT,
                                    rpc_pb2.WatchCreateRequest.NODELETE]
    assert rpc_pb2.WatchRequest.FromString(
        codec.encode_watch(WATCH_BODIES["progress"])).WhichOneof("request_union") == \
        "progress_request"


# -- properties ----------------------------------------------------------------------

INT64 = st.integers(min_value=0, max_value=2**63 - 1)
KEY_VALUES = st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=60),
                                INT64, INT64, INT64, INT64), max_size=20)


def gateway_kv(key: bytes, value: bytes, create: int, mod: int, version: int,
               lease: int) -> dict[str, str]:
    """A key-value as the gateway writes it: base64, int64 as strings, zeros left out."""
    import base64

    obj = {"key": base64.b64encode(key).decode()}
    if value:
        obj["value"] = base64.b64encode(value).decode()
    for name, number in (("create_revision", create), ("mod_revision", mod),
                         ("version", version), ("lease", lease)):
        if number:
            obj[name] = str(number)
    return obj


@given(KEY_VALUES, st.booleans(), INT64)
def test_range_answers_decode_as_their_json_does(kvs: list[tuple[bytes, bytes, int, int, int,
                                                                  int]],
                                                 more: bool, revision: int) -> None:
    message = rpc_pb2.RangeResponse(
        header={"revision": revision, "cluster_id": 2**64 - 1},
        kvs=[kv_pb2.KeyValue(key=k, value=v, create_revision=c, mod_revision=m, version=n,
                             lease=lease) for k, v, c, m, n, lease in kvs],
        more=more, count=len(kvs))
    result = codec.decode(range_request(b"k"), message.SerializeToString())
    as_json = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert result == parse_range(as_json)
    assert codec.message_json(message) == as_json
    assert result.kvs == tuple(KeyValue(*kv) for kv in kvs)
    assert [gateway_kv(*kv) for kv in kvs] == \
        [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in message.kvs]
    assert (result.more, result.count, result.revision) == (more, len(kvs), revision)
    assert result.header.cluster_id == 2**64 - 1


@given(st.binary(min_size=1, max_size=40), st.binary(max_size=40) | st.none(),
       st.integers(min_value=0, max_value=2**63 - 1), st.booleans(), st.booleans(),
       st.sampled_from(["NONE", "ASCEND", "DESCEND"]),
       st.sampled_from(["KEY", "VERSION", "CREATE", "MOD", "VALUE"]))
def test_range_requests_encode_as_parse_dict_does(key: bytes, range_end: bytes | None,
                                                  number: int, keys_only: bool,
                                                  serializable: bool, order: str,
                                                  target: str) -> None:
    request = range_request(KeySet(key, range_end=range_end), limit=number, revision=number,
                            min_mod_revision=number, max_create_revision=number,
                            keys_only=keys_only, serializable=serializable,
                            sort_order=order, sort_target=target)
    encoded = codec.encode(request)
    assert encoded == message_of(rpc_pb2.RangeRequest, dict(request.body)).SerializeToString()
    decoded = rpc_pb2.RangeRequest.FromString(encoded)
    assert (decoded.key, decoded.range_end, decoded.limit) == (key, range_end or b"", number)


EVENTS_STRATEGY = st.lists(st.tuples(st.sampled_from([0, 1]), KEY_VALUES.filter(bool),
                                     st.booleans()), max_size=8)


@given(EVENTS_STRATEGY, INT64, st.booleans(), st.booleans(), st.text(max_size=20))
def test_watch_responses_decode_as_the_gateways_frames_do(
        events: list[tuple[int, list[tuple[bytes, bytes, int, int, int, int]], bool]],
        watch_id: int, created: bool, fragment: bool, reason: str) -> None:
    def kv(fields: tuple[bytes, bytes, int, int, int, int]) -> Any:
        key, value, create, mod, version, lease = fields
        return kv_pb2.KeyValue(key=key, value=value, create_revision=create, mod_revision=mod,
                               version=version, lease=lease)

    message = rpc_pb2.WatchResponse(
        header={"revision": watch_id}, watch_id=watch_id, created=created, fragment=fragment,
        cancel_reason=reason, canceled=bool(reason), compact_revision=watch_id // 2,
        events=[kv_pb2.Event(type=kind, kv=kv(kvs[0]),
                             prev_kv=kv(kvs[-1]) if with_prev else None)
                for kind, kvs, with_prev in events])
    frame = {"result": json_format.MessageToDict(message, preserving_proto_field_name=True)}
    (expected,) = WatchDecoder().feed(frames(frame))
    assert codec.decode_watch(message.SerializeToString()) == expected
    assert [ev.prev_kv is not None for ev in expected.events] == [p for _, _, p in events]
