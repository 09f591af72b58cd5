"""The pages of a range read at one revision, in windows that keep etcd's work linear.

:class:`RangePages` sends the windows a :class:`~etcdwamp.wire.paging.PagePlan`
chooses and hands out etcd's answers in key order, pages read ahead of the one
being consumed so that etcd reads the next ones (on several cores) while the
caller works on this one. ``Client.range_iter``, the command line's export and
the WAMP component's progressive reads are built on it.

Why windows: etcd answers a range with a ``limit`` by walking every key to
``range_end``, so the usual paging (each page ``[after the last key,
range_end)``) costs it O(n² / page size); windows sized to hold about a page
each cost it O(n). Measured on etcd 3.4.23 (``benchmarks/export_memory.py
--paging both``, 1,000,000 keys, 2 cores): the export took 8.8 s and 10.7 s
of etcd's CPU in windows, 102 s and 121 s paged the old way.

Whatever the server's version: etcd 3.5 and 3.6 pass the limit down to their
index but still visit every key to ``range_end`` to count the total of a
limited range (``treeIndex.Revisions`` stops *collecting* at the limit, not
walking), so the old paging stays O(n² / page size) there, with a smaller
constant, while windows cost the same requests as on 3.4: no version is asked
for, none would choose the old way. A range that fits in one page costs what
it did: one request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from typing import Any, Protocol

from twisted.internet.defer import Deferred, ensureDeferred

from .wire import KeySet, KeyValue, RangeResult, as_keyset
from .wire.paging import PagePlan, Window

__all__ = ["READ_AHEAD", "Getter", "RangePages", "key_values"]

#: pages requested ahead of the one being consumed, by default: etcd serves concurrent
#: ranges on several cores (1,000,000 keys exported in ~10 s with 3, ~14 s with 1, on 2
#: cores shared with other work)
READ_AHEAD = 3
#: size pages by windows; False pages the old way (each page to the range's end),
#: which only the export benchmark uses, to compare
WINDOWS = True


class Getter(Protocol):
    """A range read as :meth:`Client.get <etcdwamp.client.Client.get>` (or a namespace's)
    offers it."""

    def __call__(self, key: KeySet, *, limit: int = ..., revision: int = ...,
                 keys_only: bool = ..., serializable: bool = ...
                 ) -> Deferred[RangeResult] | Coroutine[Any, Any, RangeResult]:
        """Read ``key`` (a key set) with these options (the last two only passed when
        true)."""


def _ignore(_: object) -> None:
    return None


class RangePages:
    """The pages of ``keyset`` (at most ``limit`` keys in all; 0: no limit), in key order.

    The first page is the range's first ``page_size`` keys, read exactly as
    ``get(keyset, limit=page_size)`` reads them: its ``count`` is the whole
    range's, its header's revision the one every later page is read at (unless
    ``revision`` is given). Nothing more is requested before the caller asks for
    the second page. Later pages are windows of the range: at most
    ``page_size`` keys each, their ``count`` and ``more`` the window's; from the
    second page on, ``read_ahead`` pages (default :data:`READ_AHEAD`) are requested
    ahead of the one handed out, so up to ``1 + read_ahead`` pages are held at once.

    An error of any read (e.g. :class:`~etcdwamp.errors.RevisionCompacted`) is
    raised when its page is due. Cancelling the caller while it waits for a page
    cancels that read and every read ahead, at once; a caller that stops early
    calls :meth:`close` (``Client.range_iter`` does it in a ``finally``).

    :raises ValueError: ``page_size`` is not a positive int, or ``limit`` is negative
    """

    def __init__(self, get: Getter, keyset: KeySet, *, page_size: int, revision: int = 0,
                 limit: int = 0, keys_only: bool = False, serializable: bool = False,
                 read_ahead: int | None = None) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit!r}")
        self._get = get
        self._keyset = keyset
        self.revision = revision
        self._limit = limit
        # Passed only when set, so that a getter without them (a test's model) does too.
        self._options = {name: True for name, on in (("keys_only", keys_only),
                                                     ("serializable", serializable)) if on}
        start, end = keyset.resolve()
        self._plan = None if end is None else PagePlan(start, end, page_size=page_size,
                                                        windows=WINDOWS)
        self._read_ahead = READ_AHEAD if read_ahead is None else read_ahead
        # (window, the limit sent, the read), in key order
        self._reads: list[tuple[Window, int, Deferred[RangeResult]]] = []
        self._handed = 0  # keys handed out so far
        self._started = False
        self._done = False

    def __aiter__(self) -> RangePages:
        return self

    async def __anext__(self) -> RangeResult:
        if self._done:
            raise StopAsyncIteration
        if self._plan is None:  # one key: one read
            self._done = True
            return await self._get(self._keyset, revision=self.revision, **self._options)
        self._send(1 + self._read_ahead if self._started else 1)
        if not self._reads:
            self._done = True
            raise StopAsyncIteration
        window, _, read = self._reads.pop(0)
        try:
            page = await read
        except BaseException:
            self.close()
            raise
        self._started = True
        if not self.revision:
            self.revision = page.header.revision
        self._plan.answered(window, count=page.count, keys=[kv.key for kv in page.kvs])
        if self._limit and self._handed + len(page.kvs) >= self._limit:
            # A read ahead may hold more than the limit leaves: hand out what it leaves.
            page = replace(page, kvs=page.kvs[:self._limit - self._handed])
            self.close()
        self._handed += len(page.kvs)
        return page

    def _send(self, most: int) -> None:
        # Request windows until ``most`` reads are in flight (or the plan must wait, or
        # the reads in flight cover the limit). A window before the first read in flight
        # (the rest of a window that held more than a page) is always sent: it is due
        # first.
        plan = self._plan
        assert plan is not None
        while (upcoming := plan.peek()) is not None:
            if self._reads and upcoming.start > self._reads[0][0].start:
                if len(self._reads) >= most:
                    return
                if self._limit and self._handed + sum(
                        sent for _, sent, _ in self._reads) >= self._limit:
                    return
            window = plan.next_window()
            assert window == upcoming
            limit = window.limit
            if self._limit:
                limit = min(limit, self._limit - self._handed)
            read = ensureDeferred(self._get(KeySet(window.start, range_end=window.end),
                                            limit=limit, revision=self.revision,
                                            **self._options))
            # Windows are disjoint: ordered by their start, the reads are in key order.
            at = len(self._reads)
            while at and self._reads[at - 1][0].start > window.start:
                at -= 1
            self._reads.insert(at, (window, limit, read))

    def close(self) -> None:
        """Stop: cancel every read in flight; the iteration ends (idempotent)."""
        self._done = True
        reads, self._reads = self._reads, []
        for _, _, read in reads:
            read.addErrback(_ignore)
            read.cancel()


async def key_values(get: Getter, key: bytes | KeySet, *, page_size: int, revision: int = 0,
                     keys_only: bool = False, serializable: bool = False
                     ) -> AsyncIterator[KeyValue]:
    """The key-values of ``key`` (a key or :class:`KeySet`) in key order, read by
    :class:`RangePages` (the arguments are its); the reads in flight are cancelled
    when the iteration stops, however it stops."""
    pages = RangePages(get, as_keyset(key), page_size=page_size, revision=revision,
                       keys_only=keys_only, serializable=serializable)
    try:
        async for page in pages:
            for kv in page.kvs:
                yield kv
    finally:
        pages.close()
