"""Watches that never lose or repeat an event.

A :class:`Watch` holds one HTTP stream to the gateway's ``/v3/watch`` carrying
one create request per key set. It remembers, per key set, the revision to
resume from: the revision after the last delivered event, or after the last
progress notification, or after the revision the watch was created at. When
the stream breaks (etcd restarted, member down, network error) it reconnects
and re-creates every watch at its resume revision: no event is lost, none is
repeated, and the order is kept (per key set: etcd orders the events of one
watch, not those of different watches on one stream; watch one key set that
covers both when a total order matters).

Where it reconnects (see :mod:`etcdwamp.reconnect`): at once to the next
endpoint it has not tried yet, healthy members first; only after every
endpoint failed in a row does it pause, 0.05 s doubling up to 5 s. The stream
carries etcd's require-leader metadata, so a member that loses its leader
(cut off from the others) ends it with ``no leader``; the watch then demotes
that member and resumes on another one. A member that hangs sends nothing at
all: while the stream is open its member is probed (see
:mod:`etcdwamp.probe`), and a failed probe moves the watch the same way.
**Worst-case detection time of a hung member: ``probe_interval +
probe_timeout``** (4 s with the client's defaults), then one request to a
healthy member resumes the watch; a cut-off member is detected once it has
noticed it lost its leader (etcd's election timeout, 1 s by default) and the
next probe or etcd itself says so, within ``probe_interval`` + that timeout.
Opening a stream waits one attempt's share of the client's timeout for etcd's
answer (see ``attempt_timeout``), then tries the next member. (On gRPC a watch
joins its connection's shared stream at once; while that connection is being
opened, it waits up to ``connect_timeout`` with the other watches, then the
watch tries the next member.)

Twisted's HTTP client sends the whole request body before it reads the
answer, so a stream cannot take new create/cancel requests once open; adding
or removing a key set therefore reconnects the stream with the new list, each
key set resuming exactly where it was.

etcd checks the auth token only when a watch is created, so a stream outlives
its token; when such a stream breaks, etcd refuses the reconnect's stale token
(etcd 3.4 with a frame "created and canceled" for watch id -1). The watch then
authenticates again (once for all requests that saw that token fail) and
reconnects.

If a resume revision has been compacted meanwhile, the gap cannot be filled:
the watch ends with :class:`~etcdwamp.errors.WatchCompacted`. Recover by
reading the range again and watching from that read's revision + 1, which is
what :meth:`etcdwamp.client.Client.get_and_watch` does.

Callbacks: ``callback`` gets each :class:`WatchBatch` (the events of one etcd
response); ``on_event`` instead gets each :class:`~etcdwamp.wire.watch.WatchEvent`
on its own. Callback exceptions are logged (with the batch they failed on) and
the watch goes on: a buggy callback must not silently stop the delivery of
later events. The exception is the *first* call raising ``AttributeError`` or
``TypeError``: that is a callback written for another signature (txaioetcd's
took one ``KeyValue``), which would fail the same way on every event, so the
watch ends at once and ``finished`` fails with that error (logged as critical).

A callback may be an ``async def`` (or return a Deferred): its coroutine runs
on the client's loop, as an asyncio task with :class:`etcdwamp.asyncio.Client`
and on Twisted's coroutine driver with :class:`etcdwamp.Client`, so it may
await what that loop's code awaits. Delivery does not wait for it (later
batches may be delivered while it runs); a failure is logged like a
callback's exception.

Cancelling the creation (the Deferred of ``watch.created``, or the one around
``await watch``) before etcd confirmed it cancels the whole watch, as
:meth:`Watch.cancel` does: the stream, or the attempt to open it, is dropped at
once and nothing reconnects. Waiters for a creation that will now never come
fail with ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Sequence
from functools import partial
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import errors
from ._deferred import Dual, dual
from ._signal import Signal
from .probe import ProbedStream
from .reconnect import Reconnects, may_resume
from .transport import BodyReader, StreamOpened, StreamProtocol, Transport, read_body, relay
from .wire import KeySet, as_keyset, range_request
from .wire.watch import (
    WatchEvent,
    WatchFilter,
    WatchResponse,
)
from .wire.watch_state import AllCreated, WatchBatch, WatchState

__all__ = ["BodyReader", "StreamProtocol", "Watch", "WatchBatch", "read_body", "relay"]

log = Logger()

Callback = Callable[[WatchBatch], object]
EventCallback = Callable[[WatchEvent], object]

# A first call failing with one of these means the callback expects other arguments.
_SIGNATURE_ERRORS = (AttributeError, TypeError)
_SIGNATURE_NOTE = (
    "the watch callback failed on its first call, so the watch was stopped: "
    "callback= gets a WatchBatch (batch.events), on_event= gets one WatchEvent "
    "(event.type, event.kv); txaioetcd's callbacks took one KeyValue: "
    "use on_event=lambda event: old_callback(event.kv)"
)


class Watch:
    """A running watch; see :meth:`etcdwamp.client.Client.watch`.

    - ``created``: fires once etcd confirmed every key set (not when the stream ends);
      ``await watch`` does the same and returns the watch; cancelling either
      before then cancels the watch
    - ``finished``: fires with ``None`` after :meth:`cancel`, or fails with
      :class:`~etcdwamp.errors.WatchCompacted` or another fatal error
    - ``async for batch in watch``: the batches, for users without a callback
    """

    def __init__(
        self,
        transport: Transport,
        keysets: Sequence[bytes | KeySet],
        callback: Callback | None,
        *,
        on_event: EventCallback | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        progress_notify: bool = True,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
    ) -> None:
        if not keysets:
            raise ValueError("watch needs at least one key or KeySet")
        if callback is not None and on_event is not None:
            raise ValueError("give callback (per batch) or on_event (per event), not both")
        self._transport = transport
        self._callback = callback
        self._on_event = on_event
        self._called = False  # whether a callback has run (see _deliver)
        self._state = WatchState([as_keyset(k) for k in keysets], start_revision)
        self._prev_kv = prev_kv
        self._filters = tuple(filters)
        self._progress_notify = progress_notify
        # Validate options now, not in the background; the first stream sends these.
        self._creates: list[dict[str, Any]] | None = self._state.create_requests(
            prev_kv=prev_kv, filters=self._filters, progress_notify=progress_notify)
        self._created = Signal()
        self._finished = Signal()
        self.reconnects = 0
        self._stream: _WatchStream | None = None
        # Which endpoint the next stream goes to, and the pause before it.
        self._rounds = Reconnects(transport.order, min_backoff=min_backoff,
                                  max_backoff=max_backoff)
        self._stopping = False
        self._restart = False
        self._live = False  # a stream is open and etcd confirmed every watch on it
        self._fatal: BaseException | None = None
        # Only a watch read with `async for` queues batches; the few hundred bytes of
        # an empty deque count when a client holds thousands of watches.
        self._queue: deque[WatchBatch] | None = (
            deque() if callback is None and on_event is None else None)
        #: async callbacks running on asyncio (made on first use)
        self._tasks: set[asyncio.Task[object]] | None = None
        self._waiter: Deferred[None] | None = None
        # What runs now instead of a live stream (opening one, or the
        # backoff pause), so cancel()/add()/remove() can cut it short.
        self._pending: Deferred[Any] | None = None
        # The token the current stream was opened with, and whether etcd
        # refused it (the next attempt authenticates first).
        self._stream_token: str | None = None
        self._token_refused = False
        self._attempt(self._rounds.next_endpoint())

    # -- public ----------------------------------------------------------------

    @property
    def created(self) -> Deferred[None]:
        """A new Deferred that fires once etcd confirmed every key set.

        Cancelling it while the creation is pending cancels the watch."""
        outcome = self._created.wait()
        if outcome.called:
            return outcome
        def give_up(_: Deferred[None]) -> None:
            self.cancel()

        waiter: Deferred[None] = Dual(give_up)
        outcome.addBoth(relay, waiter)
        return waiter

    @property
    def finished(self) -> Deferred[None]:
        """A new Deferred that fires when the watch ends (``None`` after cancel())."""
        return self._finished.wait()

    @property
    def keysets(self) -> tuple[KeySet, ...]:
        """The key sets this watch follows, in the order they were added."""
        return self._state.keysets

    @property
    def streaming(self) -> bool:
        """Whether a stream is open now and etcd confirmed its watches on it: etcd then
        pushes each change as it commits. False while (re)connecting or after the end."""
        return self._live

    def resume_revision(self, keyset: bytes | KeySet) -> int:
        """The revision this watch would resume ``keyset`` from (0 = not created yet)."""
        return self._state.resume_revision(as_keyset(keyset))

    def add(self, keyset: bytes | KeySet, *, start_revision: int = 0) -> Deferred[None]:
        """Watch one more key set on this stream (the stream reconnects, resuming
        the others). Fires once etcd confirmed it.

        ``start_revision`` 0 means "changes after this call": the current store
        revision is read first, so nothing written meanwhile is missed.
        """
        ks = as_keyset(keyset)
        if ks in self._state:
            raise ValueError(f"{ks!r} is already watched")
        return dual(Deferred.fromCoroutine(self._add(ks, start_revision)))

    async def _add(self, ks: KeySet, start_revision: int) -> None:
        if not start_revision:
            current = await self._transport.call(range_request(ks, count_only=True))
            start_revision = current.header.revision + 1
        self._state.add(ks, start_revision)
        self._created = Signal()  # `created` now waits for the new key set too
        self._reconnect_now()
        try:
            await self._created.wait()
        except CancelledError:
            # The caller gave up on this key set: stop watching it (the watch
            # itself goes on), so a cancelled add() leaves nothing behind.
            if not self._stopping and ks in self._state:
                self.remove(ks)
            raise

    def remove(self, keyset: bytes | KeySet) -> None:
        """Stop watching one key set; the watch goes on for the others."""
        ks = as_keyset(keyset)
        if ks not in self._state:
            raise KeyError(ks)
        if len(self._state.targets) == 1:
            self.cancel()
            return
        self._state.remove(ks)
        self._reconnect_now()

    def cancel(self) -> Deferred[None]:
        """Stop the watch; the Deferred fires once it stopped (an error that ended
        the watch before is reported by ``finished``, not here)."""
        if not self._stopping:
            self._stopping = True
            self._interrupt()
            self._wake()
        done = self.finished
        done.addErrback(lambda _: None)
        return done

    def __await__(self) -> Generator[Any, Any, Watch]:
        async def created() -> Watch:
            await self.created
            return self
        return created().__await__()

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchBatch]:
        queue = self._queue if self._queue is not None else deque()
        while True:
            while queue:
                yield queue.popleft()
            if self._stopping:
                if self._fatal is not None:
                    raise self._fatal
                return
            # A Dual: this generator is driven by whichever loop iterates it.
            self._waiter = Dual()
            await self._waiter

    # -- internals -------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    def _reconnect_now(self) -> None:
        self._restart = True
        self._interrupt()

    def _interrupt(self) -> None:
        """Cut the current stream, connection attempt or backoff pause short."""
        if self._stream is not None:
            self._stream.abort()
        elif self._pending is not None:
            self._pending.cancel()

    def _finish(self, failure: BaseException | None) -> None:
        self._stopping = True
        self._fatal = failure
        # Cancelled before etcd confirmed it: the creation will never come.
        self._created.fire(failure if failure is not None else CancelledError())
        self._finished.fire(failure)
        self._wake()

    def _crashed(self, failure: Failure) -> None:
        log.failure("watch loop crashed", failure)
        self._finish(failure.value)

    def _attempt(self, endpoint: str) -> None:
        """Open a stream on ``endpoint`` (authenticating first if etcd refused the
        last stream's token); :meth:`_streaming` runs it once open."""
        self._restart = False
        if not self._token_refused:
            # Nothing to wait for (gRPC): no coroutine, no Deferred per watch.
            try:
                opened = self._transport.open_stream_at_once(
                    "/watch", self._create_requests(), endpoint=endpoint)
                if opened is not None:
                    self._streaming(opened, endpoint)
                    return
            except Exception:
                self._crashed(Failure())  # type: ignore[no-untyped-call]
                return
        opening = Deferred.fromCoroutine(self._open(endpoint))
        self._pending = opening
        opening.addCallbacks(self._streaming, self._not_opened,
                             callbackArgs=(endpoint,), errbackArgs=(endpoint,))
        opening.addErrback(self._crashed)

    async def _open(self, endpoint: str) -> StreamOpened:
        transport = self._transport
        if self._token_refused:
            await transport.renew_token(self._stream_token)
            self._token_refused = False
        return await transport.open_stream("/watch", self._create_requests(),
                                           endpoint=endpoint)

    def _create_requests(self) -> list[dict[str, Any]]:
        """The create requests of the next stream (each key set at its resume revision)."""
        creates, self._creates = self._creates, None
        if creates is not None:
            return creates  # the first stream's, made (and checked) by __init__
        return self._state.create_requests(prev_kv=self._prev_kv, filters=self._filters,
                                           progress_notify=self._progress_notify)

    def _not_opened(self, failure: Failure, endpoint: str) -> Failure | None:
        self._pending = None
        exc = failure.value
        if not isinstance(exc, (CancelledError, errors.EtcdError)):
            return failure  # a bug: _crashed logs it and ends the watch
        self._after(exc, endpoint)
        return None

    def _streaming(self, opened: StreamOpened, endpoint: str) -> None:
        """Run the stream ``opened`` until it ends (then :meth:`_stream_ended`)."""
        self._pending = None
        transport = self._transport
        self._stream_token = opened.token
        self._state.start_stream()
        stream = _WatchStream(self, endpoint, transport.watch_decoder())
        self._stream = stream
        stream.probed = transport.probes.track(endpoint, stream.probe_failed)
        # Up here and down in _stream_ended, nothing runs between: never drifts.
        transport.metrics.watch_streams(1)
        opened.response.deliverBody(stream)

    def _on_frames(self, stream: _WatchStream,
                   frames: list[WatchResponse | errors.EtcdError]) -> None:
        state = self._state
        for frame in frames:
            if stream.failure is not None:
                return
            step = frame if isinstance(frame, errors.EtcdError) else state.receive(frame)
            if step is None:
                continue
            if isinstance(step, errors.EtcdError):
                stream.failure = step
                stream.abort()
                return
            if isinstance(step, AllCreated):
                self._live = True
                self._rounds.worked()
                self._created.fire(None)
            else:
                self._deliver(step)

    def _stream_ended(self, stream: _WatchStream) -> None:
        """The stream ended (etcd or the network ended it, or we aborted it)."""
        transport = self._transport
        transport.metrics.watch_streams(-1)
        if stream.probed is not None:
            stream.probed.close()
        if self._stream is stream:
            self._stream = None
        self._live = False
        failure = stream.failure
        if isinstance(failure, errors.Unavailable):
            # "no leader": the member is cut off; try the others first for a while.
            transport.demote(stream.endpoint, failure.message)
        elif isinstance(failure, errors.ConnectFailed):
            transport.health.unreachable(stream.endpoint)
        self._after(failure, stream.endpoint)

    def _after(self, exc: BaseException | None, endpoint: str) -> None:
        """An attempt on ``endpoint`` ended (``exc``: why, None: the stream just
        ended): finish, reconnect at once, or pause and try the next endpoint."""
        if isinstance(exc, CancelledError):
            # Our own interruption (cancel, add, remove): not a stream
            # failure, so no pause and no reconnect count.
            if not (self._stopping or self._restart):
                raise exc
        elif isinstance(exc, errors.EtcdError):
            if isinstance(exc, errors.Unauthenticated) and self._transport.credentials:
                self._token_refused = True
            elif not may_resume(exc):
                self._finish(exc)
                return
            log.info("watch stream to {endpoint} failed: {exc}", endpoint=endpoint, exc=exc)
        if self._stopping:
            self._finish(self._fatal)
            return
        if self._restart:
            self._attempt(endpoint)  # add()/remove(): reconnect at once, same endpoint
            return
        self.reconnects += 1
        pause = self._rounds.pause()
        if not pause:
            self._attempt(self._rounds.next_endpoint())
            return
        sleeping = self._pending = _sleep(self._transport.clock, pause)
        sleeping.addBoth(self._paused)
        sleeping.addErrback(self._crashed)

    def _paused(self, result: Failure | None) -> None:
        self._pending = None
        if isinstance(result, Failure) and not (
                isinstance(result.value, CancelledError) and (self._stopping or self._restart)):
            result.raiseException()
        if self._stopping:
            self._finish(self._fatal)
            return
        self._attempt(self._rounds.next_endpoint())

    def _deliver(self, batch: WatchBatch) -> None:
        if self._fatal is not None:
            return  # stopped by a callback that does not fit (the rest of this frame)
        if self._on_event is not None:
            on_event = self._on_event
            for event in batch.events:
                if not self._call(partial(on_event, event), batch):
                    return
            return
        callback = self._callback
        if callback is None:
            assert self._queue is not None  # made for a watch without callbacks
            self._queue.append(batch)
            self._wake()
            return
        self._call(partial(callback, batch), batch)

    def _call(self, call: Callable[[], object], batch: WatchBatch) -> bool:
        """Run one callback call; False if the watch was stopped because of it."""
        first, self._called = not self._called, True
        try:
            result = call()
        except _SIGNATURE_ERRORS as exc:
            if not first:
                log.failure("watch callback raised on a batch at revision {revision}; "
                            "the watch goes on", revision=batch.revision)
                return True
            exc.add_note(_SIGNATURE_NOTE)
            log.critical("{note}: {exc!r}", note=_SIGNATURE_NOTE, exc=exc)
            self._finish(exc)
            self._interrupt()
            return False
        except Exception:
            log.failure("watch callback raised on a batch at revision {revision}; "
                        "the watch goes on", revision=batch.revision)
            return True
        if isinstance(result, Deferred):
            pending: Deferred[Any] = result
        elif inspect.iscoroutine(result):
            pending = self._start(result)
        else:
            return True
        pending.addErrback(lambda f: log.failure(
            "watch callback failed on a batch at revision {revision}; the watch goes on", f,
            revision=batch.revision))
        return True

    def _start(self, coro: Coroutine[Any, Any, object]) -> Deferred[Any]:
        """Run the coroutine of an ``async def`` callback as its loop runs coroutines.

        On an asyncio client's loop clock it becomes a task, so it may await
        asyncio's own futures (``asyncio.sleep``, aiohttp, queues); elsewhere
        Twisted's driver runs it, so it may await Deferreds. The next batch
        does not wait for it, as it does not wait for a returned Deferred."""
        loop = getattr(self._transport.clock, "loop", None)
        if not isinstance(loop, asyncio.AbstractEventLoop):
            return Deferred.fromCoroutine(coro)
        task = loop.create_task(coro)
        # The loop keeps only a weak reference to a task: hold it until it is done.
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Deferred.fromFuture(task)


class _WatchStream(Protocol):
    """One stream of a watch: feeds each chunk to its decoder and the frames to the
    watch, and tells the watch when the stream ended (once)."""

    def __init__(self, watch: Watch, endpoint: str, decoder: Any) -> None:
        self.watch = watch
        self.endpoint = endpoint
        self.decoder = decoder
        #: the error that ended the stream (the frames after it are ignored)
        self.failure: errors.EtcdError | None = None
        #: its registration with the transport's probes (see etcdwamp.probe)
        self.probed: ProbedStream | None = None
        self.ended = False

    def dataReceived(self, data: bytes) -> None:
        """Feed a chunk; the frames it completed go to the watch."""
        self.watch._on_frames(self, self.decoder.feed(data))

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Pass on a last unterminated frame, then tell the watch the stream ended."""
        if self.ended:
            return
        if (self.failure is None and reason is not None
                and isinstance(reason.value, errors.ConnectFailed)):
            # gRPC: the watch waited on its shared stream for a connection that failed.
            self.failure = reason.value
        tail = self.decoder.close()
        if tail:
            self.watch._on_frames(self, tail)
        self.ended = True
        try:
            self.watch._stream_ended(self)
        except Exception:
            self.watch._crashed(Failure())  # type: ignore[no-untyped-call]

    def abort(self) -> None:
        """Drop the stream; ``connectionLost`` follows."""
        if self.transport is not None:
            self.transport.stopProducing()

    def probe_failed(self, reason: str) -> None:
        """The member carrying the stream failed a probe: move elsewhere."""
        log.info("watch leaves {endpoint}: {reason}", endpoint=self.endpoint, reason=reason)
        self.abort()


def _sleep(clock: Any, seconds: float) -> Deferred[None]:
    """A pause on ``clock``; cancelling it also cancels the timer."""
    calls: list[Any] = []

    def stop(_: Deferred[None]) -> None:
        if calls and calls[0].active():
            calls[0].cancel()

    d: Deferred[None] = Deferred(stop)
    calls.append(clock.callLater(seconds, d.callback, None))
    return d
