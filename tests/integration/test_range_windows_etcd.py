"""Paged reads in windows against a real etcd: ``range_iter`` and ``etcdwamp export``
return exactly what one unlimited get returns (keys, order, values, revisions), also
while other writes land in the range (the pages stay at the first page's revision)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from loops import ensure
from test_cli import cli

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

R = random.Random(2025)


def shaped(shape: str, n: int) -> list[bytes]:
    """Key suffixes of one shape: decimal, binary with 0xff bytes, long shared prefixes."""
    if shape == "decimal":
        return [b"%06d" % i for i in range(n)]
    if shape == "binary":
        return [R.randbytes(8) + b"\xff" * R.randint(0, 3) for _ in range(n)]
    return [b"registry/pods/ns%d/pod-%05d" % (i % 5, i) for i in range(n)]


async def load(client: Client, keys: list[bytes]) -> None:
    """Write ``keys`` (value: the key reversed) in transactions of 128 puts."""
    for i in range(0, len(keys), 128):
        ops = [OpSet(k, k[::-1]) for k in keys[i:i + 128]]
        assert (await client.txn(Transaction(success=ops))).succeeded


def as_rows(kvs: object) -> list[tuple[bytes, bytes, int, int, int]]:
    return [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)
            for kv in kvs]  # type: ignore[attr-defined]


@pytest.mark.parametrize("shape", ["decimal", "binary", "long-prefixes"])
@ensure
async def test_range_iter_is_one_unlimited_get(client: Client, prefix: bytes,
                                               shape: str) -> None:
    """2,500 keys at 64 a page: the same rows as one get without a limit, in order."""
    keys = [prefix + s for s in set(shaped(shape, 2500))]
    await load(client, keys)
    whole = await client.get(KeySet(prefix, prefix=True))
    assert whole.count == len(keys)
    seen = [kv async for kv in client.range_iter(KeySet(prefix, prefix=True), page_size=64)]
    assert as_rows(seen) == as_rows(whole.kvs)
    keys_only = [kv.key async for kv in client.range_iter(KeySet(prefix, prefix=True),
                                                          page_size=64, keys_only=True)]
    assert keys_only == sorted(keys)


@ensure
async def test_writes_during_the_iteration_are_not_seen(client: Client, prefix: bytes) -> None:
    """Puts, overwrites and deletes ahead of and behind the pages being read do not
    change what range_iter returns: the snapshot of the revision it started at."""
    keys = [prefix + b"%05d" % i for i in range(0, 6000, 2)]
    await load(client, keys)
    before = await client.get(KeySet(prefix, prefix=True))
    seen = []
    async for kv in client.range_iter(KeySet(prefix, prefix=True), page_size=50):
        if len(seen) % 250 == 0:
            at = len(seen)
            await client.put(prefix + b"%05d" % (2 * at + 1), b"new")  # between two keys
            await client.put(keys[-1 - at // 50], b"overwritten")  # ahead
            await client.delete(keys[min(at + 400, len(keys) - 1)])  # ahead
            await client.delete(keys[max(at - 10, 0)])  # behind
        seen.append(kv)
    assert as_rows(seen) == as_rows(before.kvs)
    now = await client.get(KeySet(prefix, prefix=True), count_only=True)
    assert now.count != before.count  # the writes did happen meanwhile


@ensure
async def test_range_ends_inside_the_keys_and_revision_given(client: Client,
                                                             prefix: bytes) -> None:
    keys = [prefix + s for s in shaped("decimal", 1500)]
    await load(client, keys)
    rev = (await client.get(KeySet(prefix, prefix=True), count_only=True)).header.revision
    await client.delete(KeySet(prefix + b"000700", range_end=prefix + b"000800"))
    part = KeySet(prefix + b"000300", range_end=prefix + b"001234")
    then = await client.get(part, revision=rev)
    seen = [kv async for kv in client.range_iter(part, page_size=40, revision=rev)]
    assert as_rows(seen) == as_rows(then.kvs) and len(seen) == 934


@ensure
async def test_export_is_one_unlimited_get(etcd: EtcdCluster, client: Client, prefix: bytes,
                                           tmp_path: Path) -> None:
    """The command line's export at --page-size 37 writes every key once, in order."""
    keys = [prefix + s for s in set(shaped("binary", 3000))]
    await load(client, keys)
    whole = await client.get(KeySet(prefix, prefix=True))
    dump = tmp_path / "dump.jsonl"
    done = cli("--endpoints", etcd.url, "export", "--prefix", prefix.decode(),
               "--key-encoding", "hex", "--page-size", "37", "-o", str(dump))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [bytes.fromhex(r["key"]) for r in records] == [kv.key for kv in whole.kvs]
    assert len(records) == len(keys)
