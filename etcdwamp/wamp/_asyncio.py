"""The component on asyncio Autobahn: imported only by :mod:`etcdwamp.asyncio.component`.

Private, because importing it imports ``autobahn.asyncio.wamp``, which sets
txaio's framework to asyncio for the whole process.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from autobahn.asyncio.wamp import Session
from twisted.internet.defer import Deferred

from .._deferred import dual
from ..asyncio import Client as AsyncioClient
from ..asyncio.clock import LoopClock
from ..client import Client
from .session import EtcdWampSession
from .settings import Settings

__all__ = ["EtcdWampComponent"]


class EtcdWampComponent(EtcdWampSession, Session):
    """The etcdwamp component as an asyncio Autobahn session.

    See :mod:`etcdwamp.asyncio.component`, which builds and runs it."""

    framework = "asyncio"

    def __init__(self, config: Any = None) -> None:
        Session.__init__(self, config)
        self._init_state()

    def _etcd_client(self, settings: Settings) -> Client:
        etcd = settings.etcd
        return AsyncioClient(
            endpoints=list(etcd.endpoints), timeout=etcd.timeout, user=etcd.user,
            password=etcd.password, ca_file=etcd.ca_file, cert_file=etcd.cert_file,
            key_file=etcd.key_file, coalesce=etcd.coalesce,
            coalesce_window=etcd.coalesce_window, max_connections=etcd.max_connections,
            max_queued=etcd.max_queued, attempt_timeout=etcd.attempt_timeout,
            probe_interval=etcd.probe_interval or None, probe_timeout=etcd.probe_timeout,
            metrics=self._client_metrics(settings), transport=etcd.transport)

    def _clock(self) -> Any:
        return LoopClock()

    def _meta_call(self, procedure: str) -> Deferred[Any]:
        return Deferred.fromFuture(asyncio.ensure_future(self.call(procedure)))

    def _expose(self, fn: Callable[..., Deferred[Any]]) -> Callable[..., Any]:
        # txaio on asyncio runs a coroutine as a task but would hand a Deferred
        # back as a plain value; awaited as a Dual, the Deferred's outcome is
        # the task's, and INTERRUPT (autobahn cancels the task) cancels it.
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await dual(fn(*args, **kwargs))
        return call
