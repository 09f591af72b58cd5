"""Parsing answers: fields the gateway leaves out are defaults, fields of the
wrong shape are a ProtocolError, and both spellings of status fields count."""

from __future__ import annotations

import base64
import gc
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import Header, KeyValue
from etcdwamp.wire.results import (
    parse_delete,
    parse_header,
    parse_key_value,
    parse_lease_grant,
    parse_lease_info,
    parse_lease_revoke,
    parse_put,
    parse_range,
    parse_status,
    parse_txn,
)

HEADER = {"cluster_id": "10", "member_id": "20", "revision": "30", "raft_term": "40"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kv_json(key: bytes, value: bytes = b"", **numbers: int) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(key), **{k: str(v) for k, v in numbers.items()}}
    if value:
        out["value"] = b64(value)
    return out


def test_headers_in_every_shape() -> None:
    assert parse_header({"header": HEADER}) == Header(10, 20, 30, 40)
    # Numbers as JSON numbers take the checked path and mean the same.
    assert parse_header({"header": {"cluster_id": 10, "member_id": 20, "revision": 30,
                                    "raft_term": 40}}) == Header(10, 20, 30, 40)
    assert parse_header({}) == Header(0, 0, 0, 0)
    assert parse_header({"header": {"revision": "9"}}) == Header(0, 0, 9, 0)
    with pytest.raises(e.ProtocolError, match="revision"):
        parse_header({"header": {"revision": "nine"}})
    with pytest.raises(e.ProtocolError, match="header should be a JSON object"):
        parse_header({"header": ["revision", "9"]})


def test_a_key_value_s_fields_and_numbers() -> None:
    kv = parse_key_value(kv_json(b"k", b"v", create_revision=3, mod_revision=5, version=2,
                                 lease=7))
    assert kv == KeyValue(b"k", b"v", 3, 5, 2, 7)
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (
        b"k", b"v", 3, 5, 2, 7)
    assert hash(kv) == hash(KeyValue(b"k", b"v", 3, 5, 2, 7))
    # Hashed by their fields: distinct key-values spread over a set's buckets.
    assert hash(kv) != hash(KeyValue(b"k", b"w", 3, 5, 2, 7))
    assert repr(kv) == ("KeyValue(key=b'k', value=b'v', create_revision=3, mod_revision=5, "
                        "version=2, lease=7)")
    assert kv != KeyValue(b"k", b"v", 3, 5, 2, 8)
    assert kv != (b"k", b"v", 3, 5, 2, 7)
    empty = parse_key_value({"key": b64(b"k")})
    assert (empty.value, empty.version, empty.lease) == (b"", 0, 0)


def test_a_key_value_lets_go_of_the_answer_once_its_numbers_are_read() -> None:
    """A range of thousands of keys must not keep every answer dict alive."""
    answer = kv_json(b"k", b"v", version=2)
    kv = parse_key_value(answer)
    assert any(ref is answer for ref in gc.get_referents(kv))
    assert kv.version == 2
    assert not any(ref is answer for ref in gc.get_referents(kv))
    assert (kv.create_revision, kv.lease) == (0, 0)


def test_a_range_decodes_numbers_only_when_read() -> None:
    """Ranges of thousands of keys are read for keys and values: a number, even
    a malformed one, costs nothing until it is read (then it raises)."""
    got = parse_range({"kvs": [kv_json(b"a", b"1") | {"version": "two"},
                               {"key": b64(b"b"), "lease": "x"}]})
    assert [(kv.key, kv.value) for kv in got.kvs] == [(b"a", b"1"), (b"b", b"")]
    for kv in got.kvs:
        with pytest.raises(e.ProtocolError):
            _ = kv.create_revision


def test_any_json_mapping_parses_alike() -> None:
    """An answer decoded by another JSON reader (an OrderedDict, a read-only
    mapping) takes the checked path and means the same."""
    raw = kv_json(b"k", b"v", create_revision=3, mod_revision=5, version=2, lease=7)
    for mapping in (OrderedDict(raw), MappingProxyType(raw)):
        assert parse_key_value(mapping) == KeyValue(b"k", b"v", 3, 5, 2, 7)
    assert parse_key_value(MappingProxyType({})) == KeyValue(b"", b"", 0, 0, 0, 0)
    assert parse_key_value({}) == KeyValue(b"", b"", 0, 0, 0, 0)


@pytest.mark.parametrize("bad", ["d!g==", "dg=", "dg==dg=="])
def test_base64_is_checked_strictly(bad: str) -> None:
    with pytest.raises(e.ProtocolError, match=r"^field 'value' is not valid base64"):
        parse_key_value({"key": b64(b"k"), "value": bad})
    with pytest.raises(e.ProtocolError, match=r"^field 'value' is not valid base64"):
        parse_range({"kvs": [{"key": b64(b"k"), "value": bad}]})
    with pytest.raises(e.ProtocolError, match=r"^field 'key' is not valid base64"):
        parse_range({"kvs": [{"key": bad}]})


def test_a_malformed_key_value_is_a_protocol_error() -> None:
    with pytest.raises(e.ProtocolError, match="key"):
        parse_key_value({"key": "not base64!"})
    with pytest.raises(e.ProtocolError, match="value"):
        parse_key_value({"key": b64(b"k"), "value": 5})
    with pytest.raises(e.ProtocolError, match="kv should be a JSON object"):
        parse_key_value(["k"])  # type: ignore[arg-type]
    kv = parse_key_value(kv_json(b"k") | {"version": "two"})
    with pytest.raises(e.ProtocolError, match="version"):
        _ = kv.mod_revision  # the numbers are decoded together, on first use


def test_ranges() -> None:
    got = parse_range({"header": HEADER, "more": True, "count": "3",
                       "kvs": [kv_json(b"a", b"1", version=1), kv_json(b"b")]})
    assert got.revision == 30 and got.more is True and got.count == 3
    assert [(kv.key, kv.value, kv.version) for kv in got.kvs] == [(b"a", b"1", 1),
                                                                   (b"b", b"", 0)]
    assert got.first is got.kvs[0]
    assert parse_range({"header": HEADER}).first is None
    with pytest.raises(e.ProtocolError, match="kvs should be a JSON array"):
        parse_range({"kvs": {"key": b64(b"a")}})
    with pytest.raises(e.ProtocolError, match="key"):
        parse_range({"kvs": [{"key": "***"}]})
    with pytest.raises(e.ProtocolError, match="more"):
        parse_range({"more": "true"})


def test_puts_and_deletes() -> None:
    put = parse_put({"header": HEADER, "prev_kv": kv_json(b"k", b"old", version=4)})
    assert put.revision == 30
    assert put.prev_kv == KeyValue(b"k", b"old", 0, 0, 4, 0)
    assert parse_put({"header": HEADER}).prev_kv is None
    deleted = parse_delete({"header": HEADER, "deleted": "2",
                            "prev_kvs": [kv_json(b"a", b"1"), kv_json(b"b", b"2")]})
    assert deleted.revision == 30 and deleted.deleted == 2
    assert [(kv.key, kv.value) for kv in deleted.prev_kvs] == [(b"a", b"1"), (b"b", b"2")]
    assert parse_delete({}).prev_kvs == ()


def test_every_op_of_a_transaction_carries_the_transaction_s_header() -> None:
    res = parse_txn({"header": HEADER, "succeeded": True, "responses": [
        {"response_range": {"header": {"revision": "30"}, "count": "1",
                            "kvs": [kv_json(b"a", b"1")]}},
        {"response_delete_range": {"header": {}, "deleted": "1"}},
        {"response_txn": {"header": {}, "succeeded": True, "responses": [
            {"response_put": {"header": {"revision": "30"}}}]}},
    ]})
    rng, dele, inner = res.responses
    assert res.succeeded and res.revision == 30
    assert rng.header == dele.header == inner.header == Header(10, 20, 30, 40)
    assert inner.responses[0].header == Header(10, 20, 30, 40)
    assert dele.deleted == 1 and rng.kvs[0].value == b"1"


def test_a_malformed_transaction_answer_is_a_protocol_error() -> None:
    with pytest.raises(e.ProtocolError, match="unknown txn response op"):
        parse_txn({"header": HEADER, "responses": [{"response_lease": {}}]})
    with pytest.raises(e.ProtocolError, match="response op should be a JSON object"):
        parse_txn({"header": HEADER, "responses": ["response_put"]})
    with pytest.raises(e.ProtocolError, match="response_put should be a JSON object"):
        parse_txn({"header": HEADER, "responses": [{"response_put": 1}]})
    with pytest.raises(e.ProtocolError, match="response_txn should be a JSON object"):
        parse_txn({"header": HEADER, "responses": [{"response_txn": []}]})
    with pytest.raises(e.ProtocolError, match="responses should be a JSON array"):
        parse_txn({"header": HEADER, "responses": {}})
    assert parse_txn({"header": HEADER}).responses == ()


@pytest.mark.parametrize("names", [
    # etcd 3.4's gateway spells them in camelCase, a proxy may send the proto names.
    ("dbSize", "raftIndex", "raftTerm", "raftAppliedIndex", "dbSizeInUse", "isLearner"),
    ("db_size", "raft_index", "raft_term", "raft_applied_index", "db_size_in_use",
     "is_learner"),
])
def test_status_fields_in_either_spelling(names: tuple[str, ...]) -> None:
    db_size, raft_index, raft_term, applied, in_use, learner = names
    st = parse_status({"header": HEADER, "version": "3.5.9", "leader": "8", db_size: "4096",
                       raft_index: "70", raft_term: "6", applied: "69", in_use: "2048",
                       learner: True, "errors": ["NOSPACE"]})
    assert (st.version, st.leader, st.db_size, st.raft_index, st.raft_term,
            st.raft_applied_index, st.db_size_in_use, st.is_learner, st.errors) == (
        "3.5.9", 8, 4096, 70, 6, 69, 2048, True, ("NOSPACE",))
    assert st.revision == 30


def test_a_status_of_a_voting_member_with_nothing_set() -> None:
    st = parse_status({})
    assert (st.version, st.db_size, st.raft_applied_index, st.is_learner, st.errors) == (
        "", 0, 0, False, ())
    with pytest.raises(e.ProtocolError, match="version"):
        parse_status({"version": 3.4})
    with pytest.raises(e.ProtocolError, match=r"^errors should be a JSON array, got 'NOSPACE'$"):
        parse_status({"errors": "NOSPACE"})
    with pytest.raises(e.ProtocolError, match="isLearner"):
        parse_status({"isLearner": "yes"})


def test_lease_answers() -> None:
    grant = parse_lease_grant({"header": HEADER, "ID": "77", "TTL": "10"})
    assert (grant.id, grant.ttl, grant.header.revision) == (77, 10, 30)
    with pytest.raises(e.ProtocolError, match="lease grant failed: lease exists"):
        parse_lease_grant({"header": HEADER, "ID": "77", "error": "lease exists"})
    assert parse_lease_revoke({"header": HEADER}).header == Header(10, 20, 30, 40)
    info = parse_lease_info({"header": HEADER, "ID": "77", "TTL": "8", "grantedTTL": "10",
                             "keys": [b64(b"a"), b64(b"b")]})
    assert (info.id, info.ttl, info.granted_ttl, info.keys) == (77, 8, 10, (b"a", b"b"))
    assert info.header == Header(10, 20, 30, 40)
    assert parse_lease_info({"ID": "77", "TTL": "-1"}).keys == ()
    with pytest.raises(e.ProtocolError, match=r"^keys should be a JSON array, got 'YQ=='$"):
        parse_lease_info({"keys": b64(b"a")})
