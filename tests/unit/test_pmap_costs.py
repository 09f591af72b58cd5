"""What each kind of read costs a write transaction: the compares its commit
sends (the table in etcdwamp/pmap/database.py), over a fake store."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from etcdwamp import pmap
from etcdwamp.pmap import Database
from etcdwamp.wire import KeySet, KeyValue

SNAPSHOT = 50


class Store:
    """A fake client over fixed keys (each with its own mod revision)."""

    max_txn_ops = 128

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.kvs = [KeyValue(k, v, 2, 10 + i, 1, 0)
                    for i, (k, v) in enumerate(sorted(data.items()))]
        self.commits: list[Any] = []
        self.requests: list[str] = []

    def status(self) -> Deferred[Any]:
        return succeed(SimpleNamespace(revision=SNAPSHOT))

    def _in(self, keyset: Any) -> list[KeyValue]:
        ks = keyset if isinstance(keyset, KeySet) else KeySet(keyset)
        return [kv for kv in self.kvs if ks.contains(kv.key)]

    def get(self, keyset: Any, **options: Any) -> Deferred[Any]:
        if options.get("count_only"):
            # Without a revision: the linearizable read a transaction starts with.
            self.requests.append("count" if options.get("revision") else "snapshot")
        else:
            self.requests.append("get")
        found = self._in(keyset)
        if options.get("sort_order") == "descend":
            found.reverse()
        limit = options.get("limit") or len(found)
        page = found[:limit]
        return succeed(SimpleNamespace(first=page[0] if page else None, kvs=tuple(page),
                                       count=len(found), more=len(found) > limit,
                                       revision=SNAPSHOT))

    async def range_iter(self, keyset: Any, **options: Any) -> Any:
        self.requests.append("range")
        for kv in self._in(keyset):
            yield kv

    def txn(self, txn: Any) -> Deferred[Any]:
        self.commits.append(txn)
        return succeed(SimpleNamespace(succeeded=True, revision=SNAPSHOT + 1, responses=()))


def compares(store: Store) -> list[tuple[bytes, bytes | None, str, int]]:
    """(key, range_end, result, mod_revision) of the last commit's compares."""
    out = []
    for c in store.commits[-1].compare:
        body = c.to_json()
        key, end = c.keyset.resolve()
        out.append((key, end, body["result"], int(body["mod_revision"])))
    return out


def run(store: Store, read: Any) -> None:
    db = Database(store)  # type: ignore[arg-type]

    async def fn(txn: pmap.MapTransaction) -> None:
        await read(txn)
        txn.put_raw(b"elsewhere", b"w")  # a write, so that the commit is sent

    d = db.run(fn)
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert not failures, failures


TABLE = pmap.MapStringString(1)
DATA = {b"\x00\x01" + k.encode(): b"v" for k in ("a", "b", "c", "d")}
A, B, C, D = sorted(DATA)
START, END = b"\x00\x01", b"\x00\x02"  # the whole map's range
NEXT = SNAPSHOT + 1


def test_get_present_and_absent_cost_one_compare_each() -> None:
    store = Store(DATA)

    async def read(txn: pmap.MapTransaction) -> None:
        assert await TABLE.get(txn, "b") == "v"
        assert await TABLE.get(txn, "zz") is None
        assert await TABLE.get(txn, "b") == "v"  # read twice, compared once

    run(store, read)
    assert compares(store) == [(B, None, "EQUAL", 11), (b"\x00\x01zz", None, "EQUAL", 0)]


@pytest.mark.parametrize("kind", ["select", "keys", "count", "delete_range"])
def test_a_range_read_costs_one_compare_per_key_and_one_guard(kind: str) -> None:
    """Per key: its mod revision (catches an update or a delete); the guard:
    nothing in the range modified after the snapshot (catches an insert)."""
    store = Store(DATA)

    async def read(txn: pmap.MapTransaction) -> None:
        if kind == "select":
            assert len([kv async for kv in TABLE.select(txn)]) == 4
        elif kind == "keys":
            assert len([k async for k in TABLE.keys(txn)]) == 4
        elif kind == "count":
            assert await TABLE.count(txn) == 4
        else:
            assert await TABLE.delete_range(txn) == 4

    run(store, read)
    assert compares(store) == [(A, None, "EQUAL", 10), (B, None, "EQUAL", 11),
                               (C, None, "EQUAL", 12), (D, None, "EQUAL", 13),
                               (START, END, "LESS", NEXT)]


def test_a_limited_read_guards_only_up_to_its_last_key() -> None:
    store = Store(DATA)

    async def read(txn: pmap.MapTransaction) -> None:
        assert [k async for k in TABLE.keys(txn, limit=2)] == ["a", "b"]
        assert [k async for k in TABLE.keys(txn, limit=1, reverse=True)] == ["d"]

    run(store, read)
    assert compares(store) == [(A, None, "EQUAL", 10), (B, None, "EQUAL", 11),
                               (D, None, "EQUAL", 13),
                               (START, B + b"\x00", "LESS", NEXT), (D, END, "LESS", NEXT)]


def test_count_in_a_read_only_transaction_is_one_count_request() -> None:
    store = Store(DATA)
    db = Database(store)  # type: ignore[arg-type]
    out: list[Any] = []

    async def fn(txn: pmap.MapTransaction) -> int:
        return await TABLE.count(txn)

    db.run(fn, write=False).addBoth(out.append)
    assert out == [4]
    assert store.requests == ["snapshot", "count"] and store.commits == []


def test_a_read_only_transaction_sends_nothing_at_commit() -> None:
    store = Store(DATA)
    db = Database(store)  # type: ignore[arg-type]
    out: list[Any] = []

    async def fn(txn: pmap.MapTransaction) -> list[str]:
        return [k async for k in TABLE.keys(txn)]

    db.run(fn, write=False).addBoth(out.append)
    assert out == [["a", "b", "c", "d"]] and store.commits == []
