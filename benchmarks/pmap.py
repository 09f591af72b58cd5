"""pmap benchmark: transactions through persistent maps against the raw client
making the same etcd calls, in one process run.

Rows (transactions per second, sequential):

- write txn, 1 put: ``async with db.begin(write=True): m[txn, k] = v`` against
  ``status()`` + ``txn([OpSet])`` on the raw client;
- read txn, 1 get: ``async with db.begin(): await m[txn, k]`` against
  ``status()`` + ``get(key, revision=...)``;
- write txn, 100 puts: 100 map writes in one transaction against ``status()`` +
  one ``txn`` of 100 ``OpSet``.

The ratio (pmap / raw) is the cost of the map layer: codecs, buffering,
read-set bookkeeping. Both sides do the same number of round trips.

Contention rows: N clients (each its own ``Client``) increment one counter M
times each through ``Database.run``, first retrying at once (``backoff=None``,
the behaviour before backoff existed), then with the default
:class:`~etcdwamp.pmap.Backoff`: conflicts per committed transaction and wall
time, side by side.

    python benchmarks/pmap.py [--url http://127.0.0.1:2379] [--quick]
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import harness
from twisted.internet.defer import Deferred, gatherResults

from etcdwamp import Client, Database, KeySet, OpSet, Transaction, pmap

VALUE = {"name": "alice", "email": "alice@example.com", "tags": ["a", "b"], "n": 42}


async def rate(n: int, one: Callable[[int], Awaitable[None]]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        await one(i)
    return n / (time.perf_counter() - t0)


async def contention(reactor: Any, url: str, n_clients: int, increments: int,
                     backoff: pmap.Backoff | None) -> tuple[float, float]:
    """Conflicts per commit and wall seconds for n_clients x increments."""
    counter = pmap.MapStringOid(1)
    prefix = b"bench-contention-%s/" % uuid.uuid4().hex.encode()
    clients = [Client(reactor, url=url) for _ in range(n_clients)]
    dbs = [Database(c, prefix=prefix) for c in clients]

    async def increment(txn: pmap.MapTransaction) -> None:
        counter[txn, "n"] = (await counter[txn, "n"] or 0) + 1

    async def worker(db: Database) -> None:
        for _ in range(increments):
            await db.run(increment, retries=100_000, timeout=None, backoff=backoff)

    t0 = time.perf_counter()
    await gatherResults([Deferred.fromCoroutine(worker(db)) for db in dbs],
                        consumeErrors=True)
    wall = time.perf_counter() - t0
    async with dbs[0].begin() as txn:
        assert await counter[txn, "n"] == n_clients * increments
    await clients[0].delete(KeySet(prefix, prefix=True))
    for c in clients:
        await c.close()
    commits = sum(db.commits for db in dbs)
    return sum(db.conflicts for db in dbs) / commits, wall


async def run(reactor: Any, url: str, quick: bool) -> None:
    client = Client(reactor, url=url)
    db = Database(client, prefix=b"bench-pmap/")
    users = pmap.MapUuidCbor(1)
    encoded = users.value_codec.encode(VALUE)
    keys = [uuid.UUID(int=i + 1) for i in range(2000)]
    n = 100 if quick else 1000
    n_big = 20 if quick else 200

    async with db.begin(write=True) as txn:  # data for the read rows
        for k in keys[:100]:
            users[txn, k] = VALUE

    async def pmap_write(i: int) -> None:
        async with db.begin(write=True) as txn:
            users[txn, keys[i % len(keys)]] = VALUE

    async def raw_write(i: int) -> None:
        await client.status()
        key = users.key_bytes(db, keys[i % len(keys)])
        await client.txn(Transaction(success=[OpSet(key, encoded)]))

    async def pmap_read(i: int) -> None:
        async with db.begin() as txn:
            assert await users[txn, keys[i % 100]] == VALUE

    async def raw_read(i: int) -> None:
        revision = (await client.status()).revision
        got = await client.get(users.key_bytes(db, keys[i % 100]), revision=revision)
        assert got.kvs

    async def pmap_write100(i: int) -> None:
        async with db.begin(write=True) as txn:
            for j in range(100):
                users[txn, keys[(i * 100 + j) % len(keys)]] = VALUE

    async def raw_write100(i: int) -> None:
        await client.status()
        ops = [OpSet(users.key_bytes(db, keys[(i * 100 + j) % len(keys)]), encoded)
               for j in range(100)]
        await client.txn(Transaction(success=ops))

    rows = [("write txn, 1 put", n, raw_write, pmap_write),
            ("read txn, 1 get", n, raw_read, pmap_read),
            ("write txn, 100 puts", n_big, raw_write100, pmap_write100)]
    results = []
    for label, count, raw, mapped in rows:
        await rate(max(count // 10, 5), raw)  # warm-up
        await rate(max(count // 10, 5), mapped)
        raw_rates, map_rates = [], []
        for _ in range(2):  # alternate, keep the best of each
            raw_rates.append(await rate(count, raw))
            map_rates.append(await rate(count, mapped))
        results.append((label, max(raw_rates), max(map_rates)))
    await client.delete(KeySet(db.prefix, prefix=True))
    await client.close()
    print(f"{'row':24} {'raw client/s':>13} {'pmap/s':>10} {'ratio':>7}")
    for label, raw_rate, map_rate in results:
        print(f"{label:24} {raw_rate:13.1f} {map_rate:10.1f} {map_rate / raw_rate:7.2f}")
    print("(transactions per second, sequential, CBOR values of "
          f"{len(encoded)} bytes; ratio = pmap / raw client, same etcd calls)")

    shapes = [(6, 10), (8, 20)] if quick else [(6, 60), (8, 500)]
    print()
    print(f"{'contention':24} {'no backoff':>22} {'default backoff':>22}")
    print(f"{'':24} {'conflicts/commit':>16} {'wall s':>6}"
          f" {'conflicts/commit':>15} {'wall s':>6}")
    for n_clients, increments in shapes:
        before = await contention(reactor, url, n_clients, increments, None)
        after = await contention(reactor, url, n_clients, increments, pmap.Backoff())
        label = f"{n_clients} clients x {increments} incr"
        print(f"{label:24} {before[0]:16.2f} {before[1]:6.2f} {after[0]:15.2f} {after[1]:6.2f}")
    print("(one counter, each client its own Client; Database.run retries until it commits)")



if __name__ == "__main__":
    sys.exit(harness.main(run, __doc__))
