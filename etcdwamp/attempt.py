"""A call's first attempt, driven by callbacks instead of coroutines.

Almost every call is one attempt that succeeds: the endpoint answered last is
healthy, its gateway prefix is known, a connection slot is free. On that path
:meth:`Transport._call_once <etcdwamp.transport.Transport._call_once>` costs
three coroutines, a Deferred to drive them, another to guard the timeout, the
closures of both and a result relay: some fifty objects the cyclic garbage
collector tracks, alive while the call is in flight. With 64 calls in flight
they kept it collecting (young objects, and every few dozen calls the whole
heap): a quarter to a third of the asyncio client's CPU per call on gRPC.

:class:`Attempt` is the same first attempt as one slotted object: it sends,
times the attempt out, judges the answer with the transport's own rules
(:meth:`~etcdwamp.transport.Transport.attempt_answered` and
:meth:`~etcdwamp.transport.Transport.attempt_failed`, shared with the coroutine
path) and fires the caller's Deferred. Anything else hands over to the
coroutine path, which then goes on exactly where the attempt stopped: a call
whose first attempt fails over (the next endpoints), and, before anything is
sent, a call that would have to wait (for a slot, the gateway prefix or a
token) or cannot be sent at all. The rules of :mod:`etcdwamp.client` hold on
both paths: the deadline counts from the call's start, an idempotent request
whose connection was lost is sent once more on the same endpoint, a timed-out
member is demoted, cancelling fails the call with ``CancelledError`` at once
and is never turned into a retry or a timeout.
"""

from __future__ import annotations

import contextvars
import enum
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Literal, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from . import errors
from ._deferred import Dual, dual
from .budget import ConnectionBudget
from .metrics import ClientMetrics, outcome_of
from .wire import Request

__all__ = ["MOVE_ON", "Attempt", "CallTarget", "MoveOn", "first_attempt"]


class MoveOn(enum.Enum):
    """The type of :data:`MOVE_ON` (an enum of one, so mypy narrows ``is MOVE_ON``)."""

    MOVE_ON = "move on"


#: what :meth:`Transport.attempt_answered <etcdwamp.transport.Transport.attempt_answered>`
#: returns when the next endpoint is to be tried
MOVE_ON: Final = MoveOn.MOVE_ON


class CallTarget(Protocol):
    """What an attempt uses of :class:`etcdwamp.transport.Transport` (which builds on
    this module, not the other way round)."""

    endpoints: tuple[str, ...]
    api_prefix: str | None
    prefixes: dict[str, str]
    max_request_bytes: int
    token: str | None
    clock: Any
    http: Any
    metrics: ClientMetrics
    encode_body: Callable[[Request[Any]], bytes]

    def indices(self) -> list[int]:
        """Endpoint indices in the order the next request tries them."""

    def left(self, deadline: float) -> float:
        """Seconds from now until ``deadline``, never negative."""

    def attempt_limit(self, deadline: float, remaining: int) -> float:
        """Seconds the next attempt may take with ``remaining`` endpoints left."""

    def exchange_error(self, endpoint: str, exc: Exception, limit: float, *,
                       timed_out: bool) -> Exception:
        """The error a failed exchange (not cancelled by its caller) means."""

    def attempt_answered(self, request: Request[Any], index: int, endpoint: str,
                         status: int, content: bytes, began: float,
                         failures: list[errors.EtcdError]) -> Any | Literal[MoveOn.MOVE_ON]:
        """The result of an answered attempt, or MOVE_ON; raises what ends the call."""

    def attempt_failed(self, request: Request[Any], index: int, endpoint: str,
                       exc: BaseException, failures: list[errors.EtcdError]) -> None:
        """Record a failed attempt in ``failures`` if the call moves on, else raise."""

    def attempts(self, request: Request[Any], body: bytes, deadline: float,
                 targets: Sequence[tuple[int, str]], start: int,
                 failures: list[errors.EtcdError],
                 budget: ConnectionBudget | None) -> Coroutine[Any, Any, Any]:
        """The coroutine path's attempts from ``targets[start]`` on."""


def first_attempt(transport: CallTarget, request: Request[Any], deadline: float,
                  budget: ConnectionBudget | None) -> Dual[Any] | None:
    """Start ``request``'s first attempt at once if nothing needs waiting for (see the
    module docstring): the call's Deferred; None when the coroutine path must run it.

    For calls without credentials and without a timeout of their own (blocking
    requests are probed while they wait), not pinned to a member."""
    if request.size > transport.max_request_bytes or transport.left(deadline) <= 0:
        return None  # the coroutine path raises the error
    endpoints = transport.endpoints  # as the call starts (set_endpoints may replace them)
    indices = transport.indices()
    endpoint = endpoints[indices[0]]
    prefix = transport.api_prefix or transport.prefixes.get(endpoint)
    if prefix is None:
        return None
    if budget is not None and not budget.take(endpoint):
        return None  # (nothing encoded yet: the coroutine path encodes once)
    try:
        body = transport.encode_body(request)
    except Exception:
        if budget is not None:
            budget.release(endpoint)
        return None  # the coroutine path fails the call with it
    attempt = Attempt(transport, request, body, deadline, endpoints, indices, budget,
                      prefix + request.path)
    # The first of len(indices) attempts: a share of the call's time if the
    # request may move on, else all of it (as on the coroutine path).
    attempt.attempt_deadline = (
        transport.clock.seconds() + transport.attempt_limit(deadline, len(indices))
        if request.idempotent else deadline)
    attempt.send()
    return attempt.out


class Attempt:
    """One call's first attempt (see the module docstring); :attr:`out` is the
    call's Deferred."""

    __slots__ = ("attempt_deadline", "began", "body", "budget", "cancelled", "context",
                 "deadline", "endpoint", "endpoints", "exchange", "holding", "indices",
                 "limit", "out", "pending", "request", "resent", "rest", "timed_out",
                 "timer", "transport", "url_path")

    def __init__(self, transport: CallTarget, request: Request[Any], body: bytes,
                 deadline: float, endpoints: tuple[str, ...], indices: list[int],
                 budget: ConnectionBudget | None, url_path: str) -> None:
        self.transport = transport
        self.request = request
        self.body = body
        self.deadline = deadline
        self.attempt_deadline = deadline
        #: the endpoints and their order as the call started: calls in flight finish
        #: where they are when the endpoints change (Transport.set_endpoints)
        self.endpoints = endpoints
        self.indices = indices
        self.endpoint = endpoints[indices[0]]
        self.budget = budget
        self.holding = budget is not None  # a slot of the endpoint, until the exchange ends
        self.url_path = url_path
        # The caller's context, as a coroutine would have copied it: the metrics sink and
        # the next attempts (e.g. an HTTP client's tracing) run in it, not in whatever
        # callback (I/O, a timer) moved the call on.
        self.context = contextvars.copy_context()
        self.began: float = transport.clock.seconds()
        self.out: Dual[Any] = Dual(self.cancel)
        self.exchange: Deferred[tuple[int, bytes]] | None = None
        self.timer: Any = None
        self.limit = 0.0
        self.pending = False  # an exchange is under way
        self.timed_out = False
        self.cancelled = False
        self.resent = False
        self.rest: Deferred[Any] | None = None  # the coroutine path, once handed over

    def send(self) -> None:
        """Post the request; the answer or failure comes to :meth:`answered` or
        :meth:`failed`, or :meth:`expire` first."""
        transport = self.transport
        self.limit = transport.left(self.attempt_deadline)
        self.pending = True
        try:
            exchange = transport.http.exchange(self.endpoint, self.url_path, self.body,
                                               transport.token)
        except Exception as exc:
            # Raised instead of failing the Deferred (a path gRPC has no method for, a
            # third-party HTTP client): judged as it is, as the coroutine path did.
            self._ended()
            self._attempt_over(exc)
            return
        self.exchange = exchange
        exchange.addCallbacks(self.answered, self.failed)
        # Answered at once (a fake HTTP in tests): no timer to set and cancel. Failed at
        # once and sent again: the second send set the timer.
        if self.pending and self.exchange is exchange and not math.isinf(self.limit):
            self.timer = transport.clock.callLater(self.limit, self.expire)

    def _ended(self) -> None:
        self.pending = False
        timer = self.timer
        if timer is not None:
            self.timer = None
            if timer.active():
                timer.cancel()

    def _release(self) -> None:
        if self.holding:
            self.holding = False
            assert self.budget is not None
            self.budget.release(self.endpoint)

    def _report(self, outcome: str) -> None:
        self.context.run(self.transport.metrics.request_done, self.endpoint, outcome,
                         self.transport.clock.seconds() - self.began)

    def expire(self) -> None:
        """The attempt's time ran out: abort the exchange (it fails into :meth:`failed`)."""
        self.timer = None
        if self.pending and self.exchange is not None:
            self.timed_out = True
            self.exchange.cancel()

    def cancel(self, _: Deferred[Any]) -> None:
        """The caller cancelled :attr:`out` (which then fails with CancelledError): stop
        the exchange or the coroutine path that took over; never a retry."""
        if self.rest is not None:
            self.rest.cancel()
            return
        if not self.pending:
            return
        self.cancelled = True
        self._ended()
        if self.exchange is not None:
            self.exchange.cancel()
        self._release()
        try:
            self._report(outcome_of(CancelledError()))
        except Exception:
            # A metrics sink that raises fails the call with its error (as on the
            # coroutine path), instead of the CancelledError.
            self.out.errback()

    def answered(self, answer: tuple[int, bytes]) -> None:
        """The endpoint answered: judged as on the coroutine path."""
        if not self.pending:
            return  # cancelled meanwhile
        self._ended()
        self._release()
        status, content = answer
        failures: list[errors.EtcdError] = []
        try:
            result = self.context.run(
                self.transport.attempt_answered, self.request, self.indices[0],
                self.endpoint, status, content, self.began, failures)
        except Exception:
            self.out.errback()
            return
        if result is MOVE_ON:
            self._hand_over(failures)
        else:
            self.out.callback(result)

    def failed(self, failure: Failure) -> None:
        """The exchange failed, timed out or was cancelled by :meth:`cancel`."""
        if not self.pending:
            return None  # cancelled: cancel() reported it
        self._ended()
        transport = self.transport
        exc = failure.value
        assert exc is not None
        mapped = transport.exchange_error(self.endpoint, exc,  # type: ignore[arg-type]
                                          self.limit, timed_out=self.timed_out)
        if (isinstance(mapped, errors.ConnectionLost) and self.request.idempotent
                and not self.resent and transport.left(self.attempt_deadline) > 0):
            # Most likely a pooled connection the server closed just as it was
            # reused: once more on the same endpoint, in the same slot.
            self.resent = True
            self.timed_out = False
            self.send()
            return None
        self._attempt_over(mapped)
        return None

    def _attempt_over(self, exc: BaseException) -> None:
        """The attempt failed with ``exc``: end the call with it, or move on."""
        self._release()
        failures: list[errors.EtcdError] = []
        try:
            self._report(outcome_of(exc))
            self.context.run(self.transport.attempt_failed, self.request, self.indices[0],
                             self.endpoint, exc, failures)
        except BaseException:
            self.out.errback()
            return
        self._hand_over(failures)

    def _hand_over(self, failures: list[errors.EtcdError]) -> None:
        """Go on with the next endpoints on the coroutine path."""
        targets = [(i, self.endpoints[i]) for i in self.indices]
        self.rest = self.context.run(self._start_rest, targets, failures)
        self.rest.addBoth(self._relay)

    def _start_rest(self, targets: list[tuple[int, str]],
                    failures: list[errors.EtcdError]) -> Deferred[Any]:
        return dual(Deferred.fromCoroutine(self.transport.attempts(
            self.request, self.body, self.deadline, targets, 1, failures, self.budget)))

    def _relay(self, result: Any) -> None:
        if self.out.called:
            return None
        if isinstance(result, Failure):
            self.out.errback(result)
        else:
            self.out.callback(result)
        return None
