"""What the client reports for metrics: a sink with no-op methods.

:class:`ClientMetrics` is the interface the client's transport, health
bookkeeping, watches and coalescer report to; every method does nothing, so
:data:`NO_METRICS`, the default, costs a method call. Give a client
``metrics=PrometheusClientMetrics()`` (:mod:`etcdwamp.prometheus`, the
``etcdwamp[metrics]`` extra) to export them, or subclass this to send them
anywhere else. This module imports no metrics library.

Labels are the endpoint URL as configured (as many values as endpoints) and
an outcome from the fixed set :data:`OUTCOMES`: never keys, values or users.
"""

from __future__ import annotations

import asyncio

from twisted.internet.defer import CancelledError

from . import errors

__all__ = ["NO_METRICS", "OUTCOMES", "ClientMetrics", "outcome_of"]


class ClientMetrics:
    """The sink the client reports to; the base class drops everything.

    A subclass's methods run inline, on the reactor or event loop, in the middle of
    the request they report: they must return at once and must not raise (an
    exception fails that request). Queue anything slow, e.g. a network send."""

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One attempt of a request at ``endpoint`` ended with ``outcome`` (one
        of :data:`OUTCOMES`) after ``seconds``, waiting for a connection included."""

    def endpoint_health(self, endpoint: str, healthy: bool) -> None:
        """``endpoint`` is healthy (configured, or answered after it was down) or
        down (demoted: it timed out, had no leader or failed a probe; or it
        refused a connection)."""

    def endpoint_removed(self, endpoint: str) -> None:
        """``endpoint`` is no longer one of the client's (the member list changed): its
        health is not reported any more. Its request counts stay (they happened)."""

    def watch_streams(self, delta: int) -> None:
        """A watch stream opened (+1) or ended (-1); reconnects end one, open another."""

    def coalesced(self, ops: int) -> None:
        """``ops`` single-key requests went to etcd as one transaction."""


#: the default sink: reports go nowhere
NO_METRICS = ClientMetrics()

# Most specific first: the first class an error is an instance of names it.
_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (errors.Busy, "busy"),
    (errors.ConnectFailed, "connect_failed"),
    (errors.RequestTimeout, "timeout"),
    (errors.ConnectionLost, "connection_lost"),
    (errors.IndefiniteAnswer, "indefinite"),
    (errors.ProtocolError, "protocol_error"),
    (errors.NoLeader, "no_leader"),
    (errors.Unavailable, "unavailable"),
    (errors.NoSpace, "no_space"),
    (errors.ResourceExhausted, "resource_exhausted"),
    (errors.InvalidArgument, "invalid_argument"),
    (errors.NotFound, "not_found"),
    (errors.OutOfRange, "out_of_range"),
    (errors.PermissionDenied, "permission_denied"),
    (errors.Unauthenticated, "unauthenticated"),
    (errors.DeadlineExceeded, "deadline_exceeded"),
    (errors.FailedPrecondition, "failed_precondition"),
    (errors.ServerError, "server_error"),
    (CancelledError, "cancelled"),
    (asyncio.CancelledError, "cancelled"),
)

#: every outcome a request can report: ``ok``, a name from the error tree, or
#: ``error`` for anything else (a bug: look at the log)
OUTCOMES: frozenset[str] = frozenset({"ok", "error", *(name for _, name in _NAMES)})


def outcome_of(exc: BaseException) -> str:
    """The outcome label of a request attempt that failed with ``exc``."""
    for cls, name in _NAMES:
        if isinstance(exc, cls):
            return name
    return "error"
