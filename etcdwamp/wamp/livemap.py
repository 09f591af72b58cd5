"""A live, exact copy of one etcdwamp map for Python WAMP clients on Twisted, kept
across reconnects to any node.

::

    live = LiveMap("notes", on_value=show)
    live.follow(component)        # an autobahn.twisted Component, reconnecting
    component.start(reactor)      # or: await live.attach(session) by hand

How it follows and resumes is :class:`.LiveMapCore`'s (written once for both loops);
this shell runs it with ``ensureDeferred``: :meth:`~.LiveMapCore.attach` and
:meth:`~.LiveMapCore.resync` return Deferreds (cancellable). The asyncio twin is
:class:`etcdwamp.asyncio.livemap.LiveMap`. The merge rules are pure, in :mod:`.mapcopy`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, ClassVar

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.logger import Logger

from .livemapcore import LiveMapCore, State

__all__ = ["LiveMap", "State"]

_log = Logger()


class LiveMap(LiveMapCore["Deferred[None]"]):
    """A live map over ``autobahn.twisted`` sessions (see :class:`.LiveMapCore`):
    ``attach`` and ``resync`` return ``Deferred[None]``."""

    _cancelled: ClassVar[tuple[type[BaseException], ...]] = (CancelledError,)

    def _start(self, work: Coroutine[Any, Any, None]) -> Deferred[None]:
        return ensureDeferred(work)

    def _finished(self) -> Deferred[None]:
        return succeed(None)

    def _cancel(self, handle: Deferred[None]) -> None:
        handle.cancel()

    def _quiet(self, handle: Deferred[None]) -> None:
        handle.addErrback(lambda failure: None)

    def _warn(self, message: str) -> None:
        _log.warn("{message}", message=message)
