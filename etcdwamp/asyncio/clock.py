"""An asyncio loop seen as the clock the shared code expects (``seconds`` and
``callLater``, the part of Twisted's ``IReactorTime`` it uses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["LoopClock"]


class DelayedCall:
    """A scheduled call: ``active()``, ``cancel()`` and ``getTime()`` as Twisted's."""

    __slots__ = ("_fired", "_handle", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float,
                 fn: Callable[..., object], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self._fired = False
        self._when = loop.time() + delay
        self._handle = loop.call_at(self._when, self._run, fn, args, kwargs)

    def _run(self, fn: Callable[..., object], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> None:
        self._fired = True
        fn(*args, **kwargs)

    def active(self) -> bool:
        """Neither run nor cancelled yet."""
        return not (self._fired or self._handle.cancelled())

    def cancel(self) -> None:
        """Do not run it (a no-op once it ran)."""
        self._handle.cancel()

    def getTime(self) -> float:
        """The loop time it runs at."""
        return self._when


class LoopClock:
    """``seconds()`` and ``callLater()`` on an asyncio loop (default: the running
    loop, looked up on first use so a client may be made before the loop runs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

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
        return DelayedCall(self.loop, max(0.0, delay), fn, args, kwargs)
