"""Leases with automatic keep-alive.

``lease = await client.lease(ttl, keep_alive=True)`` grants a lease and renews
it every ``ttl / 3`` seconds, so two renewals may fail before it expires.
When a renewal finds the lease gone (etcd answers TTL 0), or no renewal was
confirmed by the lease's deadline (the time the last confirmed renewal was
sent, plus its TTL), the lease is *lost*: ``lost`` fires with
:class:`~etcdwamp.errors.LeaseExpired` and the optional ``on_lost`` callback
is called, so the owner can stop acting as a holder. The deadline does not
wait for a renewal still in flight (etcd may already have dropped the lease,
and a request's timeout can be longer than what is left of the TTL): that
renewal is cancelled and the loss reported on time. Stopping the keep-alive
(or revoking) cancels a renewal in flight; that cancellation is neither a
failed renewal nor a loss.

A renewal must end by that deadline, so it fails over within what is left
of the TTL, not within the client's timeout: each endpoint gets a share of
the time left (or ``attempt_timeout``, if shorter), then the next one is
tried. A member that hangs or is cut off from its cluster (it answers
``no leader``) therefore costs a renewal a fraction of the TTL, is demoted
(see :mod:`etcdwamp.health`), and the next renewals go to the others first:
with ``ttl=3`` (a renewal every second, 2 s left) and three endpoints, a
hung first one costs 0.67 s.

Every method a user awaits returns a Deferred that an asyncio task can await
too (a :class:`~etcdwamp._deferred.Dual`: ``await`` it on either loop, or
``yield`` it from ``inlineCallbacks``); cancelling it, or the asyncio task
awaiting it, cancels the request behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from . import errors
from ._deferred import deferred
from ._signal import Signal
from .transport import Transport
from .wire import LeaseInfo, lease_grant_request, lease_revoke_request, lease_ttl_request
from .wire.concurrency import lease_keepalive_request

__all__ = ["Lease", "grant"]

log = Logger()


class Lease:
    """A granted lease. ``id`` goes into ``put(..., lease=lease.id)``."""

    def __init__(self, transport: Transport, lease_id: int, ttl: int, *,
                 granted_at: float | None = None) -> None:
        """:param granted_at: the client clock's time when the grant was sent
            (etcd's TTL runs from a moment after it); default: now"""
        self._transport = transport
        self._clock = transport.clock
        self.id = lease_id
        self.ttl = ttl
        # When etcd drops the lease unless a renewal is confirmed before.
        self._deadline = (self._clock.seconds() if granted_at is None else granted_at) + ttl
        self._deadline_timer: Any = None
        self._lost = Signal()
        self._lost_reason: errors.LeaseExpired | None = None
        self._on_lost: Callable[[errors.LeaseExpired], object] | None = None
        self._timer: Any = None
        self._renewal: Deferred[int] | None = None
        self._keeping = False
        self.renewals = 0

    def __repr__(self) -> str:
        return f"Lease(id={self.id}, ttl={self.ttl})"

    @property
    def is_lost(self) -> bool:
        """Whether the keep-alive found the lease gone or saw its TTL run out unrenewed."""
        return self._lost_reason is not None

    @property
    def lost(self) -> Deferred[None]:
        """A new Deferred that fails with :class:`LeaseExpired` when the lease is lost."""
        return self._lost.wait()

    @deferred
    async def revoke(self) -> None:
        """Revoke the lease now: every key attached to it is deleted."""
        self.stop_keep_alive()
        # Already gone is fine: the goal of revoking is reached.
        with contextlib.suppress(errors.LeaseNotFound):
            await self._transport.call(lease_revoke_request(self.id))

    @deferred
    async def remaining(self) -> int:
        """Seconds left (``-1`` once the lease expired or was revoked)."""
        info: LeaseInfo = await self._transport.call(lease_ttl_request(self.id))
        return info.ttl

    @deferred
    async def keys(self) -> list[bytes]:
        """The keys attached to this lease."""
        info: LeaseInfo = await self._transport.call(lease_ttl_request(self.id, keys=True))
        return list(info.keys)

    @deferred
    async def refresh(self) -> int:
        """Renew once; returns the new TTL. Raises :class:`LeaseExpired` if it is gone."""
        return await self._renew(by_deadline=False)

    async def _renew(self, *, by_deadline: bool) -> int:
        """Renew once (``by_deadline``: the call ends by the lease's deadline at
        the latest, failing over within what is left of it)."""
        # etcd restarts the TTL when it handles the renewal, which is after
        # this moment: counting from here never overestimates the deadline.
        sent: float = self._clock.seconds()
        started = sent
        if by_deadline:
            # The call's timeout counts from ``started``: pretending it started
            # earlier makes it end by the deadline. Each endpoint then gets a
            # share of what is left of the TTL, not of the client's timeout,
            # so a hung member cannot use up the TTL before the next one is
            # tried (with ttl=3 and timeout=10, three endpoints: 0.67 s, not 3.3 s).
            started = min(sent, self._deadline - self._transport.timeout)
        result = await self._transport.call_async(lease_keepalive_request(self.id),
                                                  started=started, keepalive=True)
        if result.ttl <= 0:
            raise errors.LeaseExpired(self.id)
        self.renewals += 1
        self._deadline = max(self._deadline, sent + result.ttl)
        return result.ttl

    def keep_alive(self, on_lost: Callable[[errors.LeaseExpired], object] | None = None,
                   *, interval: float | None = None) -> Lease:
        """Renew automatically every ``interval`` seconds (default ``ttl / 3``)."""
        self._on_lost = on_lost
        if self._keeping or self.is_lost:
            return self
        self._keeping = True
        period = interval if interval is not None else max(self.ttl / 3.0, 0.2)
        clock = self._clock

        def tick() -> None:
            self._timer = None
            d = self._renewal = Deferred.fromCoroutine(self._renew(by_deadline=True))
            d.addCallbacks(renewed, failed)

        def schedule(delay: float) -> None:
            if self._keeping:
                self._timer = clock.callLater(delay, tick)

        failing = False  # within a streak of failed renewals (logged once per streak)

        def renewed(ttl: int) -> None:
            nonlocal failing
            self._renewal = None
            if failing:
                failing = False
                log.info("lease {id} renewed again", id=self.id)
            self._watch_deadline()  # refresh() moved the deadline
            schedule(period)

        def failed(failure: Any) -> None:
            nonlocal failing
            self._renewal = None
            if failure.check(CancelledError):
                return  # stop_keep_alive() or the deadline cut it short: nothing failed
            if failure.check(errors.LeaseExpired):
                self._mark_lost(failure.value)
            elif clock.seconds() >= self._deadline:
                self._expired()
            else:
                if not failing:
                    # Once per streak, not per retry: with etcd away, a process
                    # holding many leases would otherwise log each of them every
                    # second until they come back or are lost.
                    failing = True
                    log.warn("lease {id} renewal failed, retrying every second until "
                             "its deadline: {err}", id=self.id, err=failure.getErrorMessage())
                schedule(min(period, 1.0))

        self._watch_deadline()
        schedule(period)
        return self

    def _watch_deadline(self) -> None:
        """(Re)arm the timer that declares the lease lost at its deadline."""
        if self._deadline_timer is not None and self._deadline_timer.active():
            self._deadline_timer.cancel()
        clock = self._clock
        self._deadline_timer = clock.callLater(max(0.0, self._deadline - clock.seconds()),
                                               self._expired)

    def _expired(self) -> None:
        # Whatever renewal is still in flight comes too late to count: the
        # holder must stop acting as one now. _mark_lost cancels it.
        self._deadline_timer = None
        if self._clock.seconds() < self._deadline:
            self._watch_deadline()  # a refresh() of the owner's moved it
            return
        self._mark_lost(errors.LeaseExpired(self.id, "no renewal confirmed before its TTL ran out"))

    def stop_keep_alive(self) -> None:
        """Stop renewing; a renewal in flight is cancelled (its connection dropped)."""
        self._keeping = False
        for timer in (self._timer, self._deadline_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._deadline_timer = None
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            renewal.cancel()

    def _mark_lost(self, reason: errors.LeaseExpired) -> None:
        self.stop_keep_alive()
        if self._lost_reason is not None:
            return
        self._lost_reason = reason
        log.warn("lease {id} lost: {reason}", id=self.id, reason=reason)
        if self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:
                log.failure("lease on_lost callback raised")
        self._lost.fire(reason)


async def grant(transport: Transport, ttl: int, *, keep_alive: bool = False,
                on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Lease:
    """Grant a lease of ``ttl`` seconds; with ``keep_alive`` it is renewed
    automatically until revoked or lost."""
    sent: float = transport.clock.seconds()
    granted = await transport.call_async(lease_grant_request(ttl))
    lease = Lease(transport, granted.id, granted.ttl, granted_at=sent)
    if keep_alive:
        lease.keep_alive(on_lost)
    return lease
