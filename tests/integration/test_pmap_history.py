"""pmap transactions are serializable: random concurrent workloads from several
clients against a real etcd, every committed transaction recorded, and the
history checked for dependency cycles (tests/integration/history.py).

The table is ``items`` (String keys, JSON values ``{"u": uid, "g": group}``)
with a non-unique index ``by_group``. Transactions read first (get, select
with and without limit, keys, count, index lookup), then write (put with a
never-used uid, delete), then commit; a conflicted one is dropped (it wrote
nothing). The fixed cases are the write-skew shapes, with both transactions
made to read before either commits.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from history import History, Read, Txn, Value, check
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from loops import ensure, make_client
from twisted.internet.defer import gatherResults

from etcdwamp import Client, Database, pmap
from etcdwamp._deferred import Dual, dual
from etcdwamp.pmap import MapTransaction, TransactionConflict
from etcdwamp.wire import KeySet

KEYS = [f"k{i}" for i in range(8)]
GROUPS = ["a", "b", "c"]
RANGES: list[tuple[str | None, str | None]] = [(None, None), ("k2", "k6"), ("k0", "k4"),
                                               ("k5", None)]
_run = itertools.count()
_uid = itertools.count(1)


def tables() -> tuple[Any, Any]:
    items = pmap.MapStringJson(1)
    by_group = pmap.MapStringString(2)
    items.attach_index("group", by_group, lambda r: r["g"])
    return items, by_group


def as_value(raw: dict[str, str] | None) -> Value | None:
    return None if raw is None else Value(raw["u"], raw["g"])


@dataclass(frozen=True)
class Plan:
    """One transaction: reads, then writes (("put", key, group) or ("del", key))."""

    reads: tuple[tuple[Any, ...], ...]
    writes: tuple[tuple[Any, ...], ...]


async def do_read(txn: MapTransaction, op: tuple[Any, ...]) -> Read:
    items, by_group = tables()
    kind = op[0]
    if kind == "get":
        return Read("get", as_value(await items.get(txn, op[1])), key=op[1])
    if kind == "lookup":
        return Read("lookup", frozenset(await by_group.lookup(txn, op[1])), group=op[1])
    _, lo, hi, limit = op
    if kind == "count":
        return Read("count", await items.count(txn, from_key=lo, to_key=hi), lo=lo, hi=hi)
    if kind == "keys":
        got = tuple([k async for k in items.keys(txn, from_key=lo, to_key=hi, limit=limit)])
        return Read("keys", got, lo=lo, hi=hi, limit=limit)
    pairs = tuple([(k, as_value(v)) async for k, v in
                   items.select(txn, from_key=lo, to_key=hi, limit=limit)])
    return Read("select", pairs, lo=lo, hi=hi, limit=limit)


class Recorder:
    """Runs plans and keeps what the committed ones read and wrote."""

    def __init__(self) -> None:
        self.txns: list[Txn] = []
        self.conflicts = 0
        #: each committed transaction's guards: (key, mod revision) compares and
        #: range guards, as sent at commit (to replay them if a cycle shows up)
        self.guards: dict[int, tuple[dict[bytes, int], list[KeySet]]] = {}
        self._ids = itertools.count(1)

    async def execute(self, db: Database, client_no: int, plan: Plan,
                      between: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Run ``plan``; ``between()`` (if given) is awaited after the reads. True if
        it committed."""
        items, _ = tables()
        txn = await db.begin(write=bool(plan.writes)).start()
        reads = [await do_read(txn, op) for op in plan.reads]
        if between is not None:
            await between()
        writes: dict[str, Value | None] = {}
        for w in plan.writes:
            if w[0] == "put":
                uid = f"u{next(_uid)}"
                items.put(txn, w[1], {"u": uid, "g": w[2]})
                writes[w[1]] = Value(uid, w[2])
            else:
                items.delete(txn, w[1])
                writes[w[1]] = None
        try:
            await txn.commit()
        except TransactionConflict:
            self.conflicts += 1
            return False
        commit = txn.committed_revision if plan.writes else txn.revision
        record = Txn(next(self._ids), client_no, txn.revision, commit, reads, writes,
                     changed=txn.changed)
        self.txns.append(record)
        self.guards[record.id] = (dict(txn._reads), list(txn._ranges))
        return True


async def guards_replayed(client: Client, recorder: Recorder, ids: set[int]) -> list[str]:
    """Evaluate the guards of transactions ``ids`` against etcd as it was just
    before each one's commit: a guard that fails there should have refused the
    commit (a pmap or etcd fault); all passing points at the recorded history."""
    out = []
    for t in recorder.txns:
        if t.id not in ids or not t.writes:
            continue
        reads, ranges = recorder.guards[t.id]
        at = t.commit - 1 if t.changed else t.commit  # what etcd checked them against
        for key, rev in sorted(reads.items()):
            kv = (await client.get(key, revision=at)).first
            now = kv.mod_revision if kv else 0
            out.append(f"T{t.id} guard mod({key!r}) == {rev}: at {at} it is {now}"
                       + ("" if now == rev else "  <-- FAILS"))
        for ks in ranges:
            newer = [kv.key for kv in (await client.get(ks, revision=at)).kvs
                     if kv.mod_revision > t.snapshot]
            out.append(f"T{t.id} guard mod({ks}) < {t.snapshot + 1}: newer at {at}: {newer}"
                       + ("  <-- FAILS" if newer else ""))
    return out


async def effects_missing(db: Database, txns: list[Txn]) -> list[str]:
    """Each recorded write as etcd holds it at the writer's commit revision: the
    checker takes the recorded history as fact, so check the store has it."""
    items, _ = tables()
    problems = []
    for t in txns:
        if not t.writes:
            continue
        txn = await db.begin().start()
        txn.revision = t.commit  # a read-only view of the store at that revision
        for key, want in t.writes.items():
            got = as_value(await items.get(txn, key))
            if got != want:
                problems.append(f"T{t.id} (client {t.client}) recorded {key}={want} at "
                                f"{t.commit}, etcd has {got} there")
    return problems


async def seed(db: Database, initial: dict[str, Value]) -> None:
    items, _ = tables()
    async with db.begin(write=True) as txn:
        for k, v in initial.items():
            items.put(txn, k, {"u": v.uid, "g": v.group})


def start_values(keys: list[str], group: str = "a") -> dict[str, Value]:
    return {k: Value(f"init-{k}", group) for k in keys}


# -- random workloads -------------------------------------------------------------

ranges = st.sampled_from(RANGES)
read_op = st.one_of(
    st.tuples(st.just("get"), st.sampled_from(KEYS)),
    st.builds(lambda r, n: ("select", r[0], r[1], n), ranges, st.sampled_from([0, 0, 2])),
    st.builds(lambda r, n: ("keys", r[0], r[1], n), ranges, st.sampled_from([0, 1])),
    st.builds(lambda r: ("count", r[0], r[1], 0), ranges),
    st.tuples(st.just("lookup"), st.sampled_from(GROUPS)),
)
write_op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.sampled_from(GROUPS)),
    st.tuples(st.just("del"), st.sampled_from(KEYS)),
)
plans = st.builds(Plan, st.lists(read_op, min_size=1, max_size=3).map(tuple),
                  st.lists(write_op, max_size=2, unique_by=lambda w: w[1]).map(tuple))
workloads = st.lists(st.lists(plans, min_size=20, max_size=40), min_size=4, max_size=4)


async def run_clients(loop: str, etcd_url: str, n: int, body: Any) -> None:
    clients = [make_client(loop, url=etcd_url, timeout=10.0) for _ in range(n)]
    try:
        await body(clients)
    finally:
        for c in clients:
            await c.close()


@pytest.mark.usefixtures("etcd")
@settings(max_examples=6, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],  # shrinking would rerun real etcd work
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(workload=workloads)
@ensure
async def test_random_concurrent_transactions_are_serializable(
        etcd: Any, loop: str, workload: list[list[Plan]]) -> None:
    """Four clients, each its own Client of the loop, run random transactions at
    once (each client's transactions driven the way that loop drives user code);
    the committed history has no dependency cycle and every read matches its
    snapshot."""
    prefix = b"hist%d/" % next(_run)
    initial = start_values(KEYS[:6])
    initial.update({"k1": Value("init-k1", "b"), "k4": Value("init-k4", "c")})
    recorder = Recorder()

    async def body(clients: list[Client]) -> None:
        await seed(Database(clients[0], prefix=prefix), initial)

        async def one_client(client: Client, no: int) -> None:
            db = Database(client, prefix=prefix)
            for plan in workload[no]:
                await recorder.execute(db, no, plan)

        # ensure runs each on the loop of its client (an asyncio task on asyncio).
        await dual(gatherResults([ensure(one_client)(client=clients[i], no=i)
                                  for i in range(len(workload))], consumeErrors=True))
        missing.extend(await effects_missing(Database(clients[0], prefix=prefix),
                                             recorder.txns))
        verdict = check(History(initial, recorder.txns))
        if verdict.cycle:
            replay.extend(await guards_replayed(
                clients[0], recorder, {e.src for e in verdict.cycle}))

    missing: list[str] = []
    replay: list[str] = []
    await run_clients(loop, etcd.url, len(workload), body)
    assert not missing, "\n".join(missing)
    history = History(initial, recorder.txns)
    verdict = check(history)
    if replay:
        print("guards of the cycle's transactions, replayed:\n" + "\n".join(replay))
    print(f"history: {verdict.txns} committed, {recorder.conflicts} conflicted, "
          f"{verdict.edges} edges")
    assert verdict.ok, verdict.report(history) + "\n" + "\n".join(replay)
    assert verdict.txns > 0


# -- the write-skew shapes ------------------------------------------------------------

SHAPES: dict[str, tuple[dict[str, Value], Plan, Plan]] = {
    # Two doctors on call; each transaction counts them (>= 2) and takes its own off.
    "count": (start_values(["d1", "d2"]),
              Plan((("count", "d", "e", 0),), (("del", "d1"),)),
              Plan((("count", "d", "e", 0),), (("del", "d2"),))),
    "select": (start_values(["d1", "d2"]),
               Plan((("select", "d", "e", 0),), (("del", "d1"),)),
               Plan((("select", "d", "e", 0),), (("del", "d2"),))),
    "select-limit": (start_values(["d1", "d2"]),
                     Plan((("select", "d", "e", 2),), (("del", "d1"),)),
                     Plan((("select", "d", "e", 2),), (("del", "d2"),))),
    "keys": (start_values(["d1", "d2"]),
             Plan((("keys", "d", "e", 0),), (("del", "d1"),)),
             Plan((("keys", "d", "e", 0),), (("del", "d2"),))),
    # On call = index group "a"; each moves its own doctor to group "b".
    "lookup": (start_values(["d1", "d2"]),
               Plan((("lookup", "a"),), (("put", "d1", "b"),)),
               Plan((("lookup", "a"),), (("put", "d2", "b"),))),
    # Each reads the other's key as absent and inserts its own.
    "insert-if-absent": ({},
                         Plan((("get", "b"),), (("put", "a", "a"),)),
                         Plan((("get", "a"),), (("put", "b", "a"),))),
    # Each counts an empty range and inserts into it.
    "count-insert": ({},
                     Plan((("count", "n", "o", 0),), (("put", "n1", "a"),)),
                     Plan((("count", "n", "o", 0),), (("put", "n2", "a"),))),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@ensure
async def test_write_skew_shapes_are_refused(etcd: Any, loop: str, shape: str) -> None:
    """Both transactions read before either commits: exactly one commits, the
    other fails with TransactionConflict, and the history has no cycle."""
    initial, first, second = SHAPES[shape]
    rounds = 5
    outcomes: list[list[bool]] = []
    reports: list[str] = []

    async def one_round(clients: list[Client]) -> None:
        prefix = b"skew%d/" % next(_run)
        recorder = Recorder()
        await seed(Database(clients[0], prefix=prefix), initial)
        both_read: Dual[None] = Dual()  # awaited by either loop's transactions
        waiting = [0]

        async def wait_for_both() -> None:
            waiting[0] += 1
            if waiting[0] == 2:
                both_read.callback(None)
            await both_read

        async def transaction(client: Client, no: int, plan: Plan) -> bool:
            return await recorder.execute(Database(client, prefix=prefix), no, plan,
                                          between=wait_for_both)

        committed = await dual(gatherResults(
            [ensure(transaction)(client=clients[no], no=no, plan=plan)
             for no, plan in enumerate((first, second))],
            consumeErrors=True))
        outcomes.append(list(committed))
        history = History(initial, recorder.txns)
        verdict = check(history)
        if not verdict.ok:
            reports.append(verdict.report(history))

    async def body(clients: list[Client]) -> None:
        for _ in range(rounds):
            await one_round(clients)

    await run_clients(loop, etcd.url, 2, body)
    assert not reports, f"{len(reports)} of {rounds} rounds not serializable; first:\n" \
        + reports[0]
    assert all(sorted(o) == [False, True] for o in outcomes), outcomes
