"""How many calls may use connections to each endpoint at once, and how many may wait.

A :class:`ConnectionBudget` gives a call a *slot* of one endpoint before it
sends anything there. At most ``max_connections`` calls hold slots of one
endpoint at once, so no more connections than that carry calls to it (Go's
``http.Transport.MaxConnsPerHost``). More calls wait, each in its endpoint's
first-in-first-out queue; at most ``max_queued`` wait over all endpoints of
the client together. Beyond that a call fails at once with
:class:`~etcdwamp.errors.Busy`: nothing was sent, and a queue that long
would only make callers wait out their timeouts behind it.

A waiting call waits at most ``timeout`` (what is left of its own deadline)
and then fails with :class:`~etcdwamp.errors.RequestTimeout`, the error a
call that ran out of time gets; cancelling it takes it out of the queue at
once with ``CancelledError``. A freed slot goes straight to the oldest
waiter of that endpoint, so a new call never overtakes a waiting one.

Pure bookkeeping over a clock (``callLater``) and Deferreds: no I/O, so the
rules are tested over ``task.Clock`` (tests/unit/test_budget.py). The
transport decides which exchanges need a slot.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred

from . import errors

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_QUEUED", "ConnectionBudget"]

#: calls in flight per endpoint: etcd serves a few dozen concurrent requests
#: per client well, and 64 connections stay far below a process's 1,024 files
DEFAULT_MAX_CONNECTIONS = 64
#: calls waiting for a slot, per client: about 16 rounds of 64 calls, so a
#: waiting call still gets its turn within a usual timeout while etcd answers
DEFAULT_MAX_QUEUED = 1024


class _Waiter:
    """One call waiting for a slot: its Deferred and its timer."""

    __slots__ = ("endpoint", "ready", "timer")

    def __init__(self, endpoint: str, ready: Deferred[None]) -> None:
        self.endpoint = endpoint
        self.ready = ready
        self.timer: Any = None


class _Lane:
    """One endpoint's slots in use and its queue."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = 0
        self.waiting: deque[_Waiter] = deque()


class ConnectionBudget:
    """Slots per endpoint and one bounded queue (see the module docstring).

    :param clock: an ``IReactorTime`` (``callLater``) for the waiting calls' timeouts
    :param max_connections: slots per endpoint (at least 1)
    :param max_queued: calls that may wait over all endpoints (0: none wait)
    """

    def __init__(self, clock: Any, *, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        for name, value, least in (("max_connections", max_connections, 1),
                                   ("max_queued", max_queued, 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value}")
        self._clock = clock
        self.max_connections = max_connections
        self.max_queued = max_queued
        self._lanes: dict[str, _Lane] = {}
        self._queued = 0
        self._releases: deque[str] = deque()  # releases to hand on (see release)
        self._handing_on = False

    @property
    def queued(self) -> int:
        """Calls waiting for a slot, over all endpoints."""
        return self._queued

    def busy(self, endpoint: str) -> int:
        """Slots of ``endpoint`` in use."""
        lane = self._lanes.get(endpoint)
        return 0 if lane is None else lane.busy

    def take(self, endpoint: str) -> bool:
        """Take a slot of ``endpoint`` if one is free (the caller must
        :meth:`release` it); False: all are in use, :meth:`wait` for one."""
        lane = self._lanes.get(endpoint)
        if lane is None:
            lane = self._lanes[endpoint] = _Lane()
        if lane.busy >= self.max_connections:
            return False
        lane.busy += 1
        return True

    def wait(self, endpoint: str, timeout: float) -> Deferred[None]:
        """Queue for a slot of ``endpoint``; the Deferred fires once the caller
        holds it (and must :meth:`release` it). Call after :meth:`take` failed.
        The Deferred fails with :class:`~etcdwamp.errors.RequestTimeout` after
        ``timeout``; cancelling it leaves the queue with ``CancelledError``.

        :param timeout: seconds to wait at most (inf: no limit)
        :raises Busy: ``max_queued`` calls wait already (raised at once, not queued)
        """
        if self._queued >= self.max_queued:
            raise errors.Busy(f"every connection to {endpoint} is in use and "
                              f"{self._queued} calls wait already (max_queued); "
                              "nothing was sent", endpoint=endpoint)
        lane = self._lanes.get(endpoint)
        if lane is None:
            lane = self._lanes[endpoint] = _Lane()

        def leave(_: Deferred[None]) -> None:
            # Cancelled: Deferred then fails it with CancelledError.
            self._forget(lane, waiter)

        waiter = _Waiter(endpoint, Deferred(leave))
        lane.waiting.append(waiter)
        self._queued += 1
        if not math.isinf(timeout):
            waiter.timer = self._clock.callLater(max(0.0, timeout), self._expire, lane, waiter)
        return waiter.ready

    def release(self, endpoint: str) -> None:
        """Give back a slot of ``endpoint``: to its oldest waiter if there is one.

        The waiter runs at once, and may give its slot back at once too (an
        exchange that fails synchronously): such a release is queued and handed
        on by the outermost one, so a long queue never deepens the stack
        (recursing, 1,500 waiters ran out of stack and leaked a slot for good)."""
        self._releases.append(endpoint)
        if self._handing_on:
            return
        self._handing_on = True
        try:
            while self._releases:
                self._hand_on(self._releases.popleft())
        finally:
            self._handing_on = False

    def _hand_on(self, endpoint: str) -> None:
        lane = self._lanes[endpoint]
        if lane.waiting:
            waiter = lane.waiting.popleft()
            self._queued -= 1
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
            # The slot passes to the waiter: busy stays as it is.
            waiter.ready.callback(None)
            return
        lane.busy -= 1
        if not lane.busy and not lane.waiting:
            # Pinned calls may name any member: keep no lane per URL ever seen.
            del self._lanes[endpoint]

    def _forget(self, lane: _Lane, waiter: _Waiter) -> None:
        try:
            lane.waiting.remove(waiter)
        except ValueError:
            return  # already handed a slot, or expired
        self._queued -= 1
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        if not lane.busy and not lane.waiting:
            self._lanes.pop(waiter.endpoint, None)

    def _expire(self, lane: _Lane, waiter: _Waiter) -> None:
        waiter.timer = None
        self._forget(lane, waiter)
        waiter.ready.errback(errors.RequestTimeout(
            f"no connection to {waiter.endpoint} came free before the call's timeout "
            "ran out; nothing was sent", endpoint=waiter.endpoint))
