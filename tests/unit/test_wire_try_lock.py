"""The try-lock transaction: etcd's lock-service key layout, and who holds the lock."""

from __future__ import annotations

import base64

import pytest

from etcdwamp.wire import Header, KeyValue, RangeResult, TxnResult
from etcdwamp.wire.try_lock import lock_key, try_lock_request, try_lock_token


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_lock_key_is_name_slash_lease_hex() -> None:
    """The layout of etcd's concurrency.Mutex: ``<name>/%x`` of the lease id."""
    assert lock_key(b"jobs", 0x694D7A6B2C3D1E0F) == b"jobs/694d7a6b2c3d1e0f"
    assert lock_key(bytearray(b"jobs"), 1) == b"jobs/1"  # lease ids start at 1


def test_a_bad_name_or_lease_is_refused_saying_which() -> None:
    with pytest.raises(ValueError) as info:
        lock_key(b"", 1)
    assert str(info.value) == "lock/election name must not be empty"
    with pytest.raises(TypeError) as type_info:
        lock_key("jobs", 1)  # type: ignore[arg-type]
    assert str(type_info.value).startswith("name must be bytes, not str")
    with pytest.raises(ValueError) as info:
        lock_key(b"jobs", 0)
    assert str(info.value).startswith("lease_id must be between 1 and ")
    with pytest.raises(TypeError) as type_info:
        try_lock_request(b"jobs", "ff")  # type: ignore[arg-type]
    assert str(type_info.value) == "lease_id must be an int, not str"


def test_request_puts_under_the_lease_and_reads_the_oldest_key() -> None:
    request = try_lock_request(b"jobs", 255)
    assert request.path == "/kv/txn" and not request.idempotent
    assert request.body == {"success": [
        {"request_put": {"key": b64(b"jobs/ff"), "lease": "255"}},
        {"request_range": {"key": b64(b"jobs/"), "range_end": b64(b"jobs0"), "limit": "1",
                           "sort_order": "ASCEND", "sort_target": "CREATE"}},
    ]}


def _answer(*owners: bytes) -> TxnResult:
    header = Header(cluster_id=1, member_id=1, revision=9, raft_term=1)
    kvs = tuple(KeyValue(key=k, value=b"", create_revision=7, mod_revision=7, version=1,
                         lease=255) for k in owners)
    return TxnResult(header=header, succeeded=True,
                     responses=(RangeResult(header=header, kvs=kvs, more=False,
                                            count=len(kvs)),))


def test_token_only_when_our_key_is_the_oldest() -> None:
    assert try_lock_token(_answer(b"jobs/ff"), b"jobs/ff") == 7
    assert try_lock_token(_answer(b"jobs/aa"), b"jobs/ff") is None
    assert try_lock_token(_answer(), b"jobs/ff") is None
