"""Procedure bodies the map and raw-key services share: paged, bounded ranges and
snapshots (see :mod:`.reads`), and all-or-nothing transactions with expectations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError

from .. import errors
from ..client import Client
from ..namespace import Namespace
from ..range_pages import RangePages
from ..wire import DEFAULT_MAX_TXN_OPS, KeySet, KeyValue
from .errors import ErrorUris
from .quota import Cap, TxnItem, capped_txn
from .reads import ROW_BYTES, ReadBounds

__all__ = ["TxnItem", "check_limit", "parse_txn", "read_range", "read_rows", "read_snapshot",
           "run_txn"]


def check_limit(limit: Any) -> int:
    """``limit`` if it is a non-negative int (0: no limit), else ``TypeError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise TypeError("limit must be a non-negative int")
    return limit


async def read_rows(client: Client | Namespace[Client], keyset: KeySet, *, limit: int,
                    progress: Callable[[int, list[dict[str, Any]]], object] | None,
                    bounds: ReadBounds, uris: ErrorUris, max_rows: int,
                    refuse: Callable[[int], str], record: Callable[[KeyValue], dict[str, Any]]
                    ) -> tuple[int, list[dict[str, Any]]]:
    """Read at most ``limit`` (0: all) rows of ``keyset`` at one revision, at most
    ``bounds.page`` keys per etcd request (:class:`~etcdwamp.range_pages.RangePages`:
    windows that keep etcd's work linear); returns that revision and the rows not yet
    sent.

    With ``progress``, every ``bounds.page`` rows go to it (with the revision) as
    soon as they are read and are then forgotten. Without, the result may carry at most
    ``max_rows`` rows: the first page's answer says how many the range holds,
    and a bigger result is refused before more is read (``too_large`` with
    ``refuse(max_rows)`` as message), never cut short. Every row counts against ``bounds.budget``
    until it is sent or the call ends. A cancelled call cancels its reads in flight
    (one page is read ahead of the one being assembled) and requests no more.

    :raises ApplicationError: ``too_large``, or ``busy`` from the budget
    """
    hold = bounds.budget.hold(uris)
    rows: list[dict[str, Any]] = []
    # One page ahead: the component serves many callers at once, in one process.
    pages = RangePages(client.get, keyset, page_size=bounds.page, limit=limit, read_ahead=1)
    revision = 0
    try:
        async for page in pages:
            if not revision:
                revision = page.header.revision
                total = min(limit, page.count) if limit else page.count
                if progress is None and total > max_rows:
                    raise ApplicationError(uris.too_large, refuse(max_rows))
            for kv in page.kvs:
                hold.add(len(kv.key) + len(kv.value) + ROW_BYTES)
                rows.append(record(kv))
                if progress is not None and len(rows) == bounds.page:
                    # A progressive result of one page: the caller sees it now.
                    progress(revision, rows)
                    rows = []
                    hold.release()
        return revision, rows
    finally:
        pages.close()
        hold.release()


def _progress(details: Any) -> Callable[..., object] | None:
    """The caller's progressive-result channel, if it asked for progressive results."""
    return getattr(details, "progress", None)


async def read_range(client: Client | Namespace[Client], keyset: KeySet, limit: Any, details: Any,
                     bounds: ReadBounds, uris: ErrorUris,
                     record: Callable[[KeyValue], dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``range`` procedure's result: at most ``limit`` rows (0: no limit) of ``keyset``
    at one revision.

    A progressive caller gets every full page as a progressive result as it is
    read, and the rest as the result; any other caller gets at most
    ``bounds.max_range_rows`` rows, else ``too_large`` naming that limit and how
    to page (see :func:`read_rows`).
    """
    limit = check_limit(limit)
    channel = _progress(details)
    def refuse(most: int) -> str:
        return (f"the range holds more than {most} rows, the most one result carries "
                f"(max_range_rows): read it in pages with limit={most}, each next page "
                "from_key=<the last key received> (skip that key when it comes again), or "
                "call with receive_progress")

    _, rows = await read_rows(client, keyset, limit=limit,
                              progress=None if channel is None else (
                                  lambda revision, rows: channel(rows)),
                              bounds=bounds, uris=uris, max_rows=bounds.max_range_rows,
                              refuse=refuse, record=record)
    return rows


async def read_snapshot(client: Client | Namespace[Client], keyset: KeySet, details: Any,
                        bounds: ReadBounds, uris: ErrorUris,
                        record: Callable[[KeyValue], dict[str, Any]]) -> dict[str, Any]:
    """A ``get_and_watch`` procedure's result: ``{revision, items}``, every row of
    ``keyset`` at one revision.

    A progressive caller gets the snapshot in pages, each a progressive result
    ``{revision, items}`` with the same revision, the last page as the result;
    any other caller gets at most ``bounds.max_snapshot_rows`` rows, else
    ``too_large`` saying to call with receive_progress.
    """
    channel = _progress(details)
    def refuse(most: int) -> str:
        return (f"the map holds more than {most} rows, the most one snapshot carries "
                "(max_snapshot_rows): call get_and_watch with receive_progress to get it "
                "in pages")

    revision, rows = await read_rows(client, keyset, limit=0,
                                     progress=None if channel is None else (
                                         lambda revision, rows: channel(
                                             {"revision": revision, "items": rows})),
                                     bounds=bounds, uris=uris,
                                     max_rows=bounds.max_snapshot_rows, refuse=refuse,
                                     record=record)
    return {"revision": revision, "items": rows}


def parse_txn(ops: Any, expect: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Check the shape of a ``txn`` call before any key is resolved."""
    if not isinstance(ops, list) or not ops:
        raise TypeError("ops must be a non-empty list of {op, ...} objects")
    expect = [] if expect is None else expect
    if not isinstance(expect, list):
        raise TypeError("expect must be a list of {key, revision} objects")
    if len(ops) > DEFAULT_MAX_TXN_OPS or len(expect) > DEFAULT_MAX_TXN_OPS:
        raise errors.TooManyOps(f"at most {DEFAULT_MAX_TXN_OPS} ops and expectations "
                                "per transaction (etcd's --max-txn-ops)")
    for item in ops:
        if not isinstance(item, dict):
            raise TypeError("each op must be an object")
        if item.get("op") not in ("put", "delete"):
            raise ValueError(f"op must be 'put' or 'delete', got {item.get('op')!r}")
    for item in expect:
        if not isinstance(item, dict):
            raise TypeError("each expectation must be an object")
        revision = item.get("revision")
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise TypeError("expect revision must be a non-negative int")
    return ops, expect


async def run_txn(client: Client | Namespace[Client], uris: ErrorUris, writes: list[TxnItem],
                  expectations: list[TxnItem], caps: list[Cap | None] | None = None
                  ) -> dict[str, Any]:
    """All writes if every expectation holds (mod revision equal; 0 = absent) and no key
    cap would be exceeded, else nothing and ``<prefix>.error.conflict`` (or
    ``quota_exceeded``). Callers check every rule and size on every item before calling
    this: nothing is sent to etcd before that."""
    keys = [w.key for w in writes]
    if len(set(keys)) != len(keys):
        # etcd would refuse it too, naming the key as stored (with our prefixes).
        raise ValueError("ops name the same key twice")
    result = await capped_txn(client, uris, writes, expectations,
                              caps if caps is not None else [None] * len(writes))
    return {"revision": result.revision}
