"""Which windows a paged range read asks etcd for, so that etcd's work stays linear.

etcd answers a range with a ``limit`` by walking its index over *every* key
up to ``range_end``, to fill ``count`` (etcd 3.4's ``treeIndex.Revisions``
collects them all; 3.5 and 3.6 stop collecting at the limit but still visit
every key to count ``total``). Paging a range the usual way, each page asking
for ``[key after the last one seen, range_end)`` with a limit, therefore
costs etcd work proportional to the keys still ahead, O(n² / page size) in
all: 110 s for 1,000,000 keys at 1,000 a page on etcd 3.4, bound by etcd's
CPU. Walking is cheap per key (about 0.17 µs on etcd 3.4, against about
11 µs to read and encode a key-value through the JSON gateway), but not a
million times per page.

A :class:`PagePlan` asks instead for *windows*: ranges ``[start, end)`` sized
to hold about one page of keys, each read with the page size as its limit,
so each walks about one page. The first window is the whole range (the
first page as before: it tells how many keys the range holds and fixes the
revision every later window is read at). Later windows are sized from the
keys already seen: the spacing of the last page's keys, measured on a
number line of keys (:class:`KeyLine`), extended by one page from where the
next window starts. The counts etcd returns keep the plan exact:

- a window that holds more keys than its limit (``count`` > keys returned)
  leaves its rest ``[key after the last one returned, window end)`` as a new
  stretch of known size, read before anything after it (so pages come in
  key order);
- a window that holds no key widens the next ones (8 times as wide each time), so an empty
  stretch of the key space costs a few requests, not one per page width;
- once the keys counted add up to the range's count, nothing more is asked
  (no request for an empty tail).

A badly sized window costs etcd at most a walk over what it holds, never more
than the old limited page did; the windows are a partition of the range, so
every key is read exactly once, in key order. All of it is pure bookkeeping:
the caller sends the windows (any number at once) and reports each answer.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ALL", "KeyLine", "PagePlan", "Window"]

#: etcd's range end meaning "no end"
ALL = b"\x00"
#: an empty window multiplies the width of the next ones by this
GALLOP = 8
#: digits of a key's position on the key line, at most (positions beyond it do not move it)
MAX_DIGITS = 48


@dataclass(frozen=True, slots=True)
class Window:
    """One read of a paged range: the keys in ``[start, end)`` (``end`` :data:`ALL`:
    no end), at most ``limit`` of them."""

    start: bytes
    end: bytes
    limit: int


class KeyLine:
    """Keys under ``prefix`` as numbers, monotone in key order, to size windows by.

    A key's bytes after the prefix are digits in base ``len(alphabet)``: each byte
    is its rank among the byte values seen in keys so far (``0-9`` for decimal
    keys, 16 values for hex text, all 256 for binary keys), so that keys made of
    a small alphabet spread evenly on the line. A byte outside the alphabet
    ends the number: it continues with the least digits (below every value) or
    the greatest (above a value). So ``number`` never decreases from one key to
    a greater one, and ``key(n)`` is a key whose number is ``n``: ``number(a) < n``
    implies ``a < key(n)``.
    """

    def __init__(self, prefix: bytes, alphabet: bytes, digits: int) -> None:
        self.prefix = prefix
        self.alphabet = alphabet
        self.base = len(alphabet)
        self.digits = digits
        #: one past the greatest number
        self.top = self.base**digits
        # byte -> (rank of the greatest alphabet byte <= it, or -1; whether it is one)
        self._rank = [(bisect.bisect_right(alphabet, byte) - 1, byte in alphabet)
                      for byte in range(256)]

    def number(self, key: bytes) -> int:
        """The position of ``key``; keys outside the prefix are 0 (below) or ``top`` (above)."""
        prefix, base, rank = self.prefix, self.base, self._rank
        if not key.startswith(prefix):
            return 0 if key < prefix else self.top
        n = used = 0
        saturated = False
        for byte in key[len(prefix):len(prefix) + self.digits]:
            digit, member = rank[byte]
            if digit < 0:
                break  # below the alphabet: the rest counts as the least digits
            n = n * base + digit
            used += 1
            if not member:
                saturated = True  # between two values: the rest counts as the greatest
                break
        left: int = base ** (self.digits - used)
        return (n + 1) * left - 1 if saturated else n * left

    def key(self, number: int) -> bytes:
        """The key at ``number`` (0 <= number < top): the prefix and ``digits`` digit bytes."""
        out = bytearray(self.digits)
        for i in range(self.digits - 1, -1, -1):
            number, digit = divmod(number, self.base)
            out[i] = self.alphabet[digit]
        return self.prefix + bytes(out)


@dataclass(eq=False)
class _Stretch:
    """Part of the range not yet covered by windows answered: ``[origin, end)``, whose
    windows are handed out from ``start`` on (None once they reach ``end``)."""

    origin: bytes
    end: bytes
    #: keys in ``[origin, end)`` outside the windows answered so far
    left: int
    #: the keys of the latest page before the next window, to measure the spacing by:
    #: (first key, last key, keys between them counted as steps)
    anchor: tuple[bytes, bytes, int] | None
    start: bytes | None = None
    #: keys expected in the windows in flight
    pending: int = 0
    in_flight: int = 0
    #: how many times wider than the spacing says the next window is (after empty ones)
    widen: int = 1

    def __post_init__(self) -> None:
        self.start = self.origin


class PagePlan:
    """The windows of one paged read of ``[start, end)`` (see the module docstring).

    Call :meth:`next_window` for a window to read (None: wait for an answer, or
    :attr:`finished`), send it at the revision of the first answer, and report
    each answer with :meth:`answered`. Windows may be in flight together; their
    answers may come in any order. ``windows=False`` plans the old way (each
    window to the end of the range), for comparison.

    :raises ValueError: ``page_size`` is not positive
    """

    def __init__(self, start: bytes, end: bytes, *, page_size: int,
                 windows: bool = True) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        self.page_size = page_size
        self.windows = windows
        # Aim a little below a page: a window that overflows needs another request.
        self.target = max(1, page_size * 9 // 10)
        self._first: Window | None = Window(start, end, page_size)
        self._first_sent = False
        self._seen = bytearray(256)  # 1 for each byte value seen after the shared prefix
        self._longest = 0
        self._common: bytes | None = None
        self._stretches: list[_Stretch] = []
        self._owners: dict[Window, tuple[_Stretch, int]] = {}

    @property
    def finished(self) -> bool:
        """Whether every key of the range was in an answered window."""
        return self._first is None and not self._stretches

    def next_window(self) -> Window | None:
        """The next window to read, in key order; None if there is none to send before
        an answer comes (or the plan is finished)."""
        if self._first is not None:
            if self._first_sent:
                return None
            self._first_sent = True
            return self._first
        chosen = self._choose()
        if chosen is None:
            return None
        stretch, window, expected = chosen
        stretch.start = None if window.end == stretch.end else window.end
        stretch.pending += expected
        stretch.in_flight += 1
        self._owners[window] = (stretch, expected)
        return window

    def peek(self) -> Window | None:
        """The window :meth:`next_window` would hand out now, without handing it out."""
        if self._first is not None:
            return None if self._first_sent else self._first
        chosen = self._choose()
        return None if chosen is None else chosen[1]

    def _choose(self) -> tuple[_Stretch, Window, int] | None:
        # The next window and the keys it is expected to hold; nothing changes.
        open_ = [s for s in self._stretches if s.start is not None]
        if not open_:
            return None
        # The stretches are disjoint: the one starting first is next in key order.
        stretch = min(open_, key=lambda s: s.start or b"")
        expected = stretch.left - stretch.pending
        if expected <= 0:
            return None  # the windows in flight likely hold the rest: wait
        start = stretch.start
        assert start is not None
        end = stretch.end
        if self.windows and expected > self.page_size:
            end = self._window_end(stretch, start)
            expected = min(expected, self.target)
        return stretch, Window(start, end, self.page_size), expected

    def answered(self, window: Window, *, count: int, keys: Sequence[bytes]) -> None:
        """Record etcd's answer to ``window``: ``count`` keys in it, ``keys`` the ones
        returned (in key order, at most its limit; fewer is fine).

        :raises ValueError: ``window`` was not handed out, or is answered twice, or the
            answer is impossible (more keys than ``count``, none of a non-empty window)
        """
        if len(keys) > count or (count and not keys):
            raise ValueError(f"an answer of {len(keys)} keys of {count} is impossible")
        self._observe(keys)
        if window is self._first and self._first_sent:
            self._first = None
            self._rest(window, count, keys, _anchor(keys, None))
            return
        try:
            stretch, expected = self._owners.pop(window)
        except KeyError:
            raise ValueError("this window was not handed out, or was answered already") \
                from None
        stretch.in_flight -= 1
        stretch.pending -= expected
        stretch.left -= count
        if count == 0:
            stretch.widen *= GALLOP
        else:
            stretch.widen = 1
            stretch.anchor = _anchor(keys, stretch.anchor)
        self._rest(window, count, keys, stretch.anchor)
        if stretch.in_flight == 0 and (stretch.start is None or stretch.left <= 0):
            self._stretches.remove(stretch)

    def _rest(self, window: Window, count: int, keys: Sequence[bytes],
              anchor: tuple[bytes, bytes, int] | None) -> None:
        # The keys of ``window`` past its limit: a stretch of known size, read next.
        if len(keys) < count:
            self._stretches.append(
                _Stretch(keys[-1] + b"\x00", window.end, count - len(keys), anchor))

    def _observe(self, keys: Sequence[bytes]) -> None:
        # The key line's prefix is what every key seen so far shares (keys ahead
        # usually do too), its alphabet the bytes seen after that prefix. Keys come
        # sorted, so the first and last share what all share; a sample of the
        # others is enough for the alphabet.
        if not keys:
            return
        for key in (*keys[::max(1, len(keys) // 64)], keys[-1]):
            common = self._common
            if common is None:
                common = key
            elif not key.startswith(common):
                length = _shared(common, key)
                # Bytes that were part of the shared prefix are digits from now on.
                self._digit_bytes(common[length:length + MAX_DIGITS])
                common = common[:length]
            self._common = common
            self._digit_bytes(key[len(common):len(common) + MAX_DIGITS])

    def _digit_bytes(self, tail: bytes) -> None:
        seen = self._seen
        for byte in set(tail):
            seen[byte] = 1
        self._longest = max(self._longest, len(tail))

    def line(self, shorter: int = 0) -> KeyLine | None:
        """The key line as the keys seen so far define it (None before two distinct keys);
        ``shorter``: with that many bytes fewer in its prefix, made digits."""
        common = self._common
        if common is None or shorter > len(common):
            return None
        prefix = common[:len(common) - shorter]
        seen = set(common[len(prefix):])
        alphabet = bytes(b for b in range(256) if self._seen[b] or b in seen)
        if len(alphabet) < 2:
            return None
        return KeyLine(prefix, alphabet, min(MAX_DIGITS, self._longest + 1 + shorter))

    def _window_end(self, stretch: _Stretch, start: bytes) -> bytes:
        # Where a window from ``start`` holding about ``target`` keys ends, by the
        # spacing of the anchor's keys; the stretch's end when nothing tells. A
        # window beyond the keys' shared prefix is sized on a line of a shorter one.
        anchor = stretch.anchor
        if anchor is None:
            return stretch.end
        first, last, steps = anchor
        if not steps:
            return stretch.end
        shorter = 0
        while (line := self.line(shorter)) is not None:
            span = line.number(last) - line.number(first)
            if span <= 0:
                return stretch.end
            width = max(1, span * self.target * stretch.widen // steps)
            end_number = line.number(start) + width
            if end_number < line.top:
                end = line.key(end_number)
                if stretch.end != ALL and end >= stretch.end:
                    return stretch.end
                return end
            shorter += 1
        return stretch.end


def _anchor(keys: Sequence[bytes],
            previous: tuple[bytes, bytes, int] | None) -> tuple[bytes, bytes, int] | None:
    # The spacing evidence of a page: its first and last key and the steps between
    # them; with one key, the step from the previous evidence's last key.
    if len(keys) >= 2:
        return keys[0], keys[-1], len(keys) - 1
    if not keys:
        return previous
    if previous is not None and previous[1] < keys[0]:
        return previous[1], keys[0], 1
    return keys[0], keys[0], 0


def _shared(a: bytes, b: bytes) -> int:
    # How many leading bytes ``a`` and ``b`` share.
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
