"""A write transaction's range reads include its own pending writes exactly as
the range bounds say (``from_key`` inclusive, ``to_key`` exclusive), over a
fake client whose snapshot is empty: every key read back is a pending write."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from etcdwamp import pmap
from etcdwamp.pmap import Database, MapTransaction


class EmptyStore:
    """A fake client holding no keys; it accepts every commit."""

    max_txn_ops = 128

    def status(self) -> Deferred[Any]:
        return succeed(SimpleNamespace(revision=10))

    def get(self, key: Any, **options: Any) -> Deferred[Any]:
        return succeed(SimpleNamespace(first=None, kvs=(), count=0, more=False, revision=10))

    async def range_iter(self, keyset: Any, **options: Any) -> Any:
        return
        yield  # an empty range

    def txn(self, txn: Any) -> Deferred[Any]:
        return succeed(SimpleNamespace(succeeded=True, revision=11, responses=()))


def seen_in(table: pmap.MapStringString, **bounds: Any) -> dict[str, Any]:
    """What select, keys and count (forward and reverse) return over ``bounds`` after
    the transaction wrote the keys a, b, c and d."""
    out: dict[str, Any] = {}

    async def fn(txn: MapTransaction) -> None:
        for key in "abcd":
            table[txn, key] = key.upper()
        out["select"] = [kv async for kv in table.select(txn, **bounds)]
        out["reverse"] = [k async for k in table.keys(txn, reverse=True, **bounds)]
        out["count"] = await table.count(txn, **bounds)

    failures: list[Any] = []
    Database(EmptyStore()).run(fn).addErrback(failures.append)  # type: ignore[arg-type]
    assert not failures, failures
    return out


def test_a_range_read_includes_an_own_write_at_its_start_and_not_at_its_end() -> None:
    assert seen_in(pmap.MapStringString(1), from_key="b", to_key="d") == {
        "select": [("b", "B"), ("c", "C")], "reverse": ["c", "b"], "count": 2}


@pytest.mark.parametrize("slot", [1, 0xFFFF])
def test_a_range_without_an_end_includes_an_own_write_at_its_start(slot: int) -> None:
    """Up to the end of the map; in slot 65535 without a database prefix the map's
    keys run to the end of the key space (etcd's range end "\\0")."""
    assert seen_in(pmap.MapStringString(slot), from_key="b") == {
        "select": [("b", "B"), ("c", "C"), ("d", "D")], "reverse": ["d", "c", "b"],
        "count": 3}
