"""The one way tests wait: for a condition to become true, never for time to pass.

``until`` polls a condition (a plain function, or one returning a Deferred or a
coroutine) on the running reactor and fails with a message that says what was
awaited when it does not hold within ``timeout``. Polling is the detail of this
helper alone; tests state the event they wait for.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from etcdwamp._deferred import deferred

__all__ = ["until"]

_POLL = 0.01


@deferred  # awaitable from a test on either loop (tests/integration/loops.py)
async def until(condition: Callable[[], Any], *, timeout: float = 30.0,
                why: Callable[[], str] | str | None = None) -> None:
    """Return as soon as ``condition()`` is true; raise ``AssertionError`` after
    ``timeout`` seconds (``why``, or what it returns, is added to the message)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Deferred) or inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            detail = why() if callable(why) else why
            name = getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"{name} did not hold within {timeout}s"
                                 + (f":\n{detail}" if detail else ""))
        await deferLater(reactor, _POLL)  # type: ignore[arg-type]
