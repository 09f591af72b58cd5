"""Database.run under contention (backoff, bounds, attempts) and the Deferred shape
of pmap's awaitables, over a small fake client and ``task.Clock``."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import pmap
from etcdwamp.pmap import Backoff, Database, MapTransaction, TransactionConflict
from etcdwamp.wire import KeySet


class FakeClient:
    """Answers status/get/txn at once; ``outcomes`` decides each commit."""

    max_txn_ops = 128

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = list(outcomes)
        self.revision = 10
        self.commits: list[Any] = []

    def status(self) -> Deferred[Any]:
        return succeed(SimpleNamespace(revision=self.revision))

    def get(self, key: Any, **options: Any) -> Deferred[Any]:
        return succeed(SimpleNamespace(first=None, kvs=[], count=0, more=False,
                                       revision=self.revision))

    async def range_iter(self, keyset: Any, **options: Any) -> Any:
        return
        yield  # an empty range

    def txn(self, txn: Any) -> Deferred[Any]:
        self.commits.append(txn)
        ok = self.outcomes.pop(0)
        if ok:
            self.revision += 1
        return succeed(SimpleNamespace(succeeded=ok, revision=self.revision, responses=()))


def result_of(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def setup(outcomes: list[bool], **db_options: Any) -> tuple[Database, FakeClient, Clock]:
    client, clock = FakeClient(outcomes), Clock()
    db = Database(client, clock=clock, rng=random.Random(7), **db_options)  # type: ignore[arg-type]
    return db, client, clock


def writer(seen: list[int]) -> Any:
    async def fn(txn: MapTransaction) -> str:
        seen.append(txn.attempt)
        txn.put_raw(b"k", b"v%d" % txn.attempt)
        return "done"
    return fn


def test_conflicts_are_retried_after_jittered_exponential_waits() -> None:
    """Three conflicts, then a commit: each retry waits for its own random delay
    within the growing ceiling, and nothing runs before that delay has passed."""
    db, _client, clock = setup([False, False, False, True])
    policy = Backoff(initial=0.01, factor=2.0, max_delay=1.0)
    expected = random.Random(7)
    seen: list[int] = []
    d = db.run(writer(seen), backoff=policy)
    for n in (1, 2, 3):
        wait = expected.uniform(0, 0.01 * 2 ** (n - 1))
        assert seen == list(range(1, n + 1))
        clock.advance(wait * 0.999)
        assert seen == list(range(1, n + 1)), "retried before its delay"
        clock.advance(wait * 0.002)
    assert result_of(d) == "done"
    assert seen == [1, 2, 3, 4]
    assert (db.commits, db.conflicts) == (1, 3)


def test_retries_bound_the_count_and_the_error_says_how_many_attempts() -> None:
    db, client, _clock = setup([False] * 10)
    seen: list[int] = []
    d = db.run(writer(seen), retries=2, backoff=None)
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(TransactionConflict)
    assert failure.value.attempts == 3 and seen == [1, 2, 3]
    assert db.conflicts == 3 and len(client.commits) == 3


def test_timeout_bounds_the_time_spent_retrying() -> None:
    """With waits of up to 50 ms and a 0.2 s budget the run gives up before a
    wait would cross the budget, however many retries are allowed."""
    db, _client, clock = setup([False] * 1000)
    seen: list[int] = []
    d = db.run(writer(seen), retries=1000, timeout=0.2,
               backoff=Backoff(initial=0.05, factor=1.0, max_delay=0.05))
    while not d.called:
        clock.advance(0.001)
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(TransactionConflict)
    assert clock.seconds() <= 0.2
    assert 4 <= failure.value.attempts == len(seen) < 1000


def test_no_backoff_retries_at_once() -> None:
    db, _client, clock = setup([False, False, True])
    seen: list[int] = []
    assert result_of(db.run(writer(seen), backoff=None)) == "done"
    assert seen == [1, 2, 3] and clock.seconds() == 0


def test_cancelling_during_a_backoff_wait_stops_at_once() -> None:
    db, client, clock = setup([False, True])
    seen: list[int] = []
    d = db.run(writer(seen), backoff=Backoff(initial=1.0, max_delay=1.0))
    assert seen == [1] and clock.getDelayedCalls()
    d.cancel()
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(CancelledError)
    assert not clock.getDelayedCalls()
    clock.advance(10)
    assert seen == [1] and len(client.commits) == 1


def test_other_errors_are_not_retried() -> None:
    db, client, _clock = setup([True])

    async def fn(txn: MapTransaction) -> None:
        raise KeyError("boom")

    failure = result_of(db.run(fn))
    assert isinstance(failure, Failure) and failure.check(KeyError)
    assert client.commits == []


@pytest.mark.parametrize("options, error", [
    ({"initial": -1.0}, ValueError), ({"factor": 0.5}, ValueError),
    ({"max_delay": float("inf")}, ValueError), ({"initial": "1"}, TypeError),
])
def test_backoff_refuses_bad_settings(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Backoff(**options)


@pytest.mark.parametrize("options, error", [
    ({"retries": -1}, ValueError), ({"retries": 1.5}, TypeError), ({"timeout": 0}, ValueError),
])
def test_run_refuses_bad_bounds(options: dict[str, Any], error: type) -> None:
    db, _, _ = setup([True])
    failure = result_of(db.run(writer([]), **options))
    assert isinstance(failure, Failure) and failure.check(error)


def test_backoff_delays_grow_to_the_cap_and_stay_within_it() -> None:
    policy = Backoff(initial=0.001, factor=3.0, max_delay=0.05)
    rng = random.Random(1)
    for n in range(1, 40):
        ceiling = min(0.05, 0.001 * 3 ** (n - 1))
        delays = [policy.delay(n, rng) for _ in range(50)]
        assert all(0 <= x <= ceiling for x in delays)
        assert max(delays) > ceiling / 2  # spread over the whole interval


def test_every_awaitable_is_a_deferred_for_inline_callbacks() -> None:
    """An inlineCallbacks user yields Database, MapTransaction and map calls."""
    db, _, _ = setup([True, True])
    table = pmap.MapStringString(1)
    index = pmap.MapStringString(2)
    out: dict[str, Any] = {}

    @inlineCallbacks
    def use() -> Any:
        out["status"] = yield db.status()
        txn = db.begin(write=True)
        yield txn.start()
        out["get"] = yield table.get(txn, "a")
        out["item"] = yield table[txn, "a"]
        out["count"] = yield table.count(txn)
        out["raw"] = yield txn.get_raw(b"x")
        out["snap"] = yield txn.snapshot_raw(b"x")
        out["count_raw"] = yield txn.count_raw(KeySet(b"p", prefix=True))
        out["deleted"] = yield table.delete_range(txn)
        out["lookup"] = yield index.lookup(txn, "g")
        table.put(txn, "a", "b")
        out["commit"] = yield txn.commit()

        async def fn(t: MapTransaction) -> int:
            return t.attempt

        out["run"] = yield db.run(fn, write=False)
        out["put_many"] = yield db.put_many([(b"k", b"v")])

    other, _, _ = setup([True])
    calls = [other.status(), other.run(writer([])), other.put_many([]), other.begin().start()]
    assert all(isinstance(c, Deferred) for c in calls)
    assert result_of(use()) is None
    assert out == {"status": 10, "get": None, "item": None, "count": 0, "raw": None,
                   "snap": None, "count_raw": 0, "deleted": 0, "lookup": [],
                   "commit": 11, "run": 1, "put_many": 1}
