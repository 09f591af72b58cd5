"""Floor 4: etcd maps as WAMP procedures and live topics, hosted by Crossbar.

Crossbar runs :class:`EtcdWampComponent` as a ``"type": "class"`` component
(in a router or a container worker) configured through ``extra`` (see
:mod:`.settings`). The session only wires small services, each owning one
concern and registered under the URI prefix (default ``etcd``):

- ``etcd.status()``
- :mod:`.maps`: ``etcd.map.*`` and ``etcd.map.<name>.*`` (per-map URIs)
- :mod:`.kv`: ``etcd.kv.*``, only when ``kv_prefixes`` are configured, and only for keys under them
- :mod:`.presence`: ``etcd.presence.*``, only when ``presence`` is configured
- :mod:`.publisher`: the topics (``etcd.map.<name>.on_change`` and friends)

Procedures are registered with ``invoke="roundrobin"`` so several instances
share the load, and ``details_arg`` so every procedure sees who calls (the
router must disclose the caller; rules are enforced here, see :mod:`.access`).

Under JSON serialization: bytes travel as Autobahn's ``"\\u0000" + base64``
strings (autobahn-js turns them into ``Uint8Array``); revisions are ints (they
stay far below 2**53); lease ids, which use all 63 bits, travel as strings,
and so do oids above 2**53 - 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import Client
from ..pmap import Database
from .access import Access
from .errors import ErrorUris, to_application_error
from .kv import KvService
from .maps import MapService
from .presence import PresenceService
from .publisher import Publisher
from .settings import Settings, SettingsError

__all__ = ["EtcdWampComponent"]

T = TypeVar("T")


class _DeliverInterrupts:
    """The transport of a component embedded in a Crossbar router worker, made
    to deliver INTERRUPT.

    Crossbar's in-router transport (``RouterApplicationSession.send``) hands
    the router's messages to the session but raises on INTERRUPT, which the
    dealer sends when a caller cancels a call: the component would never hear
    of the cancel and read on. This wrapper of our own session's transport
    passes INTERRUPT to the session (which cancels the procedure's Deferred)
    and everything else to Crossbar's transport unchanged. Components in a
    container worker talk over a real transport and need none of this."""

    def __init__(self, inner: Any, session: ApplicationSession) -> None:
        self._inner = inner
        self._session = session

    def send(self, msg: Any) -> Any:
        if isinstance(msg, message.Interrupt):
            deliver: Any = self._session.onMessage
            deliver(msg)
            return None
        return self._inner.send(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class EtcdWampComponent(ApplicationSession):
    """The component Crossbar hosts; all configuration comes from ``extra``."""

    log = Logger()

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.settings: Settings | None = None
        self.client: Client | None = None
        self.uris = ErrorUris("etcd")
        self.maps: MapService | None = None
        self.kv: KvService | None = None
        self.presence: PresenceService | None = None
        self.publisher: Publisher | None = None

    @property
    def is_publisher(self) -> bool:
        """Whether this instance publishes the change topics now (it leads the election)."""
        return self.publisher is not None and self.publisher.is_publisher

    # -- lifecycle ---------------------------------------------------------------

    async def onJoin(self, details: Any) -> None:
        """Read the settings from ``extra``, connect to etcd, register every procedure and start
        the publisher.

        Invalid settings are logged and the session leaves with
        ``wamp.close.configuration_error``; nothing is registered then.
        """
        if type(self._transport).__name__ == "RouterApplicationSession":
            wrapped: Any = _DeliverInterrupts(self._transport, self)
            self._transport = wrapped
        try:
            settings = Settings.from_extra(self.config.extra or {})
        except SettingsError as exc:
            self.log.error("etcdwamp: invalid configuration in extra: {exc}", exc=exc)
            self.leave("wamp.close.configuration_error", str(exc))
            return
        from twisted.internet import reactor

        self.settings = settings
        self.uris = uris = ErrorUris(settings.prefix)
        etcd = settings.etcd
        self.client = client = Client(
            reactor, endpoints=list(etcd.endpoints), timeout=etcd.timeout, user=etcd.user,
            password=etcd.password, ca_file=etcd.ca_file, cert_file=etcd.cert_file,
            key_file=etcd.key_file, coalesce=etcd.coalesce,
            coalesce_window=etcd.coalesce_window)
        access = Access(uris)
        db = Database(client, prefix=settings.db_prefix)
        self.maps = MapService(client, db, settings.maps, access, uris, settings.range_page)
        procedures: dict[str, Callable[..., Any]] = {"status": self.status,
                                                     **self.maps.procedures()}
        if settings.kv_prefixes:
            self.kv = KvService(client, settings.kv_prefixes, access, uris,
                                settings.range_page)
            procedures.update(self.kv.procedures())
        if settings.presence is not None:
            self.presence = PresenceService(client, settings.presence, access, uris)
            procedures.update(self.presence.procedures())
            await self.subscribe(self.presence.on_session_leave, "wamp.session.on_leave")
        shared = RegisterOptions(invoke="roundrobin", details_arg="details")
        p = settings.prefix
        for name, fn in procedures.items():
            await self.register(self._guarded(fn), f"{p}.{name}", options=shared)
        self.log.info("etcdwamp: {n} procedures under {p}, maps {maps}",
                      n=len(procedures), p=p, maps=sorted(self.maps.maps))
        self.publisher = Publisher(client, settings, self.maps.maps, self.publish,
                                   lambda: self._session_id, reactor)
        self.publisher.start()

    async def onLeave(self, details: Any) -> None:
        """Stop the publisher, revoke the presence leases, close the etcd client and disconnect."""
        if self.publisher is not None:
            await self.publisher.stop()
        if self.presence is not None:
            await self.presence.close()
        if self.client is not None:
            await self.client.close()
        self.disconnect()

    # -- plumbing --------------------------------------------------------------

    def _guarded(self, fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Deferred[T]]:
        """Run a procedure; every failure reaches the caller as a stable URI.

        A cancelled call (the caller cancelled, autobahn cancels our Deferred)
        stays a ``CancelledError``: the work stops, nothing is retried. (An
        errback rather than a wrapping coroutine: one layer less per call.)"""
        def stable(failure: Failure) -> Failure:
            if failure.check(CancelledError, ApplicationError):
                return failure
            assert isinstance(failure.value, BaseException)
            raise to_application_error(self.uris, failure.value)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Deferred[T]:
            return Deferred.fromCoroutine(fn(*args, **kwargs)).addErrback(stable)
        return call

    # -- procedures --------------------------------------------------------------

    async def status(self, details: Any = None) -> dict[str, Any]:
        """``status()``: ``{version, revision, db_size, leader, member, publisher}`` of the etcd
        member that answered (ids as strings) and whether this instance publishes.
        """
        assert self.client is not None
        st = await self.client.status()
        return {"version": st.version, "revision": st.revision, "db_size": st.db_size,
                "leader": str(st.leader), "member": str(st.header.member_id),
                "publisher": self.is_publisher}
