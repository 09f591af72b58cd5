"""Coroutine methods exposed as Deferred-returning ones.

Everything a user awaits returns a Deferred, so coroutines can ``await`` it
and ``inlineCallbacks`` generators can ``yield`` it; cancelling that Deferred
cancels the coroutine at the point it waits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred

__all__ = ["deferred"]

P = ParamSpec("P")
R = TypeVar("R")


def deferred(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Deferred[R]]:
    """Expose a coroutine function (or method) as a Deferred-returning one."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Deferred[R]:
        return Deferred.fromCoroutine(fn(*args, **kwargs))

    return wrapper
