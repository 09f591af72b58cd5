"""The presence service: per-session keys that vanish when their session leaves.

- ``presence.put(key, value)`` → ``{revision, lease}``: create or replace the caller's own key
- ``presence.delete(key)`` → ``{deleted, revision}``: remove one of the caller's own keys
- ``presence.list()`` → ``[{session, authid, key, value, revision}]``: who is present

Keys are namespaced by session (``<presence prefix><session id>/<key>``), so a
session can only ever create, replace or delete its own; every key of a session
is bound to one etcd lease that this instance keeps alive and revokes when the
router announces the session's leave (and that expires by itself if this
instance dies). The stored value is CBOR ``{"authid", "value"}``, so the list
and the join/leave events (``<prefix>.presence.on_change``, published by the
publisher) say whose key it is.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import cbor2
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import errors
from ..client import Client
from ..lease import Lease
from ..namespace import Namespace
from ..wire import KeySet, KeyValue, text_or_bytes
from .access import Access, Caller
from .errors import ErrorUris
from .ops import read_range
from .quota import Cap, TxnItem, capped_txn, check_sizes
from .reads import ReadBounds
from .settings import PresenceSettings
from .values import check_carriable

__all__ = ["PresenceService", "decode_presence"]

# How many departed sessions to remember, to revoke a lease granted for a
# session that left while its put was in flight.
_REMEMBER_LEFT = 10_000


def decode_presence(prefix: bytes, kv: KeyValue) -> dict[str, Any]:
    """A stored presence key as callers see it."""
    session, _, key = kv.key[len(prefix):].partition(b"/")
    try:
        stored = cbor2.loads(kv.value) if kv.value else {}
    except (cbor2.CBORDecodeError, ValueError):
        stored = {}
    try:
        check_carriable(stored)  # written behind our back: it must not stop the event
    except (TypeError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    return {"session": int(session) if session.isdigit() else None,
            "authid": stored.get("authid"), "key": key.decode("utf-8", "replace"),
            "value": stored.get("value"), "revision": kv.mod_revision}


class PresenceService:
    """The ``presence.*`` procedures: keys of a session, on one lease per session, that vanish
    when the session leaves (subscribe :meth:`on_session_leave` to ``wamp.session.on_leave``).
    """

    log = Logger()

    def __init__(self, client: Client | Namespace[Client],
                 settings: PresenceSettings, access: Access,
                 uris: ErrorUris, reads: ReadBounds) -> None:
        self.client = client
        self.reads = reads
        self.settings = settings
        self.access = access
        self.uris = uris
        self._leases: dict[int, Lease] = {}
        self._granting: dict[int, list[Deferred[Lease]]] = {}
        self._left: collections.OrderedDict[int, None] = collections.OrderedDict()

    def procedures(self) -> dict[str, Callable[..., Any]]:
        """The procedures by name relative to the URI prefix (``"presence.put"``, ...)."""
        return {"presence.put": self.put, "presence.delete": self.delete,
                "presence.list": self.list}

    def _own_key(self, caller: Caller, key: Any) -> bytes:
        if caller.session is None:
            raise ApplicationError(self.uris.invalid_argument,
                                   "presence needs the router to disclose the caller")
        raw = text_or_bytes(key, "key")
        # A leading NUL: JSON clients would read the key in events as bytes.
        if not raw or b"/" in raw or len(raw) > 256 or raw.startswith(b"\x00"):
            raise ValueError("a presence key is 1 to 256 bytes without '/' or a leading NUL")
        return self.settings.prefix + str(caller.session).encode() + b"/" + raw

    async def _lease(self, session: int) -> Lease:
        """The session's lease, granted once even for concurrent first calls."""
        lease = self._leases.get(session)
        if lease is not None and not lease.is_lost:
            return lease
        waiters = self._granting.get(session)
        if waiters is not None:
            waiting: Deferred[Lease] = Deferred()
            waiters.append(waiting)
            return await waiting
        self._granting[session] = waiters = []
        try:
            lease = await self.client.lease(self.settings.ttl, keep_alive=True)
        except BaseException as exc:
            del self._granting[session]
            for w in waiters:
                w.errback(Failure(exc))
            raise
        del self._granting[session]
        self._leases[session] = lease
        for w in waiters:
            w.callback(lease)
        return lease

    async def put(self, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        """``presence.put(key, value)``: create or replace the caller's own ``key``; returns
        ``{revision, lease}`` (lease id as a string).

        ``key`` is 1 to 256 bytes without ``/`` (else ``ValueError``). Raises ``ApplicationError``
        ``invalid_argument`` if the router disclosed no caller session, ``permission_denied``
        if the write rule does not admit the caller.
        """
        caller = Caller.of(details)
        self.access.require_role(caller, self.settings.write, procedure="presence.put",
                                 target="presence", action="write")
        raw = self._own_key(caller, key)
        check_carriable(value)  # it reaches every reader of presence, whatever their serializer
        data = cbor2.dumps({"authid": caller.authid, "value": value})
        check_sizes(self.uris, "presence", key=0, value=len(data), max_key=0,
                    max_value=self.settings.max_value_bytes)
        assert caller.session is not None
        lease = await self._lease(caller.session)
        # Every key of the session counts, whichever instance wrote it.
        own = self.settings.prefix + str(caller.session).encode() + b"/"
        cap = Cap(KeySet(own, prefix=True), self.settings.max_keys, "a session's presence")
        result = await capped_txn(self.client, self.uris,
                                  [TxnItem(raw, "put", data, lease=lease.id)], [], [cap])
        if caller.session in self._left:  # it left while we were writing
            await self._drop(caller.session)
        return {"revision": result.revision, "lease": str(lease.id)}

    async def delete(self, key: Any, details: Any = None) -> dict[str, Any]:
        """``presence.delete(key)``: delete one of the caller's own keys; returns
        ``{deleted: bool, revision}``.
        """
        caller = Caller.of(details)
        self.access.require_role(caller, self.settings.write, procedure="presence.delete",
                                 target="presence", action="write")
        result = await self.client.delete(self._own_key(caller, key))
        return {"deleted": result.deleted > 0, "revision": result.revision}

    async def list(self, details: Any = None) -> list[dict[str, Any]]:
        """``presence.list()``: every present key as ``{session, authid, key, value, revision}``,
        bounded as ``range`` is (progressive pages, or at most ``max_range_rows`` rows)."""
        self.access.require_role(Caller.of(details), self.settings.read,
                                 procedure="presence.list", target="presence", action="read")
        prefix = self.settings.prefix

        def record(kv: KeyValue) -> dict[str, Any]:
            return decode_presence(prefix, kv)

        # Bounded like every range: progressive pages, or at most max_range_rows rows.
        return await read_range(self.client, KeySet(prefix, prefix=True), 0, details,
                                self.reads, self.uris, record)

    @property
    def sessions(self) -> int:
        """How many WAMP sessions hold presence (a lease) through this instance now."""
        return len(self._leases)

    async def on_session_leave(self, session_id: Any, *args: Any, **kwargs: Any) -> None:
        """``wamp.session.on_leave``: the session's keys go with it."""
        if not isinstance(session_id, int):
            return
        self._left[session_id] = None
        while len(self._left) > _REMEMBER_LEFT:
            self._left.popitem(last=False)
        await self._drop(session_id)

    async def _drop(self, session_id: int) -> None:
        lease = self._leases.pop(session_id, None)
        if lease is None:
            return
        try:
            await lease.revoke()
        except errors.EtcdError as exc:  # the lease expires by itself anyway
            fmt = "etcdwamp: presence lease of session {s} not revoked: {exc}"
            if self.access.quiet is None:
                self.log.warn(fmt, s=session_id, exc=exc)
            else:  # one line a minute however many sessions leave while etcd is away
                self.access.quiet.warn("presence_revoke", fmt, s=session_id, exc=exc)

    async def close(self) -> None:
        """Revoke the lease of every session this instance holds keys for, deleting those keys."""
        for session_id in list(self._leases):
            await self._drop(session_id)
