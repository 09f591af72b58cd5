"""Running one integration test on both event loops.

The suite runs on Twisted's asyncio reactor (``--reactor=asyncio`` in
pyproject.toml), so one asyncio loop serves the Twisted client and the
asyncio client alike. The ``loop`` fixture is parametrized over both; the
``client`` fixture and :func:`make_client` give the client of that loop, and
:func:`ensure` drives the test coroutine the way a user of that loop would:
``Deferred.fromCoroutine`` for Twisted, an asyncio task for asyncio. A test
body written once therefore proves the same behaviour on both.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred

from etcdwamp.client import Client

__all__ = ["LOOPS", "ensure", "make_client"]

LOOPS = ("twisted", "asyncio")


#: the transport clients of make_client use unless a test names one: the gateway, or
#: "grpc" for the suite's second pass over the client's modules (see scripts/test)
TRANSPORT = os.environ.get("ETCDWAMP_TEST_TRANSPORT", "gateway")


def make_client(loop: str, url: str | None = None, **kwargs: Any) -> Client:
    """A client of ``loop`` ("twisted" or "asyncio") with ``Client``'s arguments
    (and :data:`TRANSPORT` unless ``transport`` is given)."""
    if TRANSPORT != "gateway" and "http_client" not in kwargs:
        kwargs.setdefault("transport", TRANSPORT)
    if loop == "asyncio":
        from etcdwamp.asyncio import Client as AsyncioClient

        return AsyncioClient(url, **kwargs)
    from twisted.internet import reactor

    return Client(reactor, url, **kwargs)


def _loop_of(kwargs: dict[str, Any]) -> str:
    loop = kwargs.get("loop")
    if loop in LOOPS:
        return str(loop)
    for value in kwargs.values():
        framework = getattr(value, "framework", None)
        if framework in LOOPS:
            return str(framework)
    return "twisted"


def ensure(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Deferred[Any]]:
    """Run an ``async def`` test on the loop of its ``loop`` fixture or client
    (Twisted when it has neither); pytest-twisted waits for the Deferred."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Deferred[Any]:
        coro = fn(*args, **kwargs)
        if _loop_of(kwargs) == "asyncio":
            return Deferred.fromFuture(asyncio.ensure_future(coro))
        return Deferred.fromCoroutine(coro)

    return run
