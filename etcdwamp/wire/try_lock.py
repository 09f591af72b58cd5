"""A lock taken without waiting, in the key layout of etcd's lock service.

etcd's ``/lock/lock`` (server/etcdserver/api/v3lock, a ``concurrency.Mutex``)
puts the waiter's key ``<name>/<lease id in hex>`` under the waiter's lease and
holds the lock once no key under ``<name>/`` has an older create revision.
A try-lock does the same put and reads the oldest key under the prefix in one
transaction, as the Go client's ``Mutex.TryLock`` does: it holds the lock if
that key is its own, so try-locks and ``/lock/lock`` waiters exclude each
other; otherwise its key must go again (revoke its lease).
"""

from __future__ import annotations

from .encoding import require_bytes, require_int
from .keyset import KeySet
from .requests import Request
from .results import RangeResult, TxnResult
from .txn import OpGet, OpSet, Transaction, txn_request

__all__ = ["lock_key", "try_lock_request", "try_lock_token"]


def lock_key(name: bytes, lease_id: int) -> bytes:
    """The key etcd's lock service gives the waiter on lock ``name`` under ``lease_id``."""
    name = require_bytes(name, "name")
    if not name:
        raise ValueError("lock/election name must not be empty")
    lease_id = require_int(lease_id, "lease_id", minimum=1)
    return name + b"/" + format(lease_id, "x").encode()


def try_lock_request(name: bytes, lease_id: int) -> Request[TxnResult]:
    """A transaction putting ``lock_key(name, lease_id)`` under the lease and reading
    the key with the oldest create revision under ``name + b"/"``.

    Not resent on an unknown outcome (a put); revoking the lease undoes it.
    """
    key = lock_key(name, lease_id)
    oldest = OpGet(KeySet(name + b"/", prefix=True), sort_order="ASCEND",
                   sort_target="CREATE", limit=1)
    return txn_request(Transaction(success=[OpSet(key, b"", lease=lease_id), oldest]))


def try_lock_token(result: TxnResult, key: bytes) -> int | None:
    """The fencing token (``key``'s create revision) if the answer to
    :func:`try_lock_request` shows ``key`` holding the lock; None if another holds it."""
    oldest = result.responses[-1]
    if not isinstance(oldest, RangeResult) or not oldest.kvs:
        return None  # cannot happen (our put precedes the read); claim nothing then
    owner = oldest.kvs[0]
    return owner.create_revision if owner.key == key else None
