"""What one write may cost etcd: key and value sizes, and key caps, of maps and kv prefixes.

Sizes are checked before anything is sent. A key cap (``max_keys``) is exact,
also under concurrent writers: a write that creates keys under a capped
prefix commits only if no key was created there since the count it was
decided on (a range compare on the create revision, evaluated by etcd in the
same transaction as the writes), and counts again otherwise. Updates of
existing keys never need the count: the first attempt commits at once when
every capped put finds its key present.
"""

from __future__ import annotations

from dataclasses import dataclass

from autobahn.wamp.exception import ApplicationError

from ..client import Client
from ..namespace import Namespace
from ..wire import (
    DEFAULT_MAX_TXN_OPS,
    Compare,
    CompCreated,
    CompModified,
    CompVersion,
    KeySet,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
    TxnResult,
)
from .errors import ErrorUris

__all__ = ["Cap", "TxnItem", "capped_txn", "check_sizes"]

#: attempts of a capped write whose count went stale (another writer created a key
#: under the same cap meanwhile) before the caller is told to retry. Each round lets at
#: least one of the concurrent creators commit, and once the cap is full every other one
#: sees it: enough rounds that writers racing for the last keys get ``quota_exceeded``,
#: not ``conflict``
_ATTEMPTS = 16


@dataclass(frozen=True)
class TxnItem:
    """One op or expectation of a write, its key resolved to etcd bytes."""

    key: bytes
    op: str | None = None  # "put" / "delete" for ops, None for expectations
    value: bytes | None = None
    revision: int = 0
    lease: int = 0  # a put's lease (0: none)


@dataclass(frozen=True)
class Cap:
    """At most ``max_keys`` keys in ``keyset``; ``target`` names it to callers."""

    keyset: KeySet
    max_keys: int
    target: str


def check_sizes(uris: ErrorUris, target: str, *, key: int, value: int | None,
                max_key: int, max_value: int) -> None:
    """Refuse a key of ``key`` bytes or a value of ``value`` bytes beyond the limits of
    ``target`` with ``too_large``, before anything is sent."""
    if key > max_key:
        raise ApplicationError(uris.too_large, f"{target}: the key is {key} bytes, at most "
                               f"{max_key} are allowed")
    if value is not None and value > max_value:
        raise ApplicationError(uris.too_large, f"{target}: the value is {value} bytes, at "
                               f"most {max_value} are allowed")


def _ops(writes: list[TxnItem]) -> list[OpSet | OpDel]:
    return [OpSet(w.key, w.value if w.value is not None else b"", lease=w.lease)
            if w.op == "put" else OpDel(w.key) for w in writes]


async def capped_txn(client: Client | Namespace[Client], uris: ErrorUris, writes: list[TxnItem],
                     expectations: list[TxnItem], caps: list[Cap | None]) -> TxnResult:
    """All ``writes`` if every expectation holds (mod revision equal; 0: absent) and no
    cap of ``caps`` (one per write, None: uncapped) would hold more keys than allowed.

    One flat etcd transaction per attempt: its compares are the expectations and the
    cap guard; when they fail, its failure branch reads what tells the two apart (the
    expected keys' revisions) and what a new decision needs (each cap's count and
    whether each capped key exists), all at one revision.

    :raises ApplicationError: ``conflict`` when an expectation fails, ``quota_exceeded``
        when the writes would create keys beyond a cap, ``too_large`` when the guarded
        form of the transaction would exceed etcd's 128 operations per branch (nothing
        is written in every case)
    """
    expected: list[Compare] = [CompModified(e.key, "==", e.revision) for e in expectations]
    success = _ops(writes)
    capped = [(w, c) for w, c in zip(writes, caps, strict=True) if c is not None]
    if not capped:
        result = await client.txn(Transaction(compare=expected, success=success))
        if not result.succeeded:
            raise _stale(uris)
        return result
    distinct = list({c.keyset: c for _, c in capped}.values())
    keys = sorted({w.key for w, _ in capped})
    failure = ([OpGet(e.key, keys_only=True) for e in expectations]
               + [OpGet(c.keyset, count_only=True) for c in distinct]
               + [OpGet(k, count_only=True) for k in keys])
    # First attempt: commit at once if no capped put creates a key.
    guard: list[Compare] = [CompVersion(w.key, ">", 0) for w, _ in capped if w.op == "put"]
    widest = max(len(expected) + max(len(guard), len(distinct)), len(failure))
    if widest > DEFAULT_MAX_TXN_OPS:
        raise ApplicationError(uris.too_large, "a transaction writing where keys are capped "
                               f"takes at most {DEFAULT_MAX_TXN_OPS} expectations, caps and "
                               "capped keys together; split it")
    for _ in range(_ATTEMPTS):
        result = await client.txn(Transaction(compare=expected + guard, success=success,
                                              failure=failure))
        if result.succeeded:
            return result
        answers = list(result.responses)
        for item, answer in zip(expectations, answers, strict=False):
            found = getattr(answer, "kvs", ())
            if (found[0].mod_revision if found else 0) != item.revision:
                raise _stale(uris)
        counts = [getattr(r, "count", 0) for r in answers[len(expectations):]]
        present = {k: n > 0 for k, n in zip(keys, counts[len(distinct):], strict=True)}
        for cap, count in zip(distinct, counts[:len(distinct)], strict=True):
            mine = [w for w, c in capped if c is not None and c.keyset == cap.keyset]
            created = {w.key for w in mine if w.op == "put" and not present[w.key]}
            deleted = {w.key for w in mine if w.op == "delete" and present[w.key]}
            if created and count + len(created) - len(deleted) > cap.max_keys:
                raise ApplicationError(uris.quota_exceeded, f"{cap.target} holds at most "
                                       f"{cap.max_keys} keys; delete some before adding more")
        guard = [CompCreated(c.keyset, "<", result.revision + 1) for c in distinct]
    raise ApplicationError(uris.conflict, "keys were added concurrently too often to count "
                           "them; nothing was written, try again")


def _stale(uris: ErrorUris) -> ApplicationError:
    return ApplicationError(uris.conflict, "an expected revision is stale; nothing was written")
