"""A client whose keys all live under one prefix (clientv3's ``namespace`` package).

``client.namespace(b"app/")`` returns a :class:`Namespace`: ``ns.put(b"k", v)``
writes ``app/k``; ranges, transactions (compares and ops, nested too), watches,
leases' key lists, locks and elections are prefixed the same way, and every
key in an answer comes back without the prefix. A range over "every key"
(``KeySet.all()``, or a range ending at ``b"\\0"``) stops at the end of the
namespace, so nothing outside it is ever read, written or watched.

Built on the client's public API only; what the namespace does not wrap
(membership, maintenance, auth) is reached through :attr:`Namespace.client`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred

from . import errors
from ._deferred import deferred
from .wire import (
    Compare,
    DeleteResult,
    KeySet,
    KeyValue,
    LeaseInfo,
    OpDel,
    OpGet,
    OpResult,
    OpSet,
    PutResult,
    RangeResult,
    SortOrder,
    SortTarget,
    StatusResult,
    Transaction,
    TxnResult,
    as_keyset,
    prefix_range_end,
    require_bytes,
)
from .wire.watch import WatchEvent, WatchFilter
from .wire.watch_state import WatchBatch

if TYPE_CHECKING:
    from .lease import Lease
    from .lock import Election, Lock
    from .watch import Watch

__all__ = ["Namespace", "NamespaceHost", "NamespacedWatch"]


class NamespaceHost(Protocol):
    """What a :class:`Namespace` needs of the client under it
    (:class:`~etcdwamp.client.Client` has it); keeps this module free of the client's."""

    max_txn_ops: int

    def status(self) -> Deferred[StatusResult]:
        """The client's :meth:`~etcdwamp.client.Client.status`."""

    def get(self, key: bytes | KeySet, *, limit: int = ..., revision: int = ...,
            sort_order: SortOrder | str = ..., sort_target: SortTarget | str = ...,
            serializable: bool = ..., keys_only: bool = ..., count_only: bool = ...,
            min_mod_revision: int = ..., max_mod_revision: int = ...,
            min_create_revision: int = ..., max_create_revision: int = ...,
            ) -> Deferred[RangeResult]:
        """The client's :meth:`~etcdwamp.client.Client.get`."""

    def put(self, key: bytes, value: bytes, *, lease: int = ..., prev_kv: bool = ...,
            ignore_value: bool = ..., ignore_lease: bool = ...) -> Deferred[PutResult]:
        """The client's :meth:`~etcdwamp.client.Client.put`."""

    def delete(self, key: bytes | KeySet, *, prev_kv: bool = ...) -> Deferred[DeleteResult]:
        """The client's :meth:`~etcdwamp.client.Client.delete`."""

    def txn(self, transaction: Transaction) -> Deferred[TxnResult]:
        """The client's :meth:`~etcdwamp.client.Client.txn`."""

    def range_iter(self, key: bytes | KeySet, *, page_size: int = ..., revision: int = ...,
                   keys_only: bool = ..., serializable: bool = ...) -> AsyncIterator[KeyValue]:
        """The client's :meth:`~etcdwamp.client.Client.range_iter`."""

    def compact(self, revision: int, *, physical: bool = ...) -> Deferred[Any]:
        """The client's :meth:`~etcdwamp.client.Client.compact`."""

    def lease(self, ttl: int, *, keep_alive: bool = ...,
              on_lost: Callable[[errors.LeaseExpired], object] | None = ...
              ) -> Deferred[Lease]:
        """The client's :meth:`~etcdwamp.client.Client.lease`."""

    def lease_grant(self, ttl: int, *, lease_id: int = ...) -> Deferred[Any]:
        """The client's :meth:`~etcdwamp.client.Client.lease_grant`."""

    def lease_revoke(self, lease_id: int) -> Deferred[Any]:
        """The client's :meth:`~etcdwamp.client.Client.lease_revoke`."""

    def lease_time_to_live(self, lease_id: int, *, keys: bool = ...) -> Deferred[LeaseInfo]:
        """The client's :meth:`~etcdwamp.client.Client.lease_time_to_live`."""

    def lock(self, name: bytes, *, ttl: int = ...,
             on_lost: Callable[[errors.LeaseExpired], object] | None = ...) -> Lock:
        """The client's :meth:`~etcdwamp.client.Client.lock`."""

    def election(self, name: bytes, *, ttl: int = ...) -> Election:
        """The client's :meth:`~etcdwamp.client.Client.election`."""

    def watch(self, keys: bytes | KeySet | Sequence[bytes | KeySet],
              callback: Callable[[WatchBatch], object] | None = ..., *,
              on_event: Callable[[WatchEvent], object] | None = ...,
              start_revision: int = ..., prev_kv: bool = ...,
              filters: Sequence[WatchFilter | str] = ...,
              progress_notify: bool = ...) -> Watch:
        """The client's :meth:`~etcdwamp.client.Client.watch`."""


C = TypeVar("C", bound=NamespaceHost)

_ALL = b"\x00"


class Namespace(Generic[C]):
    """The keys of ``client`` under ``prefix``, addressed without it.

    :raises ValueError: the prefix is empty (that would be the client itself)
    """

    def __init__(self, client: C, prefix: bytes) -> None:
        prefix = require_bytes(prefix, "prefix")
        if not prefix:
            raise ValueError("a namespace needs a non-empty prefix")
        self.client = client
        self.prefix = prefix
        self._end = prefix_range_end(prefix)

    @property
    def root(self) -> C:
        """The client under the namespace, addressing keys in full (lock and
        election keys are reported that way)."""
        return self.client

    def namespace(self, prefix: bytes) -> Namespace[C]:
        """A namespace nested in this one (the prefixes add up)."""
        return Namespace(self.client, self.prefix + require_bytes(prefix, "prefix"))

    # -- key translation ------------------------------------------------------------

    def _key(self, key: bytes) -> bytes:
        return self.prefix + require_bytes(key, "key")

    def _key_or_keyset(self, keys: bytes | KeySet) -> bytes | KeySet:
        # A single key stays bytes: the client coalesces single-key calls only.
        if isinstance(keys, (bytes, bytearray, memoryview)) and keys:
            return self._key(bytes(keys))
        return self._keyset(keys)

    def _keyset(self, keys: bytes | KeySet) -> KeySet:
        start, end = as_keyset(keys).resolve()
        if end is None:
            return KeySet(self.prefix + start)
        if end == _ALL:
            # "every key from start on" ends where the namespace ends
            begin = self.prefix if start == _ALL else self.prefix + start
            return KeySet(begin, range_end=self._end)
        return KeySet(self.prefix + start, range_end=self.prefix + end)

    def _strip(self, key: bytes) -> bytes:
        if not key.startswith(self.prefix):
            raise errors.ProtocolError(f"etcd answered with key {key!r} outside namespace "
                                       f"{self.prefix!r}")
        return key[len(self.prefix):]

    def _kv(self, kv: KeyValue) -> KeyValue:
        return dataclasses.replace(kv, key=self._strip(kv.key))

    def _kv_or_none(self, kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else self._kv(kv)

    def _range(self, result: RangeResult) -> RangeResult:
        return dataclasses.replace(result, kvs=tuple(self._kv(kv) for kv in result.kvs))

    def _put(self, result: PutResult) -> PutResult:
        return dataclasses.replace(result, prev_kv=self._kv_or_none(result.prev_kv))

    def _delete(self, result: DeleteResult) -> DeleteResult:
        return dataclasses.replace(result, prev_kvs=tuple(self._kv(kv) for kv in result.prev_kvs))

    def _op_result(self, result: OpResult) -> OpResult:
        if isinstance(result, RangeResult):
            return self._range(result)
        if isinstance(result, PutResult):
            return self._put(result)
        if isinstance(result, DeleteResult):
            return self._delete(result)
        return self._txn_result(result)

    def _txn_result(self, result: TxnResult) -> TxnResult:
        return dataclasses.replace(
            result, responses=tuple(self._op_result(r) for r in result.responses))

    def _compare(self, compare: Compare) -> Compare:
        return type(compare)(self._keyset(compare.keyset), compare.result, compare.operand)

    def _op(self, op: Any) -> Any:
        if isinstance(op, OpGet):
            return OpGet(self._keyset(op.keyset), **dict(op.options))
        if isinstance(op, OpSet):
            return OpSet(self._key(op.key), op.value, **dict(op.options))
        if isinstance(op, OpDel):
            return OpDel(self._keyset(op.keyset), prev_kv=op.prev_kv)
        if isinstance(op, Transaction):
            return self._transaction(op)
        raise TypeError(f"not a transaction op: {type(op).__name__}")

    def _transaction(self, txn: Transaction) -> Transaction:
        if not isinstance(txn, Transaction):
            raise TypeError(f"txn needs a Transaction, not {type(txn).__name__}")
        return Transaction(compare=[self._compare(c) for c in txn.compare],
                           success=[self._op(op) for op in txn.success],
                           failure=[self._op(op) for op in txn.failure])

    # -- what a Database needs besides KV (pmap works on a namespace) ------------------

    @property
    def max_txn_ops(self) -> int:
        """The client's limit of ops per transaction (etcd's ``--max-txn-ops``)."""
        return self.client.max_txn_ops

    def status(self) -> Deferred[StatusResult]:
        """The status of the member answering: the store is shared, so is its revision."""
        return self.client.status()

    # -- KV ---------------------------------------------------------------------------

    @deferred
    async def get(self, key: bytes | KeySet, *, limit: int = 0, revision: int = 0,
                  sort_order: SortOrder | str = SortOrder.NONE,
                  sort_target: SortTarget | str = SortTarget.KEY,
                  serializable: bool = False, keys_only: bool = False,
                  count_only: bool = False, min_mod_revision: int = 0,
                  max_mod_revision: int = 0, min_create_revision: int = 0,
                  max_create_revision: int = 0) -> RangeResult:
        """:meth:`Client.get <etcdwamp.client.Client.get>` inside the namespace."""
        result = await self.client.get(
            self._key_or_keyset(key), limit=limit, revision=revision, sort_order=sort_order,
            sort_target=sort_target, serializable=serializable, keys_only=keys_only,
            count_only=count_only, min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision, min_create_revision=min_create_revision,
            max_create_revision=max_create_revision)
        return self._range(result)

    @deferred
    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False,
                  ignore_value: bool = False, ignore_lease: bool = False) -> PutResult:
        """:meth:`Client.put <etcdwamp.client.Client.put>` of ``key`` inside the namespace; a
        ``prev_kv`` in the answer comes back without the prefix.
        """
        result = await self.client.put(self._key(key), value, lease=lease, prev_kv=prev_kv,
                                       ignore_value=ignore_value, ignore_lease=ignore_lease)
        return self._put(result)

    @deferred
    async def delete(self, key: bytes | KeySet, *, prev_kv: bool = False) -> DeleteResult:
        """:meth:`Client.delete <etcdwamp.client.Client.delete>` inside the namespace; a range over
        every key stops at the namespace's end, and ``prev_kvs`` come back without the prefix.
        """
        return self._delete(await self.client.delete(self._key_or_keyset(key), prev_kv=prev_kv))

    @deferred
    async def txn(self, transaction: Transaction) -> TxnResult:
        """A transaction whose compares and ops (nested ones too) are prefixed."""
        return self._txn_result(await self.client.txn(self._transaction(transaction)))

    async def range_iter(self, key: bytes | KeySet, *, page_size: int = 1000,
                         revision: int = 0, keys_only: bool = False,
                         serializable: bool = False) -> AsyncIterator[KeyValue]:
        """:meth:`Client.range_iter <etcdwamp.client.Client.range_iter>` inside the namespace:
        key-values page by page at one revision, keys without the prefix.
        """
        async for kv in self.client.range_iter(self._keyset(key), page_size=page_size,
                                               revision=revision, keys_only=keys_only,
                                               serializable=serializable):
            yield self._kv(kv)

    def compact(self, revision: int, *, physical: bool = False) -> Deferred[Any]:
        """Compaction is cluster-wide: the same as the client's."""
        return self.client.compact(revision, physical=physical)

    # -- leases ---------------------------------------------------------------------------

    def lease(self, ttl: int, *, keep_alive: bool = False,
              on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Deferred[Lease]:
        """Leases are cluster-wide; attach them to namespaced keys with ``put(lease=)``."""
        return self.client.lease(ttl, keep_alive=keep_alive, on_lost=on_lost)

    def lease_grant(self, ttl: int, *, lease_id: int = 0) -> Deferred[Any]:
        """Leases are cluster-wide: the same as the client's ``lease_grant``."""
        return self.client.lease_grant(ttl, lease_id=lease_id)

    def lease_revoke(self, lease_id: int) -> Deferred[Any]:
        """Leases are cluster-wide: the same as the client's ``lease_revoke`` (which also deletes
        the lease's keys outside the namespace).
        """
        return self.client.lease_revoke(lease_id)

    @deferred
    async def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        """The lease's TTL and, with ``keys``, its keys inside the namespace
        (keys it holds elsewhere are left out)."""
        info = await self.client.lease_time_to_live(lease_id, keys=keys)
        inside = tuple(k[len(self.prefix):] for k in info.keys if k.startswith(self.prefix))
        return dataclasses.replace(info, keys=inside)

    # -- locks and elections ----------------------------------------------------------------

    def lock(self, name: bytes, *, ttl: int = 10,
             on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Lock:
        """A lock whose etcd key lives under the namespace (its ``key`` attribute
        and the keys etcd reports for it carry the prefix)."""
        return self.client.lock(self._key(name), ttl=ttl, on_lost=on_lost)

    def election(self, name: bytes, *, ttl: int = 10) -> Election:
        """An election under the namespace (leader keys it reports carry the prefix)."""
        return self.client.election(self._key(name), ttl=ttl)

    # -- watches -------------------------------------------------------------------------

    def watch(self, keys: bytes | KeySet | Sequence[bytes | KeySet],
              callback: Callable[[WatchBatch], object] | None = None, *,
              on_event: Callable[[WatchEvent], object] | None = None,
              start_revision: int = 0, prev_kv: bool = False,
              filters: Sequence[WatchFilter | str] = (),
              progress_notify: bool = True) -> NamespacedWatch:
        """:meth:`Client.watch <etcdwamp.client.Client.watch>` inside the namespace;
        batches (``callback``, ``async for``) carry the caller's key sets, and they
        and the events (``on_event``) carry keys without the prefix."""
        if isinstance(keys, str):
            raise TypeError("keys must be bytes or KeySet, not str")
        outer: list[bytes | KeySet]
        if isinstance(keys, KeySet):
            outer = [keys]
        elif isinstance(keys, (bytes, bytearray, memoryview)):
            outer = [bytes(keys)]
        else:
            outer = list(keys)
        view = NamespacedWatch(self)
        inner = [view.map_keyset(k) for k in outer]
        wrapped = None if callback is None else (lambda b: callback(view.translate(b)))
        per_event = None if on_event is None else (lambda ev: on_event(view.translate_event(ev)))
        view.watch = self.client.watch(inner, wrapped, on_event=per_event,
                                       start_revision=start_revision, prev_kv=prev_kv,
                                       filters=filters, progress_notify=progress_notify)
        return view

    @deferred
    async def get_and_watch(self, keys: bytes | KeySet,
                            callback: Callable[[WatchBatch], object] | None = None, *,
                            prev_kv: bool = False) -> tuple[RangeResult, NamespacedWatch]:
        """A snapshot at revision R and a watch from R + 1, inside the namespace."""
        snapshot = await self.get(keys)
        watch = self.watch(keys, callback, start_revision=snapshot.header.revision + 1,
                           prev_kv=prev_kv)
        await watch.created
        return snapshot, watch


class NamespacedWatch:
    """A :class:`~etcdwamp.watch.Watch` seen through a :class:`Namespace`."""

    watch: Watch

    def __init__(self, namespace: Namespace[Any]) -> None:
        self._ns = namespace
        self._outer: dict[KeySet, KeySet] = {}

    def map_keyset(self, keys: bytes | KeySet) -> KeySet:
        """The etcd key set of the caller's ``keys``, remembered so batches name the caller's."""
        outer = as_keyset(keys)
        inner = self._ns._keyset(outer)
        self._outer[inner] = outer
        return inner

    def translate(self, batch: WatchBatch) -> WatchBatch:
        """``batch`` as the caller sees it: its own key set, and keys without the prefix."""
        events = tuple(self.translate_event(ev) for ev in batch.events)
        return dataclasses.replace(batch, keyset=self._outer.get(batch.keyset, batch.keyset),
                                   events=events)

    def translate_event(self, event: WatchEvent) -> WatchEvent:
        """``event`` as the caller sees it: keys without the prefix."""
        ns = self._ns
        return dataclasses.replace(event, kv=ns._kv(event.kv),
                                   prev_kv=ns._kv_or_none(event.prev_kv))

    @property
    def created(self) -> Deferred[None]:
        """A new Deferred that fires once etcd confirmed every key set (see ``Watch.created``)."""
        return self.watch.created

    @property
    def finished(self) -> Deferred[None]:
        """A new Deferred that fires when the watch ends (see ``Watch.finished``)."""
        return self.watch.finished

    @property
    def keysets(self) -> tuple[KeySet, ...]:
        """The watched key sets as the caller gave them, in the order they were added."""
        return tuple(self._outer.get(k, k) for k in self.watch.keysets)

    @property
    def streaming(self) -> bool:
        """The watch's :attr:`~etcdwamp.watch.Watch.streaming`."""
        return self.watch.streaming

    def resume_revision(self, keyset: bytes | KeySet) -> int:
        """The revision the watch would resume ``keyset`` from (0 = not created yet).

        :raises KeyError: ``keyset`` is not watched
        """
        return self.watch.resume_revision(self._ns._keyset(keyset))

    def add(self, keyset: bytes | KeySet, *, start_revision: int = 0) -> Deferred[None]:
        """Watch one more key set of the namespace; fires once etcd confirmed it (as
        :meth:`Watch.add <etcdwamp.watch.Watch.add>`).
        """
        return self.watch.add(self.map_keyset(keyset), start_revision=start_revision)

    def remove(self, keyset: bytes | KeySet) -> None:
        """Stop watching one key set (the last one: the watch is cancelled).

        :raises KeyError: ``keyset`` is not watched
        """
        inner = self._ns._keyset(keyset)
        self._outer.pop(inner, None)
        self.watch.remove(inner)

    def cancel(self) -> Deferred[None]:
        """Stop the watch; the Deferred fires once it stopped."""
        return self.watch.cancel()

    def __await__(self) -> Generator[Any, Any, NamespacedWatch]:
        async def created() -> NamespacedWatch:
            await self.watch.created
            return self
        return created().__await__()

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchBatch]:
        async for batch in self.watch:
            yield self.translate(batch)
