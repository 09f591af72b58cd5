"""Distributed locks and leader elections on etcd's v3lock and v3election services.

Each holder owns a lease that is kept alive while it holds the lock or leads;
if the holder dies, the lease expires and the next contender takes over.

**A held lock stays held.** The lease behind it is kept alive (renewed
every TTL / 3) until :meth:`Lock.release`, so a holder needs no ``refresh()``
however long it works; ``ttl`` only bounds how long a crashed holder blocks
the others. Acquiring a lock the same ``Lock`` object holds raises
:class:`~etcdwamp.errors.InvalidRequest` at once (a bug in the caller, not a
contended lock); use a second ``Lock`` object to contend with yourself.

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

**Trying without waiting.** ``token = await lock.try_acquire()`` takes a
free lock and returns its fencing token, or returns None at once when
another holder has it, leaving nothing behind (its lease is revoked).
``lock.acquire(timeout=0)`` does the same but raises
:class:`~etcdwamp.errors.RequestTimeout` instead of returning None, as any
``acquire`` whose timeout ran out does. A try puts the key etcd's lock
service would queue (``<name>/<lease id in hex>``) and holds the lock only if
that key is the oldest under ``<name>/``, so try-locks, blocking ``acquire()``
calls and other clients of etcd's lock service (``etcdctl lock``) exclude
each other.

**Cancelling** the Deferred of ``acquire()`` or ``campaign()`` fails it at
once with ``CancelledError`` (on asyncio, cancelling the task that awaits it
raises ``asyncio.CancelledError`` there); the lease behind the waiting key is
revoked in the background, so the abandoned candidacy does not hold up later
contenders.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from . import errors
from ._deferred import Dual, deferred, dual
from ._signal import Signal
from .lease import Lease, grant
from .reconnect import Reconnects, may_resume
from .transport import StreamProtocol, Transport, relay
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
from .wire.try_lock import lock_key, try_lock_request, try_lock_token
from .wire.watch import JsonLinesDecoder

__all__ = ["Election", "Lock"]

log = Logger()


async def _abandon(transport: Transport, lease: Lease, reason: BaseException) -> None:
    """Revoke the lease of a candidacy that failed with ``reason``, deleting its key.

    After a cancellation the caller must not wait, so the revoke runs in the
    background (the lease expires after its TTL should it fail; closing the
    client lets it finish first); after any other error it completes before
    the error reaches the caller."""
    if isinstance(reason, CancelledError):
        lease.stop_keep_alive()
        cleanup = lease.revoke()
        cleanup.addErrback(lambda f: log.failure(
            "revoking lease {id} of a cancelled candidacy failed; it expires by itself",
            f, id=lease.id))
        transport.clean_up(cleanup)
        return
    await lease.revoke()


class Lock:
    """A named mutex. ``async with client.lock(b"name"): ...`` or acquire()/release().

    A held lock is lost when its lease is (its keep-alive found it gone, or
    no renewal was confirmed within its TTL: see :mod:`etcdwamp.lease`); the
    holder learns it at once: :attr:`held` turns False, :attr:`lost` fails
    with :class:`~etcdwamp.errors.LeaseExpired` and ``on_lost`` is called.
    Stop acting as the holder then; writes guarded by the fencing token are
    refused anyway once a successor holds the lock.

    :param ttl: seconds the lock survives its holder's death (lease TTL)
    :param on_lost: called with the :class:`~etcdwamp.errors.LeaseExpired`
        when the lease of the held lock is lost (exceptions are logged)
    """

    def __init__(self, transport: Transport, name: bytes, *, ttl: int = 10,
                 on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> None:
        self._transport = transport
        self.name = require_bytes(name, "lock name")
        if not self.name:
            raise ValueError("lock name must not be empty")
        self.ttl = ttl
        self.lease: Lease | None = None
        self.key: bytes | None = None
        self.fencing_token = 0
        self._on_lost = on_lost
        self._lost = Signal()  # of the current (or next) holding

    @property
    def lost(self) -> Deferred[None]:
        """A new Deferred that fails with :class:`~etcdwamp.errors.LeaseExpired`
        when the lease of the held lock is lost (taken before :meth:`acquire`:
        of the coming holding). It never fires if the lock is released first."""
        return self._lost.wait()

    def _lease_lost(self, reason: errors.LeaseExpired) -> None:
        """The keep-alive lost a lease: if it is the held lock's, tell the holder."""
        if self.lease is None or reason.lease_id != self.lease.id:
            return  # a candidacy's lease (acquire() reports it) or one released before
        log.warn("lock {name!r} lost: {reason}", name=self.name, reason=reason)
        if self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:
                log.failure("lock on_lost callback raised")
        self._lost.fire(reason)

    @property
    def held(self) -> bool:
        """Whether the lock is ours: acquired, not released, and its lease not lost."""
        return self.key is not None and self.lease is not None and not self.lease.is_lost

    @deferred
    async def acquire(self, timeout: float | None = None) -> int:
        """Wait until the lock is ours (at most ``timeout`` seconds; None: no limit).

        Returns the fencing token. On timeout raises :class:`RequestTimeout`
        and leaves no trace: the lease behind the waiting key is revoked.
        ``timeout=0`` (or less) tries once without waiting, as
        :meth:`try_acquire` does, and raises :class:`RequestTimeout` at once
        when another holder has the lock.

        :raises InvalidRequest: this object holds the lock already
        """
        if self.key is not None:
            raise errors.InvalidRequest(f"lock {self.name!r} is already held by this object")
        if timeout is not None and timeout <= 0:
            token = await self._try_once()
            if token is None:
                raise errors.RequestTimeout(
                    f"lock {self.name!r} is held by another holder (timeout=0: not waiting)")
            return token
        clock = self._transport.clock
        deadline = None if timeout is None else clock.seconds() + timeout
        while True:
            lease = await grant(self._transport, self.ttl, keep_alive=True,
                                on_lost=self._lease_lost)
            try:
                wait = math.inf if deadline is None else max(0.0, deadline - clock.seconds())
                request = replace(lock_request(self.name, lease.id), timeout=wait)
                result = await self._transport.call_async(request)
                held = await self._transport.call_async(range_request(result.key))
                if not held.kvs:
                    raise errors.LeaseExpired(lease.id,
                                              "lock key vanished right after acquiring")
                if lease.is_lost:
                    raise errors.LeaseExpired(lease.id, "the lease was lost while acquiring")
            except errors.ConnectionLost as exc:
                # The member we waited on hung, lost its leader or died (a
                # probe or the connection said so). Revoking the lease deletes
                # our waiting key wherever it was queued, so waiting again,
                # through another member, cannot make us a holder twice.
                await _abandon(self._transport, lease, exc)
                if deadline is not None and clock.seconds() >= deadline:
                    raise
                log.info("lock {name!r}: {err}; waiting again through another member",
                         name=self.name, err=exc)
                continue
            except BaseException as exc:
                await _abandon(self._transport, lease, exc)
                raise
            break
        self.lease = lease
        self.key = result.key
        self.fencing_token = held.kvs[0].create_revision
        return self.fencing_token

    @deferred
    async def try_acquire(self) -> int | None:
        """Take the lock if it is free, without waiting: the fencing token, or None
        when another holder has it (then nothing is left behind: the lease tried
        with is revoked).

        A lock taken so excludes holders and waiters of :meth:`acquire` (and of
        etcd's own lock service) and the other way round: the key is the one
        etcd's lock service would queue (see :mod:`etcdwamp.wire.try_lock`).

        :raises InvalidRequest: this object holds the lock already
        """
        if self.key is not None:
            raise errors.InvalidRequest(f"lock {self.name!r} is already held by this object")
        return await self._try_once()

    async def _try_once(self) -> int | None:
        """Put our waiter key and hold the lock if it is the oldest; else take it back."""
        lease = await grant(self._transport, self.ttl, keep_alive=True,
                            on_lost=self._lease_lost)
        key = lock_key(self.name, lease.id)
        try:
            result = await self._transport.call_async(try_lock_request(self.name, lease.id))
            token = try_lock_token(result, key)
            if token is not None and lease.is_lost:
                raise errors.LeaseExpired(lease.id, "the lease was lost while acquiring")
        except BaseException as exc:
            await _abandon(self._transport, lease, exc)
            raise
        if token is None:
            await lease.revoke()  # deletes our key: a try leaves no waiter behind
            return None
        self.lease, self.key, self.fencing_token = lease, key, token
        return token

    @deferred
    async def release(self) -> None:
        """Release the lock (and revoke its lease). Releasing twice is harmless."""
        key, lease = self.key, self.lease
        self.key, self.lease = None, None
        self._lost = Signal()  # the next holding's; this one's waiters never fire
        if key is not None:
            try:
                await self._transport.call_async(unlock_request(key))
            except BaseException as exc:
                if lease is not None:
                    await _abandon(self._transport, lease, exc)
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
        clock = self._transport.clock
        deadline = None if timeout is None else clock.seconds() + timeout
        while True:
            lease = await grant(self._transport, self.ttl, keep_alive=True)
            try:
                wait = math.inf if deadline is None else max(0.0, deadline - clock.seconds())
                request = replace(campaign_request(self.name, lease.id, value), timeout=wait)
                leader = await self._transport.call_async(request)
            except errors.ConnectionLost as exc:
                # As for a lock: the revoked lease takes our candidacy with it.
                await _abandon(self._transport, lease, exc)
                if deadline is not None and clock.seconds() >= deadline:
                    raise
                log.info("election {name!r}: {err}; campaigning again through another "
                         "member", name=self.name, err=exc)
                continue
            except BaseException as exc:
                await _abandon(self._transport, lease, exc)
                raise
            break
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
                await _abandon(self._transport, lease, exc)
            raise
        if lease is not None:
            await lease.revoke()

    @deferred
    async def leader(self) -> KeyValue | None:
        """The current leader's key-value, or None when nobody leads."""
        try:
            return await self._transport.call_async(leader_request(self.name))
        except errors.ServerError as exc:
            # "election: no leader" (nobody campaigns), not NoLeader: a member
            # without a raft leader cannot tell who leads the election.
            if "no leader" in exc.message and not isinstance(exc, errors.NoLeader):
                return None
            raise

    async def observe(self) -> AsyncIterator[KeyValue]:
        """Each leader (and each proclaimed value) as it changes; stop by breaking out
        (inside ``async with contextlib.aclosing(election.observe()) as leaders:``
        the stream closes right then; else when the generator is collected).

        Starts with the current leader, once anyone leads. The stream follows
        the watch's rules for moving (see :mod:`etcdwamp.watch`): when its
        member ends it with ``no leader``, fails a probe, goes away or cannot
        be reached, it resumes at once on another member (pausing only after
        every member failed in a row), and it never ends by itself; errors
        that will not heal (permission, bad request) are raised.

        Resuming repeats nothing: etcd's observe starts with the current leader
        key, which is yielded only if it changed since the last one yielded
        (a higher mod revision: a new leader or a new proclaimed value).
        Unlike a watch it cannot replay what happened while no stream was
        open: a leader that came and went, or a value proclaimed and replaced,
        during the move is not seen; the state after it is. Code that must see
        every value watches the leader key instead.
        """
        transport = self._transport
        body = json.dumps(observe_body(self.name)).encode()
        rounds = Reconnects(transport.order, min_backoff=0.05, max_backoff=5.0)
        last = 0  # mod revision of the leader key yielded last
        # Users drive this generator from either loop, so it awaits Duals only
        # (an asyncio task refuses a plain Deferred).
        while True:
            endpoint = rounds.next_endpoint()
            stream = _ObservedStream(transport, endpoint, body)
            try:
                await stream.open()
                while (kv := await stream.next_leader()) is not None:
                    rounds.worked()
                    if kv.mod_revision > last:
                        last = kv.mod_revision
                        yield kv
            except errors.EtcdError as exc:
                if isinstance(exc, errors.Unauthenticated) and transport.credentials:
                    await dual(Deferred.fromCoroutine(transport.renew_token(stream.token)))
                elif not may_resume(exc):
                    raise
                log.info("election observe stream to {endpoint} failed: {exc}",
                         endpoint=endpoint, exc=exc)
            finally:
                stream.close()
            pause = rounds.pause()
            if pause:
                await dual(deferLater(transport.clock, pause))


class _ObservedStream:
    """One ``/election/observe`` stream on one endpoint, probed while open.

    etcd answers it only once someone leads, so opening it has no timeout of
    its own: the endpoint's probes end a wait on a member that hangs."""

    def __init__(self, transport: Transport, endpoint: str, body: bytes) -> None:
        self._transport = transport
        self.endpoint = endpoint
        self._body = body
        #: the auth token the stream was opened with (before: the current one)
        self.token: str | None = transport.token
        self._frames: list[Any] = []
        self._waiter: Deferred[None] | None = None
        self._request: Deferred[Any] | None = None  # open_stream's
        self._opening: Deferred[Any] | None = None  # what open() waits for
        self._stream = StreamProtocol(JsonLinesDecoder(), self._arrived)
        self._stream.ended.addCallback(lambda _: self._arrived([]))
        self._probed = transport.probes.track(endpoint, self._probe_failed)

    def _arrived(self, frames: list[Any]) -> None:
        self._frames.extend(frames)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    def _probe_failed(self, reason: str) -> None:
        opening = self._opening
        if opening is not None and not opening.called:
            # Fail the wait first: the cancelled request's own failure is then dropped.
            opening.errback(errors.RequestTimeout(f"{self.endpoint}: {reason}",
                                                  endpoint=self.endpoint))
        self._drop()

    async def open(self) -> None:
        """Open the stream; it waits for etcd's answer as long as the probes allow.

        :raises EtcdError: it could not be opened (an ``Unavailable`` answer
            demotes the endpoint), or a probe of its endpoint failed meanwhile
        """
        request = self._request = Deferred.fromCoroutine(self._transport.open_stream(
            "/election/observe", self._body, endpoint=self.endpoint, timeout=math.inf))
        opening: Deferred[Any] = Dual(lambda _: request.cancel())
        request.addBoth(relay, opening)
        self._opening = opening
        try:
            opened = await opening
        finally:
            self._opening = None
        self.token = opened.token
        opened.response.deliverBody(self._stream)

    async def next_leader(self) -> KeyValue | None:
        """The next leader key the stream reports; None once it ended.

        :raises EtcdError: etcd ended the stream with an error (an
            ``Unavailable`` one demotes the endpoint first)
        """
        while not self._frames:
            if self._stream.ended.called:
                return None
            waiter = self._waiter = Dual()
            await waiter
        frame = self._frames.pop(0)
        try:
            if isinstance(frame, errors.EtcdError):
                raise frame
            return parse_leader_frame(frame)
        except errors.Unavailable as exc:
            # "no leader": the member is cut off; try the others first for a while.
            self._transport.demote(self.endpoint, exc.message)
            raise

    def _drop(self) -> None:
        """Drop the stream, or the attempt to open it."""
        if self._request is not None and not self._request.called:
            self._request.cancel()
        self._stream.abort()

    def close(self) -> None:
        """Drop the stream (or the attempt to open it) and stop probing for it."""
        self._probed.close()
        self._drop()
