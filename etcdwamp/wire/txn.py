"""Transactions: compares, operations, and their validation against etcd's limits.

``Transaction(compare=[...], success=[...], failure=[...])``: etcd evaluates
all compares atomically; if every one holds, the ``success`` ops run, else the
``failure`` ops. Either way the result is a :class:`~etcdwamp.wire.TxnResult`
(``succeeded`` tells which branch ran), never an exception.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ..errors import DuplicateKey, TooManyOps
from .encoding import b64, int64, require_bytes, require_int
from .keyset import KeySet, as_keyset
from .requests import (
    _OVERHEAD,
    Request,
    delete_body,
    keyset_size,
    put_body,
    range_body,
)
from .results import TxnResult, parse_txn

__all__ = [
    "DEFAULT_MAX_TXN_OPS",
    "CompCreated",
    "CompLease",
    "CompModified",
    "CompValue",
    "CompVersion",
    "Compare",
    "OpDel",
    "OpGet",
    "OpSet",
    "Transaction",
    "txn_request",
]

#: etcd's default ``--max-txn-ops``.
DEFAULT_MAX_TXN_OPS = 128


class CompareResult(enum.Enum):
    """The operator of a :class:`Compare`; given as a member, its symbol (``"=="``) or its name."""

    EQUAL = "=="
    NOT_EQUAL = "!="
    GREATER = ">"
    LESS = "<"


def _compare_result(op: str | CompareResult) -> CompareResult:
    if isinstance(op, CompareResult):
        return op
    for member in CompareResult:
        if op == member.value or (isinstance(op, str) and op.upper() == member.name):
            return member
    raise ValueError(f"compare operator must be one of ==, !=, >, <; got {op!r}")


@dataclass(frozen=True, init=False)
class Compare:
    """One compare of a transaction; use the ``Comp*`` subclasses."""

    keyset: KeySet
    result: CompareResult
    operand: bytes | int
    target: ClassVar[str] = ""  # etcd's CompareTarget name
    _field: ClassVar[str] = ""  # the JSON field holding the operand

    def __init__(self, key: bytes | KeySet, compare: str | CompareResult,
                 operand: bytes | int) -> None:
        object.__setattr__(self, "keyset", as_keyset(key))
        object.__setattr__(self, "result", _compare_result(compare))
        object.__setattr__(self, "operand", self._check(operand))

    def _check(self, operand: Any) -> bytes | int:
        return require_int(operand, f"{type(self).__name__} operand", minimum=0)

    def to_json(self) -> dict[str, Any]:
        """The JSON of this compare in a TxnRequest."""
        key, range_end = self.keyset.resolve()
        body: dict[str, Any] = {
            "result": self.result.name,
            "target": self.target,
            "key": b64(key),
        }
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if isinstance(self.operand, bytes):
            body[self._field] = b64(self.operand)
        else:
            body[self._field] = int64(self.operand)
        return body

    def size(self) -> int:
        """Estimated bytes this compare adds to the request."""
        extra = len(self.operand) if isinstance(self.operand, bytes) else 8
        return keyset_size(self.keyset) + extra


class CompValue(Compare):
    """Compare the value: ``CompValue(b"k", "==", b"v")``."""

    target = "VALUE"
    _field = "value"

    def _check(self, operand: Any) -> bytes | int:
        return require_bytes(operand, "CompValue operand")


class CompVersion(Compare):
    """Compare the version (0 = the key does not exist)."""

    target = "VERSION"
    _field = "version"


class CompCreated(Compare):
    """Compare the create revision."""

    target = "CREATE"
    _field = "create_revision"


class CompModified(Compare):
    """Compare the mod revision (the usual optimistic-concurrency guard)."""

    target = "MOD"
    _field = "mod_revision"


class CompLease(Compare):
    """Compare the lease id (0 = no lease)."""

    target = "LEASE"
    _field = "lease"


@dataclass(frozen=True, init=False)
class OpGet:
    """A range read inside a transaction; options as for ``Client.get``."""

    keyset: KeySet
    options: tuple[tuple[str, Any], ...]

    def __init__(self, key: bytes | KeySet, **options: Any) -> None:
        keyset = as_keyset(key)
        range_body(keyset, **options)  # validate now, not at submit time
        object.__setattr__(self, "keyset", keyset)
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    def to_json(self) -> dict[str, Any]:
        """The JSON of this op in a TxnRequest."""
        return {"request_range": range_body(self.keyset, **dict(self.options))}

    def size(self) -> int:
        """Estimated bytes this op adds to the request."""
        return keyset_size(self.keyset)


@dataclass(frozen=True, init=False)
class OpSet:
    """A put inside a transaction; options as for ``Client.put``."""

    key: bytes
    value: bytes
    options: tuple[tuple[str, Any], ...]

    def __init__(self, key: bytes, value: bytes, **options: Any) -> None:
        put_body(key, value, **options)
        object.__setattr__(self, "key", bytes(key))
        object.__setattr__(self, "value", bytes(value))
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    def to_json(self) -> dict[str, Any]:
        """The JSON of this op in a TxnRequest."""
        return {"request_put": put_body(self.key, self.value, **dict(self.options))}

    def size(self) -> int:
        """Estimated bytes this op adds to the request."""
        return len(self.key) + len(self.value) + _OVERHEAD


@dataclass(frozen=True, init=False)
class OpDel:
    """A delete inside a transaction."""

    keyset: KeySet
    prev_kv: bool

    def __init__(self, key: bytes | KeySet, *, prev_kv: bool = False) -> None:
        keyset = as_keyset(key)
        delete_body(keyset, prev_kv=prev_kv)
        object.__setattr__(self, "keyset", keyset)
        object.__setattr__(self, "prev_kv", prev_kv)

    def to_json(self) -> dict[str, Any]:
        """The JSON of this op in a TxnRequest."""
        return {"request_delete_range": delete_body(self.keyset, prev_kv=self.prev_kv)}

    def size(self) -> int:
        """Estimated bytes this op adds to the request."""
        return keyset_size(self.keyset)


Op = Union[OpGet, OpSet, OpDel, "Transaction"]
_OP_TYPES = (OpGet, OpSet, OpDel)


@dataclass(frozen=True, init=False)
class Transaction:
    """An etcd transaction; may itself be an op of an outer transaction."""

    compare: tuple[Compare, ...]
    success: tuple[Op, ...]
    failure: tuple[Op, ...]

    def __init__(self, compare: Iterable[Compare] = (), success: Iterable[Op] = (),
                 failure: Iterable[Op] = ()) -> None:
        comps = tuple(compare)
        for c in comps:
            if not isinstance(c, Compare):
                raise TypeError(f"compare items must be Comp* objects, not {type(c).__name__}")
        succ, fail = tuple(success), tuple(failure)
        for op in succ + fail:
            if not isinstance(op, (*_OP_TYPES, Transaction)):
                raise TypeError(
                    f"transaction ops must be OpGet/OpSet/OpDel/Transaction, "
                    f"not {type(op).__name__}"
                )
        object.__setattr__(self, "compare", comps)
        object.__setattr__(self, "success", succ)
        object.__setattr__(self, "failure", fail)

    def to_json(self) -> dict[str, Any]:
        """The JSON of this transaction as a TxnRequest (nested ones as ``request_txn`` ops)."""
        body: dict[str, Any] = {}
        if self.compare:
            body["compare"] = [c.to_json() for c in self.compare]
        if self.success:
            body["success"] = [_op_json(op) for op in self.success]
        if self.failure:
            body["failure"] = [_op_json(op) for op in self.failure]
        return body

    def size(self) -> int:
        """Estimated bytes of the request, nested transactions included."""
        return (sum(c.size() for c in self.compare)
                + sum(op.size() for op in self.success + self.failure) + _OVERHEAD)

    def validate(self, max_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
        """Apply etcd's own checks: op count (nested txns share the budget) and
        no key written twice in one branch.

        :raises TooManyOps: more ops than ``max_ops`` (etcd's ``--max-txn-ops``)
        :raises DuplicateKey: a key put twice, or put and deleted, in one branch
        """
        widest = max(len(self.compare), len(self.success), len(self.failure))
        if widest > max_ops:
            raise TooManyOps(
                f"too many operations in txn request: {widest} ops in one part, "
                f"etcd's limit is {max_ops} (--max-txn-ops)"
            )
        # Like etcd, a nested transaction gets the budget its parent left over.
        for op in self.success + self.failure:
            if isinstance(op, Transaction):
                op.validate(max_ops - widest)
        for branch in (self.success, self.failure):
            _check_branch(branch)


def _op_json(op: Op) -> dict[str, Any]:
    if isinstance(op, Transaction):
        return {"request_txn": op.to_json()}
    return op.to_json()


def _branch_writes(branch: Sequence[Op]) -> tuple[list[bytes], list[KeySet]]:
    """Put keys and delete ranges of one branch (each nested branch separately
    would be more lenient; etcd checks every path, so we flatten both)."""
    puts: list[bytes] = []
    dels: list[KeySet] = []
    for op in branch:
        if isinstance(op, OpSet):
            puts.append(op.key)
        elif isinstance(op, OpDel):
            dels.append(op.keyset)
    return puts, dels


def _check_branch(branch: Sequence[Op]) -> None:
    puts, dels = _branch_writes(branch)
    seen: set[bytes] = set()
    for key in puts:
        if key in seen:
            raise DuplicateKey(f"duplicate key given in txn request: {key!r} is put twice")
        seen.add(key)
    for keyset in dels:
        for key in puts:
            if keyset.contains(key):
                raise DuplicateKey(
                    f"duplicate key given in txn request: {key!r} is put and deleted"
                )
    # Nested transactions: each of their branches combined with ours.
    for op in branch:
        if isinstance(op, Transaction):
            for inner in (op.success, op.failure):
                inner_puts, inner_dels = _branch_writes(inner)
                for key in inner_puts:
                    if key in seen or any(ks.contains(key) for ks in dels):
                        raise DuplicateKey(
                            f"duplicate key given in txn request: {key!r} is written by "
                            "the transaction and by a nested transaction"
                        )
                for ks in inner_dels:
                    if any(ks.contains(key) for key in seen):
                        raise DuplicateKey(
                            "duplicate key given in txn request: a nested transaction "
                            "deletes a key the transaction puts"
                        )


def txn_request(txn: Transaction, *, max_ops: int = DEFAULT_MAX_TXN_OPS) -> Request[TxnResult]:
    """A ``/kv/txn`` call for ``txn``, checked against etcd's limits before it is sent.

    Resent on an unknown outcome only if no branch writes.

    :raises TypeError: ``txn`` is not a :class:`Transaction`
    :raises TooManyOps: more ops in one part than ``max_ops`` (etcd's ``--max-txn-ops``)
    :raises DuplicateKey: a branch writes one key twice
    """
    if not isinstance(txn, Transaction):
        raise TypeError(f"expected a Transaction, not {type(txn).__name__}")
    txn.validate(max_ops)
    writes = any(not isinstance(op, OpGet) for op in txn.success + txn.failure)
    return Request("/kv/txn", txn.to_json(), parse_txn, idempotent=not writes,
                   size=txn.size())
