"""etcd's gRPC API behind the transport's :class:`~etcdwamp.transport.HTTP` seam.

:class:`GrpcHTTP` answers the transport's exchanges with gRPC calls: the gateway path
names the method (:func:`.codec.method`), the payload is already the protobuf message
(the transport encodes with :mod:`.codec` on this transport), and an answer comes back
as ``(200, message bytes)``. A gRPC error comes back as the gateway would send it
(its HTTP status and JSON error body), so that the transport judges refusals, fails
over and demotes members by one set of rules (:func:`etcdwamp.failover.refusal`) on
both transports. That path is rare; its cost does not matter.

All calls to one endpoint share one HTTP/2 connection (one TCP connection, however
many calls and watches are in flight), opened on first use and again after it is
lost or drained. A streamed answer (watch, election observation, snapshot) is handed
to the caller's protocol as the gateway's would be: the watch gets the protobuf
messages themselves (:class:`WatchMessages` decodes them), the other streams get each
message as the gateway's JSON frame, for their existing decoders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from .. import errors
from .._deferred import Dual
from ..transport import WireCodec
from ..wire import Request
from ..wire.watch import WatchDecoder, WatchResponse
from . import codec
from .connection import GrpcConnection, GrpcStream, UnaryCall
from .gateway_frames import HTTP_BY_CODE, JsonFrame, encode_json, error_frame
from .h2 import StreamLimitReached
from .keepalive import KEEPALIVE_METHOD, KeepAliveStream
from .watchmux import WatchMux, WatchView

__all__ = ["PROTOBUF_CODEC", "GrpcHTTP", "JsonFrame", "ProtobufCodec", "WatchMessages"]

T = TypeVar("T")

#: etcd's metadata keys: the auth token, and "refuse if you have no leader"
_TOKEN = b"token"
_HAS_LEADER = (b"hasleader", b"true")

class WatchMessages:
    """The watch stream's decoder on gRPC: each chunk is one WatchResponse message
    (or a :class:`JsonFrame` error), decoded by :func:`.codec.decode_watch` into what
    :class:`~etcdwamp.wire.watch.WatchDecoder` gives for the gateway's frames."""

    def __init__(self) -> None:
        # For the rare error frame only: made when one comes.
        self._json: WatchDecoder | None = None

    def feed(self, chunk: bytes) -> list[WatchResponse | errors.EtcdError]:
        """The frame of one message."""
        response = getattr(chunk, "response", None)
        if response is not None:  # decoded by the shared stream already (.watchmux)
            return [response]
        if isinstance(chunk, JsonFrame):
            if self._json is None:
                self._json = WatchDecoder()
            return self._json.feed(chunk)
        try:
            return [codec.decode_watch(chunk)]
        except errors.EtcdError as exc:
            return [exc]

    def close(self) -> list[WatchResponse | errors.EtcdError]:
        """Nothing is left over between messages."""
        return []


class ProtobufCodec:
    """The :class:`~etcdwamp.transport.WireCodec` of gRPC: :func:`.codec.encode`
    and :func:`.codec.decode` (an error answer never reaches it: :class:`GrpcHTTP`
    turns those into the gateway's)."""

    encode = staticmethod(codec.encode)

    @staticmethod
    def decode(request: Request[T], endpoint: str, content: bytes) -> T:
        """``request``'s result from its answer message (``endpoint``: unused)."""
        return codec.decode(request, content)


#: the encoding of every :class:`GrpcHTTP`
PROTOBUF_CODEC = ProtobufCodec()


class _StreamedResponse:
    """A streamed gRPC answer, delivered as Twisted's ``IResponse`` delivers a body."""

    code = 200

    def __init__(self, stream_of: Callable[[Callable[[bytes], None]], GrpcStream],
                 to_json: bool, path: str) -> None:
        self._stream_of = stream_of
        self._to_json = to_json
        self._path = path

    def deliverBody(self, protocol: Any) -> None:
        """Feed ``protocol`` each message, then ``connectionLost``."""
        response_class = codec.method(self._path).response_class

        def on_message(message: bytes) -> None:
            if self._to_json:
                parsed = response_class.FromString(message)
                message = encode_json({"result": codec.message_json(parsed)}).encode() + b"\n"
            protocol.dataReceived(message)

        stream = self._stream_of(on_message)
        protocol.makeConnection(_Stopper(stream))

        def ended(result: Any) -> None:
            if isinstance(result, Failure):
                exc = result.value
                if isinstance(exc, errors.ServerError):
                    # As the gateway sends it: an error frame, then the end.
                    protocol.dataReceived(error_frame(exc))
                    protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]
                    return
                protocol.connectionLost(result)
                return
            protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]

        stream.finished.addBoth(ended)


class _Stopper:
    """The ``transport`` a stream's protocol gets: ``stopProducing`` resets the stream."""

    def __init__(self, stream: GrpcStream) -> None:
        self._stream = stream

    def stopProducing(self) -> None:
        self._stream.cancel()


class GrpcHTTP:
    """The :class:`~etcdwamp.transport.HTTP` of the gRPC transport (see the module docstring).

    :param connect: opens a connection to an endpoint (Twisted's or asyncio's, see
        :mod:`.sockets`); fails with ConnectFailed
    :param prefix: the path prefix the transport puts before each path (no detection
        happens on gRPC: the transport is given it)
    """

    #: send etcd's require-leader metadata with every call (the transport sets it)
    require_leader = True
    #: the transport encodes requests and decodes answers in protobuf for this HTTP
    codec: WireCodec = PROTOBUF_CODEC

    def __init__(self, connect: Callable[[str], Deferred[GrpcConnection]], *,
                 prefix: str = "/v3", clock: Any = None, check_timeout: float = 1.0) -> None:
        self._connect = connect
        self._prefix = prefix
        self._clock = clock
        self._check_timeout = check_timeout
        self._connections: dict[str, GrpcConnection] = {}
        #: connections replaced while calls were still on them: closed once idle
        self._retired: set[GrpcConnection] = set()
        self._connecting: dict[str, Deferred[GrpcConnection]] = {}
        self._waiters: dict[str, list[Deferred[GrpcConnection]]] = {}
        #: the shared Watch stream of each connection and auth token (see .watchmux)
        self._muxes: dict[tuple[str, str | None], WatchMux] = {}
        #: the shared LeaseKeepAlive stream of each connection (see .keepalive)
        self._keepalives: dict[int, KeepAliveStream] = {}
        #: worked out once (see _method, _metadata): the method of a gateway path, the
        #: metadata of a token
        self._methods: dict[str, bytes] = {}
        self._metadata_by_token: dict[tuple[str | None, bool],
                                      tuple[tuple[bytes, bytes], ...]] = {}

    # -- connections -------------------------------------------------------------------

    def connection(self, endpoint: str) -> Deferred[GrpcConnection]:
        """The open connection to ``endpoint``, or the one being opened, or a new one.

        Fails with ConnectFailed when the connection cannot be made (also when
        :meth:`close` abandons the attempt); cancelling it stops waiting (the attempt
        goes on for the other callers, and is abandoned when none is left)."""
        conn = self._connections.get(endpoint)
        if conn is not None and conn.usable:
            done: Dual[GrpcConnection] = Dual()
            done.callback(conn)
            return done
        waiters = self._waiters.setdefault(endpoint, [])

        # Each caller waits on its own Deferred: one caller cancelling must not cancel
        # the connection the others wait for; the last one to give up does.
        def give_up(d: Deferred[GrpcConnection]) -> None:
            if d in waiters:
                waiters.remove(d)
            attempt = self._connecting.get(endpoint)
            if not waiters and attempt is not None and not attempt.called:
                attempt.cancel()

        mine: Dual[GrpcConnection] = Dual(give_up)
        waiters.append(mine)  # before the attempt starts: it may settle at once
        if endpoint not in self._connecting:
            pending = self._connecting[endpoint] = self._connect(endpoint)
            pending.addBoth(lambda result: self._settle(endpoint, result))
        return mine

    def _settle(self, endpoint: str, result: Any) -> None:
        """A connection attempt ended: its outcome goes to every caller still waiting,
        and the attempt's own Deferred ends here (no failure left unhandled in it)."""
        self._connecting.pop(endpoint, None)
        if isinstance(result, Failure):
            if isinstance(result.value, CancelledError):
                # Abandoned (the last caller gave up, or close()): whoever still
                # waits was not sent anything.
                result = Failure(errors.ConnectFailed(  # type: ignore[no-untyped-call]
                    f"cannot connect to {endpoint}: the attempt was abandoned",
                    endpoint=endpoint))
        else:
            old = self._connections.get(endpoint)
            if old is not None and old is not result:
                self._retire(old)
            self._connections[endpoint] = result
            result.closed.addCallback(lambda _: self._closed(endpoint, result))
        waiting = self._waiters.pop(endpoint, [])
        for waiter in waiting:
            if waiter.called:
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _retire(self, conn: GrpcConnection) -> None:
        """``conn`` takes no new calls: closed now if idle, else when its last call ends."""
        keepalive = self._keepalives.pop(id(conn), None)
        if keepalive is not None and keepalive.connection is conn:
            keepalive.close()  # ends once etcd answered what was sent
        if conn.in_flight == 0:
            conn.close()
        else:
            self._retired.add(conn)

    def _closed(self, endpoint: str, conn: GrpcConnection) -> None:
        self._retired.discard(conn)
        keepalive = self._keepalives.get(id(conn))
        if keepalive is not None and keepalive.connection is conn:
            # A stream that never opened (it waited for a free stream when the
            # connection went) would otherwise hold the dead connection for good.
            del self._keepalives[id(conn)]
        if self._connections.get(endpoint) is conn:
            del self._connections[endpoint]

    def _call_ended(self, conn: GrpcConnection) -> None:
        if conn in self._retired and conn.in_flight == 0:
            self._retired.discard(conn)
            conn.close()

    def _keepalive(self, conn: GrpcConnection,
                   metadata: tuple[tuple[bytes, bytes], ...]) -> KeepAliveStream:
        """The LeaseKeepAlive stream of ``conn`` for ``metadata``: the one open, else a
        new one (a stream opened with other metadata, an older token, is closed)."""
        keepalive = self._keepalives.get(id(conn))
        if keepalive is not None and not keepalive.ended and keepalive.connection is conn:
            if keepalive.metadata == metadata:
                return keepalive
            keepalive.close()
        keepalive = KeepAliveStream(conn, metadata, self._keepalive_ended)
        self._keepalives[id(conn)] = keepalive
        return keepalive

    def _keepalive_ended(self, keepalive: KeepAliveStream) -> None:
        conn = keepalive.connection
        if self._keepalives.get(id(conn)) is keepalive:
            del self._keepalives[id(conn)]
        self._call_ended(conn)

    def _timed_out(self, conn: GrpcConnection) -> None:
        """A call on ``conn`` got no answer in time: check the member still answers
        at all (else the connection is dropped, and the next call opens a new one)."""
        if self._clock is not None:
            conn.check_alive(self._clock, self._check_timeout)

    def _metadata(self, token: str | None) -> tuple[tuple[bytes, bytes], ...]:
        """The metadata of a call with ``token``, worked out once per token: every call
        needs it."""
        key = (token, self.require_leader)
        metadata = self._metadata_by_token.get(key)
        if metadata is None:
            built = []
            if token is not None:
                built.append((_TOKEN, token.encode("ascii")))
            if self.require_leader:
                built.append(_HAS_LEADER)
            metadata = tuple(built)
            if len(self._metadata_by_token) < 16:  # a client holds a token or two at once
                self._metadata_by_token[key] = metadata
        return metadata

    def _method(self, path: str) -> bytes:
        """The gRPC method of a gateway ``path``, worked out once per path."""
        method = self._methods.get(path)
        if method is None:
            bare = path[len(self._prefix):] if path.startswith(self._prefix) else path
            method = self._methods[path] = codec.method(bare).name.encode("ascii")
        return method

    # -- the HTTP seam ----------------------------------------------------------------------

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        """One unary call: ``(200, answer message)``, or the gateway's error answer.

        Cancelling it (the caller, or the transport's timeout) before the call was
        sent fails it with ConnectFailed (nothing reached etcd); after, it resets the
        call's stream and checks that the member still answers (see
        :meth:`GrpcConnection.check_alive`)."""
        exchange = _UnaryExchange(self, endpoint, self._method(path), body,
                                  self._metadata(token))
        conn = self._connections.get(endpoint)
        if conn is not None and conn.usable:
            exchange.send(conn)  # the common case: no Deferred for the connection
        else:
            connecting = self.connection(endpoint)
            exchange.step = connecting
            connecting.addCallbacks(exchange.send, exchange.not_connected)
        return exchange

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        """A streaming call: fires with a response whose ``deliverBody`` gets the
        messages once the call is open (the body: the gateway's concatenated JSON
        requests, sent as the stream's first messages)."""
        if not stream:
            return self.exchange(endpoint, path, body, token).addCallback(_Answered)
        return self.post_messages(endpoint, path, _json_objects(body), token)

    def post_messages(self, endpoint: str, path: str, messages: Sequence[Mapping[str, Any]],
                      token: str | None) -> Deferred[Any]:
        """:meth:`post` of a stream with its first requests as data (JSON objects):
        see :class:`~etcdwamp.transport.MessagesHTTP`."""
        method_path = path[len(self._prefix):] if path.startswith(self._prefix) else path
        if method_path == "/watch":
            return self._watch(endpoint, messages, token)
        m = codec.method(method_path)
        name = m.name.encode("ascii")
        metadata = self._metadata(token)
        encoded = [_encode_request(m.request_class, obj) for obj in messages]
        connecting = self.connection(endpoint)

        def opened(conn: GrpcConnection) -> _StreamedResponse:
            def stream_of(on_message: Callable[[bytes], None]) -> GrpcStream:
                grpc_stream = conn.stream(name, on_message, metadata,
                                          first=encoded[0] if encoded else None)
                for extra in encoded[1:]:
                    grpc_stream.send(extra)
                if not m.client_streaming:
                    grpc_stream.close_send()
                return grpc_stream
            return _StreamedResponse(stream_of, to_json=True, path=method_path)

        return connecting.addCallback(opened)

    def stream_at_once(self, endpoint: str, path: str, messages: Sequence[Mapping[str, Any]],
                       token: str | None) -> WatchView | None:
        """A watch's stream at once (see :class:`~etcdwamp.transport.MessagesHTTP`); None
        for the other streams."""
        method_path = path[len(self._prefix):] if path.startswith(self._prefix) else path
        if method_path != "/watch":
            return None
        return self._watch_view(endpoint, messages, token)

    def _watch(self, endpoint: str, creates: Sequence[Mapping[str, Any]],
               token: str | None) -> Deferred[Any]:
        """:meth:`_watch_view` as the answer of a post."""
        done: Dual[WatchView] = Dual()
        done.callback(self._watch_view(endpoint, creates, token))
        return done

    def _watch_view(self, endpoint: str, creates: Sequence[Mapping[str, Any]],
                    token: str | None) -> WatchView:
        """A watch's stream: its view of the shared Watch stream to ``endpoint``, at once.

        While the connection is being opened, the views wait on one mux for it, not each
        on a call of its own: a program that starts thousands of watches before the
        first connection pays for one wait."""
        conn = self._connections.get(endpoint)
        usable = conn if conn is not None and conn.usable else None
        key = (endpoint, token)
        mux = self._muxes.get(key)
        if mux is None or mux.ended or (mux.connection is not None
                                        and mux.connection is not usable):
            mux = self._muxes[key] = WatchMux(usable, self._metadata(token), self._forget)
            if usable is None:
                self.connection(endpoint).addCallbacks(mux.connected, mux.connect_failed)
        return WatchView(mux, creates)

    def _forget(self, mux: WatchMux) -> None:
        for key, known in list(self._muxes.items()):
            if known is mux:
                del self._muxes[key]

    def map_error(self, endpoint: str, exc: Exception, *, timed_out: bool) -> Exception:
        """The transport's view of a failed call: ConnectFailed stays (nothing sent)."""
        if isinstance(exc, errors.ConnectFailed):
            return exc
        if timed_out:
            return errors.RequestTimeout(f"no answer from {endpoint} in time", endpoint=endpoint)
        if isinstance(exc, errors.EtcdError):
            return exc
        return errors.ConnectionLost(f"{endpoint}: {exc}", endpoint=endpoint)

    def watch_decoder(self) -> WatchMessages:
        """The decoder of the watch stream's chunks on this transport."""
        return WatchMessages()

    def close(self) -> Deferred[None]:
        """Close every connection (calls on them fail with ConnectionLost) and abandon
        the attempts under way; fires once the sockets are closed. The client may be
        used again afterwards: new calls open new connections.

        Each connection says goodbye (a GOAWAY, sent before its socket closes); one
        whose socket has not closed ``check_timeout`` seconds later (a member that
        stopped reading) is dropped."""
        for pending in list(self._connecting.values()):
            pending.cancel()
        conns = [*self._connections.values(), *self._retired]
        self._connections.clear()
        self._retired.clear()
        self._muxes.clear()
        self._keepalives.clear()
        for conn in conns:
            conn.close()
        done: Dual[None] = Dual()
        gathered = DeferredList([conn.closed for conn in conns])
        if self._clock is not None and not gathered.called:
            def drop() -> None:
                for conn in conns:
                    conn.close(abort=True)

            timer = self._clock.callLater(self._check_timeout, drop)
            gathered.addCallback(lambda _: timer.cancel() if timer.active() else None)
        gathered.addCallback(lambda _: done.callback(None))
        return done


class _UnaryExchange(UnaryCall, Dual[tuple[int, bytes]]):
    """One :meth:`GrpcHTTP.exchange`: its outcome (the Deferred it returns) and its
    unary call (:meth:`GrpcConnection.call` tells it the answer) in one object.

    Not an outcome, a call, a closure per step and callbacks on the call's Deferred:
    it runs for every call, and a busy client has many in flight, each object of which
    the cyclic garbage collector walks."""

    __slots__ = ("body", "endpoint", "http", "metadata", "method", "sent", "step")

    def __init__(self, http: GrpcHTTP, endpoint: str, method: bytes, body: bytes,
                 metadata: tuple[tuple[bytes, bytes], ...]) -> None:
        super().__init__()
        self.http = http
        self.endpoint = endpoint
        self.method = method
        self.body = body
        self.metadata = metadata
        #: what it waits on other than its call: connecting, a free stream, a renewal
        self.step: Deferred[Any] | None = None
        self.sent: GrpcConnection | None = None  # the connection the request went on

    def cancel(self) -> None:
        """Before the call was sent: fail with ConnectFailed (nothing reached etcd);
        after: reset its stream and check that the member still answers."""
        if not self.called:
            current, self.step = self.step, None
            conn = self.sent
            if conn is None:
                self.errback(errors.ConnectFailed(
                    f"cannot connect to {self.endpoint} in time", endpoint=self.endpoint))
            else:
                self.http._timed_out(conn)
                if self.stream_id:  # its own call, not a renewal on the shared stream
                    conn.cancel(self)
                    self.http._call_ended(conn)
            if current is not None:
                current.cancel()
        super().cancel()

    def send(self, conn: GrpcConnection) -> None:
        if self.called:
            return
        self.step = None
        try:
            if self.method == KEEPALIVE_METHOD:
                # Every renewal on the connection's one LeaseKeepAlive stream.
                renewal = self.http._keepalive(conn, self.metadata).renew(self.body)
                self.step = renewal
                renewal.addBoth(self._renewed, conn)
            else:
                conn.call(self, self.method, self.body, self.metadata)
        except StreamLimitReached:
            # etcd's MAX_CONCURRENT_STREAMS: wait for one of its streams to end.
            waiting = conn.wait_for_stream()
            self.step = waiting
            waiting.addCallbacks(lambda _: self.send(conn), lambda _: None)
            return
        except errors.EtcdError as exc:
            self.errback(exc)
            return
        self.sent = conn

    def call_ended(self, outcome: bytes | BaseException) -> None:
        """The call's answer or failure (see :class:`~.connection.UnaryCall`)."""
        if self.sent is not None:
            self.http._call_ended(self.sent)
        self._settle(outcome)

    def _renewed(self, result: bytes | Failure, conn: GrpcConnection) -> None:
        self.http._call_ended(conn)
        if isinstance(result, Failure):
            self._settle(cast(BaseException, result.value))
        else:
            self._settle(result)

    def _settle(self, outcome: bytes | BaseException) -> None:
        if self.called:
            return
        if not isinstance(outcome, BaseException):
            self.callback((200, outcome))
        elif isinstance(outcome, errors.ServerError):
            error = {"code": outcome.code, "message": outcome.message, "error": outcome.message}
            self.callback((HTTP_BY_CODE.get(outcome.code, 500), encode_json(error).encode()))
        elif not isinstance(outcome, CancelledError):
            self.errback(outcome)

    def not_connected(self, failure: Failure) -> None:
        if not self.called and not isinstance(failure.value, CancelledError):
            self.errback(failure)


class _Answered:
    """A whole answer as an ``IResponse`` (``post`` without ``stream``: rarely used)."""

    def __init__(self, exchanged: tuple[int, bytes]) -> None:
        self.code, self._body = exchanged

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(None)
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]


def _json_objects(body: bytes) -> list[Any]:
    """The JSON values of a body of concatenated JSON requests (the watch's create body)."""
    decoder = json.JSONDecoder()
    text = body.decode("utf-8")
    out, position = [], 0
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        value, position = decoder.raw_decode(text, position)
        out.append(value)
    return out


def _encode_request(request_class: Any, obj: Any) -> bytes:
    from google.protobuf import json_format

    message = request_class()
    json_format.ParseDict(obj, message)
    data: bytes = message.SerializeToString()
    return data
