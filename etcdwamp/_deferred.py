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


class Dual(Deferred[T]):
    """A Deferred an asyncio task can await too (see the module docstring)."""

    def __await__(self) -> Generator[Any, Any, T]:
        if not self.called or self.paused or self._cancelled_already():
            # (A cancellation must surface as each loop's own CancelledError:
            # the probe tells which loop awaits.)
            probe = _Probe(self)
            answer = yield probe
            if answer is probe:
                # Twisted's driver sends back whatever is not a Deferred: we
                # run under Deferred.fromCoroutine / inlineCallbacks.
                return (yield from Deferred.__iter__(self))
            # An asyncio task woke us: the probe's result() did not raise.
            value: T = probe.value
            return value
        return (yield from Deferred.__iter__(self))

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


class _Probe:
    """What a :class:`Dual` yields first: asyncio's future protocol, backed by
    the Dual. An asyncio task waits on it; Twisted's driver hands it back."""

    # asyncio's Task reads this to recognise a future it may wait on, and sets
    # it to False once it did.
    _asyncio_future_blocking = True

    def __init__(self, owner: Dual[Any]) -> None:
        self._owner = owner
        self._outcome: Any = _PENDING
        self._callbacks: list[tuple[Callable[[Any], object], contextvars.Context | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.value: Any = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def add_done_callback(self, fn: Callable[[Any], object], *,
                          context: contextvars.Context | None = None) -> None:
        if self._outcome is not _PENDING:
            self.get_loop().call_soon(fn, self, context=context)
            return
        self._callbacks.append((fn, context))
        if len(self._callbacks) == 1:
            self.get_loop()
            self._owner.addBoth(self._settle)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        kept = [(f, c) for f, c in self._callbacks if f != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks[:] = kept
        return removed

    def _settle(self, outcome: Any) -> Any:
        # An error now belongs to the asyncio side: the Deferred's chain goes
        # on with None, so it is not also "unhandled in Deferred". A value
        # stays for any later listener.
        self._outcome = outcome
        loop = self.get_loop()
        for fn, context in self._callbacks:
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
                raise asyncio.CancelledError() from exc
            assert exc is not None
            raise exc.with_traceback(outcome.getTracebackObject())  # type: ignore[no-untyped-call]
        self.value = outcome
        return outcome

    def exception(self) -> BaseException | None:
        outcome = self._outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("exception is not set")
        if not isinstance(outcome, Failure):
            return None
        if isinstance(outcome.value, CancelledError):
            raise asyncio.CancelledError()
        return outcome.value

    def cancel(self, msg: object = None) -> bool:
        # asyncio's Task.cancel() lands here while the task waits on us.
        if self._outcome is not _PENDING or self._owner.called:
            return False
        self._owner.cancel()
        return True


def dual(d: Deferred[T]) -> Dual[T]:
    """``d`` as a :class:`Dual`: same outcome; cancelling it cancels ``d``."""
    if isinstance(d, Dual):
        return d
    out: Dual[T] = Dual(lambda _: d.cancel())

    def forward(result: Any) -> None:
        # After out was cancelled, d may still settle later (e.g. a future
        # that finishes unwinding): nothing to pass on then, and no failure
        # left in d's chain either.
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)

    d.addBoth(forward)
    return out


def deferred(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Dual[R]]:
    """Expose a coroutine function (or method) as one returning a :class:`Dual`,
    running the coroutine on Twisted's driver whatever loop awaits the result."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Dual[R]:
        return dual(Deferred.fromCoroutine(fn(*args, **kwargs)))

    return wrapper
