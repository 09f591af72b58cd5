"""Probes of the members that carry streams: a silent stream is not a healthy one.

A member that hangs (SIGSTOP, a stuck disk) or is cut off from the network
may keep a stream's connection open and send nothing at all: a watch through
it would wait forever without an error. So while at least one stream (a
watch, an observed election) is open on an endpoint, that endpoint gets a
cheap require-leader request of its own, a ``status`` pinned to it, every
``probe_interval`` seconds after the previous answer, each allowed
``probe_timeout`` seconds. A probe that times out, cannot connect, loses its
connection or is answered ``no leader`` (or any other ``Unavailable``, or
``DeadlineExceeded``) *fails*: the endpoint is demoted (see :mod:`etcdwamp.health`) and every
stream on it is told to move; a watch then resumes on another member from
the revision after its last delivered event. Probes run outside the call
budget (see :class:`~etcdwamp.transport.Transport`), so calls queueing
behind a slow etcd never delay them, and stop when the last stream on the
endpoint closes.

**Worst-case detection time**: ``probe_interval + probe_timeout`` after the
member stopped answering (4 s with the defaults): the last probe answered
just before it hung, the next one is sent ``probe_interval`` later and gives
up after ``probe_timeout``. A member cut off from its peers answers
``no leader`` once it noticed, after its election timeout (etcd's
``--election-timeout``, 1 s by default), so it is detected by
``probe_interval`` + that election timeout at most (etcd itself ends
require-leader streams of a member without leader within about two election
timeouts). Moving the stream takes one more request to a healthy member.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import errors
from .wire import Request
from .wire.requests import status_request

__all__ = ["DEFAULT_PROBE_INTERVAL", "DEFAULT_PROBE_TIMEOUT", "ProbeTarget", "ProbedStream",
           "StreamProbes"]

T = TypeVar("T")

log = Logger()

#: seconds between the answer of one probe and the next probe (None or 0: no probes)
DEFAULT_PROBE_INTERVAL = 2.0
#: seconds a probe may take before the endpoint counts as failed
DEFAULT_PROBE_TIMEOUT = 2.0


def _seconds(value: object, name: str, *, may_be_off: bool) -> float | None:
    """``value`` as a positive, finite number of seconds (None for "off" where allowed)."""
    if may_be_off and (value is None or value == 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        off = " (0 or None: no probes)" if may_be_off else ""
        raise ValueError(f"{name} must be a positive number of seconds{off}, not {value!r}")
    return float(value)


class ProbeTarget(Protocol):
    """What :class:`StreamProbes` needs of the transport it probes through
    (:class:`~etcdwamp.transport.Transport` has it); the transport imports this
    module, never the other way round."""

    #: an ``IReactorTime`` (``callLater``) that times the probes
    clock: Any

    def call(self, request: Request[T], *, endpoint: str | None = ...) -> Deferred[T]:
        """Send ``request`` (to ``endpoint`` only, when given); its parsed answer."""

    def demote(self, endpoint: str, reason: str) -> None:
        """Try ``endpoint`` after the others for a while."""


class ProbedStream:
    """One stream's registration with :class:`StreamProbes`; :meth:`close` it
    when the stream ends."""

    def __init__(self, probes: StreamProbes | None, endpoint: str,
                 on_failure: Callable[[str], object]) -> None:
        self._probes = probes
        self.endpoint = endpoint
        self.on_failure = on_failure

    def close(self) -> None:
        """The stream ended: stop probing its endpoint for it (idempotent)."""
        probes, self._probes = self._probes, None
        if probes is not None:
            probes._untrack(self)


@dataclass(eq=False, slots=True)
class _Probed:
    """The probing of one endpoint: its streams, the next probe, the one in flight."""

    #: (a dict as an ordered set: a client may hold thousands of watches on one
    #: endpoint, and each one's close must not scan them all)
    streams: dict[ProbedStream, None] = field(default_factory=dict)
    timer: Any = None
    in_flight: Any = None


class StreamProbes:
    """Probes each endpoint that carries streams (see the module docstring).

    :param transport: what sends the probes and demotes the endpoints that fail them
    :param interval: seconds from a probe's answer to the next probe; None
        or 0: no probes (a hung member then stalls its streams until the
        connection breaks)
    :param timeout: seconds a probe may take
    :raises TypeError, ValueError: an option is not a positive number of seconds
    """

    def __init__(self, transport: ProbeTarget, *,
                 interval: float | None = DEFAULT_PROBE_INTERVAL,
                 timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
        self.interval = _seconds(interval, "probe_interval", may_be_off=True)
        checked = _seconds(timeout, "probe_timeout", may_be_off=False)
        assert checked is not None
        self.timeout: float = checked
        self._transport = transport
        self._probed: dict[str, _Probed] = {}
        #: probes sent and probes failed, in all (for metrics and tests)
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        """Whether streams are probed at all."""
        return self.interval is not None

    def probing(self) -> list[str]:
        """The endpoints being probed now (those with open streams)."""
        return list(self._probed)

    def track(self, endpoint: str, on_failure: Callable[[str], object]) -> ProbedStream:
        """Probe ``endpoint`` while the returned registration is open; when a
        probe fails, ``on_failure(reason)`` is called once (the stream should
        drop its connection and move) and the registration closes itself."""
        if self.interval is None:
            return ProbedStream(None, endpoint, on_failure)
        stream = ProbedStream(self, endpoint, on_failure)
        probed = self._probed.get(endpoint)
        if probed is None:
            probed = self._probed[endpoint] = _Probed()
            self._schedule(endpoint, probed)
        probed.streams[stream] = None
        return stream

    def _untrack(self, stream: ProbedStream) -> None:
        probed = self._probed.get(stream.endpoint)
        if probed is None or stream not in probed.streams:
            return
        del probed.streams[stream]
        if not probed.streams:
            self._stop(stream.endpoint, probed)

    def _stop(self, endpoint: str, probed: _Probed) -> None:
        """Forget ``endpoint``: no timer, no probe left in flight."""
        del self._probed[endpoint]
        timer, probed.timer = probed.timer, None
        if timer is not None and timer.active():
            timer.cancel()
        in_flight, probed.in_flight = probed.in_flight, None
        if in_flight is not None:
            in_flight.cancel()

    def _schedule(self, endpoint: str, probed: _Probed) -> None:
        assert self.interval is not None
        probed.timer = self._transport.clock.callLater(self.interval, self._probe,
                                                       endpoint, probed)

    def _probe(self, endpoint: str, probed: _Probed) -> None:
        probed.timer = None
        self.sent += 1
        # A timeout of its own: outside the call budget, never behind queued calls.
        request = replace(status_request(), timeout=self.timeout)
        d = probed.in_flight = self._transport.call(request, endpoint=endpoint)

        def answered(_: object) -> None:
            probed.in_flight = None
            if self._probed.get(endpoint) is probed:
                self._schedule(endpoint, probed)

        def failed(failure: Failure) -> None:
            probed.in_flight = None
            exc = failure.value
            if self._probed.get(endpoint) is not probed or isinstance(exc, CancelledError):
                return  # stopped meanwhile: nothing failed
            if isinstance(exc, (errors.TransportError, errors.Unavailable,
                                errors.DeadlineExceeded)):
                self._fail(endpoint, probed, exc)
                return
            # The member answered, just not with a status (a permission, say):
            # it is alive, and its streams are not stalled by it.
            log.info("stream probe of {endpoint} answered {err}; the member counts as alive",
                     endpoint=endpoint, err=type(exc).__name__)
            self._schedule(endpoint, probed)

        d.addCallbacks(answered, failed)

    def _fail(self, endpoint: str, probed: _Probed, exc: BaseException) -> None:
        self.failed += 1
        reason = ("no answer to a stream probe in time" if isinstance(exc, errors.RequestTimeout)
                  else f"stream probe failed: {type(exc).__name__}")
        streams = list(probed.streams)
        self._stop(endpoint, probed)
        self._transport.demote(endpoint, reason)
        log.warn("{count} stream(s) leave etcd endpoint {endpoint}: {reason}",
                 count=len(streams), endpoint=endpoint, reason=reason)
        for stream in streams:
            stream._probes = None  # closed: the owner's close() is a no-op now
            try:
                stream.on_failure(reason)
            except Exception:
                log.failure("a stream's probe-failure handler raised")
