"""WAMP clients for the Crossbar integration tests (inside the pytest-twisted reactor)."""

from __future__ import annotations

from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from etcdwamp.testing import CrossbarNode


async def connect(node: CrossbarNode, *, writer: bool = True, serializer: str = "cbor",
                  authid: str = "writer", ticket: str | None = None) -> Any:
    """A joined WAMP session on realm1: the ticket-authenticated writer (the
    node's random ticket unless ``ticket``), or an anonymous guest."""
    joined: Deferred[Any] = Deferred()
    auth = {"ticket": {"authid": authid, "ticket": ticket or node.writer_ticket}}
    component = Component(
        transports=[{"type": "websocket", "url": node.url, "serializers": [serializer],
                     "max_retries": 0}],
        realm="realm1",
        authentication=auth if writer else None,
    )

    @component.on_join  # type: ignore[untyped-decorator]
    def on_join(session: Any, details: Any) -> None:
        if not joined.called:
            joined.callback(session)

    done = component.start(reactor)

    def failed(failure: Any) -> None:
        if not joined.called:
            joined.errback(failure)

    done.addErrback(failed)
    session = await joined
    session._etcdwamp_component = component
    return session


async def disconnect(session: Any) -> None:
    if session.is_attached():
        await session.leave()
