"""Bounded reads: the settings that bound them, the in-flight byte budget, and the
paging of :func:`etcdwamp.wamp.ops.read_rows` against a small model of etcd's range
(limit, count, more, one revision). Against real etcd and Crossbar:
tests/integration/test_wamp_reads.py."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError

from etcdwamp.wamp.errors import ErrorUris
from etcdwamp.wamp.ops import read_range, read_rows, read_snapshot
from etcdwamp.wamp.reads import ROW_BYTES, InflightBudget, ReadBounds
from etcdwamp.wamp.settings import Settings, SettingsError
from etcdwamp.wire import Header, KeySet, KeyValue, RangeResult

ensure = pytest_twisted.ensureDeferred
URIS = ErrorUris("etcd")
ETCD = {"etcd": {"endpoints": ["http://127.0.0.1:2379"]}}


def test_defaults() -> None:
    s = Settings.from_extra(ETCD)
    assert (s.max_range_rows, s.max_snapshot_rows, s.max_inflight_bytes) == (
        1000, 10000, 32 * 1024 * 1024)
    s = Settings.from_extra({**ETCD, "max_range_rows": 5, "max_snapshot_rows": 7,
                             "max_inflight_bytes": 2**20})
    assert (s.max_range_rows, s.max_snapshot_rows, s.max_inflight_bytes) == (5, 7, 2**20)


@pytest.mark.parametrize(("change", "message"), [
    ({"max_range_rows": 0}, r"extra.max_range_rows must be an int in \[1, 1000000\]"),
    ({"max_range_rows": True}, "extra.max_range_rows must be"),
    ({"max_range_rows": "10"}, "extra.max_range_rows must be"),
    ({"max_snapshot_rows": -1}, "extra.max_snapshot_rows must be"),
    ({"max_snapshot_rows": 1.5}, "extra.max_snapshot_rows must be"),
    ({"max_inflight_bytes": 1000}, r"extra.max_inflight_bytes must be an int in \[65536, "),
    ({"max_inflight_bytes": 2**41}, "extra.max_inflight_bytes must be"),
    ({"max_range_row": 10}, "did you mean 'max_range_rows'"),
])
def test_bad_bounds_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_extra({**ETCD, **change})


def test_budget_is_shared_and_refuses_without_adding() -> None:
    budget = InflightBudget(100)
    a, b = budget.hold(URIS), budget.hold(URIS)
    a.add(60)
    b.add(30)
    assert budget.used == 90
    with pytest.raises(ApplicationError) as busy:
        b.add(20)  # 50 alone would fit; with a's 60 it does not
    assert busy.value.error == "etcd.error.busy"
    assert (budget.used, b.held) == (90, 30)
    with pytest.raises(ApplicationError) as large:
        a.add(41)  # a alone would hold 101
    assert large.value.error == "etcd.error.too_large"
    assert "100 bytes" in str(large.value.args[0])
    a.release()
    a.release()  # idempotent
    assert budget.used == 30
    b.add(70)
    assert budget.used == 100


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InflightBudget(0)


class RangeModel:
    """etcd's range as read_rows uses it: ``limit``, ``count`` of the whole range,
    ``more``, all at one ``revision``; every request is recorded."""

    def __init__(self, keys: int, value: bytes = b"v") -> None:
        self.kvs = [KeyValue(b"k%04d" % i, value, 2, 2, 1, 0) for i in range(keys)]
        self.requests: list[tuple[bytes, int, int]] = []

    async def get(self, keys: KeySet, *, limit: int = 0, revision: int = 0) -> RangeResult:
        start, end = keys.resolve()
        assert end is not None
        self.requests.append((start, limit, revision))
        inside = [kv for kv in self.kvs if start <= kv.key < end]
        served = inside[:limit] if limit else inside
        return RangeResult(Header(1, 1, revision or 9, 1), tuple(served),
                           more=len(served) < len(inside), count=len(inside))


def record(kv: KeyValue) -> dict[str, Any]:
    return {"key": kv.key.decode()}


ALL = KeySet(b"k", prefix=True)


class Progress:
    """``details`` of a progressive call, keeping what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def progress(self, result: Any) -> None:
        self.sent.append(result)


@ensure
async def test_progressive_range_sends_full_pages_at_one_revision() -> None:
    etcd, details = RangeModel(250), Progress()
    bounds = ReadBounds(InflightBudget(2**20), page=100, max_range_rows=10)
    rest = await read_range(etcd, ALL, 0, details, bounds, URIS, record)
    assert [len(p) for p in details.sent] == [100, 100] and len(rest) == 50
    keys = [r["key"] for p in [*details.sent, rest] for r in p]
    assert keys == [f"k{i:04d}" for i in range(250)]
    assert [(r[1], r[2]) for r in etcd.requests] == [(100, 0), (100, 9), (100, 9)]
    assert bounds.budget.used == 0


@ensure
async def test_plain_range_beyond_the_maximum_is_refused_after_one_page() -> None:
    etcd = RangeModel(250)
    bounds = ReadBounds(InflightBudget(2**20), page=100, max_range_rows=200)
    with pytest.raises(ApplicationError) as refused:
        await read_range(etcd, ALL, 0, None, bounds, URIS, record)
    assert refused.value.error == "etcd.error.too_large"
    message = str(refused.value.args[0])
    assert "200 rows" in message and "limit=200" in message and "from_key" in message
    assert len(etcd.requests) == 1 and bounds.budget.used == 0
    # Within the maximum, by limit or by paging from the last key, it answers in full.
    first = await read_range(etcd, ALL, 200, None, bounds, URIS, record)
    assert len(first) == 200 and max(r[1] for r in etcd.requests[1:]) == 100
    assert {r[2] for r in etcd.requests[2:]} == {9}  # the first page's revision
    rest = await read_range(etcd, KeySet(first[-1]["key"].encode(), b"l"), 200, None, bounds,
                            URIS, record)
    assert rest[0] == first[-1] and len(rest) == 51
    # A limit above the maximum is fine while the range holds fewer rows.
    assert len(await read_range(etcd, KeySet(b"k0200", b"l"), 500, None, bounds, URIS,
                                record)) == 50


@ensure
async def test_snapshot_pages_carry_the_revision_and_plain_ones_are_bounded() -> None:
    etcd, details = RangeModel(120), Progress()
    bounds = ReadBounds(InflightBudget(2**20), page=50, max_snapshot_rows=100)
    last = await read_snapshot(etcd, ALL, details, bounds, URIS, record)
    assert [(p["revision"], len(p["items"])) for p in details.sent] == [(9, 50), (9, 50)]
    assert last["revision"] == 9 and len(last["items"]) == 20
    with pytest.raises(ApplicationError) as refused:
        await read_snapshot(etcd, ALL, None, bounds, URIS, record)
    assert refused.value.error == "etcd.error.too_large"
    assert "max_snapshot_rows" in str(refused.value.args[0])
    assert "receive_progress" in str(refused.value.args[0])


@ensure
async def test_budget_counts_rows_until_sent_and_is_freed_on_failure() -> None:
    row = len(b"k0000") + 1000 + ROW_BYTES
    etcd = RangeModel(30, b"x" * 1000)
    budget = InflightBudget(25 * row)
    other = budget.hold(URIS)
    other.add(10 * row)  # another call's result, still in flight
    bounds = ReadBounds(budget, page=10)
    with pytest.raises(ApplicationError) as busy:
        await read_rows(etcd, ALL, limit=0, progress=None, bounds=bounds, uris=URIS,
                        max_rows=100, refuse=str, record=record)
    assert busy.value.error == "etcd.error.busy" and budget.used == 10 * row
    # Pages sent as progressive results are freed as they go: 30 rows pass.
    pages: list[int] = []
    _, rest = await read_rows(etcd, ALL, limit=0,
                              progress=lambda rev, rows: pages.append(len(rows)),
                              bounds=bounds, uris=URIS, max_rows=1, refuse=str,
                              record=record)
    assert pages == [10, 10, 10] and rest == [] and budget.used == 10 * row
    other.release()
    with pytest.raises(ApplicationError) as large:
        await read_rows(etcd, ALL, limit=0, progress=None, bounds=ReadBounds(budget, page=10),
                        uris=URIS, max_rows=100, refuse=str, record=record)
    assert large.value.error == "etcd.error.too_large" and budget.used == 0


def test_one_result_stays_under_crossbars_message_limit() -> None:
    """A big budget shared by many calls still lets no single plain result grow past
    MAX_RESULT_BYTES (Crossbar would refuse it with its own error)."""
    from etcdwamp.wamp.reads import MAX_RESULT_BYTES

    budget = InflightBudget(64 * 2**20)
    hold = budget.hold(ErrorUris("etcd"))
    hold.add(MAX_RESULT_BYTES - 10)
    with pytest.raises(ApplicationError) as raised:
        hold.add(11)
    assert raised.value.error == "etcd.error.too_large"
    assert budget.used == MAX_RESULT_BYTES - 10
    budget.hold(ErrorUris("etcd")).add(2**20)  # another call has room of its own
