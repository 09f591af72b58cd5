"""Unit tests that run as asyncio tasks, as a user of etcdwamp.asyncio would.

The suite's reactor is Twisted's asyncio reactor: a task runs on its loop, and
pytest-twisted waits for the Deferred around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred


def on_asyncio(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], Deferred[None]]:
    """Run the test coroutine as an asyncio task (a user of etcdwamp.asyncio)."""
    def run() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(fn()))
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run
