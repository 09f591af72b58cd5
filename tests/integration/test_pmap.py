"""Persistent maps and transactions against a real etcd."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from loops import ensure, make_client
from twisted.internet import defer
from twisted.internet.defer import Deferred, gatherResults
from waiting import until

from etcdwamp import Client, Database, KeySet, pmap
from etcdwamp import errors as e
from etcdwamp._deferred import dual
from etcdwamp.testing import EtcdCluster


@pytest.fixture
def db(client: Client, prefix: bytes) -> Database:
    """A Database over the test's client; a test taking it takes ``loop`` too, so
    that ``ensure`` runs it on that client's loop."""
    return Database(client, prefix=prefix)


class User:
    def __init__(self, oid: int, name: str) -> None:
        self.oid, self.name = oid, name

    def marshal(self) -> dict[str, Any]:
        return {"oid": self.oid, "name": self.name}

    @staticmethod
    def parse(data: dict[str, Any]) -> User:
        return User(data["oid"], data["name"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and (self.oid, self.name) == (other.oid, other.name)


KEYS: dict[str, list[Any]] = {
    "String": ["", "a", "ü/\u0000x", "z" * 300],
    "Binary": [b"\x00", b"\xff\xff", b"k"],
    "Oid": [0, 1, 2**64 - 1],
    "Uuid": [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4()],
}
VALUES: dict[str, list[Any]] = {
    "String": ["", "hello", "ü" * 1000],
    "Binary": [b"", b"\x00\xff" * 10],
    "Oid": [0, 2**64 - 1],
    "Uuid": [uuid.uuid4()],
    "Json": [{"a": [1, 2.5, None, "x"]}, [], "s"],
    "Cbor": [{"a": b"\x00bytes", "n": 2**70}, [1, 2]],
    "Pickle": [{"set": {1, 2}}, (1, "t")],
    "FlatBuffers": [b"\x0c\x00\x00\x00\x08\x00\x0c\x00\x04\x00\x08\x00"],
}


@pytest.mark.parametrize("key_type", sorted(KEYS))
@pytest.mark.parametrize("value_type", sorted(VALUES))
@ensure
async def test_every_map_type_round_trips(loop: str, db: Database, key_type: str,
                                          value_type: str) -> None:
    cls = getattr(pmap, f"Map{key_type}{value_type}")
    table = cls(7)
    pairs = [(k, VALUES[value_type][i % len(VALUES[value_type])])
             for i, k in enumerate(KEYS[key_type])]
    async with db.begin(write=True) as txn:
        for k, v in pairs:
            table[txn, k] = v
    async with db.begin() as txn:
        for k, v in pairs:
            assert await table[txn, k] == v
        selected = [(k, v) async for k, v in table.select(txn)]
    assert selected == sorted(pairs, key=lambda kv: table.key_codec.encode(kv[0]))


@ensure
async def test_readme_shapes(loop: str, db: Database) -> None:
    """MapUuidCbor with marshal/unmarshal and MapOidPickle with unmarshal=User.parse."""
    users = pmap.MapOidPickle(2, marshal=lambda u: u.marshal(), unmarshal=User.parse)
    spelled = pmap.MapUuidFlatbuffers(3)
    assert isinstance(spelled, pmap.MapUuidFlatBuffers)
    async with db.begin(write=True) as txn:
        users[txn, 1] = User(1, "alice")
    async with db.begin() as txn:
        assert await users[txn, 1] == User(1, "alice")
        assert await users[txn, 2] is None


@ensure
async def test_oid_keys_sort_numerically(loop: str, db: Database) -> None:
    table = pmap.MapOidString(1)
    async with db.begin(write=True) as txn:
        for oid in (256, 1, 2**40, 2):
            table[txn, oid] = str(oid)
    async with db.begin() as txn:
        assert [k async for k in table.keys(txn)] == [1, 2, 256, 2**40]
        assert [k async for k in table.keys(txn, reverse=True)] == [2**40, 256, 2, 1]


@ensure
async def test_wrong_types_raise_before_anything_is_written(db: Database,
                                                            client: Client,
                                                            prefix: bytes) -> None:
    t_uuid = pmap.MapUuidString(1)
    t_oid = pmap.MapOidJson(2)
    async with db.begin(write=True) as txn:
        with pytest.raises(TypeError):
            t_uuid[txn, "not-a-uuid"] = "v"
        with pytest.raises(ValueError):
            t_oid[txn, 2**64] = 1
        with pytest.raises(TypeError):
            t_oid[txn, 1] = {1, 2}  # a set is not JSON
        with pytest.raises(TypeError):
            t_uuid[txn, uuid.uuid4()] = b"bytes"
        with pytest.raises(TypeError):
            t_oid[txn, True] = 1
    assert (await client.get(KeySet(prefix, prefix=True), count_only=True)).count == 0


@ensure
async def test_read_only_transaction_refuses_writes(db: Database, client: Client,
                                                    prefix: bytes) -> None:
    table = pmap.MapStringString(1)
    with pytest.raises(e.InvalidRequest, match="read-only"):
        async with db.begin() as txn:
            table[txn, "k"] = "v"
    assert (await client.get(KeySet(prefix, prefix=True), count_only=True)).count == 0


@ensure
async def test_changed_says_whether_the_commit_changed_the_store(
        loop: str, db: Database, client: Client, prefix: bytes) -> None:
    """Deleting only absent keys commits but changes nothing: etcd makes no
    revision, and committed_revision is the store's revision at that time."""
    table = pmap.MapStringString(1)
    async with db.begin(write=True) as txn:
        table[txn, "a"] = "1"
    assert txn.changed and txn.committed_revision == (await client.status()).revision
    other = await client.put(b"elsewhere/" + prefix, b"x")  # the store moves on
    async with db.begin(write=True) as txn:
        del table[txn, "absent"]
    assert not txn.changed and txn.committed_revision == other.revision
    async with db.begin(write=True) as txn:
        del table[txn, "a"]
    assert txn.changed and txn.committed_revision == other.revision + 1
    async with db.begin() as txn:
        assert await table[txn, "a"] is None
    assert not txn.changed


@ensure
async def test_snapshot_reads_and_own_writes(loop: str, db: Database) -> None:
    table = pmap.MapStringString(1)
    async with db.begin(write=True) as txn:
        table[txn, "a"] = "1"
        table[txn, "c"] = "3"
    async with db.begin(write=True) as txn:
        async with db.begin(write=True) as other:
            table[other, "a"] = "changed"
            table[other, "b"] = "new"
        # Committed after our begin: invisible to us.
        assert await table[txn, "a"] == "1"
        assert await table[txn, "b"] is None
        # Our own writes are visible to our reads and ranges.
        table[txn, "d"] = "4"
        del table[txn, "c"]
        assert await table[txn, "d"] == "4"
        assert await table[txn, "c"] is None
        assert [kv async for kv in table.select(txn)] == [("a", "1"), ("d", "4")]
        assert await table.count(txn) == 2
        assert txn.revision > 0
        with pytest.raises(pmap.TransactionConflict):
            await txn.commit()


@ensure
async def test_own_writes_at_the_bounds_of_a_range_read(loop: str, db: Database) -> None:
    """A pending write at ``from_key`` is in the range, one at ``to_key`` is not, merged
    in key order with the stored keys between them."""
    table = pmap.MapStringString(1)
    async with db.begin(write=True) as txn:
        table[txn, "a"] = "1"
        table[txn, "c"] = "3"
    async with db.begin(write=True) as txn:
        table[txn, "b"] = "mine"
        table[txn, "d"] = "mine too"
        got = [kv async for kv in table.select(txn, from_key="b", to_key="d")]
        assert got == [("b", "mine"), ("c", "3")]
        assert [k async for k in table.keys(txn, from_key="b", to_key="d", reverse=True)] \
            == ["c", "b"]
        assert await table.count(txn, from_key="b", to_key="d") == 2
        assert [k async for k in table.keys(txn, from_key="c")] == ["c", "d"]


@ensure
async def test_conflicting_commit_fails_and_leaves_store_unchanged(loop: str,
                                                                  db: Database) -> None:
    table = pmap.MapStringOid(1)
    async with db.begin(write=True) as txn:
        table[txn, "counter"] = 0
    first = await db.begin(write=True).start()
    second = await db.begin(write=True).start()
    table[first, "counter"] = (await table[first, "counter"]) + 1
    table[second, "counter"] = (await table[second, "counter"]) + 10
    await first.commit()
    with pytest.raises(pmap.TransactionConflict):
        await second.commit()
    async with db.begin() as txn:
        assert await table[txn, "counter"] == 1  # the second update did not overwrite


@ensure
async def test_insert_into_a_scanned_range_conflicts(loop: str, db: Database) -> None:
    """A phantom: another writer adds a key inside a range this transaction scanned."""
    table = pmap.MapStringString(1)
    txn = await db.begin(write=True).start()
    assert [k async for k in table.keys(txn, prefix="job/")] == []
    async with db.begin(write=True) as other:
        table[other, "job/1"] = "taken"
    table[txn, "job/2"] = "only if there is no job"
    with pytest.raises(pmap.TransactionConflict):
        await txn.commit()


@ensure
async def test_exception_inside_async_with_discards_writes(loop: str, db: Database) -> None:
    table = pmap.MapStringString(1)
    with pytest.raises(RuntimeError):
        async with db.begin(write=True) as txn:
            table[txn, "k"] = "v"
            raise RuntimeError("bail out")
    async with db.begin() as txn:
        assert await table[txn, "k"] is None


@ensure
async def test_too_many_ops_names_the_limit_and_writes_nothing(loop: str,
                                                               db: Database) -> None:
    table = pmap.MapOidString(1)
    with pytest.raises(pmap.TransactionTooLarge, match="128"):
        async with db.begin(write=True) as txn:
            for i in range(129):
                table[txn, i] = "v"
    async with db.begin() as txn:
        assert await table.count(txn) == 0
    # The documented bulk path: chunked, non-atomic.
    small = Database(db.client, prefix=db.prefix, max_txn_ops=16)
    written = await small.put_many((table.key_bytes(small, i), b"v") for i in range(100))
    assert written == 100
    async with db.begin() as txn:
        assert await table.count(txn) == 100


@ensure
async def test_select_options_count_and_delete_range(loop: str, db: Database) -> None:
    table = pmap.MapOidString(1)
    async with db.begin(write=True) as txn:
        for i in range(1, 21):
            table[txn, i] = f"v{i}"
    async with db.begin(write=True) as txn:
        got = [k async for k, _ in table.select(txn, from_key=5, to_key=9)]
        assert got == [5, 6, 7, 8]
        got = [k async for k, _ in table.select(txn, from_key=5, limit=3, reverse=True)]
        assert got == [20, 19, 18]
        got = [k async for k, _ in table.select(txn, page_size=3)]
        assert got == list(range(1, 21))
        assert await table.count(txn, from_key=10) == 11
        assert await table.delete_range(txn, from_key=15) == 6
        assert await table.count(txn) == 14
    async with db.begin() as txn:
        assert await table.count(txn) == 14


@ensure
async def test_concurrent_counter_never_loses_an_update(etcd: EtcdCluster, loop: str,
                                                        prefix: bytes) -> None:
    """8 clients x 500 increments of one counter through db.run: exactly 4,000.

    Each worker is driven the way its loop drives user code (an asyncio task on
    asyncio), so the retries after conflicts run on that loop too."""
    counter = pmap.MapStringOid(1)
    clients = [make_client(loop, url=etcd.url) for _ in range(8)]

    async def increment(txn: pmap.MapTransaction) -> None:
        value = await counter[txn, "n"]
        counter[txn, "n"] = (value or 0) + 1

    async def worker(c: Client) -> int:
        db = Database(c, prefix=prefix)
        for _ in range(500):
            await db.run(increment, retries=10_000)
        return db.conflicts

    try:
        conflicts = await dual(gatherResults([ensure(worker)(c=c) for c in clients],
                                             consumeErrors=True))
        async with Database(clients[0], prefix=prefix).begin() as txn:
            assert await counter[txn, "n"] == 4000
        # The count proves nothing unless the workers really raced.
        assert sum(conflicts) > 0
    finally:
        for c in clients:
            await c.close()


def native_future(loop: str) -> tuple[Any, Callable[[Any], object]]:
    """A pending future of the loop's own kind (what user code there awaits:
    a Deferred on Twisted, an asyncio future on asyncio) and its resolver."""
    if loop == "asyncio":
        future = asyncio.get_running_loop().create_future()
        return future, future.set_result
    d: Deferred[Any] = Deferred()
    return d, d.callback


@ensure
async def test_run_fn_may_await_its_own_loops_futures(loop: str, db: Database) -> None:
    """The function given to db.run is user code: it may wait for a future of its
    loop (an asyncio future on asyncio), resolved by someone else meanwhile."""
    table = pmap.MapStringString(1)
    future, resolve = native_future(loop)
    attempts: list[int] = []

    async def fn(txn: pmap.MapTransaction) -> str:
        attempts.append(txn.attempt)
        table[txn, "k"] = await future
        return "done"

    run = db.run(fn)
    await until(lambda: attempts, why="fn never started")
    assert not run.called  # still waiting for the future
    resolve("from outside")
    assert await run == "done"
    assert attempts == [1]
    async with db.begin() as txn:
        assert await table[txn, "k"] == "from outside"


@ensure
async def test_cancelling_run_cancels_fn_and_writes_nothing(loop: str, db: Database) -> None:
    """Cancelling db.run as a user of the loop does (Twisted: the Deferred;
    asyncio: the task awaiting it) while fn waits ends the run with that loop's
    CancelledError at once, cancels the wait inside fn, does not run fn again,
    and writes nothing."""
    table = pmap.MapStringString(1)
    future, _ = native_future(loop)
    attempts: list[int] = []
    seen: list[type[BaseException]] = []

    async def fn(txn: pmap.MapTransaction) -> None:
        attempts.append(txn.attempt)
        table[txn, "k"] = "written before the wait"
        try:
            await future
        except BaseException as exc:
            seen.append(type(exc))
            raise

    run = db.run(fn)
    await until(lambda: attempts, why="fn never started")
    if loop == "asyncio":
        awaiting: list[bool] = []

        async def user() -> None:
            awaiting.append(True)
            await run  # in the same step as the append

        task = asyncio.ensure_future(user())
        await until(lambda: awaiting, why="the task awaits the run")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        expected: type[BaseException] = asyncio.CancelledError
    else:
        run.cancel()
        assert run.called  # at once
        with pytest.raises(defer.CancelledError):
            await run
        expected = defer.CancelledError
    await until(lambda: seen, why="fn never saw the cancellation")
    assert seen == [expected] and attempts == [1]
    assert (db.commits, db.conflicts) == (0, 0)
    async with db.begin() as txn:
        assert await table[txn, "k"] is None


PLAIN_ASYNCIO = textwrap.dedent("""
    import asyncio, json, sys

    from etcdwamp import Database, pmap
    from etcdwamp.asyncio import Client

    async def main(url, prefix):
        counter = pmap.MapStringOid(1)
        async with Client(url=url) as etcd:
            dbs = [Database(etcd, prefix=prefix) for _ in range(4)]

            async def increment(txn):
                value = await counter[txn, "n"]
                # fn is asyncio code: it may hand work to a thread, say.
                counter[txn, "n"] = await asyncio.to_thread(lambda: (value or 0) + 1)

            async def worker(db):
                for _ in range(25):
                    await db.run(increment, retries=10_000)

            await asyncio.gather(*(worker(db) for db in dbs))
            async with dbs[0].begin() as txn:
                result = {
                    "n": await counter[txn, "n"],
                    "keys": [k async for k in counter.keys(txn)],
                    "count": await counter.count(txn),
                }
        result["conflicts"] = sum(db.conflicts for db in dbs)
        result["reactor"] = "twisted.internet.reactor" in sys.modules
        print(json.dumps(result))

    asyncio.run(main(sys.argv[1], sys.argv[2].encode()))
""")


def test_pmap_in_a_plain_asyncio_program(etcd: EtcdCluster, prefix: bytes) -> None:
    """A program with asyncio.run and no Twisted reactor at all: four concurrent
    db.run workers lose no increment, their retries wait on the loop's clock
    (they did conflict), and no reactor is ever imported."""
    done = subprocess.run([sys.executable, "-c", PLAIN_ASYNCIO, etcd.url, prefix.decode()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["n"], result["keys"], result["count"]) == (100, ["n"], 1)
    assert result["conflicts"] > 0
    assert result["reactor"] is False


@ensure
async def test_map_watch_gives_typed_changes(loop: str, db: Database) -> None:
    table = pmap.MapUuidJson(4)
    changes: list[pmap.MapChange[uuid.UUID, Any]] = []
    watch = await table.watch(db, changes.append)
    oid = uuid.uuid4()
    try:
        async with db.begin(write=True) as txn:
            table[txn, oid] = {"x": 1}
        async with db.begin(write=True) as txn:
            del table[txn, oid]
        await until(lambda: len(changes) >= 2, why=lambda: f"changes: {changes}")
        assert [(c.key, c.value, c.deleted) for c in changes] == [
            (oid, {"x": 1}, False), (oid, None, True)]
        assert changes[0].revision < changes[1].revision
    finally:
        await watch.cancel()



@ensure
async def test_map_watch_runs_an_async_callback_on_the_loop(loop: str, db: Database) -> None:
    """An ``async def`` callback runs on the client's loop (it may await that
    loop's own futures), once per change and in order, none dropped unawaited."""
    table = pmap.MapStringString(5)
    gate, open_gate = native_future(loop)
    entered: list[str] = []
    done: list[tuple[str, str | None]] = []

    async def on_change(change: pmap.MapChange[str, str]) -> None:
        entered.append(change.key)
        await gate
        done.append((change.key, change.value))

    watch = await table.watch(db, on_change)
    try:
        async with db.begin(write=True) as txn:
            table[txn, "a"] = "1"
            table[txn, "b"] = "2"
        await until(lambda: entered, why="the callback never ran")
        assert done == []  # waiting for the gate, a future of its own loop
        open_gate(None)
        await until(lambda: len(done) == 2, why=lambda: f"done: {done}")
        assert done == [("a", "1"), ("b", "2")] and entered == ["a", "b"]
    finally:
        await watch.cancel()


@ensure
async def test_compressed_values_round_trip_and_shrink(db: Database, client: Client) -> None:
    plain = pmap.MapStringJson(1)
    packed = pmap.MapStringJson(2, compress=True)
    doc = {"text": "etcd " * 2000}
    async with db.begin(write=True) as txn:
        plain[txn, "doc"] = doc
        packed[txn, "doc"] = doc
        packed[txn, "tiny"] = 1
    async with db.begin() as txn:
        assert await packed[txn, "doc"] == doc
        assert await packed[txn, "tiny"] == 1
    raw_plain = (await client.get(plain.key_bytes(db, "doc"))).kvs[0].value
    raw_packed = (await client.get(packed.key_bytes(db, "doc"))).kvs[0].value
    assert len(raw_packed) < len(raw_plain) // 10


@ensure
async def test_the_etcd_compare_semantics_pmap_relies_on(client: Client, prefix: bytes) -> None:
    """A compare on a missing key sees mod revision 0; a compare over a range
    (range_end) checks only the keys present, so it catches an insert or update
    after the snapshot but not a delete: that is why a range read also compares
    each key it saw."""
    from etcdwamp.wire import CompModified, OpSet, Transaction

    a, b = prefix + b"a", prefix + b"b"
    await client.put(a, b"1")
    await client.put(b, b"1")
    rev_a = (await client.get(a)).first.mod_revision  # type: ignore[union-attr]
    snapshot = (await client.status()).revision
    await client.delete(b)
    whole = KeySet(prefix, prefix=True)

    async def holds(*compares: Any) -> bool:
        result = await client.txn(Transaction(compare=compares, success=[]))
        return bool(result.succeeded)

    assert await holds(CompModified(b, "==", 0))           # deleted: mod revision 0
    assert not await holds(CompModified(b, "==", rev_a))   # ... so a per-key compare fails
    assert await holds(CompModified(whole, "<", snapshot + 1))  # the range misses the delete
    await client.put(prefix + b"c", b"new")
    assert not await holds(CompModified(whole, "<", snapshot + 1))  # ... but sees an insert
    assert await holds(CompModified(a, "==", rev_a))
    await client.txn(Transaction(success=[OpSet(a, b"2")]))
    assert not await holds(CompModified(a, "==", rev_a))  # and an update


@ensure
async def test_count_then_delete_conflicts(loop: str, db: Database) -> None:
    """A write transaction that counted a range conflicts when a key it counted
    is deleted before it commits (etcd's range compare alone cannot see that)."""
    table = pmap.MapStringString(1)
    async with db.begin(write=True) as txn:
        table[txn, "d1"] = "on"
        table[txn, "d2"] = "on"
    txn = await db.begin(write=True).start()
    assert await table.count(txn) == 2
    async with db.begin(write=True) as other:
        del table[other, "d2"]
    del table[txn, "d1"]
    with pytest.raises(pmap.TransactionConflict):
        await txn.commit()
    async with db.begin() as check:
        assert await table[check, "d1"] == "on"
