"""Coalescing against a real etcd: each caller gets exactly its own result."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loops import ensure, make_client
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred

from etcdwamp import Client, KeySet
from etcdwamp import errors as e
from etcdwamp._deferred import dual
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire import DeleteResult, KeyValue, PutResult, RangeResult

_run = itertools.count()


@pytest_twisted.async_yield_fixture
async def coalescing(etcd: EtcdCluster, loop: str) -> AsyncIterator[Client]:
    """A coalescing client of the test's loop (the ``client`` fixture's)."""
    c = make_client(loop, url=etcd.url, timeout=10.0, coalesce=True)
    try:
        yield c
    finally:
        await c.close()


async def settle(calls: list[Deferred[Any]]) -> list[tuple[bool, Any]]:
    """Every call's outcome, in order: (True, result) or (False, exception)."""
    outcomes = await dual(defer.DeferredList(calls, consumeErrors=True))
    return [(ok, value if ok else value.value) for ok, value in outcomes]


def shape(kv: KeyValue | None, prefix: bytes) -> Any:
    """What a key-value says independent of the key prefix and of revisions
    (coalesced writes share revisions, so absolute ones differ between runs)."""
    if kv is None:
        return None
    return (kv.key[len(prefix):], kv.value, kv.version, kv.lease)


def result_shape(outcome: tuple[bool, Any], prefix: bytes) -> Any:
    ok, value = outcome
    if not ok:
        return ("error", type(value).__name__)
    if isinstance(value, PutResult):
        return ("put", shape(value.prev_kv, prefix))
    if isinstance(value, DeleteResult):
        return ("delete", value.deleted, [shape(kv, prefix) for kv in value.prev_kvs])
    assert isinstance(value, RangeResult)
    return ("get", value.count, [shape(kv, prefix) for kv in value.kvs])


# One step: ("put", key, value, prev_kv), ("get", key), ("delete", key, prev_kv),
# or ("turn",): wait for everything issued so far (ends the reactor turn).
keys = st.sampled_from([b"a", b"b", b"c", b"d"])
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), keys, st.binary(max_size=6), st.booleans()),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("delete"), keys, st.booleans()),
    st.tuples(st.just("turn")),
), min_size=1, max_size=24)


def issue(client: Client, prefix: bytes, step: tuple[Any, ...]) -> Deferred[Any]:
    if step[0] == "put":
        return client.put(prefix + step[1], step[2], prev_kv=step[3])
    if step[0] == "get":
        return client.get(prefix + step[1])
    return client.delete(prefix + step[1], prev_kv=step[2])


@pytest.mark.usefixtures("etcd")
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
@ensure
async def test_results_equal_those_of_uncoalesced_calls(
        client: Client, coalescing: Client, plan: list[tuple[Any, ...]]) -> None:
    """Random interleavings of put/get/delete calls, issued together (split
    into reactor turns at random): every caller of the coalescing client gets
    the result the same call gets from a plain client making the calls one
    after the other, and both leave the same keys behind."""
    run = next(_run)
    plain_prefix, batched_prefix = b"coal%d/plain/" % run, b"coal%d/batched/" % run
    expected = []
    for step in plan:
        if step[0] != "turn":
            expected.extend(await settle([issue(client, plain_prefix, step)]))
    got: list[tuple[bool, Any]] = []
    pending: list[Deferred[Any]] = []
    for step in plan:
        if step[0] == "turn":
            got.extend(await settle(pending))
            pending = []
        else:
            pending.append(issue(coalescing, batched_prefix, step))
    got.extend(await settle(pending))
    assert [result_shape(o, batched_prefix) for o in got] == \
        [result_shape(o, plain_prefix) for o in expected]
    plain = await client.get(KeySet(plain_prefix, prefix=True))
    batched = await client.get(KeySet(batched_prefix, prefix=True))
    assert [shape(kv, batched_prefix) for kv in batched.kvs] == \
        [shape(kv, plain_prefix) for kv in plain.kvs]


@ensure
async def test_calls_of_one_turn_share_one_transaction(coalescing: Client, prefix: bytes) -> None:
    """Puts and deletes of different keys made together run at one revision, each
    with its own prev_kv and deleted count; the get of that turn travels apart
    (a read-only transaction may move on to another member) and reads its key."""
    await coalescing.put(prefix + b"old", b"was")
    await coalescing.put(prefix + b"read", b"x")
    await coalescing.put(prefix + b"drop", b"d")
    put_new, put_old, got, deleted, missing = await dual(defer.gatherResults([
        coalescing.put(prefix + b"new", b"1", prev_kv=True),
        coalescing.put(prefix + b"old", b"2", prev_kv=True),
        coalescing.get(prefix + b"read"),
        coalescing.delete(prefix + b"drop", prev_kv=True),
        coalescing.delete(prefix + b"never", prev_kv=True),
    ]))
    assert put_new.prev_kv is None
    assert put_old.prev_kv is not None and put_old.prev_kv.value == b"was"
    assert [kv.value for kv in got.kvs] == [b"x"]
    assert deleted.deleted == 1 and [kv.value for kv in deleted.prev_kvs] == [b"d"]
    assert missing.deleted == 0 and missing.prev_kvs == ()
    assert len({put_new.revision, put_old.revision, deleted.revision,
                missing.revision}) == 1
    assert got.revision in (put_new.revision - 1, put_new.revision)


@ensure
async def test_duplicate_keys_go_in_order_in_separate_transactions(
        coalescing: Client, prefix: bytes) -> None:
    """The same key twice in one turn: the calls apply in the order they were
    made, each sees the one before, and they do not share a revision."""
    key = prefix + b"k"
    first, second, read, removed = await dual(defer.gatherResults([
        coalescing.put(key, b"1", prev_kv=True),
        coalescing.put(key, b"2", prev_kv=True),
        coalescing.get(key),
        coalescing.delete(key, prev_kv=True),
    ]))
    assert first.prev_kv is None
    assert second.prev_kv is not None and second.prev_kv.value == b"1"
    assert [kv.value for kv in read.kvs] == [b"2"]
    assert removed.deleted == 1 and [kv.value for kv in removed.prev_kvs] == [b"2"]
    assert first.revision < second.revision < removed.revision
    assert read.revision == second.revision


@ensure
async def test_129_concurrent_puts_take_two_transactions(
        coalescing: Client, prefix: bytes) -> None:
    """129 puts at once: all applied, 128 at one revision and one at the next."""
    results = await dual(defer.gatherResults(
        [coalescing.put(prefix + b"%03d" % i, b"v%d" % i) for i in range(129)]))
    revisions = sorted({r.revision for r in results})
    assert len(revisions) == 2 and revisions[1] == revisions[0] + 1
    assert sum(r.revision == revisions[0] for r in results) == 128
    stored = await coalescing.get(KeySet(prefix, prefix=True), count_only=True)
    assert stored.count == 129


@ensure
async def test_oversize_op_fails_alone_and_large_ops_split_by_size(
        coalescing: Client, prefix: bytes) -> None:
    """A put larger than etcd's request limit fails with RequestTooLarge without
    holding up the others; puts that fit only one or two per transaction all succeed."""
    big = b"x" * (700 * 1024)
    outcomes = await settle([
        coalescing.put(prefix + b"huge", b"y" * (2 * 1024 * 1024)),
        coalescing.put(prefix + b"a", big),
        coalescing.put(prefix + b"b", big),
        coalescing.put(prefix + b"c", big),
    ])
    assert not outcomes[0][0] and isinstance(outcomes[0][1], e.RequestTooLarge)
    assert all(ok for ok, _ in outcomes[1:])
    assert len({r.revision for _, r in outcomes[1:]}) >= 2  # never all three in one txn
    stored = await coalescing.get(KeySet(prefix, prefix=True), keys_only=True)
    assert [kv.key for kv in stored.kvs] == [prefix + b"a", prefix + b"b", prefix + b"c"]


@ensure
async def test_bad_lease_in_the_middle_fails_only_its_caller(
        coalescing: Client, prefix: bytes) -> None:
    """A put with a lease that does not exist, between two good ones: etcd
    refuses the batch, which is retried op by op; only that caller fails."""
    outcomes = await settle([
        coalescing.put(prefix + b"a", b"1"),
        coalescing.put(prefix + b"b", b"2", lease=0x7FFF_0000_0000_0001),
        coalescing.get(prefix + b"a"),
        coalescing.put(prefix + b"c", b"3"),
    ])
    assert outcomes[0][0] and outcomes[3][0]
    assert not outcomes[1][0] and isinstance(outcomes[1][1], e.LeaseNotFound)
    assert outcomes[2][0] and [kv.value for kv in outcomes[2][1].kvs] == [b"1"]
    stored = await coalescing.get(KeySet(prefix, prefix=True))
    assert [(kv.key, kv.value) for kv in stored.kvs] == [(prefix + b"a", b"1"),
                                                         (prefix + b"c", b"3")]


@ensure
async def test_cancelled_caller_before_sending_is_not_written(
        coalescing: Client, prefix: bytes) -> None:
    """Cancelling one caller before its batch left: CancelledError at once, its
    put is never sent, the others are written."""
    calls = [coalescing.put(prefix + b"%d" % i, b"v") for i in range(3)]
    calls[1].cancel()
    assert calls[1].called  # failed at once, not when the batch returns
    outcomes = await settle(calls)
    assert isinstance(outcomes[1][1], CancelledError)
    assert outcomes[0][0] and outcomes[2][0]
    stored = await coalescing.get(KeySet(prefix, prefix=True), keys_only=True)
    assert [kv.key for kv in stored.kvs] == [prefix + b"0", prefix + b"2"]


@ensure
async def test_coalescing_is_off_by_default(client: Client, prefix: bytes) -> None:
    """A plain client sends each put alone: concurrent puts get their own revisions."""
    assert not client.coalescing
    results = await dual(defer.gatherResults([client.put(prefix + b"%d" % i, b"v")
                                              for i in range(4)]))
    assert len({r.revision for r in results}) == 4
