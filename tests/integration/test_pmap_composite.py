"""Composite-key and set-valued maps against a real etcd: the bytes etcd holds
are zlmdb's layout, and prefix reads select by leading key parts."""

from __future__ import annotations

import uuid

import cbor2
from loops import ensure

from etcdwamp import Client, Database, KeySet, pmap

A, B = uuid.UUID(int=1), uuid.UUID(int=2)
X, Y, Z = uuid.UUID(int=10), uuid.UUID(int=11), uuid.UUID(int=12)


@ensure
async def test_uuid_uuid_cbor_layout_and_prefix_select(client: Client, prefix: bytes) -> None:
    """Keys (owner, item): etcd holds prefix + slot + owner + item with a CBOR value,
    and ``prefix=(owner,)`` returns exactly that owner's items in item order."""
    db = Database(client, prefix=prefix)
    items = pmap.MapUuidUuidCbor(7)
    async with db.begin(write=True) as txn:
        items[txn, (A, Y)] = {"n": 2}
        items[txn, (A, X)] = {"n": 1}
        items[txn, (B, X)] = {"n": 3}
    raw = await client.get(KeySet(prefix, prefix=True))
    assert {kv.key: kv.value for kv in raw.kvs} == {
        prefix + b"\x00\x07" + A.bytes + Y.bytes: cbor2.dumps({"n": 2}),
        prefix + b"\x00\x07" + A.bytes + X.bytes: cbor2.dumps({"n": 1}),
        prefix + b"\x00\x07" + B.bytes + X.bytes: cbor2.dumps({"n": 3}),
    }
    async with db.begin() as txn:
        assert [kv async for kv in items.select(txn, prefix=(A,))] == [
            ((A, X), {"n": 1}), ((A, Y), {"n": 2})]
        assert await items.count(txn, prefix=(B,)) == 1
        assert await items[txn, (B, X)] == {"n": 3}


@ensure
async def test_sets_slots_and_string_parts_round_trip(client: Client, prefix: bytes) -> None:
    db = Database(client, prefix=prefix)
    members = pmap.MapUuidUuidSet(1)
    slots = pmap.MapSlotUuidUuid(2)
    names = pmap.MapUuidStringUuid(3)
    async with db.begin(write=True) as txn:
        members[txn, A] = {X, Y, Z}
        slots[txn, (5, A)] = B
        names[txn, (A, "alice")] = X
        names[txn, (A, "bob")] = Y
    stored = await client.get(members.key_bytes(db, A))
    assert stored.first is not None and stored.first.value == X.bytes + Y.bytes + Z.bytes
    async with db.begin() as txn:
        assert await members[txn, A] == {X, Y, Z}
        assert await slots[txn, (5, A)] == B
        assert [k async for k in names.keys(txn, prefix=(A,))] == [(A, "alice"), (A, "bob")]
