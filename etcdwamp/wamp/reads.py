"""Bounds on what the component's reads hold in memory: rows per result, rows per
snapshot, and one byte budget for all results in flight.

Everything a read returns passes through the process that hosts the component
(embedded: Crossbar's router worker, on which every session depends). Without
bounds, each concurrent caller could make that process hold a whole map: on a
20,000-key, 10 MB map, 16 ``get_and_watch`` calls and one ``range`` raised the
router worker's peak RSS by 541 MiB (the asyncio component's by 554 MiB).
So every read is bounded three ways (settings in ``extra``, defaults in
:class:`~etcdwamp.wamp.settings.Settings`):

- **Progressive callers** (``receive_progress``) get any size, one page of
  ``range_page`` rows (100) at a time, each sent as soon as it is read and then
  forgotten (read in windows that keep etcd's work linear, one page ahead:
  :mod:`etcdwamp.range_pages`): ``range`` pages are lists of rows, ``get_and_watch`` pages are
  ``{revision, items}`` with the snapshot's revision; the call's result is the
  last page. With them the crowd above raises the peak RSS by under 5 MiB.
- **Other callers** get at most ``max_range_rows`` rows (1000) from ``range``
  and ``max_snapshot_rows`` (10000) from ``get_and_watch``; a bigger result is
  refused at once with ``<prefix>.error.too_large`` naming the limit, after the
  first page told how many rows the range holds, never cut short. To page
  without progressive results, call ``range`` with ``limit`` up to
  ``max_range_rows``, then again with ``from_key`` set to the last key received
  (that row comes again if it still exists: skip it) until a page is shorter
  than ``limit``. Each page is read at its own revision; for one revision across
  all, use progressive results.
- **In-flight bytes**: the estimated size (key and value bytes, plus
  :data:`ROW_BYTES` per row) of every result being assembled, across all calls,
  stays within ``max_inflight_bytes`` (32 MiB). A call whose rows would go
  beyond it is refused at once with ``<prefix>.error.busy`` (retry later; a
  progressive caller may continue with ``from_key``), or with ``too_large`` if
  its result alone exceeds the budget or :data:`MAX_RESULT_BYTES` (4 MiB, half
  of the committed node config's message size limit): a clear error for some callers rather
  than a slow death for all. Refused, not queued: a wait would hold the
  caller's rows, and its connection, for nothing. Decoded rows and their
  serialized copy take about three times the estimate: 32 plain snapshots of
  10,000 rows (5.8 MB each) at once raised the router worker's peak RSS by
  85 MiB (the asyncio component's by 143 MiB), 26 of them refused with ``busy``.

Bytes queued by Crossbar for a caller that reads its WebSocket slowly are
outside the budget: the router offers the component no backpressure.
Pure bookkeeping: no I/O here (the reads themselves are in :mod:`.ops`).
"""

from __future__ import annotations

from dataclasses import dataclass

from autobahn.wamp.exception import ApplicationError

from .errors import ErrorUris

__all__ = ["MAX_RESULT_BYTES", "ROW_BYTES", "Hold", "InflightBudget", "ReadBounds"]

#: what a row costs beyond its key and value bytes in the estimate (the record's
#: field names, revision and framing as serialized)
ROW_BYTES = 64
#: the most one result may hold, estimated: Crossbar refuses a WebSocket message above
#: the transport's ``max_message_size`` (16 MiB by default, 8 MiB in the committed node
#: config), outgoing ones included, with its own error naming the component's session
#: and role; a result serialized as JSON (bytes as base64) grows beyond the estimate, so
#: half of that limit leaves the margin
MAX_RESULT_BYTES = 4 * 1024 * 1024


class InflightBudget:
    """Bytes of results in flight across all calls of one component, at most ``limit``.

    :raises ValueError: ``limit`` is not positive
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("the in-flight budget must be a positive number of bytes")
        self.limit = limit
        self.used = 0

    def hold(self, uris: ErrorUris) -> Hold:
        """A new, empty share of the budget for one call (release it when the call ends)."""
        return Hold(self, uris)


class Hold:
    """One call's share of an :class:`InflightBudget`: grows row by row, released at once."""

    def __init__(self, budget: InflightBudget, uris: ErrorUris) -> None:
        self.budget = budget
        self.uris = uris
        self.held = 0

    def add(self, size: int) -> None:
        """Count ``size`` more bytes against the budget.

        :raises ApplicationError: ``too_large`` if this call's bytes alone would exceed
            the budget, ``busy`` if they would together with the other calls' (nothing
            is added then; what the call held so far stays held until :meth:`release`)
        """
        budget = self.budget
        most = min(budget.limit, MAX_RESULT_BYTES)
        if self.held + size > most:
            raise ApplicationError(
                self.uris.too_large,
                f"the result is larger than one result may be ({most} bytes): read it in "
                "pages with limit and from_key, or call with receive_progress")
        if budget.used + size > budget.limit:
            raise ApplicationError(
                self.uris.busy, "the component is busy sending other results; try again "
                "shortly")
        budget.used += size
        self.held += size

    def release(self) -> None:
        """Give every byte this call holds back to the budget (idempotent)."""
        self.budget.used -= self.held
        self.held = 0


@dataclass(frozen=True)
class ReadBounds:
    """How the component's reads are paged and bounded (from its settings)."""

    budget: InflightBudget
    #: keys per etcd request, and rows per progressive result
    page: int = 100
    #: rows a non-progressive ``range`` result may carry
    max_range_rows: int = 1000
    #: rows a non-progressive ``get_and_watch`` snapshot may carry
    max_snapshot_rows: int = 10000
