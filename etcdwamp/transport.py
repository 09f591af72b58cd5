"""Floor 2: the one transport every part of the client goes through.

:class:`Transport` owns what a request needs besides its own body: the
endpoints in failover order, the clock, the gateway prefix of each endpoint,
the auth token, deadlines and the mapping of Twisted failures onto
:mod:`etcdwamp.errors`. :class:`~etcdwamp.client.Client`, watches, leases,
locks and elections all talk to etcd through it: ``call(request)`` for a
request/answer exchange, ``open_stream(path, body)`` for a streamed answer.

Below it an :class:`HTTP` posts bytes. The default, :class:`AgentHTTP`,
drives Twisted's ``Agent`` directly: the endpoint, its pool key and each URL
are parsed once, the body is written in one piece (:class:`BytesBody`), and
no per-request wrapper (cookies, redirects, content decoding, a cooperator
task to stream a few hundred bytes) runs. :class:`TreqHTTP` adapts any
treq-style client (``http_client=``, e.g. ``treq.testing.StubTreq``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from twisted.internet import defer
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred, DeferredList, DeferredLock
from twisted.internet.protocol import Protocol as _Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import _newclient
from twisted.web.client import URI, Agent, HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from . import errors
from ._deferred import dual
from .attempt import MOVE_ON, MoveOn, first_attempt
from .budget import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED, ConnectionBudget
from .failover import answer_json, attempt_share, give_up, refusal
from .health import EndpointHealth
from .metrics import NO_METRICS, ClientMetrics, outcome_of
from .probe import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT, StreamProbes
from .wire import Request, check_size, error_from_response
from .wire.auth import authenticate_request
from .wire.requests import API_PREFIXES
from .wire.watch import WatchDecoder, WatchResponse
from .wire.watch_state import stream_body

__all__ = [
    "API_PREFIXES",
    "HTTP",
    "JSON_CODEC",
    "NO_TLS_HINT",
    "REQUIRE_LEADER_HEADER",
    "AgentHTTP",
    "BodyReader",
    "BytesBody",
    "GatewayHTTP",
    "HTTPClientLike",
    "JsonCodec",
    "MessagesHTTP",
    "StreamOpened",
    "StreamProtocol",
    "Transport",
    "TreqHTTP",
    "WatchFrames",
    "WireCodec",
    "read_body",
    "relay",
]

T = TypeVar("T")

log = Logger()


#: connections per endpoint lease keep-alives may use at once, beside the calls'
KEEPALIVE_CONNECTIONS = 8

_CONTENT_TYPE = b"application/json"

#: etcd's require-leader metadata through the gateway (the Go client's
#: WithRequireLeader): a member without a leader answers "no leader" at once,
#: and ends a stream it serves once it has lost its leader.
REQUIRE_LEADER_HEADER = (b"Grpc-Metadata-hasleader", b"true")

#: what a ConnectionLost adds when an ``https://`` endpoint hung up on the TLS
#: handshake without a TLS alert, as a plain-HTTP server does (both loops)
NO_TLS_HINT = " (no TLS there? an endpoint that serves plain HTTP needs http://)"

# One encoder for every request: json.dumps with any non-default option
# builds a new JSONEncoder per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode

# Failures that prove the request never left this process.
_NOT_SENT = (
    ierror.ConnectError,  # includes ConnectionRefusedError, TCP/DNS failures
    ierror.DNSLookupError,
    ierror.TimeoutError,  # the Agent's connect timeout
    ierror.ConnectingCancelledError,
    _newclient.RequestNotSent,
    # An incomplete request (e.g. the TLS handshake failed) cannot be processed.
    _newclient.RequestTransmissionFailed,
)


class _QueueTimeout(errors.RequestTimeout):
    """The attempt's time ran out while waiting for a connection slot: nothing
    was sent (still a RequestTimeout to callers, as before)."""


class _PrefixFailed(Exception):
    """Detecting an endpoint's gateway prefix failed (``cause``): the request
    itself was never sent, so any request may try the next endpoint."""

    def __init__(self, cause: errors.EtcdError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class BodyReader(_Protocol):
    """Collects a whole response body into ``done``; cancelling ``done`` drops
    the connection (treq's ``content`` would go on reading the body)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred(self._abort)

    def dataReceived(self, data: bytes) -> None:
        """Keep a chunk of the body."""
        self._chunks.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Fire ``done`` with the body if it ended cleanly, else fail it with ``reason``."""
        if self.done.called:
            return
        if reason is None or isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            chunks = self._chunks
            self.done.callback(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        else:
            self.done.errback(reason)

    def _abort(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.stopProducing()


def read_body(response: Any) -> Deferred[bytes]:
    """The whole body of ``response``; cancelling the Deferred drops the connection."""
    reader = BodyReader()
    response.deliverBody(reader)
    return reader.done


class StreamProtocol(_Protocol):
    """Feeds a streamed HTTP body to a decoder and reports the end of the stream."""

    def __init__(self, decoder: Any, on_frames: Callable[[list[Any]], None]):
        self.decoder = decoder
        self.on_frames = on_frames
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """Feed a chunk to the decoder and pass the frames it completed to ``on_frames``."""
        self.on_frames(self.decoder.feed(data))

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Pass on a last unterminated frame, then fire ``ended`` (whatever ended the stream)."""
        tail = self.decoder.close()
        if tail:
            self.on_frames(tail)
        if not self.ended.called:
            self.ended.callback(None)

    def abort(self) -> None:
        """Drop the connection; ``connectionLost`` follows."""
        if self.transport is not None:
            self.transport.stopProducing()


def relay(result: object, target: Deferred[Any]) -> None:
    """Pass ``result`` on to ``target`` unless it was settled already (cancelled)."""
    if target.called:
        return
    if isinstance(result, Failure):
        target.errback(result)
    else:
        target.callback(result)


class HTTPClientLike(Protocol):
    """The part of ``treq.client.HTTPClient`` the client uses. Cancelling a
    Deferred that ``post`` returned must abort that request, as treq's does."""

    def post(self, url: str, data: bytes, headers: Any, **kwargs: Any) -> Deferred[Any]:
        """POST ``data`` to ``url``; fires with the response once its headers arrived."""
        ...


class WireCodec(Protocol):
    """How requests become bodies and answers results on one transport."""

    def encode(self, request: Request[Any]) -> bytes:
        """The body that carries ``request``."""
        ...

    def decode(self, request: Request[T], endpoint: str, content: bytes) -> T:
        """``request``'s result from a 200 answer's ``content`` (from ``endpoint``).

        :raises ~etcdwamp.errors.EtcdError: the answer is not what ``request`` expects
        """
        ...


class WatchFrames(Protocol):
    """An incremental decoder of one watch stream's chunks."""

    def feed(self, chunk: bytes) -> list[WatchResponse | errors.EtcdError]:
        """The watch responses (or error frames) ``chunk`` completed."""
        ...

    def close(self) -> list[WatchResponse | errors.EtcdError]:
        """What was left over when the stream ended."""
        ...


class JsonCodec:
    """The :class:`WireCodec` of etcd's JSON gateway."""

    def encode(self, request: Request[Any]) -> bytes:
        """The gateway's JSON body of ``request``."""
        return _encode(request.body).encode("ascii")

    def decode(self, request: Request[T], endpoint: str, content: bytes) -> T:
        """``request``'s result from the gateway's JSON answer."""
        return request.parse(answer_json(endpoint, content))


#: the gateway's encoding (what :class:`GatewayHTTP` uses)
JSON_CODEC = JsonCodec()


class HTTP(Protocol):
    """Posts one body to ``endpoint + path``; the Deferred fires with the
    response once its headers arrived (an ``IResponse``); cancelling it aborts.

    It also names its encoding (:attr:`codec`, :meth:`watch_decoder`): the JSON
    gateway's for :class:`GatewayHTTP`, protobuf on gRPC."""

    #: send etcd's require-leader header/metadata with every request (the
    #: transport sets it from its own option)
    require_leader: bool
    #: how the transport encodes requests and decodes answers for this HTTP
    codec: WireCodec

    def watch_decoder(self) -> WatchFrames:
        """A new decoder for one watch stream's chunks."""
        ...

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        """POST ``body`` to ``endpoint + path`` with ``token`` as Authorization (None: no header).

        ``stream=True``: the caller reads the body as it arrives.
        """
        ...

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        """POST and read the whole answer: its status and body."""
        ...

    def map_error(self, endpoint: str, exc: Exception, *, timed_out: bool) -> Exception:
        """The :mod:`etcdwamp.errors` exception for a failed exchange (``timed_out``:
        our timeout cut it short): ConnectFailed when it provably was not sent."""
        ...

    def close(self) -> Deferred[None]:
        """Close pooled connections; fires when they are closed."""
        ...


@runtime_checkable
class MessagesHTTP(Protocol):
    """An :class:`HTTP` that takes a stream's requests as data (the gRPC transport's:
    it encodes them as protobuf, no JSON in between)."""

    def post_messages(self, endpoint: str, path: str, messages: Sequence[Mapping[str, Any]],
                      token: str | None) -> Deferred[Any]:
        """Open the stream ``path`` with ``messages`` (JSON objects) as its first
        requests; fires as :meth:`HTTP.post` with ``stream=True`` does."""
        ...

    def stream_at_once(self, endpoint: str, path: str, messages: Sequence[Mapping[str, Any]],
                       token: str | None) -> Any:
        """:meth:`post_messages`'s response at once when this HTTP can hand it over
        without waiting (a gRPC watch); None when it cannot."""
        ...



class GatewayHTTP:
    """What every :class:`HTTP` of etcd's JSON gateway shares (both loops): the
    gateway's JSON (:data:`JSON_CODEC`, :class:`WatchDecoder`)."""

    #: send :data:`REQUIRE_LEADER_HEADER` with every request (the transport sets it)
    require_leader = True
    #: requests and answers are the gateway's JSON
    codec: WireCodec = JSON_CODEC

    def watch_decoder(self) -> WatchFrames:
        """A decoder of the gateway's watch stream (JSON lines)."""
        return WatchDecoder()


class TwistedHTTP(GatewayHTTP):
    """What the Twisted HTTP classes share: reading answers, mapping failures."""

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        raise NotImplementedError

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        """:meth:`HTTP.exchange` as plain Deferred chaining rather than a
        coroutine: this runs for every request, and cancelling the result still
        reaches whichever step runs (the Agent aborts a pending request;
        read_body drops the connection)."""
        def read(response: Any) -> Deferred[tuple[int, bytes]]:
            code = int(response.code)
            return read_body(response).addCallback(lambda data: (code, data))

        return self.post(endpoint, path, body, token).addCallback(read)

    def map_error(self, endpoint: str, exc: Exception, *, timed_out: bool) -> Exception:
        """:meth:`HTTP.map_error` for Twisted's failures."""
        if isinstance(exc, _NOT_SENT):
            # Also when our timeout cancelled the connection attempt: not sent.
            return errors.ConnectFailed(f"cannot connect to {endpoint}: {exc}", endpoint=endpoint)
        if timed_out:
            return errors.RequestTimeout(f"no answer from {endpoint} in time", endpoint=endpoint)
        return transport_error(endpoint, exc)


@implementer(IBodyProducer)
class BytesBody:
    """A request body that is all there already: written in one call, with a
    Content-Length, no cooperator task and no extra reactor turn."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Write the whole body to ``consumer`` at once."""
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body was written in one call."""
        pass

    def resumeProducing(self) -> None:
        """Nothing to resume: the body was written in one call."""
        pass

    def stopProducing(self) -> None:
        """Nothing to stop: the body was written in one call."""
        pass


@dataclass(slots=True)
class _Route:
    """What the Agent needs to reach one endpoint, worked out once."""

    key: Any
    endpoint: Any
    root: bytes  # the endpoint URL as bytes, without a trailing slash
    base_path: bytes  # the URL's own path (a gateway behind a proxy path)
    uris: dict[str, tuple[URI, bytes]]  # per request path: parsed URI and request path


class AgentHTTP(TwistedHTTP):
    """The default :class:`HTTP`: Twisted's ``Agent`` over a persistent pool.

    ``Agent.request`` parses the URL, builds a new endpoint object and copies
    the headers for every request; here that happens once per endpoint (and
    once per header set), and each request goes to the pool's connection for
    that endpoint through ``Agent._requestWithEndpoint``, the method
    ``Agent.request`` itself ends in.
    """

    def __init__(self, reactor: Any, *, connect_timeout: float, pool_size: int,
                 tls: Any = None) -> None:
        self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = pool_size
        extra: dict[str, Any] = {} if tls is None else {"contextFactory": tls}
        self._agent = Agent(  # type: ignore[no-untyped-call]
            reactor, connectTimeout=connect_timeout, pool=self._pool, **extra)
        self._routes: dict[str, _Route] = {}
        # The header set of the current token: requests share it (Agent and
        # HTTP11ClientProtocol only read headers), rebuilt when the token changes.
        self._headers: dict[tuple[str, str | None], Headers] = {}

    def _route(self, endpoint: str) -> _Route:
        route = self._routes.get(endpoint)
        if route is None:
            root = endpoint.encode("ascii")
            parsed = URI.fromBytes(root)  # type: ignore[no-untyped-call]
            route = _Route(
                key=(parsed.scheme, parsed.host, parsed.port),  # as Agent.request keys its pool
                endpoint=self._agent._getEndpoint(parsed),  # type: ignore[no-untyped-call]
                root=root, base_path=parsed.path.rstrip(b"/"), uris={})
            self._routes[endpoint] = route
        return route

    def _header_set(self, endpoint: str, token: str | None) -> Headers:
        headers = self._headers.get((endpoint, token))
        if headers is None:
            if len(self._headers) > 16:
                self._headers.clear()  # old tokens: nothing will send them again
            route = self._route(endpoint)
            parsed = URI.fromBytes(route.root)  # type: ignore[no-untyped-call]
            raw: dict[bytes, list[bytes]] = {
                b"Host": [self._agent._computeHostValue(  # type: ignore[no-untyped-call]
                    parsed.scheme, parsed.host, parsed.port)],
                b"Content-Type": [_CONTENT_TYPE],
            }
            if token is not None:
                raw[b"Authorization"] = [token.encode("ascii")]
            if self.require_leader:
                raw[REQUIRE_LEADER_HEADER[0]] = [REQUIRE_LEADER_HEADER[1]]
            headers = self._headers[(endpoint, token)] = Headers(raw)
        return headers

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        """:meth:`HTTP.post` over the pooled Agent; cancelling the Deferred aborts the request."""
        route = self._routes.get(endpoint) or self._route(endpoint)
        target = route.uris.get(path)
        if target is None:
            request_path = route.base_path + path.encode("ascii")
            uri = URI.fromBytes(route.root + path.encode("ascii"))  # type: ignore[no-untyped-call]
            target = route.uris[path] = (uri, request_path)
        d: Deferred[Any] = self._agent._requestWithEndpoint(
            route.key, route.endpoint, b"POST", target[0],
            self._header_set(endpoint, token), BytesBody(body), target[1])  # type: ignore[arg-type]
        return d

    def close(self) -> Deferred[None]:
        """Close the pool's cached connections."""
        d: Deferred[None] = self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]
        return d


class TreqHTTP(TwistedHTTP):
    """:class:`HTTP` over an injected treq-style client (tests: ``StubTreq``)."""

    def __init__(self, client: HTTPClientLike) -> None:
        self._client = client

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        """:meth:`HTTP.post` through the injected client (``unbuffered=True`` for a stream)."""
        headers: dict[bytes, list[bytes]] = {b"Content-Type": [_CONTENT_TYPE]}
        if token is not None:
            headers[b"Authorization"] = [token.encode("ascii")]
        if self.require_leader:
            headers[REQUIRE_LEADER_HEADER[0]] = [REQUIRE_LEADER_HEADER[1]]
        if stream:
            return self._client.post(endpoint + path, data=body, headers=headers,
                                     unbuffered=True)
        return self._client.post(endpoint + path, data=body, headers=headers)

    def close(self) -> Deferred[None]:
        """Nothing to close: the injected client owns its connections."""
        return defer.succeed(None)


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """A streamed answer whose headers arrived: read ``response`` with
    ``deliverBody``. ``token`` is the auth token the stream was opened with."""

    response: Any
    endpoint: str
    token: str | None


class Transport:
    """Endpoints, clock, gateway prefixes, auth token and failover: the seam
    between the client's parts and HTTP. See :mod:`etcdwamp.client` for the
    failover, deadline and cancellation rules it implements.

    Connections: every request/answer exchange first takes a slot of its
    endpoint in :attr:`budget` (at most ``max_connections`` per endpoint at
    once, then a queue of ``max_queued``, then :class:`~etcdwamp.errors.Busy`;
    see :mod:`etcdwamp.budget`), so calls never hold more connections than
    that, however many are made. Three kinds hold connections outside it,
    because each lasts as long as something the program holds, not as long
    as an answer takes, and counting them would let a few of them starve
    every call: streams (watches, observed elections, snapshots), one per
    watch; blocking requests with their own timeout (lock, campaign,
    defragment), one per waiter; and lease keep-alives, which have their own
    :attr:`keepalive_budget` (``KEEPALIVE_CONNECTIONS`` per endpoint) so that
    calls queueing behind a slow etcd cannot make the program lose its leases.
    """

    def __init__(self, http: HTTP, clock: Any, endpoints: Sequence[str], *,
                 timeout: float, max_request_bytes: int, api_prefix: str | None = None,
                 credentials: tuple[str, str] | None = None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_queued: int = DEFAULT_MAX_QUEUED,
                 require_leader: bool = True,
                 attempt_timeout: float | None = None,
                 probe_interval: float | None = DEFAULT_PROBE_INTERVAL,
                 probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
                 metrics: ClientMetrics = NO_METRICS) -> None:
        if attempt_timeout is not None and not attempt_timeout > 0:
            raise ValueError("attempt_timeout must be a positive number of seconds (or None)")
        self.http = http
        #: the same HTTP when it takes a stream's requests as data (see open_stream)
        self._messages_http = http if isinstance(http, MessagesHTTP) else None
        # How requests become bodies and answers results: the encoding the HTTP
        # object names (the gateway's JSON, or protobuf on gRPC), bound once.
        self.encode_body: Callable[[Request[Any]], bytes] = http.codec.encode
        self._decode_answer: Callable[[Request[Any], str, bytes], Any] = http.codec.decode
        # Every request and stream carries it (see REQUIRE_LEADER_HEADER).
        self.require_leader = require_leader
        http.require_leader = require_leader
        #: seconds one attempt may take before an idempotent request moves on
        #: to the next endpoint (None: an equal share of what is left)
        self.attempt_timeout = attempt_timeout
        #: endpoints demoted after a timeout or "no leader" (see etcdwamp.health)
        self.health = EndpointHealth(clock, metrics=metrics)
        #: where request attempts, health changes, watch streams and coalesced
        #: ops are reported (see etcdwamp.metrics)
        self.metrics = metrics
        self.clock = clock
        self.endpoints: tuple[str, ...] = tuple(endpoints)
        for endpoint in self.endpoints:
            metrics.endpoint_health(endpoint, True)
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        self.api_prefix = api_prefix
        #: detected gateway prefix per endpoint
        self.prefixes: dict[str, str] = {}
        self.preferred = 0
        self.credentials = credentials
        self.token: str | None = None
        self._auth_lock = DeferredLock()
        #: the slots of request/answer calls per endpoint, and their queue
        self.budget = ConnectionBudget(clock, max_connections=max_connections,
                                       max_queued=max_queued)
        #: lease keep-alives' own slots (see the class docstring)
        self.keepalive_budget = ConnectionBudget(
            clock, max_connections=min(KEEPALIVE_CONNECTIONS, max_connections),
            max_queued=max_queued)
        #: probes of the endpoints streams are open on (see etcdwamp.probe)
        self.probes = StreamProbes(self, interval=probe_interval, timeout=probe_timeout)
        #: clean-ups nobody awaits, under way (see clean_up): each fires when its work ends
        self._cleanups: set[Deferred[None]] = set()

    def watch_decoder(self) -> WatchFrames:
        """A decoder of one watch stream's chunks: the gateway's JSON lines, or what
        the HTTP object names (protobuf messages on gRPC)."""
        return self.http.watch_decoder()

    # -- endpoints and time -------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint requests currently go to first (healthy, or the one whose
        demotion ends first)."""
        return self.endpoints[self.indices()[0]]

    def order(self) -> list[str]:
        """The endpoints in the order the next request tries them: healthy ones
        first, from the one that answered last, then the demoted ones."""
        return [self.endpoints[i] for i in self.indices()]

    def indices(self) -> list[int]:
        """Indices into :attr:`endpoints` in the order the next request tries them."""
        return self.health.order(self.endpoints, self.preferred)

    def demote(self, endpoint: str, reason: str) -> None:
        """Try ``endpoint`` after the others for a back-off period (it timed out,
        has no leader, or failed a probe)."""
        incidents = self.health.demotions
        until = self.health.demote(endpoint, reason)
        if self.health.demotions == incidents:
            # Calls in flight together fail together: one line per incident, not per
            # call (a process renewing a thousand leases would log a thousand).
            return
        log.info("etcd endpoint {endpoint} demoted for {seconds:.1f}s: {reason}",
                 endpoint=endpoint, seconds=until - self.clock.seconds(), reason=reason)

    def attempt_limit(self, deadline: float, remaining: int) -> float:
        """Seconds the next attempt may take when ``remaining`` endpoints (this
        one included) are left to try by ``deadline``: the last gets all that
        is left; the others an equal share, or ``attempt_timeout`` if that is less
        (never more: the endpoints after it would get nothing left to try)."""
        return attempt_share(self.left(deadline), remaining, self.attempt_timeout)

    def deadline(self, timeout: float | None) -> float:
        """When a call starting now with ``timeout`` (None: the client's) must end."""
        now: float = self.clock.seconds()
        return now + (self.timeout if timeout is None else timeout)

    def left(self, deadline: float) -> float:
        """Seconds from now until ``deadline``, never negative."""
        now: float = self.clock.seconds()
        return max(0.0, deadline - now)

    # -- requests -------------------------------------------------------------

    def call(self, request: Request[T], *, started: float | None = None,
             endpoint: str | None = None, keepalive: bool = False) -> Deferred[T]:
        """Send ``request`` with failover; the Deferred fires with its parsed answer.

        ``started``: the clock's time the caller's call began (default: now);
        the timeout counts from there, waiting for a connection included.
        ``endpoint``: send to that member only, without failover (maintenance
        calls whose answer must come from it); it need not be one of
        :attr:`endpoints`. ``keepalive``: a lease keep-alive, which takes its
        connection from :attr:`keepalive_budget`.

        :raises Busy: every connection of the endpoint is in use and
            ``max_queued`` calls wait already (nothing was sent)
        """
        if self.credentials is None:
            # One coroutine less per request on the common path.
            limit = self.timeout if request.timeout is None else request.timeout
            deadline = (self.clock.seconds() if started is None else started) + limit
            budget = self._budget_of(request, keepalive)
            if endpoint is None and request.timeout is None:
                # Most calls: one attempt, callbacks instead of coroutines (see
                # etcdwamp.attempt); None when it would have to wait for something.
                first = first_attempt(self, request, deadline, budget)
                if first is not None:
                    return first
            return dual(Deferred.fromCoroutine(self._call_once(
                request, deadline, endpoint, budget)))
        return dual(Deferred.fromCoroutine(
            self.call_async(request, started=started, endpoint=endpoint, keepalive=keepalive)))

    async def call_async(self, request: Request[T], *, started: float | None = None,
                         endpoint: str | None = None, keepalive: bool = False) -> T:
        """:meth:`call` as a coroutine (saves a Deferred inside other coroutines)."""
        limit = self.timeout if request.timeout is None else request.timeout
        deadline = (self.clock.seconds() if started is None else started) + limit
        budget = self._budget_of(request, keepalive)
        if self.credentials is None:
            return await self._call_once(request, deadline, endpoint, budget)
        token = await self.current_token(deadline)
        try:
            return await self._call_once(request, deadline, endpoint, budget)
        except errors.Unauthenticated:
            # The token expired (--auth-token-ttl) or the member restarted:
            # authenticate again and retry once.
            await self.renew_token(token, deadline)
            return await self._call_once(request, deadline, endpoint, budget)

    def _budget_of(self, request: Request[Any], keepalive: bool) -> ConnectionBudget | None:
        """Where ``request`` takes its connection slots; None: outside any budget
        (a blocking request: see the class docstring)."""
        if request.timeout is not None:
            return None
        return self.keepalive_budget if keepalive else self.budget

    def set_endpoints(self, urls: Sequence[str]) -> None:
        """Replace the endpoints (e.g. from the member list); the one in use stays
        first if it is still among them. Calls in flight finish where they are."""
        cleaned = tuple(u.rstrip("/") for u in urls)
        if not cleaned:
            raise ValueError("no endpoint given")
        current = self.endpoint
        for endpoint in cleaned:
            if endpoint not in self.endpoints:
                self.metrics.endpoint_health(endpoint, True)
        for endpoint in self.endpoints:
            if endpoint not in cleaned:
                # A member removed while down would read 0 for ever on a dashboard.
                self.metrics.endpoint_removed(endpoint)
        self.endpoints = cleaned
        self.preferred = cleaned.index(current) if current in cleaned else 0
        self.health.keep_only(cleaned)

    def open_stream_at_once(self, path: str, messages: Sequence[Mapping[str, Any]], *,
                            endpoint: str) -> StreamOpened | None:
        """:meth:`open_stream` when nothing needs waiting for: the endpoint's prefix and
        the token are known and the HTTP hands the stream over at once (gRPC's shared
        watch stream, see :class:`MessagesHTTP`); None when it cannot (then use
        :meth:`open_stream`). Spares a program with thousands of watches a coroutine
        and a timer per watch."""
        http = self._messages_http
        if http is None or (self.credentials is not None and self.token is None):
            return None
        prefix = self.api_prefix if self.api_prefix is not None else self.prefixes.get(endpoint)
        if prefix is None:
            return None
        token = self.token
        response = http.stream_at_once(endpoint, prefix + path, messages, token)
        if response is None:
            return None
        return self._opened(response, endpoint, token)

    def _opened(self, response: Any, endpoint: str, token: str | None) -> StreamOpened:
        """A stream ``endpoint`` answered: the endpoint is well, unless the stream was
        handed over before its connection opened (a gRPC watch's: nothing answered yet)."""
        if getattr(response, "connected", True):
            self.health.succeeded(endpoint)
        return StreamOpened(response, endpoint, token)

    async def open_stream(self, path: str, body: bytes | Sequence[Mapping[str, Any]], *,
                          endpoint: str | None = None,
                          timeout: float | None = None) -> StreamOpened:
        """POST ``body`` to ``path`` (relative to the gateway prefix) on
        ``endpoint`` (default: the preferred one) and return once the answer's
        headers arrived, within ``timeout`` (None: one attempt's share of the
        client's timeout; inf: no limit, for a stream etcd answers only once it
        has something to say, such as an observed election without leader);
        the caller reads the body. ``body`` may also be the stream's requests as
        data (their JSON objects): the gateway gets them concatenated, an HTTP that
        takes them as data (:class:`MessagesHTTP`, gRPC) as they are.

        :raises ServerError: etcd answered with an HTTP error
        """
        if endpoint is None:
            endpoint = self.endpoint
        # The answer's headers come with the first frame, at once on a healthy
        # member: a stream waits one attempt's share, then its owner moves on.
        limit = (self.attempt_limit(self.deadline(None), len(self.endpoints))
                 if timeout is None else timeout)
        # Detecting the prefix (a new client's first exchange with the member)
        # gets that share too, and a member that fails it is demoted alike.
        detect_by = (self.deadline(None) if math.isinf(limit)
                     else self.clock.seconds() + limit)
        # Outside the call budget (see the class docstring): a stream holds its
        # connection for as long as the watch lasts.
        try:
            prefix = await self.prefix(endpoint, detect_by)
        except errors.ConnectFailed:
            self.health.unreachable(endpoint)
            raise
        except errors.RequestTimeout:
            self.demote(endpoint, "no answer in time")
            raise
        except errors.Unavailable as exc:
            self.demote(endpoint, exc.message)
            raise
        token = await self.current_token()
        # Nothing runs between reading the token and posting: the stream
        # carries exactly this one.
        if isinstance(body, bytes):
            posted = self.http.post(endpoint, prefix + path, body, token, stream=True)
        elif self._messages_http is not None:
            posted = self._messages_http.post_messages(endpoint, prefix + path, body, token)
        else:
            posted = self.http.post(endpoint, prefix + path, stream_body(body), token,
                                    stream=True)
        try:
            response = await self._timed(endpoint, posted, limit)
        except errors.RequestTimeout:
            self.demote(endpoint, "no answer in time")
            raise
        except errors.ConnectFailed:
            self.health.unreachable(endpoint)
            raise
        if response.code != 200:
            content = await read_body(response)
            err = error_from_response(int(response.code), content)
            if isinstance(err, errors.Unavailable):
                self.demote(endpoint, err.message)
            raise err
        return self._opened(response, endpoint, token)

    async def _call_once(self, request: Request[T], deadline: float | None = None,
                         only: str | None = None,
                         budget: ConnectionBudget | None = None) -> T:
        """Send ``request``, failing over to the next endpoints, all by ``deadline``
        (None: ``request.timeout`` or the client's from now); to ``only`` alone if given.
        Each attempt holds a slot of its endpoint in ``budget`` (None: none)."""
        check_size(request.size, self.max_request_bytes)
        if deadline is None:
            deadline = self.deadline(request.timeout)
        body = self.encode_body(request)
        # index -1: a pinned member, whose answer says nothing about failover order
        targets = ([(i, self.endpoints[i]) for i in self.indices()] if only is None
                   else [(-1, only.rstrip("/"))])
        result: T = await self.attempts(request, body, deadline, targets, 0, [], budget)
        return result

    async def attempts(self, request: Request[T], body: bytes, deadline: float,
                        targets: Sequence[tuple[int, str]], start: int,
                        failures: list[errors.EtcdError],
                        budget: ConnectionBudget | None) -> T:
        """The attempts of :meth:`_call_once` from ``targets[start]`` on, after the
        ``failures`` of those before it (a :class:`~etcdwamp.attempt.Attempt` that
        could not end the call hands over here)."""
        # A blocking request (its own timeout: a lock waits as long as its
        # caller allows) and a request that cannot move on after it was sent
        # get all that is left; the others a share, then the next endpoint.
        shared = request.timeout is None and request.idempotent
        metrics, clock = self.metrics, self.clock
        for position in range(start, len(targets)):
            index, endpoint = targets[position]
            if self.left(deadline) <= 0:
                if failures:
                    break  # the last attempt's failure is the answer
                # Logging in took the whole budget before anything was sent:
                # still the timeout's error, the type callers handle timeouts by.
                raise errors.RequestTimeout(
                    f"the timeout ran out before {request.path} was sent", endpoint=endpoint)
            attempt_deadline = (
                self.clock.seconds() + self.attempt_limit(deadline, len(targets) - position)
                if shared else deadline)
            began: float = clock.seconds()
            try:
                sending = self._send(endpoint, request.path, body,
                                     idempotent=request.idempotent,
                                     deadline=attempt_deadline, budget=budget)
                if request.timeout is not None and index >= 0 and self.probes.enabled:
                    status, content = await self._probed(endpoint, sending)
                else:
                    status, content = await sending
            except BaseException as exc:
                metrics.request_done(endpoint, outcome_of(
                    exc.cause if isinstance(exc, _PrefixFailed) else exc),
                    clock.seconds() - began)
                self.attempt_failed(request, index, endpoint, exc, failures)
                continue
            answer = self.attempt_answered(request, index, endpoint, status, content,
                                           began, failures)
            if answer is not MOVE_ON:
                result: T = answer
                return result
        raise give_up(failures)

    def attempt_failed(self, request: Request[Any], index: int, endpoint: str,
                       exc: BaseException, failures: list[errors.EtcdError]) -> None:
        """Judge an attempt of ``request`` on ``endpoint`` (``index`` in
        :attr:`endpoints`, -1 for a pinned member) that failed with ``exc``: adds it
        to ``failures`` when the request may move on to the next endpoint, else
        raises it (or what the caller gets instead)."""
        if isinstance(exc, _QueueTimeout):
            # Nothing was sent: any request may try the next endpoint.
            failures.append(exc)
            return
        if isinstance(exc, _PrefixFailed):
            # Only the status exchange that detects the prefix went out (a
            # member without leader refuses it too under require-leader).
            cause = exc.cause
            if index >= 0 and isinstance(cause, (errors.RequestTimeout, errors.Unavailable)):
                self.demote(endpoint, "no answer in time"
                            if isinstance(cause, errors.RequestTimeout) else cause.message)
            failures.append(cause)
            return
        if isinstance(exc, errors.ConnectFailed):
            if index >= 0:
                self.health.unreachable(endpoint)
            failures.append(exc)
            return
        if isinstance(exc, errors.OutcomeUnknown):
            if (isinstance(exc, errors.RequestTimeout) and index >= 0
                    and request.timeout is None):
                # Whether the member hangs or is just slow, calls should
                # not queue behind it: try it after the others for a while.
                # (Not a blocking request with its own timeout: a lock
                # that waited as long as its caller allowed says nothing
                # about the member.)
                self.demote(endpoint, "no answer in time")
            if not request.idempotent:
                raise exc
            failures.append(exc)
            return
        raise exc

    def attempt_answered(self, request: Request[T], index: int, endpoint: str, status: int,
                         content: bytes, began: float,
                         failures: list[errors.EtcdError]) -> T | Literal[MoveOn.MOVE_ON]:
        """Judge ``endpoint``'s answer to an attempt of ``request`` begun at ``began``
        (the clock's time): the result, or :data:`MOVE_ON` (the refusal added to
        ``failures``) when the next endpoint is to be tried; raises the refusal or the
        failure to decode that ends the call. Reports the attempt to the metrics."""
        metrics, clock = self.metrics, self.clock
        if status != 200:
            judged = refusal(status, content, idempotent=request.idempotent,
                             endpoint=endpoint)
            metrics.request_done(endpoint, outcome_of(judged.error), clock.seconds() - began)
            if index >= 0:
                if judged.unwell:
                    self.demote(endpoint, judged.message)
                elif not judged.move_on:
                    self._answered(index, endpoint)
            if judged.move_on:
                failures.append(judged.error)
                return MOVE_ON
            raise judged.error
        if index >= 0:
            self._answered(index, endpoint)
        try:
            result: T = self._decode_answer(request, endpoint, content)
        except Exception as exc:
            metrics.request_done(endpoint, outcome_of(exc), clock.seconds() - began)
            raise
        metrics.request_done(endpoint, "ok", clock.seconds() - began)
        return result

    async def _probed(self, endpoint: str,
                      sending: Coroutine[Any, Any, tuple[int, bytes]]) -> tuple[int, bytes]:
        """Await a blocking request (a lock or campaign that waits for its turn)
        while probing its member, as a stream's: a member that hangs or loses
        its leader meanwhile would otherwise keep the caller waiting forever.

        :raises ConnectionLost: a probe failed; the request was dropped (whether
            the member queued it is unknown, as after any lost connection)
        """
        d: Deferred[tuple[int, bytes]] = Deferred.fromCoroutine(sending)
        lost: list[str] = []

        def on_failure(reason: str) -> None:
            lost.append(reason)
            d.cancel()

        registration = self.probes.track(endpoint, on_failure)
        try:
            return await d
        except CancelledError:
            if lost:
                raise errors.ConnectionLost(
                    f"{endpoint} stopped serving while the request waited ({lost[0]})",
                    endpoint=endpoint) from None
            raise
        finally:
            registration.close()

    def _answered(self, index: int, endpoint: str) -> None:
        """``endpoint`` answered: the next call starts there, and it is healthy."""
        self.preferred = index
        self.health.succeeded(endpoint)

    async def _send(self, endpoint: str, path: str, body: bytes, *, idempotent: bool,
                    deadline: float, budget: ConnectionBudget | None) -> tuple[int, bytes]:
        """POST to one endpoint, ending by ``deadline``, holding a slot of it in
        ``budget`` (waiting for one counts against the deadline). An idempotent
        request whose connection was lost is sent once more: the usual cause is
        a pooled keep-alive connection the server closed just as we reused it.

        :raises Busy: no slot free and the budget's queue is full
        :raises _PrefixFailed: detecting the gateway prefix failed (nothing sent)
        """
        if budget is not None and not budget.take(endpoint):
            try:
                await budget.wait(endpoint, self.left(deadline))
            except errors.RequestTimeout as exc:
                raise _QueueTimeout(str(exc), endpoint=endpoint) from None
        try:
            # Detecting the prefix is an exchange too: inside the slot.
            prefix = self.api_prefix or self.prefixes.get(endpoint)
            if prefix is None:
                try:
                    prefix = await self.prefix(endpoint, deadline)
                except (errors.OutcomeUnknown, errors.Unavailable) as exc:
                    raise _PrefixFailed(exc) from exc
            url_path = prefix + path
            try:
                return await self._timed(endpoint, self._exchange(endpoint, url_path, body),
                                         self.left(deadline))
            except errors.ConnectionLost:
                if not idempotent or self.left(deadline) <= 0:
                    raise
            return await self._timed(endpoint, self._exchange(endpoint, url_path, body),
                                     self.left(deadline))
        finally:
            if budget is not None:
                budget.release(endpoint)

    def _exchange(self, endpoint: str, path: str, body: bytes) -> Deferred[tuple[int, bytes]]:
        return self.http.exchange(endpoint, path, body, self.token)

    async def _post(self, endpoint: str, path: str, body: bytes,
                    timeout: float | None = None) -> tuple[int, bytes]:
        """One HTTP exchange: status and whole body."""
        return await self._timed(endpoint, self._exchange(endpoint, path, body), timeout)

    async def _timed(self, endpoint: str, d: Deferred[T], timeout: float | None) -> T:
        """Await one exchange under ``timeout`` (None: the client's; inf: none),
        mapping failures onto the exception tree."""
        limit = self.timeout if timeout is None else timeout
        timed_out = False
        cancelled = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        def cancel(_: Deferred[T]) -> None:
            # The caller cancelled. Aborting the exchange makes the Agent fail
            # it with whatever it sees (ResponseNeverReceived, Connecting-
            # CancelledError): none of that may pass for a transport failure,
            # which would be retried elsewhere.
            nonlocal cancelled
            cancelled = True
            d.cancel()

        guarded: Deferred[T] = Deferred(cancel)
        d.addBoth(relay, guarded)
        # Answered at once (a gRPC watch's stream): no timer to set and cancel.
        timer = (None if math.isinf(limit) or guarded.called
                 else self.clock.callLater(limit, expire))
        try:
            return await guarded
        except Exception as exc:
            if cancelled and not timed_out:
                raise CancelledError() from exc
            raise self.exchange_error(endpoint, exc, limit, timed_out=timed_out) from exc
        finally:
            if timer is not None and timer.active():
                timer.cancel()

    def exchange_error(self, endpoint: str, exc: Exception, limit: float, *,
                       timed_out: bool) -> Exception:
        """Map the failure of an exchange the caller did not cancel."""
        mapped = self.http.map_error(endpoint, exc, timed_out=timed_out)
        if isinstance(mapped, errors.RequestTimeout):
            # limit is what was left of a deadline (9.99994897...): a person reads tenths
            return errors.RequestTimeout(f"no answer from {endpoint} within {limit:.1f} s",
                                         endpoint=endpoint)
        return mapped

    # -- gateway prefix -----------------------------------------------------------

    async def prefix(self, endpoint: str, deadline: float | None = None) -> str:
        """The gateway prefix of ``endpoint`` (detected once, then cached)."""
        if self.api_prefix is not None:
            return self.api_prefix
        known = self.prefixes.get(endpoint)
        if known is not None:
            return known
        if deadline is None:
            deadline = self.deadline(None)
        probe = b"{}"
        last: errors.ServerError | None = None
        for prefix in API_PREFIXES:
            status, content = await self._post(
                endpoint, prefix + "/maintenance/status", probe, self.left(deadline))
            if status == 200:
                self.prefixes[endpoint] = prefix
                return prefix
            last = error_from_response(status, content)
            if status not in (404, 501):
                raise last
        raise errors.Unimplemented(
            f"{endpoint} serves none of the etcd v3 gateway prefixes "
            f"{', '.join(API_PREFIXES)} (last answer: {last})"
        )

    # -- authentication -----------------------------------------------------------

    async def current_token(self, deadline: float | None = None) -> str | None:
        """The token the next request carries, authenticating first if auth is
        configured and there is none yet. Completes without waiting when the
        token is known, so a request sent right after carries exactly this one."""
        if self.credentials is not None and self.token is None:
            await self.renew_token(None, deadline)
        return self.token

    async def renew_token(self, stale: str | None, deadline: float | None = None) -> None:
        """Get a new token, once for all concurrent callers that saw ``stale`` fail;
        by ``deadline`` (the caller's), and never later than the client's timeout.
        Without credentials there is nothing to renew."""
        if self.credentials is None:
            return
        own = self.deadline(None)
        deadline = own if deadline is None else min(deadline, own)
        await self._lock_auth(deadline)
        try:
            if self.token is not None and self.token != stale:
                return  # another caller already renewed it
            self.token = None
            # Outside the call budget: the lock lets one login run at a time,
            # and inside it, with the queue full, the login would be refused
            # (Busy) or wait behind calls that all need its token.
            result = await self._call_once(authenticate_request(*self.credentials), deadline)
            self.token = result.token
        finally:
            self._auth_lock.release()

    async def _lock_auth(self, deadline: float) -> None:
        """Take the login lock, waiting for another caller's login at most until
        ``deadline``."""
        acquiring: Deferred[Any] = self._auth_lock.acquire()
        if acquiring.called:
            await acquiring
            return
        timer = self.clock.callLater(self.left(deadline), acquiring.cancel)
        try:
            await acquiring
        except CancelledError:
            if timer.active():
                raise  # our caller cancelled
            raise errors.RequestTimeout(
                "the call's timeout ran out while another caller was logging in") from None
        finally:
            if timer.active():
                timer.cancel()

    def clean_up(self, work: Deferred[Any]) -> None:
        """Let ``work``, a clean-up running in the background (nobody awaits it, e.g.
        revoking a cancelled candidacy's lease), finish before :meth:`close` closes
        the connections it needs. Its outcome is left to whoever added callbacks."""
        if work.called:
            return
        ended: Deferred[None] = Deferred()
        self._cleanups.add(ended)

        def end(result: object) -> object:
            self._cleanups.discard(ended)
            ended.callback(None)
            return result

        work.addBoth(end)

    def close(self) -> Deferred[None]:
        """Close pooled connections once the clean-ups under way ended (each is bounded
        by the call timeout); the transport may be used again afterwards."""
        return dual(Deferred.fromCoroutine(self._close()))

    async def _close(self) -> None:
        while self._cleanups:
            # (One clean-up may start another: wait until none is left.)
            await DeferredList(list(self._cleanups))
        await self.http.close()


def _server_certificate_refused(reason: Failure) -> bool:
    """Whether ``reason`` is our refusal of the server's certificate (untrusted,
    or not for this host). That happens inside the TLS handshake, and TLS holds
    the request back until the handshake completed: it was never sent."""
    if reason.check("service_identity.exceptions.VerificationError"):  # type: ignore[no-untyped-call]
        return True
    if not reason.check("OpenSSL.SSL.Error"):  # type: ignore[no-untyped-call]
        return False
    # OpenSSL's error queue: (library, function, reason) triples.
    args = reason.value.args if reason.value is not None else ()
    queue = args[0] if args else ()
    return any(isinstance(entry, tuple) and entry[-1] == "certificate verify failed"
               for entry in (queue if isinstance(queue, list) else ()))


def transport_error(endpoint: str, exc: Exception) -> Exception:
    """Map a failure of an exchange that was not cut short by our timeout."""
    if isinstance(exc, CancelledError):
        return exc  # a cancellation is never a transport failure
    if isinstance(exc, ResponseFailed):
        reasons: list[Failure] = getattr(exc, "reasons", [])
        if reasons and all(r.check(*_NOT_SENT)  # type: ignore[no-untyped-call]
                           or _server_certificate_refused(r) for r in reasons):
            return errors.ConnectFailed(f"cannot connect to {endpoint}: {_reasons(exc)}",
                                        endpoint=endpoint)
    if isinstance(exc, (ResponseFailed, _newclient.ResponseNeverReceived,
                        ierror.ConnectionLost, ierror.ConnectionDone)):
        hint = ""
        if endpoint.startswith("https://") and _hung_up_before_answering(exc):
            # What a plain-HTTP server does to a TLS handshake: it hangs up, no TLS alert.
            hint = NO_TLS_HINT
        return errors.ConnectionLost(
            f"connection to {endpoint} lost before a complete answer{hint}: {_reasons(exc)}",
            endpoint=endpoint,
        )
    return exc


def _reasons(exc: Exception) -> str:
    """``exc`` in words: the Agent's errors hold a list of Failures, whose repr
    (``[<twisted.python.failure.Failure ...>]``) is not for people."""
    reasons: list[Failure] = getattr(exc, "reasons", [])
    if not reasons:
        return str(exc) or type(exc).__name__
    return "; ".join(f"{type(r.value).__name__}: {r.value}" if str(r.value)
                     else type(r.value).__name__ for r in reasons)


def _hung_up_before_answering(exc: Exception) -> bool:
    """Whether not a byte of the answer came (ResponseNeverReceived, not a
    ResponseFailed that broke off) and the only reason is a closed connection:
    no TLS alert, no OpenSSL error."""
    if not isinstance(exc, _newclient.ResponseNeverReceived):
        return False
    reasons: list[Failure] = getattr(exc, "reasons", [])
    return bool(reasons) and all(
        r.check(ierror.ConnectionLost, ierror.ConnectionDone)  # type: ignore[no-untyped-call]
        for r in reasons)
