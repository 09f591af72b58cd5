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

The same component runs on asyncio, outside Crossbar, as
:mod:`etcdwamp.asyncio.component`: both are
:class:`~etcdwamp.wamp.session.EtcdWampSession` on a framework's session.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp import message
from twisted.internet.defer import Deferred

from ..client import Client
from .routers import router_id
from .session import EtcdWampSession
from .settings import Settings

__all__ = ["EtcdWampComponent"]


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


class EtcdWampComponent(EtcdWampSession, ApplicationSession):
    """The component Crossbar hosts (Twisted); all configuration comes from ``extra``.

    Its behaviour is :class:`~etcdwamp.wamp.session.EtcdWampSession`'s; the
    same component runs on asyncio outside Crossbar as
    :class:`etcdwamp.asyncio.component.EtcdWampComponent`.
    """

    framework = "twisted"

    def __init__(self, config: Any = None) -> None:
        ApplicationSession.__init__(self, config)
        self._init_state()

    async def onJoin(self, details: Any) -> None:
        """Read the settings from ``extra``, connect to etcd, register every procedure and start
        the publisher (see :meth:`EtcdWampSession.onJoin`).
        """
        if type(self._transport).__name__ == "RouterApplicationSession":
            wrapped: Any = _DeliverInterrupts(self._transport, self)
            self._transport = wrapped
        await EtcdWampSession.onJoin(self, details)

    def _etcd_client(self, settings: Settings) -> Client:
        from twisted.internet import reactor

        etcd = settings.etcd
        return Client(
            reactor, endpoints=list(etcd.endpoints), timeout=etcd.timeout, user=etcd.user,
            password=etcd.password, ca_file=etcd.ca_file, cert_file=etcd.cert_file,
            key_file=etcd.key_file, coalesce=etcd.coalesce,
            coalesce_window=etcd.coalesce_window, max_connections=etcd.max_connections,
            max_queued=etcd.max_queued, attempt_timeout=etcd.attempt_timeout,
            probe_interval=etcd.probe_interval or None, probe_timeout=etcd.probe_timeout,
            metrics=self._client_metrics(settings), transport=etcd.transport)

    def _clock(self) -> Any:
        from twisted.internet import reactor

        return reactor

    def _embedded_router(self) -> str | None:
        """Embedded in a router worker (its transport is Crossbar's in-router one), the id
        of that router: this process's pid, and the node id its router factory puts in
        the WELCOME of network sessions (as ``x_cb_node``), so an embedded and an external
        instance on one router agree."""
        transport: Any = self._transport
        if isinstance(transport, _DeliverInterrupts):
            transport = transport._inner
        if type(transport).__name__ != "RouterApplicationSession":
            return None
        # An embedded session's join carries no x_cb_* (its authextra is the
        # component config's); the router it is attached to knows its node.
        node = getattr(getattr(getattr(transport, "_router", None), "_factory", None),
                       "node_id", None)
        if not isinstance(node, str) or not node:
            return None
        return router_id(node, os.getpid())

    def _meta_call(self, procedure: str) -> Deferred[Any]:
        d: Deferred[Any] = self.call(procedure)
        return d

    def _expose(self, fn: Callable[..., Deferred[Any]]) -> Callable[..., Any]:
        # Autobahn on Twisted takes the Deferred as it is, and cancels it on INTERRUPT.
        return fn
