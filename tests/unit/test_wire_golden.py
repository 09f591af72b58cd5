"""The wire layer against golden answers captured from a real etcd 3.4 gateway.

Regenerate with ``scripts/capture_golden.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import (
    DeleteResult,
    PutResult,
    RangeResult,
    TxnResult,
    error_from_response,
)
from etcdwamp.wire.concurrency import lease_keepalive_request
from etcdwamp.wire.results import (
    parse_compact,
    parse_delete,
    parse_lease_grant,
    parse_lease_info,
    parse_put,
    parse_range,
    parse_status,
    parse_txn,
)

GOLDEN = Path(__file__).parent / "golden"


def load(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return record


def answer(name: str) -> dict[str, Any]:
    record = load(name)
    assert record["status"] == 200, record
    response: dict[str, Any] = record["response"]
    return response


def test_captured_from_etcd_3_4() -> None:
    assert load("status")["etcd"].startswith("3.4.")


def test_status() -> None:
    st = parse_status(answer("status"))
    assert st.version == "3.4.23"
    assert (st.db_size, st.db_size_in_use) == (20480, 16384)
    assert st.leader == st.header.member_id == 14405396050069556336
    assert (st.raft_index, st.raft_applied_index, st.raft_term) == (5, 5, 2)
    assert st.header.cluster_id == 10757577845466442088  # uint64 ids survive as ints
    assert st.revision == st.header.revision == 1
    assert st.errors == () and st.is_learner is False


def test_put_without_and_with_prev_kv() -> None:
    new = parse_put(answer("put_new"))
    assert new.prev_kv is None and new.revision > 1
    prev = parse_put(answer("put_prev_kv"))
    assert prev.prev_kv is not None
    assert (prev.prev_kv.key, prev.prev_kv.value) == (b"foo", b"bar")
    assert prev.prev_kv.version == 1 and prev.prev_kv.lease == 0


def test_lease_grant_and_leased_key() -> None:
    grant = parse_lease_grant(answer("lease_grant"))
    assert grant.ttl == 60 and grant.id > 2**32
    info = parse_lease_info(answer("lease_timetolive"))
    assert info.id == grant.id and info.granted_ttl == 60 and 0 < info.ttl <= 60
    assert info.keys == (b"leased",)


def test_lease_keepalive_frame() -> None:
    request = lease_keepalive_request(1)
    result = request.parse(answer("lease_keepalive"))
    assert result.ttl == 60 and result.id == parse_lease_grant(answer("lease_grant")).id


def test_range_single_and_missing() -> None:
    got = parse_range(answer("range_single"))
    assert got.count == 1 and got.more is False
    assert (got.kvs[0].key, got.kvs[0].value, got.kvs[0].version) == (b"foo", b"baz", 2)
    missing = parse_range(answer("range_missing"))
    # The gateway omits kvs, count and more when they are empty/zero/false.
    assert set(answer("range_missing")) == {"header"}
    assert missing.kvs == () and missing.count == 0 and missing.more is False


def test_range_prefix_limit_more_count() -> None:
    got = parse_range(answer("range_prefix_limit"))
    assert [kv.key for kv in got.kvs] == [b"p/a", b"p/b"]
    assert got.more is True and got.count == 3


def test_range_count_only_keys_only_sorted() -> None:
    counted = parse_range(answer("range_count_only"))
    assert counted.kvs == () and counted.count == 3
    keys = parse_range(answer("range_keys_only"))
    assert [kv.value for kv in keys.kvs] == [b""] * 3
    desc = parse_range(answer("range_sort_descend"))
    assert [kv.key for kv in desc.kvs] == [b"p/c", b"p/b", b"p/a"]


def test_range_at_revision_and_empty_value() -> None:
    old = parse_range(answer("range_revision"))
    assert old.kvs[0].value == b"P/A"
    empty = parse_range(answer("range_empty_value"))
    assert empty.count == 1 and empty.kvs[0].value == b""
    assert "value" not in answer("range_empty_value")["kvs"][0]


def test_delete_results() -> None:
    single = parse_delete(answer("delete_single_prev_kv"))
    assert single.deleted == 1 and single.prev_kvs[0].key == b"empty"
    missing = parse_delete(answer("delete_missing"))
    assert missing.deleted == 0 and missing.prev_kvs == ()
    prefix = parse_delete(answer("delete_prefix"))
    assert prefix.deleted == 3


def test_txn_success_branch_responses() -> None:
    res = parse_txn(answer("txn_success"))
    assert res.succeeded is True
    put, rng, dele = res.responses
    assert isinstance(put, PutResult) and isinstance(rng, RangeResult)
    assert isinstance(dele, DeleteResult) and dele.deleted == 0
    assert rng.kvs[0].value == b"baz"
    # Inner ops carry the txn's full header.
    assert put.header == res.header


def test_txn_failure_and_nested() -> None:
    failed = parse_txn(answer("txn_failure"))
    assert failed.succeeded is False  # "succeeded" is omitted by the gateway
    assert "succeeded" not in answer("txn_failure")
    assert isinstance(failed.responses[0], RangeResult)
    nested = parse_txn(answer("txn_nested"))
    assert nested.succeeded
    inner = nested.responses[0]
    assert isinstance(inner, TxnResult) and inner.succeeded
    assert isinstance(inner.responses[0], PutResult)
    # The gateway sends the inner txn an empty header and its put a partial
    # one: both carry the outer transaction's header.
    assert answer("txn_nested")["responses"][0]["response_txn"]["header"] == {}
    assert inner.header == nested.header and inner.revision == 12
    assert inner.responses[0].header == nested.header
    assert nested.header.member_id == 14405396050069556336


def test_compaction() -> None:
    assert parse_compact(answer("compaction")).header.revision == 15


@pytest.mark.parametrize(("name", "exc", "code"), [
    ("err_compacted", e.RevisionCompacted, 11),
    ("err_future_revision", e.FutureRevision, 11),
    ("err_compact_future", e.FutureRevision, 11),
    ("err_too_many_ops", e.TooManyOps, 3),
    ("err_duplicate_key", e.DuplicateKey, 3),
    ("err_too_large", e.RequestTooLarge, 8),
    ("err_bad_json", e.InvalidArgument, 3),
    ("err_invalid_enum", e.InvalidArgument, 3),
    ("err_lease_not_found", e.LeaseNotFound, 5),
    ("err_empty_key", e.EmptyKey, 3),
    ("err_unknown_path", e.NotFound, 5),
    ("v3alpha_status", e.NotFound, 5),
])
def test_error_answers(name: str, exc: type[e.ServerError], code: int) -> None:
    record = load(name)
    err = error_from_response(record["status"], json.dumps(record["response"]).encode()
                              if isinstance(record["response"], dict)
                              else record["response"].encode())
    assert type(err) is exc
    assert err.code == code and err.http_status == record["status"]
    assert err.message


def test_v3beta_still_served_by_3_4() -> None:
    assert load("v3beta_status")["status"] == 200
    assert parse_status(answer("v3beta_status")).version.startswith("3.4.")


def test_3_5_status_body_shape() -> None:
    """etcd 3.5+ (grpc-gateway v2) sends google.rpc.Status: code, message, details."""
    body = json.dumps({"code": 11, "message": "etcdserver: mvcc: required revision has "
                       "been compacted", "details": []}).encode()
    err = error_from_response(400, body)
    assert isinstance(err, e.RevisionCompacted) and err.details == ()
