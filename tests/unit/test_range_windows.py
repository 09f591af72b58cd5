"""The windows of a paged range read (etcdwamp.wire.paging, sent by
etcdwamp.range_pages.RangePages), against a model of etcd's range over a sorted key
list: a limited read returns its first ``limit`` keys and the ``count`` of every key
in ``[start, end)``, which etcd (3.4 to 3.6) walks in full. The plan must read every
key once, in key order, and keep that walk linear."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred

from etcdwamp.range_pages import RangePages
from etcdwamp.wire import Header, KeySet, KeyValue, RangeResult, prefix_range_end
from etcdwamp.wire.paging import ALL, KeyLine, PagePlan, Window


@dataclass
class Read:
    """What one paged read cost: requests, keys walked by etcd, pages in order."""

    requests: int
    walked: int
    pages: list[list[bytes]]

    @property
    def keys(self) -> list[bytes]:
        return [k for page in self.pages for k in page]


def inside(keys: list[bytes], start: bytes, end: bytes) -> list[bytes]:
    lo = bisect.bisect_left(keys, start)
    hi = len(keys) if end == ALL else bisect.bisect_left(keys, end)
    return keys[lo:max(lo, hi)]


def read(keys: list[bytes], keyset: KeySet, page: int, *, in_flight: int = 2,
         shuffle: random.Random | None = None, windows: bool = True) -> Read:
    """Run a plan against ``keys`` with up to ``in_flight`` windows out at once,
    answered in key order (or in a random order with ``shuffle``); pages are kept
    by window start, as the client orders them."""
    keys = sorted(keys)
    start, end = keyset.resolve()
    assert end is not None
    plan = PagePlan(start, end, page_size=page, windows=windows)
    out: list[Window] = []
    pages: dict[bytes, list[bytes]] = {}
    requests = walked = 0
    while True:
        while len(out) < in_flight and (window := plan.next_window()) is not None:
            assert window.limit == page and (window.end == ALL or window.start < window.end)
            out.append(window)
            requests += 1
        if not out:
            break
        out.sort(key=lambda w: w.start)
        window = out.pop(shuffle.randrange(len(out)) if shuffle else 0)
        held = inside(keys, window.start, window.end)
        walked += len(held)
        assert window.start not in pages
        pages[window.start] = held[:window.limit]
        plan.answered(window, count=len(held), keys=held[:window.limit])
    assert plan.finished and plan.next_window() is None
    return Read(requests, walked, [pages[s] for s in sorted(pages)])


R = random.Random(25)


def decimal(n: int) -> list[bytes]:
    return [b"p/%07d" % i for i in range(n)]


def hex_ids(n: int) -> list[bytes]:
    return [b"u/" + R.randbytes(16).hex().encode() for _ in range(n)]


def binary(n: int) -> list[bytes]:
    """pmap-like: a 2-byte slot, then 16 random bytes (0xff bytes included)."""
    return [b"\x00\x07" + R.randbytes(16) for _ in range(n)]


def long_prefixes(n: int) -> list[bytes]:
    """Kubernetes-like: a long shared prefix, seven namespaces far apart on any line."""
    return [b"registry/pods/ns%d/pod-%06d" % (i % 7, i) for i in range(n)]


def skewed(n: int) -> list[bytes]:
    """Half dense sequential keys, half short random words around them."""
    words = [b"a/" + bytes(R.choice(b"bcdxyz") for _ in range(R.randint(2, 9)))
             for _ in range(n // 2)]
    return [b"a/x/%09d" % i for i in range(n // 2)] + words


def clusters(n: int) -> list[bytes]:
    """Three tight clusters far apart in the byte space."""
    return [b"c/" + bytes([R.choice((3, 97, 250))]) + R.randbytes(5) for _ in range(n)]


def trailing_ff(n: int) -> list[bytes]:
    """Keys of 0xff bytes with runs of 0xff at the end: the prefix has no end."""
    return [b"\xff\xff" + R.randbytes(3) + b"\xff" * R.randint(0, 4) for _ in range(n)]


SHAPES = [decimal, hex_ids, binary, long_prefixes, skewed, clusters, trailing_ff]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("whole", [False, True], ids=["prefix", "every-key"])
def test_every_key_once_in_order_with_linear_work(shape: object, whole: bool) -> None:
    """20,000 keys at 200 a page: the pages are exactly the keys in order; etcd walks
    fewer than 5 keys per key read (the old paging walks ~50 here, n/2/page), and the
    requests stay within 2.5 times the pages needed."""
    assert callable(shape)
    keys = sorted(set(shape(20_000)))
    prefix = keys[0][:2]
    keyset = KeySet.all() if whole else KeySet(prefix, prefix=True)
    done = read(keys, keyset, 200)
    assert done.keys == keys
    assert all(len(page) <= 200 for page in done.pages)  # (a window may hold none)
    assert done.walked < 5 * len(keys)
    assert done.requests <= 2.5 * len(keys) / 200


def test_old_paging_is_quadratic_and_selectable() -> None:
    """windows=False asks each page to the range's end, as before: same keys, and
    etcd walks n²/(2·page) keys, the cost the windows remove."""
    keys = decimal(20_000)
    old = read(keys, KeySet(b"p/", prefix=True), 200, windows=False)
    assert old.keys == keys and old.requests == 100
    assert old.walked == sum(range(200, 20_001, 200))


@pytest.mark.parametrize("in_flight", [1, 3])
def test_any_number_in_flight_and_any_answer_order(in_flight: int) -> None:
    """Windows answered out of key order still partition the range (the rest of an
    overflowing window comes back as windows of its own)."""
    keys = sorted(set(skewed(5_000)))
    done = read(keys, KeySet(b"a/", prefix=True), 50, in_flight=in_flight,
                shuffle=random.Random(in_flight))
    assert done.keys == keys


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 200, 201])
def test_page_boundaries(count: int) -> None:
    """A range that fits in a page is one request (as before); one key more needs
    more, and none is read twice or skipped."""
    keys = decimal(count)
    done = read(keys, KeySet(b"p/", prefix=True), 100)
    assert done.keys == keys
    if count <= 100:
        assert done.requests == 1
    else:
        assert done.requests >= 2


def test_range_ends_elsewhere_than_a_prefix() -> None:
    """[start, end) in the middle of the keys: nothing outside is returned."""
    keys = decimal(3_000)
    done = read(keys, KeySet(b"p/0000500", range_end=b"p/0002500"), 64)
    assert done.keys == keys[500:2500]


def test_prefix_without_end_reaches_the_end_of_the_key_space() -> None:
    """A prefix of 0xff bytes has no range end (etcd's b"\\0"): the last window goes
    to the end of the key space and the keys past every other are read."""
    keys = sorted({*trailing_ff(3_000), b"\xff" * 9})
    assert prefix_range_end(b"\xff\xff") == ALL
    done = read(keys, KeySet(b"\xff\xff", prefix=True), 100)
    assert done.keys == keys


def test_page_size_one() -> None:
    keys = hex_ids(300)
    done = read(keys, KeySet(b"u/", prefix=True), 1)
    assert done.keys == sorted(keys) and all(len(p) <= 1 for p in done.pages)
    assert done.walked < 20 * len(keys)


def test_empty_tail_is_not_requested() -> None:
    """Once the counts add up to the range's count, nothing more is asked: the empty
    key space after the last key costs no request."""
    keys = decimal(1_000)
    done = read(keys, KeySet(b"p/", prefix=True), 100, in_flight=1)
    assert done.keys == keys and done.requests <= 13


def test_answers_are_checked() -> None:
    plan = PagePlan(b"a", b"b", page_size=10)
    first = plan.next_window()
    assert first == Window(b"a", b"b", 10) and plan.next_window() is None
    with pytest.raises(ValueError, match="impossible"):
        plan.answered(first, count=1, keys=[b"a1", b"a2"])
    with pytest.raises(ValueError, match="impossible"):
        plan.answered(first, count=3, keys=[])
    with pytest.raises(ValueError, match="not handed out"):
        plan.answered(Window(b"a", b"a5", 10), count=0, keys=[])
    with pytest.raises(ValueError, match="positive"):
        PagePlan(b"a", b"b", page_size=0)


KEY = st.binary(min_size=0, max_size=6)


@given(alphabet=st.sets(st.integers(0, 255), min_size=2, max_size=20),
       digits=st.integers(1, 5), a=KEY, b=KEY, data=st.data())
def test_key_line_is_monotone_and_its_keys_are_strictly_after(
        alphabet: set[int], digits: int, a: bytes, b: bytes, data: st.DataObject) -> None:
    """number() never decreases in key order, and a key whose number is below n is
    below key(n): a window end computed on the line is always after its start."""
    line = KeyLine(b"k", bytes(sorted(alphabet)), digits)
    a, b = sorted((b"k" + a, b"k" + b))
    assert line.number(a) <= line.number(b)
    if line.number(a) + 1 < line.top:
        n = data.draw(st.integers(line.number(a) + 1, line.top - 1))
        assert a < line.key(n) and line.number(line.key(n)) == n


# -- RangePages: the windows sent, one page ahead, against the same model ------------------

class Etcd:
    """The model as a getter: a limited read of a key set at one revision."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = sorted(keys)
        self.limits: list[int] = []

    async def get(self, keys: KeySet, *, limit: int = 0, revision: int = 0) -> RangeResult:
        start, end = keys.resolve()
        held = [start] if end is None and start in self.keys else inside(
            self.keys, start, end or start)
        self.limits.append(limit)
        served = held[:limit] if limit else held
        kvs = tuple(KeyValue(k, b"v", 2, 2, 1, 0) for k in served)
        return RangeResult(Header(1, 1, revision or 7, 1), kvs, more=len(kvs) < len(held),
                           count=len(held))


def pages_of(etcd: Etcd, keyset: KeySet, page: int, limit: int = 0) -> list[list[bytes]]:
    async def collect() -> list[list[bytes]]:
        return [[kv.key for kv in p.kvs]
                async for p in RangePages(etcd.get, keyset, page_size=page, limit=limit)]

    done: list[list[list[bytes]]] = []
    Deferred.fromCoroutine(collect()).addBoth(done.append)
    assert done and isinstance(done[0], list), done
    return done[0]


@pytest.mark.parametrize("limit", [0, 1, 99, 100, 101, 250, 999, 1000, 1001, 5000])
def test_pages_stop_at_the_limit_in_key_order(limit: int) -> None:
    """Skewed keys make windows overflow (their rest is read before the window read
    ahead after them): the keys handed out are exactly the first ``limit`` ones, in
    order, and no read asks for more keys than the limit leaves."""
    etcd = Etcd(sorted(set(skewed(3_000))))
    pages = pages_of(etcd, KeySet(b"a/", prefix=True), 100, limit)
    got = [k for page in pages for k in page]
    assert got == etcd.keys[:limit or None]
    assert all(len(page) <= 100 for page in pages)
    assert max(etcd.limits) <= min(100, limit or 100)


def test_one_key_is_one_read() -> None:
    etcd = Etcd([b"a", b"b"])
    assert pages_of(etcd, KeySet(b"b"), 10) == [[b"b"]] and len(etcd.limits) == 1
