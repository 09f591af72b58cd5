"""The one future type of the shared code, awaitable from both event loops.

Everything above the HTTP layer (watches, leases, locks, coalescing, pmap,
the WAMP services) is written once, with Twisted's :class:`Deferred` as its
future: a Deferred is a plain callback object that needs no reactor, and
its coroutine driver (``Deferred.fromCoroutine``) cancels a coroutine at the
point it waits. Only time (a clock) and I/O (the HTTP layer) are loop-specific.

What a *user* awaits must also work inside an asyncio task, which accepts
only objects that speak asyncio's future protocol. :class:`Dual` is a
Deferred that also speaks it (``_asyncio_future_blocking``, ``get_loop``,
``add_done_callback``, ``result``, ``cancel``, ...), so the same object is
awaited by ``Deferred.fromCoroutine``/``inlineCallbacks`` on Twisted and by
an asyncio ``Task`` (or ``asyncio.gather``/``wait_for``) on asyncio. On
asyncio a cancellation surfaces as :class:`asyncio.CancelledError`, and
cancelling the task that awaits it cancels the Deferred (and so the request).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine, Generator
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

__all__ = ["Dual", "deferred", "dual"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_PENDING: Any = object()

# A _Probe's steps as the iterator an ``await`` drives.
_FRESH = 0      # made by Dual.__await__, not yielded yet
_YIELDED = 1    # yielded itself; which loop drives it is not known yet
_LISTENING = 2  # an asyncio task added a done-callback: the probe listens to its Dual
_RELAYED = 3    # Twisted's driver sent it back: it yielded its Dual instead


class Dual(Deferred[T]):
    """A Deferred an asyncio task can await too (see the module docstring)."""

    # What dual() relays, until it settled (None for a Dual made directly).
    _source: Deferred[Any] | None = None

    def __await__(self) -> Generator[Any, Any, T]:
        if not self.called or self.paused or self._cancelled_already():
            # (A cancellation must surface as each loop's own CancelledError:
            # the probe tells which loop awaits.)
            return _Probe(self)
        return Deferred.__iter__(self)

    def cancel(self) -> None:
        """Cancel, as a Deferred does; whoever awaits the Dual afterwards still gets
        CancelledError, but a Dual cancelled and then dropped logs nothing.

        Twisted reports a failure left at the end of a chain as "Unhandled
        error in Deferred" when the Deferred is collected; a cancellation its
        caller asked for is no such error (asyncio logs nothing for a
        cancelled future either)."""
        super().cancel()
        if self._cancelled_already() and self._debugInfo is not None:
            # Deferred keeps the unconsumed failure here to log it from
            # DebugInfo.__del__; adding a callback later runs the chain again.
            self._debugInfo.failResult = None

    def _cancelled_already(self) -> bool:
        result = self.result
        return isinstance(result, Failure) and isinstance(result.value, CancelledError)

    def _relay(self, outcome: Any) -> None:
        """:func:`dual`'s callback on its source: pass the outcome on."""
        self._source = None
        # After the Dual was cancelled, the source may still settle later (e.g.
        # a future that finishes unwinding): nothing to pass on then, and no
        # failure left in the source's chain either.
        if not self.called:
            if isinstance(outcome, Failure):
                self.errback(outcome)
            else:
                self.callback(outcome)


class _Probe(Generator[Any, Any, Any]):
    """What awaiting a pending :class:`Dual` makes: both the iterator the awaiting
    coroutine drives and what it yields first, an object speaking asyncio's
    future protocol backed by the Dual. An asyncio task waits on it; Twisted's
    driver sends back whatever is not a Deferred, and the probe then yields
    the Dual itself for the driver to wait on.

    One GC-tracked object per await besides the two tuples of its entry in the
    Dual's chain: no generator, and the probe is its own callback on the Dual.
    The task's one done-callback lives in slots; a list only holds more."""

    __slots__ = ("_asyncio_future_blocking", "_callback", "_cancel_message", "_context",
                 "_loop", "_more", "_outcome", "_owner", "_step")

    def __init__(self, owner: Dual[Any]) -> None:
        # asyncio's Task reads this to recognise a future it may wait on, and
        # sets it to False once it did.
        self._asyncio_future_blocking = True
        self._owner = owner
        self._outcome: Any = _PENDING
        self._step = _FRESH
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: Callable[[Any], object] | None = None
        self._context: contextvars.Context | None = None
        self._more: list[tuple[Callable[[Any], object], contextvars.Context | None]] | None = None
        self._cancel_message: object = None

    # -- the iterator an await drives ---------------------------------------------

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        """Yield the probe first, then: Twisted's driver sends the probe back, so
        yield the Dual (and return what the driver sends once it fired); an
        asyncio task sends None once the probe is done, so return its result.

        :raises StopIteration: with the value the ``await`` returns
        """
        step = self._step
        if step == _FRESH:
            self._step = _YIELDED
            return self
        if step == _RELAYED:
            # (Twisted's driver throws a failure in instead.)
            raise StopIteration(value)
        if value is self and step == _YIELDED:
            owner = self._owner
            if not owner.called or owner.paused:
                self._step = _RELAYED
                return owner
            # Already cancelled: the driver gets Twisted's CancelledError.
            return next(Deferred.__iter__(owner))
        raise StopIteration(self.result())

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        """Raise what a driver throws in (a failed Deferred, a cancelled task) at
        the ``await``."""
        if val is None:
            if tb is None:
                raise typ
            val = typ()
        if tb is not None:
            val = val.with_traceback(tb)
        raise val

    # -- asyncio's future protocol --------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def add_done_callback(self, fn: Callable[[Any], object], *,
                          context: contextvars.Context | None = None) -> None:
        if self._outcome is not _PENDING:
            self.get_loop().call_soon(fn, self, context=context)
            return
        if self._callback is None:
            self._callback = fn
            self._context = context
        elif self._more is None:
            self._more = [(fn, context)]
        else:
            self._more.append((fn, context))
        if self._step != _LISTENING:
            self._step = _LISTENING
            self.get_loop()
            # (Settles at once if the Dual was cancelled already.)
            self._owner.addBoth(self)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        listeners = [] if self._callback is None else [(self._callback, self._context)]
        if self._more is not None:
            listeners += self._more
        kept = [(f, c) for f, c in listeners if f != fn]
        # The first kept moves into the slots: a callback there runs first.
        self._callback, self._context = kept[0] if kept else (None, None)
        self._more = kept[1:] or None
        return len(listeners) - len(kept)

    def __call__(self, outcome: Any) -> Any:
        """The Dual's callback and errback: keep its outcome and wake the listeners.

        An error now belongs to the asyncio side: the Dual's chain goes on with
        None, so it is not also "unhandled in Deferred". A value stays for any
        later listener."""
        self._outcome = outcome
        callback = self._callback
        if callback is not None:
            loop = self.get_loop()
            loop.call_soon(callback, self, context=self._context)
            if self._more is not None:
                for fn, context in self._more:
                    loop.call_soon(fn, self, context=context)
        return None if isinstance(outcome, Failure) else outcome

    def done(self) -> bool:
        return self._outcome is not _PENDING

    def cancelled(self) -> bool:
        return isinstance(self._outcome, Failure) and isinstance(
            self._outcome.value, (CancelledError, asyncio.CancelledError))

    def result(self) -> Any:
        outcome = self._outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("result is not ready")
        if isinstance(outcome, Failure):
            exc = outcome.value
            if isinstance(exc, CancelledError):
                raise self._cancelled_error() from exc
            assert exc is not None
            raise exc.with_traceback(outcome.getTracebackObject())  # type: ignore[no-untyped-call]
        return outcome

    def exception(self) -> BaseException | None:
        outcome = self._outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("exception is not set")
        if not isinstance(outcome, Failure):
            return None
        if isinstance(outcome.value, CancelledError):
            raise self._cancelled_error()
        return outcome.value

    def cancel(self, msg: object = None) -> bool:
        # asyncio's Task.cancel() lands here while the task waits on us.
        if self._outcome is not _PENDING or self._owner.called:
            return False
        self._cancel_message = msg
        self._owner.cancel()
        return True

    def _cancelled_error(self) -> asyncio.CancelledError:
        """asyncio's CancelledError, with the message given to :meth:`cancel` (as
        a cancelled asyncio future raises)."""
        msg = self._cancel_message
        return asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg)


def _cancel_source(out: Deferred[Any]) -> None:
    """The canceller of a :func:`dual`: cancel what it relays."""
    assert isinstance(out, Dual)
    source = out._source
    if source is not None:
        source.cancel()


def dual(d: Deferred[T]) -> Dual[T]:
    """``d`` as a :class:`Dual`: same outcome; cancelling it cancels ``d``."""
    if isinstance(d, Dual):
        return d
    # A bound method and a canceller shared by all (no closures, cells or
    # lambda per call).
    out: Dual[T] = Dual(_cancel_source)
    out._source = d
    d.addBoth(out._relay)
    return out


def deferred(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Dual[R]]:
    """Expose a coroutine function (or method) as one returning a :class:`Dual`,
    running the coroutine on Twisted's driver whatever loop awaits the result."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Dual[R]:
        return dual(Deferred.fromCoroutine(fn(*args, **kwargs)))

    return wrapper
