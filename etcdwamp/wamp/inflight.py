"""Requests in flight that fail when their session leaves, for clients built on autobahn's
``Component`` (whose sessions otherwise leave them pending forever)."""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError

__all__ = ["fail_in_flight_on_leave"]


def fail_in_flight_on_leave(component: Any) -> None:
    """Make every session that ``component`` (an autobahn ``Component``, Twisted or asyncio)
    joins fail its requests in flight (calls, subscribes, acknowledged publishes) as soon
    as it leaves: with ``ApplicationError`` of the leave's reason, which is
    ``wamp.close.transport_lost`` when the connection was lost (its node died).

    Without it such a call never completes: a plain ``ApplicationSession`` fails them in
    its ``onLeave``, but the ``Session`` that a ``Component`` creates replaces ``onLeave``
    with its ``leave`` event and fails nothing (autobahn 26.11). Call it before
    ``component.start()``.
    """
    component.on("leave", _fail_in_flight)


def _fail_in_flight(session: Any, details: Any) -> Any:
    # What ApplicationSession.onLeave does, which the Component's session overrides; a
    # request already answered is left alone.
    return session._errback_outstanding_requests(
        ApplicationError(details.reason, details.message))
