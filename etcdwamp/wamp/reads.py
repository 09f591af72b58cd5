"""Bounds on what the component's reads hold in memory: rows per result, rows per
snapshot, and one byte budget for all results in flight.

Everything a read returns passes through the process that hosts the component
(embedded: Crossbar's router worker, which every session depends on). A read
without bounds can make that process hold a whole map once per concurrent
caller, so every read is bounded three ways:

- a non-progressive ``range`` result carries at most ``max_range_rows`` rows, a
  non-progressive ``get_and_watch`` snapshot at most ``max_snapshot_rows``; a
  bigger one is refused at once (``too_large``, naming the limit and how to
  page), never cut short. Progressive callers get any size, one page
  (``range_page`` rows) at a time, each sent as soon as it is read;
- :class:`InflightBudget`: the estimated bytes of every result being assembled
  or handed to Autobahn, across all calls, stay below ``max_inflight_bytes``; a
  call whose rows would go beyond it is refused at once with ``busy`` (or
  ``too_large`` if its result alone is bigger than the whole budget), so a
  burst of big reads is a clear error for some callers, never a slow death for
  all.

Pure bookkeeping: no I/O here (the reads themselves are in :mod:`.ops`).
"""

from __future__ import annotations

from dataclasses import dataclass

from autobahn.wamp.exception import ApplicationError

from .errors import ErrorUris

__all__ = ["ROW_BYTES", "Hold", "InflightBudget", "ReadBounds"]

#: what a row costs beyond its key and value bytes in the estimate (the record's
#: field names, revision and framing as serialized)
ROW_BYTES = 64


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
        if self.held + size > budget.limit:
            raise ApplicationError(
                self.uris.too_large,
                f"the result is larger than the component's read budget "
                f"({budget.limit} bytes in flight): read it in pages with limit and "
                "from_key, or call with receive_progress")
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
