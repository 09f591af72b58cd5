"""Coalescing: concurrent single-key calls travel as one etcd transaction.

With ``Client(..., coalesce=True)``, ``put``, ``delete`` and ``get`` of one
key do not post at once: they queue until the end of the current reactor turn
(or ``coalesce_window`` seconds), and the queue goes out as transactions
planned by :func:`etcdwamp.wire.batch.plan_batches` (at most 128 ops and
``max_request_bytes`` each, no key twice in one; order kept, and the
transactions of one flush are sent one after the other). A call alone in its
turn is sent as the plain request it is.

Results: each caller gets the result its request alone would have given
(its own ``prev_kv``, ``deleted``, ``kvs``), except that every result of one
transaction carries that transaction's header: coalesced writes share one
revision.

Failures: a transaction etcd rejects (a lease that does not exist, a
permission, a compacted revision: anything etcd answers with an error) applied
nothing, so its ops are sent again one by one and only the guilty caller
fails. A transport failure (:class:`~etcdwamp.errors.ConnectFailed`,
:class:`~etcdwamp.errors.OutcomeUnknown`) fails every caller of that
transaction with the error a single request would have got, and so does an
answer that leaves the outcome open (etcd's ``request timed out``, ``leader
changed``: :class:`~etcdwamp.errors.IndefiniteAnswer`, never a plain
``Unavailable``): the transaction is not sent again. The reads of a turn
travel in transactions of their own, apart from its writes (unless they read
a key written in the same turn, which keeps them in order behind the write):
a transaction of reads alone moves on to the next member as a single read
would, so a member that hangs on a write never fails the reads beside it.
The timeout counts from the oldest call of the transaction.

Cancellation: a cancelled caller fails with ``CancelledError`` at once. If its
op has not left yet it never will. If it already left inside a transaction,
the transaction goes on for the others, so the cancelled write is applied
exactly when theirs are; as for any cancelled write, the caller cannot know
which. Once every caller of a transaction has cancelled, it is aborted like a
single cancelled request (its connection dropped).
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import errors
from ._deferred import Dual
from .transport import Transport
from .wire import Request, check_size
from .wire.batch import batch_request, plan_batches

__all__ = ["Coalescer"]

T = TypeVar("T")

log = Logger()

# Answers that prove etcd refused the transaction as a whole before applying
# any of it, for a reason that may lie in one op. (Unavailable is not one:
# etcd also says it when a proposal timed out, which may still be applied;
# the transport raises that as IndefiniteAnswer, which every caller gets.)
_REJECTED = (errors.InvalidArgument, errors.NotFound, errors.PermissionDenied,
             errors.FailedPrecondition, errors.OutOfRange)


class _Entry:
    """One caller's request waiting in, or travelling with, a batch."""

    __slots__ = ("cancelled", "group", "inflight", "request", "started", "waiter")

    def __init__(self, request: Request[Any], started: float) -> None:
        self.request = request
        self.started = started
        self.waiter: Deferred[Any] = Dual(self._cancel)
        # The request carrying this op alone (solo or retried), if any.
        self.inflight: Deferred[Any] | None = None
        self.group: _Group | None = None
        self.cancelled = False

    def _cancel(self, _: Deferred[Any]) -> None:
        # The waiter fails with CancelledError by itself (nothing settles it
        # here), right after this returns.
        self.cancelled = True
        if self.inflight is not None:
            self.inflight.cancel()
        elif self.group is not None:
            self.group.caller_left()

    @property
    def live(self) -> bool:
        return not (self.cancelled or self.waiter.called)


class _Group:
    """The entries of one batched transaction in flight."""

    __slots__ = ("batch", "entries")

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries
        self.batch: Deferred[Any] | None = None

    def caller_left(self) -> None:
        if self.batch is not None and not any(e.live for e in self.entries):
            self.batch.cancel()  # nobody waits for it any more


class Coalescer:
    """Queues single-key requests and sends each reactor turn's as transactions."""

    def __init__(self, transport: Transport, *, window: float = 0.0, max_ops: int = 128,
                 max_bytes: int) -> None:
        self._transport = transport
        self._window = window
        self._max_ops = max_ops
        self._max_bytes = max_bytes
        self._queue: list[_Entry] = []
        self._timer: Any = None

    def submit(self, request: Request[T]) -> Deferred[T]:
        """Send ``request`` with the others of this turn; fires with its own result.

        Fails with :class:`RequestTooLarge` at once if ``request`` alone
        exceeds the size limit (as the plain request would).
        """
        try:
            check_size(request.size, self._max_bytes)
        except errors.RequestTooLarge:
            refused: Dual[T] = Dual()  # users on asyncio await it too
            refused.errback()
            return refused
        clock = self._transport.clock
        entry = _Entry(request, clock.seconds())
        self._queue.append(entry)
        if self._timer is None:
            self._timer = clock.callLater(self._window, self._flush)
        return entry.waiter

    def _flush(self) -> None:
        self._timer = None
        entries = [e for e in self._queue if e.live]
        self._queue = []
        if not entries:
            return
        reads = [e for e in entries if e.request.idempotent]
        writes = [e for e in entries if not e.request.idempotent]
        if reads and writes and not ({e.request.body["key"] for e in reads}
                                     & {e.request.body["key"] for e in writes}):
            # Apart: a read-only transaction moves on to another member after
            # its share of the timeout, as a single get would, where one
            # carrying writes waits its whole timeout on a hung member. (Reads
            # of keys written in the same turn stay in order behind them.)
            self._dispatch(writes)
            self._dispatch(reads)
        else:
            self._dispatch(entries)

    def _dispatch(self, entries: list[_Entry]) -> None:
        """Send ``entries`` alone or as transactions, one after the other."""
        if len(entries) == 1:
            self._solo(entries[0])
            return
        groups = plan_batches([e.request for e in entries], max_ops=self._max_ops,
                              max_bytes=self._max_bytes)
        done = Deferred.fromCoroutine(self._send([[entries[i] for i in g] for g in groups]))
        done.addErrback(lambda f: log.failure("coalesced batch failed unexpectedly", f))

    def _solo(self, entry: _Entry) -> Deferred[Any]:
        """Send one entry's request alone, its outcome going to its caller."""
        d = entry.inflight = self._transport.call(entry.request, started=entry.started)

        def settle(result: object) -> None:
            entry.inflight = None
            _settle(entry, result)

        d.addBoth(settle)
        return d

    async def _send(self, groups: list[list[_Entry]]) -> None:
        for members in groups:
            live = [e for e in members if e.live]
            if not live:
                continue  # every caller cancelled before it left: nothing is sent
            if len(live) == 1:
                await self._solo(live[0])
                continue
            await self._send_group(_Group(live))

    async def _send_group(self, group: _Group) -> None:
        entries = group.entries
        for e in entries:
            e.group = group
        request = batch_request([e.request for e in entries])
        started = min(e.started for e in entries)
        group.batch = self._transport.call(request, started=started)
        self._transport.metrics.coalesced(len(entries))
        try:
            results = await group.batch
        except CancelledError:
            return  # every caller cancelled; each already got CancelledError
        except _REJECTED:
            # etcd refused the transaction, so none of it was applied: send
            # the ops one by one so that only the guilty caller fails.
            retries = [self._solo(e) for e in entries if e.live]
            for d in retries:
                await d
            return
        except Exception:
            failure = Failure()  # type: ignore[no-untyped-call]
            for e in entries:
                if e.live:
                    e.waiter.errback(failure)
            return
        finally:
            for e in entries:
                e.group = None
        for e, result in zip(entries, results, strict=True):
            if e.live:
                e.waiter.callback(result)


def _settle(entry: _Entry, result: object) -> None:
    if not entry.live:
        return  # the caller cancelled
    if isinstance(result, Failure):
        entry.waiter.errback(result)
    else:
        entry.waiter.callback(result)
