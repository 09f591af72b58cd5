"""Several single-key requests as one transaction: the pure half of coalescing.

:func:`plan_batches` splits requests, in the order they were made, into
groups that etcd accepts as one transaction: at most ``max_ops`` ops, at most
``max_bytes`` in total, and no key twice (etcd refuses a txn that writes a key
twice, and a key read after a write in the same txn would see that write,
which the callers did not ask for). :func:`batch_request` builds the
transaction of one group; its answer parses into one result per request, in
order, each of the type the request alone would have produced, all carrying
the transaction's header (one revision for the whole group).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from .requests import _OVERHEAD, Request
from .results import DeleteResult, OpResult, PutResult, RangeResult, TxnResult, parse_txn

__all__ = ["BatchParse", "batch_request", "batchable", "plan_batches"]

# Request path -> (name of the op inside a txn, result type it parses into).
_TXN_OPS: dict[str, tuple[str, type]] = {
    "/kv/put": ("request_put", PutResult),
    "/kv/deleterange": ("request_delete_range", DeleteResult),
    "/kv/range": ("request_range", RangeResult),
}


def batchable(request: Request[Any]) -> bool:
    """Whether ``request`` can travel inside a batch: a put, delete or range
    of exactly one key."""
    return request.path in _TXN_OPS and "range_end" not in request.body


def plan_batches(requests: Sequence[Request[Any]], *, max_ops: int,
                 max_bytes: int) -> list[list[int]]:
    """Indices of ``requests`` grouped into transactions, order kept.

    A request larger than ``max_bytes`` on its own gets a group of its own
    (sent alone it fails the way it would have without coalescing).
    """
    if max_ops < 1:
        raise ValueError("max_ops must be at least 1")
    groups: list[list[int]] = []
    current: list[int] = []
    keys: set[str] = set()
    size = _OVERHEAD
    for index, request in enumerate(requests):
        if not batchable(request):
            raise ValueError(f"{request.path} with a key range cannot be batched")
        key = request.body["key"]  # base64: equal strings <=> equal keys
        if current and (key in keys or len(current) >= max_ops
                        or size + request.size > max_bytes):
            groups.append(current)
            current, keys, size = [], set(), _OVERHEAD
        current.append(index)
        keys.add(key)
        size += request.size
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True, slots=True)
class BatchParse:
    """The parser of a batch's answer: the transaction's results, one per request and each
    of the type the request alone gets; a mismatch is a :class:`ProtocolError`."""

    #: the result type of each request, in order
    expected: tuple[type, ...]

    def __call__(self, obj: Mapping[str, Any]) -> tuple[OpResult, ...]:
        """The results in the gateway's JSON answer ``obj`` (a TxnResponse)."""
        return self.results(parse_txn(obj))

    def results(self, txn: TxnResult) -> tuple[OpResult, ...]:
        """The results in the transaction's answer, however it was decoded (the gRPC
        codec decodes it without JSON)."""
        responses = txn.responses
        if len(responses) != len(self.expected) or not all(
                type(r) is t for r, t in zip(responses, self.expected, strict=True)):
            raise ProtocolError(
                f"a batch of {len(self.expected)} ops got {len(responses)} answers that do "
                f"not match it: {[type(r).__name__ for r in responses]}")
        return responses


def batch_request(requests: Sequence[Request[Any]]) -> Request[tuple[OpResult, ...]]:
    """One transaction (no compares) running every request in order."""
    ops = [{_TXN_OPS[r.path][0]: r.body} for r in requests]
    parse = BatchParse(tuple(_TXN_OPS[r.path][1] for r in requests))
    return Request("/kv/txn", {"success": ops}, parse,
                   idempotent=all(r.path == "/kv/range" for r in requests),
                   size=_OVERHEAD + sum(r.size for r in requests))
