"""Bad input against a real etcd: the documented exception, and the store unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

ensure = pytest_twisted.ensureDeferred

LIMIT = 1536 * 1024


async def _count(client: Client, prefix: bytes) -> int:
    return (await client.get(KeySet(prefix, prefix=True), count_only=True)).count


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda c, p: c.put("text-key", b"v"), TypeError),
        (lambda c, p: c.put(p + b"k", "text value"), TypeError),
        (lambda c, p: c.put(p + b"k", 42), TypeError),
        (lambda c, p: c.put(p + b"k", b"v", lease="7"), TypeError),
        (lambda c, p: c.put(p + b"k", b"v", lease=2**63), ValueError),
        (lambda c, p: c.put(b"", b"v"), ValueError),
        (lambda c, p: c.get("text-key"), TypeError),
        (lambda c, p: c.get(p + b"k", limit=-1), ValueError),
        (lambda c, p: c.get(p + b"k", sort_order="sideways"), ValueError),
        (lambda c, p: c.get(p + b"k", keys_only="yes"), TypeError),
        (lambda c, p: c.delete(None), TypeError),
        (lambda c, p: c.compact(0), ValueError),
        (lambda c, p: c.txn([OpSet(p + b"k", b"v")]), TypeError),
        (lambda c, p: c.txn(Transaction(success=[(p + b"k", b"v")])), TypeError),
    ],
)
@ensure
async def test_wrong_types_and_values_raise_before_writing(client: Client, prefix: bytes,
                                                           call: Any, exc: type) -> None:
    with pytest.raises(exc):
        await call(client, prefix)
    assert await _count(client, prefix) == 0


@ensure
async def test_value_over_limit_is_refused_before_sending(client: Client,
                                                          prefix: bytes) -> None:
    with pytest.raises(e.RequestTooLarge, match="1572864"):
        await client.put(prefix + b"k", b"x" * LIMIT)
    # RequestTooLarge is an InvalidRequest and so a ValueError as well.
    with pytest.raises(ValueError):
        await client.put(prefix + b"k", b"x" * (LIMIT + 1))
    assert await _count(client, prefix) == 0
    # Just below the limit goes through.
    await client.put(prefix + b"k", b"x" * (LIMIT - 4096))
    assert (await client.get(prefix + b"k")).kvs[0].value == b"x" * (LIMIT - 4096)


@ensure
async def test_txn_over_size_limit_is_refused_whole(client: Client, prefix: bytes) -> None:
    chunk = b"y" * (LIMIT // 4)
    txn = Transaction(success=[OpSet(prefix + b"%d" % i, chunk) for i in range(5)])
    with pytest.raises(e.RequestTooLarge):
        await client.txn(txn)
    assert await _count(client, prefix) == 0


@ensure
async def test_etcd_refusal_of_large_request_is_typed(etcd: EtcdCluster,
                                                      prefix: bytes) -> None:
    """With the client-side check disabled, etcd's own refusal is RequestTooLarge too."""
    from twisted.internet import reactor

    loose = Client(reactor, url=etcd.url, max_request_bytes=10 * LIMIT)
    try:
        with pytest.raises(e.RequestTooLarge) as info:
            await loose.put(prefix + b"k", b"z" * (LIMIT + 1024))
        assert info.value.http_status is not None
        assert await _count(loose, prefix) == 0
    finally:
        await loose.close()
