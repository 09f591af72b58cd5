"""An asyncio loop seen as the clock the shared code expects (``seconds`` and
``callLater``, the part of Twisted's ``IReactorTime`` it uses).

A timer costs two GC-tracked objects, its :class:`DelayedCall` and asyncio's
``TimerHandle``: the DelayedCall holds the function and its arguments and is
itself the handle's callback, and every timer of a clock runs in the clock's
one :class:`contextvars.Context`, which asyncio would otherwise copy for each.

Sharing that Context is safe because asyncio runs one handle at a time and a
handle's callback cannot run another handle inside it, so the Context is never
entered twice (``Context.run`` would raise); each clock has its own, so loops in
other threads never enter it either. Twisted's reactor does the same: its
``callLater`` takes no context, its timers all run in the reactor's. What a
timer's function sets in a ``ContextVar`` therefore stays set for the clock's
later timers (not for the tasks and callbacks of the caller that scheduled it),
and a timer does not see what its caller set: no timer of the library reads or
sets one; work that needs a context of its own runs in a task or under
``Deferred.fromCoroutine``, which each copy the current one.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["LoopClock"]

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class DelayedCall:
    """A scheduled call: ``active()``, ``cancel()`` and ``getTime()`` as Twisted's."""

    __slots__ = ("_args", "_fired", "_fn", "_handle", "_kwargs", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context,
                 delay: float, fn: Callable[..., object], args: tuple[Any, ...],
                 kwargs: Mapping[str, Any]) -> None:
        self._fired = False
        self._fn: Callable[..., object] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._when = loop.time() + delay
        self._handle = loop.call_at(self._when, self, context=context)

    def __call__(self) -> None:
        """Run the call (asyncio's handle calls the DelayedCall itself)."""
        fn = self._fn
        args = self._args
        kwargs = self._kwargs
        self._fired = True
        self._forget()
        if fn is not None:
            fn(*args, **kwargs)

    def active(self) -> bool:
        """Neither run nor cancelled yet."""
        return not (self._fired or self._handle.cancelled())

    def cancel(self) -> None:
        """Do not run it (a no-op once it ran)."""
        if not self._fired:
            self._handle.cancel()
            self._forget()

    def getTime(self) -> float:
        """The loop time it runs at."""
        return self._when

    def _forget(self) -> None:
        # Whoever keeps the DelayedCall (a waiter's timer attribute, say) keeps
        # nothing it would have called alive, nor a cycle through itself.
        self._fn = None
        self._args = ()
        self._kwargs = _NO_KWARGS

    def __repr__(self) -> str:
        # What asyncio's debug mode shows for a slow timer.
        return f"<DelayedCall {self._fn!r} at {self._when}>"


class LoopClock:
    """``seconds()`` and ``callLater()`` on an asyncio loop (default: the running
    loop, looked up on first use so a client may be made before the loop runs).

    Its timers all run in one :class:`contextvars.Context` of the clock's, as
    Twisted's reactor runs its timers, not in a copy of the caller's: a value
    a timer sets in a ``ContextVar`` is seen by the clock's later timers only."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._context = contextvars.Context()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, bound on first use."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def seconds(self) -> float:
        """The loop's monotonic time."""
        return self.loop.time()

    def callLater(self, delay: float, fn: Callable[..., object],
                  *args: Any, **kwargs: Any) -> DelayedCall:
        """Run ``fn(*args, **kwargs)`` after ``delay`` seconds."""
        return DelayedCall(self.loop, self._context, max(0.0, delay), fn, args, kwargs)
