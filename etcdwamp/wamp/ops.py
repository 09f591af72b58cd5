"""Procedure bodies the map and raw-key services share: paged ranges and
all-or-nothing transactions with expectations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import errors
from ..client import Client
from ..namespace import Namespace
from ..wire import DEFAULT_MAX_TXN_OPS, KeySet
from .errors import ErrorUris
from .quota import Cap, TxnItem, capped_txn

__all__ = ["TxnItem", "check_limit", "parse_txn", "read_range", "run_txn"]


def check_limit(limit: Any) -> int:
    """``limit`` if it is a non-negative int (0: no limit), else ``TypeError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise TypeError("limit must be a non-negative int")
    return limit


async def read_range(client: Client | Namespace, keyset: KeySet, limit: Any, details: Any,
                     page_size: int, record: Callable[[Any], dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Read ``keyset`` at one revision, ``page_size`` keys per etcd request.

    With a caller that asked for progressive results, every full page is sent
    as soon as it is read and only the rest is returned; a cancelled call
    stops before the next page is requested (the client's read is cancelled
    with the call)."""
    limit = check_limit(limit)
    progress = getattr(details, "progress", None)
    page: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    n = 0
    per_request = min(page_size, limit) if limit else page_size
    async for kv in client.range_iter(keyset, page_size=per_request):
        n += 1
        if progress is not None:
            page.append(record(kv))
            if len(page) >= page_size:
                progress(page)  # a progressive result: the caller sees it now
                page = []
        else:
            out.append(record(kv))
        if limit and n >= limit:
            break
    return page if progress is not None else out


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


async def run_txn(client: Client | Namespace, uris: ErrorUris, writes: list[TxnItem],
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
