"""A live, exact copy of one etcdwamp map for Python WAMP clients on asyncio, kept
across reconnects to any node.

::

    live = LiveMap("notes", on_value=show)
    live.follow(component)        # an autobahn.asyncio Component, reconnecting
    run([component])              # or: await live.attach(session) by hand

How it follows and resumes is :class:`etcdwamp.wamp.livemapcore.LiveMapCore`'s
(written once for both loops); this shell runs it as an asyncio task on the running
loop: :meth:`~etcdwamp.wamp.livemapcore.LiveMapCore.attach` and
:meth:`~etcdwamp.wamp.livemapcore.LiveMapCore.resync` return ``asyncio.Future[None]``
(awaitable; cancelling it, or the task awaiting it, cancels the read with
``asyncio.CancelledError``). It imports no ``autobahn.asyncio`` itself, so it does not
pick txaio's framework; the Twisted twin is :class:`etcdwamp.wamp.livemap.LiveMap`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ..wamp.livemapcore import LiveMapCore, State

__all__ = ["LiveMap", "State"]

_log = logging.getLogger(__name__)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class LiveMap(LiveMapCore["asyncio.Future[None]"]):
    """A live map over ``autobahn.asyncio`` sessions (see
    :class:`~etcdwamp.wamp.livemapcore.LiveMapCore`): ``attach`` and ``resync`` return
    ``asyncio.Future[None]``; call them in the running loop."""

    def _start(self, work: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        return asyncio.ensure_future(work)

    def _finished(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _cancel(self, handle: asyncio.Future[None]) -> None:
        handle.cancel()

    def _quiet(self, handle: asyncio.Future[None]) -> None:
        handle.add_done_callback(_consume)

    def _warn(self, message: str) -> None:
        _log.warning("%s", message)
