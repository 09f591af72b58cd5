"""Distributed locks and leader elections on etcd's v3lock and v3election services.

Each holder owns a lease that is kept alive while it holds the lock or leads;
if the holder dies, the lease expires and the next contender takes over.

**Use the fencing token.** A lock held through a lease can be lost without the
holder noticing in time: a long GC pause or a network partition outlasts the
TTL, the lease expires, another process acquires the lock, and the first one
wakes up still believing it holds it. Jepsen's analysis of etcd (3.4.3, 2020)
shows exactly this: etcd locks alone do not give mutual exclusion. The remedy
is fencing: every acquisition gets a number that only grows
(:attr:`Lock.fencing_token`: the create revision of the holder's lock key), the
holder passes it along with every write to the protected resource, and the
resource refuses writes carrying a token older than the newest it has seen.
For resources inside etcd, guard writes with a transaction compare instead
(``CompCreated(lock.key, "==", lock.fencing_token)``): the write then only
happens while the lock key still exists.

Every method a user awaits returns a Deferred an asyncio task can await too,
as the client's do (``await`` it on either loop, or ``yield`` it from
``inlineCallbacks``); ``observe()`` is an async iterator, and ``async with
lock:`` works as well, on both loops.

**Cancelling** the Deferred of ``acquire()`` or ``campaign()`` fails it at
once with ``CancelledError`` (on asyncio, cancelling the task that awaits it
raises ``asyncio.CancelledError`` there); the lease behind the waiting key is
revoked in the background, so the abandoned candidacy does not hold up later
contenders.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from . import errors
from ._deferred import Dual, deferred, dual
from .lease import Lease, grant
from .transport import StreamProtocol, Transport
from .wire import KeyValue, range_request
from .wire.concurrency import (
    LeaderKey,
    campaign_request,
    leader_request,
    lock_request,
    observe_body,
    parse_leader_frame,
    proclaim_request,
    resign_request,
    unlock_request,
)
from .wire.encoding import require_bytes
from .wire.watch import JsonLinesDecoder

__all__ = ["Election", "Lock"]

log = Logger()


async def _abandon(lease: Lease, reason: BaseException) -> None:
    """Revoke the lease of a candidacy that failed with ``reason``, deleting its key.

    After a cancellation the caller must not wait, so the revoke runs in the
    background (the lease expires after its TTL should it fail); after any
    other error it completes before the error reaches the caller."""
    if isinstance(reason, CancelledError):
        lease.stop_keep_alive()
        cleanup = lease.revoke()
        cleanup.addErrback(lambda f: log.failure(
            "revoking lease {id} of a cancelled candidacy failed; it expires by itself",
            f, id=lease.id))
        return
    await lease.revoke()


class Lock:
    """A named mutex. ``async with client.lock(b"name"): ...`` or acquire()/release().

    :param ttl: seconds the lock survives its holder's death (lease TTL)
    """

    def __init__(self, transport: Transport, name: bytes, *, ttl: int = 10) -> None:
        self._transport = transport
        self.name = require_bytes(name, "lock name")
        if not self.name:
            raise ValueError("lock name must not be empty")
        self.ttl = ttl
        self.lease: Lease | None = None
        self.key: bytes | None = None
        self.fencing_token = 0

    @property
    def held(self) -> bool:
        """Whether the lock is ours: acquired, not released, and its lease not lost."""
        return self.key is not None and self.lease is not None and not self.lease.is_lost

    @deferred
    async def acquire(self, timeout: float | None = None) -> int:
        """Wait until the lock is ours (at most ``timeout`` seconds; None: no limit).

        Returns the fencing token. On timeout raises :class:`RequestTimeout`
        and leaves no trace: the lease behind the waiting key is revoked.
        """
        if self.key is not None:
            raise errors.InvalidRequest(f"lock {self.name!r} is already held by this object")
        lease = await grant(self._transport, self.ttl, keep_alive=True)
        try:
            request = replace(lock_request(self.name, lease.id),
                              timeout=math.inf if timeout is None else timeout)
            result = await self._transport.call_async(request)
            held = await self._transport.call_async(range_request(result.key))
            if not held.kvs:
                raise errors.LeaseExpired(lease.id, "lock key vanished right after acquiring")
        except BaseException as exc:
            await _abandon(lease, exc)
            raise
        self.lease = lease
        self.key = result.key
        self.fencing_token = held.kvs[0].create_revision
        return self.fencing_token

    @deferred
    async def release(self) -> None:
        """Release the lock (and revoke its lease). Releasing twice is harmless."""
        key, lease = self.key, self.lease
        self.key, self.lease = None, None
        if key is not None:
            try:
                await self._transport.call_async(unlock_request(key))
            except BaseException as exc:
                if lease is not None:
                    await _abandon(lease, exc)
                raise
            if lease is not None:
                await lease.revoke()

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class Election:
    """A named election: ``campaign()`` until leader, ``proclaim()``, ``resign()``;
    anyone may ask ``leader()`` or ``observe()`` the leadership."""

    def __init__(self, transport: Transport, name: bytes, *, ttl: int = 10) -> None:
        self._transport = transport
        self.name = require_bytes(name, "election name")
        if not self.name:
            raise ValueError("election name must not be empty")
        self.ttl = ttl
        self.lease: Lease | None = None
        self.leader_key: LeaderKey | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this contender leads: campaign won, not resigned, and its lease not lost."""
        return (self.leader_key is not None and self.lease is not None
                and not self.lease.is_lost)

    @deferred
    async def campaign(self, value: bytes, timeout: float | None = None) -> LeaderKey:
        """Wait until this contender leads, announcing ``value``; returns its leader key
        (``leader_key.rev`` is a fencing token, as for locks)."""
        value = require_bytes(value, "value")
        if self.leader_key is not None:
            raise errors.InvalidRequest("this contender already leads")
        lease = await grant(self._transport, self.ttl, keep_alive=True)
        try:
            request = replace(campaign_request(self.name, lease.id, value),
                              timeout=math.inf if timeout is None else timeout)
            leader = await self._transport.call_async(request)
        except BaseException as exc:
            await _abandon(lease, exc)
            raise
        self.lease, self.leader_key = lease, leader
        return leader

    @deferred
    async def proclaim(self, value: bytes) -> None:
        """Change the announced value while leading."""
        if self.leader_key is None:
            raise errors.InvalidRequest("proclaim needs leadership: campaign first")
        await self._transport.call_async(proclaim_request(self.leader_key, value))

    @deferred
    async def resign(self) -> None:
        """Give up leadership (or a pending candidacy's lease)."""
        leader, lease = self.leader_key, self.lease
        self.leader_key, self.lease = None, None
        try:
            if leader is not None:
                await self._transport.call_async(resign_request(leader))
        except BaseException as exc:
            if lease is not None:
                await _abandon(lease, exc)
            raise
        if lease is not None:
            await lease.revoke()

    @deferred
    async def leader(self) -> KeyValue | None:
        """The current leader's key-value, or None when nobody leads."""
        try:
            return await self._transport.call_async(leader_request(self.name))
        except errors.ServerError as exc:
            if "no leader" in exc.message:
                return None
            raise

    async def observe(self) -> AsyncIterator[KeyValue]:
        """Each leader (and each proclaimed value) as it changes; stop by breaking out."""
        body = json.dumps(observe_body(self.name)).encode()
        # Users drive this generator from either loop, so it awaits Duals only
        # (an asyncio task refuses a plain Deferred).
        opened = await dual(Deferred.fromCoroutine(
            self._transport.open_stream("/election/observe", body)))
        endpoint, response = opened.endpoint, opened.response
        frames: list[Any] = []
        waiter: list[Deferred[None]] = []

        def on_frames(new: list[Any]) -> None:
            frames.extend(new)
            if waiter:
                waiter.pop().callback(None)

        stream = StreamProtocol(JsonLinesDecoder(), on_frames)
        stream.ended.addCallback(lambda _: on_frames([]))
        response.deliverBody(stream)
        try:
            while True:
                while frames:
                    frame = frames.pop(0)
                    if isinstance(frame, errors.EtcdError):
                        raise frame
                    yield parse_leader_frame(frame)
                if stream.ended.called:
                    raise errors.ConnectionLost("election observe stream ended",
                                                endpoint=endpoint)
                d: Deferred[None] = Dual()
                waiter.append(d)
                await d
        finally:
            stream.abort()
