"""Transactions against a real etcd: every compare target/operator, ops, nesting, limits."""

from __future__ import annotations

import pytest
from loops import ensure, make_client

from etcdwamp import (
    CompCreated,
    CompLease,
    CompModified,
    CompValue,
    CompVersion,
    KeySet,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
)
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire import DeleteResult, PutResult, RangeResult, TxnResult


@ensure
async def test_success_branch_runs_ops_and_returns_typed_responses(client: Client,
                                                                   prefix: bytes) -> None:
    """prev_kv=True on a put returns the value it replaced (None for a new key)."""
    await client.put(prefix + b"k", b"v")
    await client.put(prefix + b"n", b"old")
    await client.put(prefix + b"gone", b"x")
    res = await client.txn(Transaction(
        compare=[CompValue(prefix + b"k", "==", b"v")],
        success=[OpSet(prefix + b"n", b"new", prev_kv=True), OpGet(prefix + b"k"),
                 OpDel(prefix + b"gone", prev_kv=True),
                 OpSet(prefix + b"fresh", b"1", prev_kv=True)],
        failure=[OpGet(prefix + b"k")],
    ))
    assert res.succeeded is True
    put, get, dele, fresh = res.responses
    assert isinstance(put, PutResult) and put.prev_kv is not None
    assert put.prev_kv.key == prefix + b"n" and put.prev_kv.value == b"old"
    assert isinstance(fresh, PutResult) and fresh.prev_kv is None
    assert isinstance(get, RangeResult) and get.kvs[0].value == b"v"
    assert isinstance(dele, DeleteResult) and dele.deleted == 1
    assert dele.prev_kvs[0].value == b"x"
    assert get.revision == res.revision
    assert (await client.get(prefix + b"n")).kvs[0].mod_revision == res.revision


@ensure
async def test_a_put_in_a_transaction_keeps_its_lease_and_ignore_options(client: Client,
                                                                        prefix: bytes) -> None:
    """A put inside a transaction attaches its lease (revoking it deletes the key);
    ignore_value keeps the stored value, ignore_lease the stored lease."""
    lease = await client.lease_grant(60)
    other = await client.lease_grant(60)
    try:
        await client.put(prefix + b"kept", b"stored", lease=other.id)
        res = await client.txn(Transaction(success=[
            OpSet(prefix + b"leased", b"v", lease=lease.id),
            OpSet(prefix + b"kept", b"", ignore_value=True, lease=lease.id),
        ]))
        assert res.succeeded
        leased = (await client.get(prefix + b"leased")).kvs[0]
        assert leased.lease == lease.id
        kept = (await client.get(prefix + b"kept")).kvs[0]
        assert kept.value == b"stored" and kept.lease == lease.id
        await client.txn(Transaction(success=[
            OpSet(prefix + b"kept", b"changed", ignore_lease=True)]))
        kept = (await client.get(prefix + b"kept")).kvs[0]
        assert kept.value == b"changed" and kept.lease == lease.id
        await client.lease_revoke(lease.id)
        assert (await client.get(KeySet(prefix, prefix=True), count_only=True)).count == 0
    finally:
        await client.lease_revoke(other.id)


@ensure
async def test_failed_compare_is_a_result_running_failure_ops(client: Client,
                                                              prefix: bytes) -> None:
    await client.put(prefix + b"k", b"v")
    res = await client.txn(Transaction(
        compare=[CompValue(prefix + b"k", "==", b"other")],
        success=[OpSet(prefix + b"k", b"changed")],
        failure=[OpGet(prefix + b"k")],
    ))
    assert res.succeeded is False
    (get,) = res.responses
    assert isinstance(get, RangeResult) and get.kvs[0].value == b"v"
    assert (await client.get(prefix + b"k")).kvs[0].value == b"v"


@pytest.mark.parametrize(
    ("comp", "expected"),
    [
        ("==", [False, True, False]),
        ("!=", [True, False, True]),
        (">", [False, False, True]),
        ("<", [True, False, False]),
    ],
)
@ensure
async def test_every_operator_on_every_target(client: Client, prefix: bytes, comp: str,
                                              expected: list[bool]) -> None:
    """Each operator, against a value below / equal to / above the stored one, for
    value, version, create revision, mod revision and lease."""
    lease = await client.lease_grant(60)
    put = await client.put(prefix + b"k", b"m", lease=lease.id)
    key = prefix + b"k"
    cases = {
        "value": [CompValue(key, comp, op) for op in (b"z", b"m", b"a")],
        "version": [CompVersion(key, comp, op) for op in (2, 1, 0)],
        "create": [CompCreated(key, comp, op) for op in
                   (put.revision + 1, put.revision, put.revision - 1)],
        "mod": [CompModified(key, comp, op) for op in
                (put.revision + 1, put.revision, put.revision - 1)],
        "lease": [CompLease(key, comp, op) for op in (lease.id + 1, lease.id, lease.id - 1)],
    }
    for target, compares in cases.items():
        got = [(await client.txn(Transaction(compare=[c]))).succeeded for c in compares]
        assert got == expected, target
    await client.lease_revoke(lease.id)


@ensure
async def test_version_zero_is_create_if_absent(client: Client, prefix: bytes) -> None:
    """The classic create-only-if-absent: only the first of two attempts writes."""
    def create(value: bytes) -> Transaction:
        return Transaction(compare=[CompVersion(prefix + b"k", "==", 0)],
                           success=[OpSet(prefix + b"k", value)])
    assert (await client.txn(create(b"first"))).succeeded
    assert not (await client.txn(create(b"second"))).succeeded
    assert (await client.get(prefix + b"k")).kvs[0].value == b"first"


@ensure
async def test_compare_over_a_range(client: Client, prefix: bytes) -> None:
    """A compare on a KeySet must hold for every key in it."""
    await client.put(prefix + b"a", b"1")
    await client.put(prefix + b"b", b"1")
    every_one = CompValue(KeySet(prefix, prefix=True), "==", b"1")
    assert (await client.txn(Transaction(compare=[every_one]))).succeeded
    await client.put(prefix + b"b", b"2")
    assert not (await client.txn(Transaction(compare=[every_one]))).succeeded


@ensure
async def test_nested_transaction(client: Client, prefix: bytes) -> None:
    await client.put(prefix + b"k", b"v")
    inner = Transaction(compare=[CompVersion(prefix + b"absent", "==", 0)],
                        success=[OpSet(prefix + b"inner", b"yes")],
                        failure=[OpSet(prefix + b"inner", b"no")])
    res = await client.txn(Transaction(compare=[CompValue(prefix + b"k", "==", b"v")],
                                       success=[inner, OpGet(prefix + b"k")]))
    assert res.succeeded
    nested, get = res.responses
    assert isinstance(nested, TxnResult) and nested.succeeded
    assert isinstance(nested.responses[0], PutResult)
    assert isinstance(get, RangeResult)
    assert (await client.get(prefix + b"inner")).kvs[0].value == b"yes"


@ensure
async def test_mod_revision_guard_detects_concurrent_change(client: Client,
                                                            prefix: bytes) -> None:
    """Optimistic concurrency: a write guarded by the mod revision read earlier fails
    once someone else wrote in between, and the other writer's value survives."""
    read = (await client.get(prefix + b"k")).revision
    guard = CompModified(prefix + b"k", "<", read + 1)
    await client.put(prefix + b"k", b"someone else")
    res = await client.txn(Transaction(compare=[guard], success=[OpSet(prefix + b"k", b"me")]))
    assert not res.succeeded
    assert (await client.get(prefix + b"k")).kvs[0].value == b"someone else"


@ensure
async def test_128_ops_pass_129_are_refused_before_sending(client: Client,
                                                           prefix: bytes) -> None:
    ok = Transaction(success=[OpSet(prefix + b"%03d" % i, b"v") for i in range(128)])
    assert (await client.txn(ok)).succeeded
    assert (await client.get(KeySet(prefix, prefix=True), count_only=True)).count == 128
    too_many = Transaction(success=[OpSet(prefix + b"x%03d" % i, b"v") for i in range(129)])
    with pytest.raises(e.TooManyOps, match="128"):
        await client.txn(too_many)
    assert (await client.get(KeySet(prefix + b"x", prefix=True), count_only=True)).count == 0


@ensure
async def test_etcd_itself_refuses_too_many_ops(etcd: EtcdCluster, loop: str,
                                                 prefix: bytes) -> None:
    """With the client-side limit raised, etcd's own refusal maps to TooManyOps too."""
    loose = make_client(loop, url=etcd.url, max_txn_ops=1000)
    try:
        txn = Transaction(success=[OpSet(prefix + b"%03d" % i, b"v") for i in range(129)])
        with pytest.raises(e.TooManyOps) as info:
            await loose.txn(txn)
        assert info.value.http_status is not None  # it came from etcd
        assert (await loose.get(KeySet(prefix, prefix=True), count_only=True)).count == 0
    finally:
        await loose.close()


@ensure
async def test_same_key_twice_is_duplicate_key(client: Client, prefix: bytes) -> None:
    with pytest.raises(e.DuplicateKey):
        await client.txn(Transaction(success=[OpSet(prefix + b"k", b"1"),
                                              OpSet(prefix + b"k", b"2")]))
    with pytest.raises(e.DuplicateKey):
        await client.txn(Transaction(success=[OpSet(prefix + b"k", b"1"),
                                              OpDel(KeySet(prefix, prefix=True))]))
    assert (await client.get(prefix + b"k")).count == 0
    # The same key in different branches is fine.
    res = await client.txn(Transaction(compare=[CompVersion(prefix + b"k", "==", 0)],
                                       success=[OpSet(prefix + b"k", b"1")],
                                       failure=[OpSet(prefix + b"k", b"2")]))
    assert res.succeeded


@ensure
async def test_a_put_at_the_end_of_a_deleted_range_is_not_a_duplicate(client: Client,
                                                                      prefix: bytes) -> None:
    """The end of a range is exclusive: etcd runs a delete of ``[b, d)`` with a put of ``d``
    in one transaction; a put of ``b`` is a duplicate, refused before anything is written."""
    for key in (b"b", b"c"):
        await client.put(prefix + key, b"old")
    deleted = OpDel(KeySet(prefix + b"b", range_end=prefix + b"d"))
    with pytest.raises(e.DuplicateKey):
        await client.txn(Transaction(success=[deleted, OpSet(prefix + b"b", b"new")]))
    assert (await client.get(KeySet(prefix, prefix=True), count_only=True)).count == 2
    res = await client.txn(Transaction(success=[deleted, OpSet(prefix + b"d", b"new")]))
    assert res.succeeded
    left = await client.get(KeySet(prefix, prefix=True))
    assert [(kv.key, kv.value) for kv in left.kvs] == [(prefix + b"d", b"new")]
