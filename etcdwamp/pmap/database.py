"""Database and transactions: snapshot reads and serializable, conflict-checked commits.

Isolation
---------
*Write transactions* (``db.begin(write=True)``, :meth:`Database.run`) are
serializable, and strictly so: each reads at one revision (taken at
``begin``), buffers its writes, and commits them in one etcd txn guarded by
compares on everything it read. The commit succeeds only if nothing it read
changed between its snapshot and its commit (an update, a delete, or an
insert into a range it read); then it takes effect atomically at its commit
revision, as if it had run there alone. Otherwise etcd applies nothing and
the commit raises :class:`TransactionConflict` (run the function again:
:meth:`Database.run` does, with backoff).

*Read-only transactions* (``db.begin()``) read one consistent snapshot, the
store as of ``txn.revision``, and never conflict. They are linearizable: the
snapshot revision is the header revision of a linearizable read (a
count-only range of one key, the database's ``prefix`` or ``b"\\x00"``
without one), which a member serves only once it has applied everything its
leader committed, so the snapshot holds every write acknowledged before
``begin`` was called, whichever member answers. That read costs one request,
as the ``status()`` call it replaced; the user needs read permission on that
key (as on the maps the transaction reads).

``db.begin(serializable=True)`` takes the revision from ``status()`` instead:
the answering member's own revision, without a round through the leader
(cheaper in latency, and served by a member that lost its leader when the
client does not require one), but it may be older than a write acknowledged
before ``begin`` if that member lags. A write transaction may be serializable
too: a stale snapshot only makes its commit conflict, never commit stale data.

*A commit whose outcome is unknown* (:class:`~etcdwamp.errors.OutcomeUnknown`:
:class:`~etcdwamp.errors.IndefiniteAnswer` when etcd answered without saying
whether it applied the txn, ``RequestTimeout`` or ``ConnectionLost`` when no
answer came) ends the transaction: its writes may have been applied, so it
cannot be committed again, and :meth:`Database.run` raises the error instead
of running the function again. Make the transaction's effect recognisable (an
id written with it) and read it back to learn the outcome.

*Several Database objects, clients or processes* share these guarantees: the
compares run inside etcd, so every write transaction through any client of
one etcd cluster is checked against every other. Writes made without a
transaction (the raw client, another tool) are seen by the compares too; a
transaction only protects what it read through its own reads.

What each read costs
--------------------
Reads in a write transaction join its read set; each entry becomes a compare
in the commit (etcd allows ``max_txn_ops``, 128 by default, per txn; a commit
needing more raises :class:`TransactionTooLarge` before anything is sent).
Read-only transactions send no compares at all.

==================================  =====================  ==========================
read                                requests               compares at commit
==================================  =====================  ==========================
``get`` (present or absent)         1 range                1: the key's mod revision
                                                           (0 = absent, so an insert
                                                           conflicts)
``select``/``keys`` over *n* keys   ceil(n / page_size)    n (one per key: an update
                                                           or delete conflicts) + 1
                                                           range guard (no key in the
                                                           range modified after the
                                                           snapshot: an insert
                                                           conflicts)
``... limit=L``                     as above, up to L      L + 1, the guard ending at
                                                           the last key returned
``count`` over *n* keys             write txn: keys-only   n + 1, as ``keys``
                                    pages; read-only: 1
                                    count-only range
``delete_range`` over *n* keys      as ``keys``            n + 1 (plus n deletes)
index ``lookup`` (non-unique, *n*)  as ``select``          n + 1
index ``lookup`` (unique)           1 range                1
unique-index check on put           1 range                1
index upkeep on put/delete          1 range (old value)    1
==================================  =====================  ==========================

A key read twice is compared once. Why one compare per key: a compare over a
range (``range_end``) holds when every key *present* satisfies it, so it can
catch an insert or update (mod revision above the snapshot) but never a key
that is gone; a single-key compare on a missing key sees mod revision 0, which
differs from the revision the transaction read. etcd has no count compare.
So a ``count`` that must stay exact reads the keys themselves.

etcd applies one txn with at most ``--max-txn-ops`` compares and at most as
many operations. For bulk loads that need not be atomic, use
:meth:`Database.put_many`, which writes in chunks of ``max_txn_ops`` (each
chunk atomic, the whole not).

Event loops
-----------
The same code runs over :class:`etcdwamp.Client` (Twisted) and
:class:`etcdwamp.asyncio.Client`: every call here hands out a
:class:`~etcdwamp._deferred.Dual`, which Twisted code and asyncio tasks both
await, and ``async with``/``async for`` work in either. What the user passes
in runs on the client's loop: with an asyncio client, :meth:`Database.run`'s
``fn`` (and work deferred until commit) runs as an asyncio task, so it may
await asyncio's own futures, and the waits between retries use the loop's
clock, so no Twisted reactor needs to run. Cancelling the run (or the task
awaiting it) fails it at once and cancels ``fn``'s task, which sees
``asyncio.CancelledError`` on its next step.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from .. import errors
from .._deferred import deferred
from ..wire import (
    CompModified,
    DeleteResult,
    KeySet,
    KeyValue,
    OpDel,
    OpSet,
    Transaction,
)
from ..wire.encoding import require_bytes

if TYPE_CHECKING:
    from ..client import Client
    from ..namespace import Namespace

__all__ = ["Backoff", "Database", "MapTransaction", "TransactionConflict",
           "TransactionTooLarge"]

T = TypeVar("T")

_DELETED = None
_log = Logger()


class TransactionConflict(errors.EtcdError):
    """Something this transaction read changed before it committed; nothing was written.

    Raised by :meth:`Database.run` once it gives up, ``attempts`` says how many
    times it ran the function (1 for a bare :meth:`MapTransaction.commit`)."""

    attempts: int = 1


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter between conflicting attempts.

    Before attempt ``n + 1`` (after ``n`` conflicts) :meth:`Database.run` waits a
    random time in ``[0, min(max_delay, initial * factor ** (n - 1))]``: the
    random spread keeps clients that conflicted together from retrying in
    lockstep, the growth lets a hot key's queue drain."""

    initial: float = 0.002
    factor: float = 2.0
    max_delay: float = 0.25

    def __post_init__(self) -> None:
        for name in ("initial", "factor", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")

    def delay(self, conflicts: int, rng: random.Random) -> float:
        """The wait after ``conflicts`` (>= 1) conflicting attempts."""
        ceiling = min(self.max_delay, self.initial * self.factor ** min(conflicts - 1, 64))
        return rng.uniform(0.0, ceiling)


class TransactionTooLarge(errors.InvalidRequest):
    """The commit needs more compares or ops than etcd allows in one txn."""


class Database:
    """Maps live in a Database: an etcd client plus an optional key prefix (namespace).

    ``commits`` and ``conflicts`` count the write transactions of this object
    that committed and that failed with :class:`TransactionConflict` (a measure
    of contention)."""

    def __init__(self, client: Client | Namespace[Client], *, prefix: bytes = b"",
                 max_txn_ops: int | None = None, clock: Any = None,
                 rng: random.Random | None = None) -> None:
        """:param clock: an ``IReactorTime`` for :meth:`run`'s waits and time
            bound (default: the client's clock, which is the reactor of
            :class:`etcdwamp.Client` or the loop of
            :class:`etcdwamp.asyncio.Client`; tests pass ``task.Clock``)
        :param rng: the jitter's random source (default: a fresh ``Random``)"""
        self.client = client
        self.prefix = require_bytes(prefix, "prefix")
        self.max_txn_ops = client.max_txn_ops if max_txn_ops is None else max_txn_ops
        if self.max_txn_ops < 1:
            raise ValueError("max_txn_ops must be at least 1")
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.commits = 0
        self.conflicts = 0

    def _time(self) -> Any:
        if self._clock is None:
            # The client's own clock: an asyncio program may have no Twisted
            # reactor running at all, so waiting on the global one would hang.
            clock = getattr(getattr(_root_client(self.client), "transport", None), "clock",
                            None)
            if clock is None:
                from twisted.internet import reactor  # not at import: no side effects

                clock = reactor
            self._clock = clock
        return self._clock

    def _as_callers(self, work: Awaitable[T]) -> Awaitable[T]:
        """``fn(txn)`` of :meth:`run` (or work deferred until commit), driven the
        way its author's loop drives it.

        :meth:`run` itself runs on Twisted's coroutine driver, which cannot wait
        for an asyncio future; so with an asyncio client ``fn`` runs as a task of
        the loop and may await anything asyncio offers."""
        if (getattr(_root_client(self.client), "framework", "twisted") != "asyncio"
                or isinstance(work, Deferred)):
            return work
        return _task_outcome(asyncio.ensure_future(work))

    @deferred
    async def status(self) -> int:
        """The store's revision as the answering member knows it (``status()``:
        it may lag behind a write acknowledged by another member, which a
        transaction's ``txn.revision`` never does)."""
        return (await self.client.status()).revision

    def begin(self, write: bool = False, *, serializable: bool = False) -> MapTransaction:
        """A transaction: ``async with db.begin(write=True) as txn: ...``.

        :param serializable: take the snapshot revision from the answering
            member (``status()``), which may lag, instead of a linearizable read
            (see "Isolation" in the module docs)
        """
        return MapTransaction(self, write=write, serializable=serializable)

    @deferred
    async def run(self, fn: Callable[[MapTransaction], Awaitable[T]], *, retries: int = 20,
                  timeout: float | None = 30.0, backoff: Backoff | None = Backoff(),
                  write: bool = True, serializable: bool = False) -> T:
        """Run ``fn(txn)`` in a transaction and commit; on conflict wait (see
        :class:`Backoff`) and run it again.

        Gives up, raising the last :class:`TransactionConflict` (its ``attempts``
        says how many runs it made), after ``retries`` retries or when the next
        wait would end more than ``timeout`` seconds after the first attempt
        began. ``backoff=None`` retries at once. Each attempt's transaction
        carries its number in ``txn.attempt`` (1, 2, ...), so ``fn`` can report
        how many it took. ``serializable`` is :meth:`begin`'s.

        Only conflicts are retried (etcd applied nothing). A commit whose outcome
        is unknown raises its :class:`~etcdwamp.errors.OutcomeUnknown` (e.g.
        :class:`~etcdwamp.errors.IndefiniteAnswer`) and is never run again: it
        may have been applied, and running ``fn`` again would apply it twice. A
        cancellation (``CancelledError``) or any other error ends the run at
        once too.
        """
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError(f"retries must be an int, not {type(retries).__name__}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 or None, got {timeout}")
        clock = self._time()
        deadline = math.inf if timeout is None else clock.seconds() + timeout
        attempt = 1
        while True:
            try:
                txn = self.begin(write=write, serializable=serializable)
                txn.attempt = attempt
                async with txn:
                    return await self._as_callers(fn(txn))
            except TransactionConflict as exc:
                exc.attempts = attempt
                wait = 0.0 if backoff is None else backoff.delay(attempt, self._rng)
                if attempt > retries or clock.seconds() + wait > deadline:
                    raise
                _log.debug("pmap transaction conflict, attempt {attempt} again in "
                           "{wait:.4f}s", attempt=attempt + 1, wait=wait)
                attempt += 1
                if wait > 0:
                    await deferLater(clock, wait)

    @deferred
    async def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Bulk-write raw (already prefixed) key/values in chunks of ``max_txn_ops``.

        Not atomic as a whole: after a failure, the chunks written so far stay
        written (re-running the same import is safe: puts are idempotent).
        Returns the number of keys written.
        """
        chunk: list[OpSet] = []
        written = 0
        for key, value in items:
            chunk.append(OpSet(key, value))
            if len(chunk) == self.max_txn_ops:
                await self.client.txn(Transaction(success=chunk))
                written += len(chunk)
                chunk = []
        if chunk:
            await self.client.txn(Transaction(success=chunk))
            written += len(chunk)
        return written


def _task_outcome(task: asyncio.Future[T]) -> Deferred[T]:
    """The outcome of an asyncio task as a Deferred. Cancelling the Deferred
    cancels the task and fails at once, as every cancellation here does (not
    once the task has unwound, as ``Deferred.fromFuture`` would): the task
    sees its ``asyncio.CancelledError`` on its next step."""
    def cancel(_: Deferred[T]) -> None:
        task.cancel()

    outcome: Deferred[T] = Deferred(cancel)

    def settle(done: asyncio.Future[T]) -> None:
        if done.cancelled():
            if not outcome.called:
                outcome.errback(CancelledError())
            return
        exc = done.exception()  # retrieved even when nobody waits any more
        if outcome.called:
            return
        if exc is not None:
            outcome.errback(exc)
        else:
            outcome.callback(done.result())

    task.add_done_callback(settle)
    return outcome


def _root_client(client: Any) -> Any:
    """The client under a :class:`~etcdwamp.namespace.Namespace` (or ``client``)."""
    return getattr(client, "root", client)


class MapTransaction:
    """One transaction over a :class:`Database`; see the module docstring."""

    def __init__(self, db: Database, *, write: bool, serializable: bool = False) -> None:
        self.db = db
        self.write = write
        #: whether the snapshot revision comes from the answering member alone
        #: (``status()``), not from a linearizable read
        self.serializable = serializable
        #: the snapshot revision every read sees (set when the transaction starts)
        self.revision = 0
        #: the revision the commit created (0 until a write transaction committed);
        #: when the commit changed nothing (see :attr:`changed`), the store's
        #: revision when etcd applied it, which another change made
        self.committed_revision = 0
        #: whether the commit changed the store: False until committed, and for a
        #: commit whose every write deleted a key that was absent (etcd then creates
        #: no revision); a transaction without writes never changes it
        self.changed = False
        self._reads: dict[bytes, int] = {}
        self._ranges: list[KeySet] = []
        self._writes: dict[bytes, bytes | None] = {}
        self._pending: dict[object, Callable[[], Awaitable[None]]] = {}
        self._state = "new"
        #: which attempt of :meth:`Database.run` this is (1 outside ``run``)
        self.attempt = 1

    # -- lifecycle -------------------------------------------------------------

    @deferred
    async def start(self) -> MapTransaction:
        """Open the transaction at the store's current revision (its snapshot); returns it.

        The revision covers every write acknowledged before this call (one
        linearizable read), unless the transaction is ``serializable`` (then it
        is the answering member's, which may lag).

        :raises InvalidRequest: it was started before
        """
        if self._state != "new":
            raise errors.InvalidRequest("transaction already started")
        if self.serializable:
            self.revision = await self.db.status()
        else:
            # Any key will do: the header carries the store's revision after
            # the member caught up with the leader's commit index. One key,
            # count only, so that the cost does not grow with the store.
            probe = await self.db.client.get(self.db.prefix or b"\x00", count_only=True)
            self.revision = probe.revision
        self._state = "open"
        return self

    @deferred
    async def __aenter__(self) -> MapTransaction:
        return await self.start()

    @deferred
    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        if self._state == "open":  # not already committed by hand
            await self.commit()

    def abort(self) -> None:
        """Discard buffered writes."""
        self._writes.clear()
        self._pending.clear()
        self._state = "aborted"

    def _check_open(self) -> None:
        if self._state != "open":
            raise errors.InvalidRequest(f"transaction is {self._state}, not open")

    def _check_writable(self) -> None:
        self._check_open()
        if not self.write:
            raise errors.InvalidRequest(
                "read-only transaction: use db.begin(write=True) to write"
            )

    # -- raw key access (used by the maps) ---------------------------------------

    def _record(self, kv_key: bytes, mod_revision: int) -> None:
        self._reads.setdefault(kv_key, mod_revision)

    @deferred
    async def get_raw(self, key: bytes) -> bytes | None:
        """The value of ``key`` as this transaction sees it (None when absent)."""
        self._check_open()
        if key in self._writes:
            return self._writes[key]
        return await self.snapshot_raw(key)

    @deferred
    async def snapshot_raw(self, key: bytes) -> bytes | None:
        """The value of ``key`` at the snapshot, ignoring this transaction's own
        writes; the read joins the read set, so a concurrent change conflicts."""
        result = await self.db.client.get(key, revision=self.revision)
        kv = result.first
        self._record(key, kv.mod_revision if kv else 0)
        return kv.value if kv else None

    def put_raw(self, key: bytes, value: bytes) -> None:
        """Buffer a write of ``value`` at ``key`` (sent at commit).

        :raises InvalidRequest: the transaction is not open or is read-only
        """
        self._check_writable()
        self._writes[key] = require_bytes(value, "value")

    def delete_raw(self, key: bytes) -> None:
        """Buffer the deletion of ``key`` (sent at commit).

        :raises InvalidRequest: the transaction is not open or is read-only
        """
        self._check_writable()
        self._writes[key] = _DELETED

    def defer_until_commit(self, work: Callable[[], Awaitable[None]], *,
                           once_per: object = None) -> None:
        """Run ``work`` at commit time, before the writes are sent (index upkeep);
        work registered again under the same ``once_per`` runs only once. As
        :meth:`Database.run`'s ``fn``, it runs on the client's loop."""
        self._check_writable()
        self._pending[object() if once_per is None else once_per] = work

    async def range_raw(self, keyset: KeySet, *, limit: int = 0, reverse: bool = False,
                        keys_only: bool = False,
                        page_size: int = 500) -> AsyncIterator[tuple[bytes, bytes | None]]:
        """Key/values of ``keyset`` at the snapshot merged with this transaction's
        own writes, in key order (reverse: descending). Memory is bounded by the
        page size plus the buffered writes.

        A write transaction records each key read with its mod revision and one
        guard over the range (up to the last key returned when ``limit`` ended
        the read): an update, delete or insert there conflicts at commit."""
        self._check_open()
        start, end = keyset.resolve()
        guard = len(self._ranges)
        self._ranges.append(keyset)
        produced = 0
        async for key, value in self._merged(keyset, reverse, keys_only, page_size):
            yield key, value
            produced += 1
            if limit and produced >= limit:
                # Keys past the last one returned cannot change what was read.
                self._ranges[guard] = (KeySet(key, range_end=end) if reverse
                                       else KeySet(start, range_end=key + b"\x00"))
                return

    async def _merged(self, keyset: KeySet, reverse: bool, keys_only: bool,
                      page_size: int) -> AsyncIterator[tuple[bytes, bytes | None]]:
        """Merge the snapshot's keys with this transaction's writes (which win)."""
        own = sorted(((k, v) for k, v in self._writes.items() if keyset.contains(k)),
                     reverse=reverse)
        i = 0

        def before(a: bytes, b: bytes) -> bool:
            return a > b if reverse else a < b

        async for kv in self._snapshot_range(keyset, reverse=reverse, keys_only=keys_only,
                                             page_size=page_size):
            self._record(kv.key, kv.mod_revision)
            while i < len(own) and before(own[i][0], kv.key):
                if own[i][1] is not None:
                    yield own[i]
                i += 1
            if i < len(own) and own[i][0] == kv.key:
                if own[i][1] is not None:
                    yield own[i]
                i += 1
            else:
                yield kv.key, (None if keys_only else kv.value)
        for key, value in own[i:]:
            if value is not None:
                yield key, value

    async def _snapshot_range(self, keyset: KeySet, *, reverse: bool, keys_only: bool,
                              page_size: int) -> AsyncIterator[KeyValue]:
        if not reverse:
            async for kv in self.db.client.range_iter(keyset, page_size=page_size,
                                                      revision=self.revision,
                                                      keys_only=keys_only):
                yield kv
            return
        start, end = keyset.resolve()
        while True:
            page = await self.db.client.get(
                KeySet(start, range_end=end), limit=page_size, revision=self.revision,
                sort_order="descend", sort_target="key", keys_only=keys_only)
            for kv in page.kvs:
                yield kv
            if not page.more or not page.kvs:
                return
            end = page.kvs[-1].key  # exclusive: continue below the last key seen

    @deferred
    async def count_raw(self, keyset: KeySet) -> int:
        """How many keys ``keyset`` holds as this transaction sees them.

        A read-only transaction asks etcd for the count alone. A write
        transaction reads the keys (keys only) so that each joins the read set:
        a count-only range has no keys to compare, and a delete would go
        unnoticed (etcd's range compare only sees keys still present)."""
        self._check_open()
        if not self.write and not self._writes:
            return (await self.db.client.get(keyset, count_only=True,
                                             revision=self.revision)).count
        n = 0
        async for _ in self.range_raw(keyset, keys_only=True):
            n += 1
        return n

    # -- commit ------------------------------------------------------------------

    @deferred
    async def commit(self) -> int:
        """Send the buffered writes in one etcd txn; returns the commit revision
        (the snapshot revision for a transaction without writes)."""
        self._check_open()
        try:
            for work in list(self._pending.values()):
                await self.db._as_callers(work())
        except BaseException:
            self.abort()
            raise
        self._pending.clear()
        if not self._writes:
            self._state = "committed"
            self.committed_revision = self.revision
            return self.revision
        guard = self.revision + 1
        compares = [CompModified(k, "==", rev) for k, rev in self._reads.items()]
        compares += [CompModified(ks, "<", guard) for ks in self._ranges]
        ops: list[OpSet | OpDel] = [
            OpDel(k) if v is None else OpSet(k, v) for k, v in self._writes.items()
        ]
        limit = self.db.max_txn_ops
        if len(ops) > limit or len(compares) > limit:
            self.abort()
            raise TransactionTooLarge(
                f"commit needs {len(ops)} ops and {len(compares)} compares; etcd allows "
                f"{limit} of each in one txn (--max-txn-ops). Split the work, or use "
                "Database.put_many for non-atomic bulk writes"
            )
        try:
            result = await self.db.client.txn(Transaction(compare=compares, success=ops))
        except (errors.OutcomeUnknown, CancelledError, asyncio.CancelledError):
            # The writes may have been applied: never send them again.
            self._writes.clear()
            self._state = "of unknown outcome"
            raise
        except BaseException:
            self._writes.clear()
            self._state = "failed"
            raise
        self._writes.clear()
        if not result.succeeded:
            self._state = "conflicted"
            self.db.conflicts += 1
            raise TransactionConflict(
                f"transaction from revision {self.revision} conflicts with a concurrent "
                "change; nothing was written"
            )
        self._state = "committed"
        self.db.commits += 1
        self.committed_revision = result.revision
        self.changed = any(not isinstance(r, DeleteResult) or r.deleted
                           for r in result.responses)
        return result.revision
