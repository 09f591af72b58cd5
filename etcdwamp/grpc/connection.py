"""One HTTP/2 connection to one etcd member, carrying gRPC calls and streams as Deferreds.

The protocol (:mod:`.h2`, :mod:`.framing`) is pure; this is the state that ties it to
callers: which Deferred waits for which stream, which callback gets a stream's
messages, and what becomes of them when a stream or the connection ends. It is still
loop-neutral: it writes to a :class:`Pipe` and is fed by whoever owns the socket (a
Twisted protocol or an asyncio one, see :mod:`.sockets`), so both loops share it.

Outcomes, as the rest of the client expects them (see :mod:`etcdwamp.errors`):

- a call answered with a gRPC status other than OK fails with the exception the
  gateway transport raises for the same etcd error (:func:`.framing.status_error`);
- a call whose stream the peer refused before processing it (above a GOAWAY's last
  stream id, or ``REFUSED_STREAM``) fails with :class:`~etcdwamp.errors.ConnectFailed`:
  nothing was done, so any request may be sent again;
- a call in flight when the connection is lost, or reset by the peer otherwise, fails
  with :class:`~etcdwamp.errors.ConnectionLost`: etcd may have applied it;
- cancelling a call's Deferred resets its stream (RST_STREAM CANCEL) at once and fails
  it with ``CancelledError``; etcd stops the work, if it had not finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from .. import errors
from .._deferred import Dual
from .framing import MessageDecoder, frame, grpc_status, status_error, whole_message
from .h2 import (
    Data,
    ErrorCode,
    GoAway,
    H2Connection,
    H2ProtocolError,
    H2Stream,
    Reset,
    Response,
    StreamClosed,
    Trailers,
)
from .tls_hints import answer_hint

__all__ = ["GrpcConnection", "GrpcStream", "Pipe", "UnaryCall"]

#: the largest message etcd sends by default (its --max-recv-bytes is about requests;
#: answers are bounded by gRPC's send limit, math.MaxInt32 in etcd): a range answer
#: can be large, so the default here is generous and the caller may lower it
DEFAULT_MAX_MESSAGE = 512 * 1024 * 1024


class Pipe(Protocol):
    """The byte stream under a connection: a socket's write side."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (buffered by the loop: never blocks)."""

    def close(self) -> None:
        """Close the connection once what was written is sent (its
        ``connection_lost`` follows)."""

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes too (its ``connection_lost``
        follows)."""


class UnaryCall(H2Stream):
    """A unary call in flight: its answer so far, and :meth:`call_ended`, told how it
    ended. Whoever waits for the answer subclasses it (see :meth:`GrpcConnection.call`):
    one object per call in flight, no Deferred, no callback closure. A busy client has
    many calls in flight, and every object they keep alive is work for the cyclic
    garbage collector.
    """

    __slots__ = ("answered", "decoder", "messages", "reply")

    def __init__(self) -> None:
        super().__init__()  # (cooperative: a subclass may be a Deferred too)
        self.answered = False  # response headers came: the peer processed the stream
        self.messages = 0  # messages of the answer so far (one is right)
        self.reply = b""  # the first of them
        #: made only for an answer that is not one whole message per DATA frame
        self.decoder: MessageDecoder | None = None

    def call_ended(self, outcome: bytes | BaseException) -> None:
        """The call's answer (its one serialized message), or the exception it failed
        with; told once, and never after :meth:`GrpcConnection.cancel`."""
        raise NotImplementedError


class _Call(H2Stream):
    """A stream's receiving side: its messages, and how it ends."""

    __slots__ = ("answered", "decoder", "done", "on_message")

    def __init__(self, max_message: int, on_message: Callable[[bytes], None],
                 cancel: Callable[[_Call], None]) -> None:
        super().__init__()
        self.decoder = MessageDecoder(max_message)
        self.on_message = on_message
        #: the stream's outcome; cancelling it resets the stream (``cancel(self)``)
        self.done: Dual[Any] = Dual(lambda _: cancel(self))
        self.answered = False  # response headers came: the peer processed the stream


class _Answer(UnaryCall, Dual[bytes]):
    """:meth:`GrpcConnection.unary`'s Deferred, and its call: cancelling it resets the
    call's stream."""

    __slots__ = ("_connection",)

    def __init__(self, connection: GrpcConnection) -> None:
        super().__init__()
        self._connection = connection

    def call_ended(self, outcome: bytes | BaseException) -> None:
        if isinstance(outcome, BaseException):
            self.errback(outcome)
        else:
            self.callback(outcome)

    def cancel(self) -> None:
        if not self.called:
            self._connection.cancel(self)
        super().cancel()


class GrpcStream:
    """A streaming call (etcd's Watch, LeaseKeepAlive): send messages with :meth:`send`,
    receive them through the ``on_message`` given to :meth:`GrpcConnection.stream`.

    :attr:`finished` fires with None when etcd ends the stream with status OK, and fails
    like a unary call otherwise; cancelling it (or :meth:`cancel`) resets the stream.
    """

    def __init__(self, connection: GrpcConnection, call: _Call) -> None:
        self._connection = connection
        self._call = call

    @property
    def stream_id(self) -> int:
        """The HTTP/2 stream id (for logs)."""
        return self._call.stream_id

    @property
    def finished(self) -> Dual[None]:
        """Fires when the stream ends (see the class docstring)."""
        done: Dual[None] = self._call.done
        return done

    def send(self, message: bytes, *, end: bool = False) -> None:
        """Send one message (serialized protobuf); ``end`` closes our side after it.

        :raises ~etcdwamp.grpc.h2.StreamClosed: the stream ended (or our side was closed)
        """
        self._connection._send(self._call, frame(message), end)

    def close_send(self) -> None:
        """Close our side: etcd ends the stream once it answered what was sent."""
        self._connection._send(self._call, b"", True)

    def cancel(self) -> None:
        """Reset the stream; :attr:`finished` fails with ``CancelledError``."""
        self._call.done.cancel()


class GrpcConnection:
    """gRPC calls over one HTTP/2 connection (see the module docstring).

    Feed it with :meth:`connection_made`, :meth:`data_received` and
    :meth:`connection_lost`. Until the connection is made, :meth:`unary` and
    :meth:`stream` raise :class:`~etcdwamp.errors.ConnectFailed`; once it is lost or
    draining (:attr:`usable` False), too: the owner opens a new one.

    :param authority: ``host:port`` of the member, the ``:authority`` of every call
    :param scheme: ``"http"`` (h2c) or ``"https"`` (TLS, ALPN ``h2``)
    :param endpoint: the endpoint as the client names it (in error messages)
    """

    def __init__(self, authority: str, *, scheme: str = "http", endpoint: str = "",
                 max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.h2 = H2Connection(authority, scheme=scheme)
        self.scheme = scheme
        self.endpoint = endpoint
        self.max_message = max_message
        self._pipe: Pipe | None = None
        self._calls: dict[int, _Call | UnaryCall] = {}
        self._lost: errors.EtcdError | None = None
        self._goaway = False
        self._stream_waiters: deque[Dual[None]] = deque()
        self._received = 0  # reads so far (a liveness check compares it)
        self._made = False
        #: the socket of a connection we closed, until it is gone (see close)
        self._draining: Pipe | None = None
        #: the start of the first read: what a server that is not etcd's HTTP/2 said
        self._first: bytes | None = None
        self._checking = False
        #: fires (None) when the connection ends, for whoever owns it
        self.closed: Deferred[None] = Deferred()
        #: fires once the peer spoke HTTP/2 (its SETTINGS arrived); fails with
        #: ConnectFailed if the connection ends first (a TLS handshake refused, a
        #: server that is not etcd): until then nothing was sent that it processed
        self.ready: Dual[None] = Dual()

    # -- state --------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Whether new calls may go on this connection now."""
        return (self._pipe is not None and self._lost is None and not self._goaway
                and self.h2.can_open())

    @property
    def made(self) -> bool:
        """Whether the socket was connected (TLS agreed, on asyncio) at some point."""
        return self._made

    @property
    def in_flight(self) -> int:
        """Calls and streams open on it."""
        return len(self._calls)

    # -- socket side ----------------------------------------------------------------

    def connection_made(self, pipe: Pipe) -> None:
        """The socket is connected (and TLS agreed on ``h2``): send the preface."""
        self._pipe = pipe
        self._made = True
        pipe.write(self.h2.initiate())

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket."""
        if self._lost is not None:
            return
        self._received += 1
        if self._received == 1:
            self._first = data[:256]
        try:
            events, out = self.h2.receive(data)
        except H2ProtocolError as exc:
            hint = "" if self.ready.called else answer_hint(self.scheme, self._first)
            self._abandon(errors.ConnectionLost(
                f"{self.endpoint} broke HTTP/2{hint}: {exc}", endpoint=self.endpoint),
                goodbye=self.h2.close(exc.error_code, str(exc).encode()[:200]))
            return
        if out:
            self._write(out)
        if not self.ready.called and self.h2.settings_received:
            self.ready.callback(None)
        for event in events:
            kind = type(event)
            if kind is Data:
                self._on_data(event.stream_id, event.data)  # type: ignore[union-attr]
            elif kind is Response:
                call = self._calls.get(event.stream_id)  # type: ignore[union-attr]
                if call is not None:
                    call.answered = True
            elif kind is Trailers:
                self._on_trailers(event)  # type: ignore[arg-type]
            elif kind is Reset:
                self._on_reset(event)  # type: ignore[arg-type]
            elif kind is GoAway:
                # Streams above its last id come as Reset(REFUSED_STREAM) events; the
                # ones below run to their end; no new ones go here.
                self._goaway = True

    def connection_lost(self, reason: str = "the connection was closed") -> None:
        """The socket is gone: every call on it fails."""
        if self._lost is None:
            self._lost = errors.ConnectionLost(f"{self.endpoint}: {reason}",
                                               endpoint=self.endpoint)
        self._pipe = None
        self._draining = None
        self._fail_all(self._lost)
        if self._made and not self.ready.called:
            # The peer hung up before its SETTINGS: what it said (or that it said
            # nothing) may tell which side got TLS wrong.
            hint = answer_hint(self.scheme, self._first)
            if hint:
                reason = f"no HTTP/2 answer{hint}: {reason}"
        self._not_ready(reason)
        if not self.closed.called:
            self.closed.callback(None)

    def close(self, *, abort: bool = False) -> None:
        """End the connection now; calls on it fail with ConnectionLost at once.

        It sends a GOAWAY and closes the socket once that is sent (:attr:`closed`
        fires then), so etcd learns the client left rather than seeing the connection
        break. ``abort``: drop the socket at once, without a word: for a peer that
        stopped answering, whose socket may never drain; also for one closed already
        and not gone yet."""
        if self._pipe is not None and self._lost is None:
            self._abandon(errors.ConnectionLost(f"{self.endpoint}: the client closed it",
                                                endpoint=self.endpoint),
                          goodbye=b"" if abort else self.h2.close(), abort=abort)
        elif abort and self._draining is not None:
            draining, self._draining = self._draining, None
            draining.abort()

    # -- calls ---------------------------------------------------------------------

    def unary(self, method: bytes, message: bytes,
              metadata: Sequence[tuple[bytes, bytes]] = ()) -> Dual[bytes]:
        """Call ``method`` (``b"/etcdserverpb.KV/Range"``) with one serialized message;
        the Deferred (awaitable on either loop) fires with the answer's serialized
        message.

        :raises ConnectFailed: the connection cannot take a call now (nothing sent)
        :raises StreamLimitReached: every stream etcd allows is open (nothing sent)
        """
        answer = _Answer(self)
        self.call(answer, method, message, metadata)
        return answer

    def call(self, call: UnaryCall, method: bytes, message: bytes,
             metadata: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """:meth:`unary` without a Deferred: ``call.call_ended`` is told the answer's
        serialized message, or the exception the call failed with, unless the call is
        cancelled first (:meth:`cancel`). ``call`` is new: one call per instance.

        :raises ConnectFailed: the connection cannot take a call now (nothing sent,
            ``call`` is not told)
        :raises StreamLimitReached: every stream etcd allows is open (nothing sent,
            ``call`` is not told)
        """
        self._open(call, method, metadata, frame(message), end_stream=True)

    def stream(self, method: bytes, on_message: Callable[[bytes], None],
               metadata: Sequence[tuple[bytes, bytes]] = (),
               first: bytes | None = None) -> GrpcStream:
        """Open a streaming call; ``first``, if given, is sent with the headers.

        ``on_message`` gets each serialized message of the answer as it arrives; an
        exception it raises ends the stream (reset) and fails :attr:`GrpcStream.finished`
        with it.

        :raises ConnectFailed: the connection cannot take a call now (nothing sent)
        :raises StreamLimitReached: every stream etcd allows is open (nothing sent)
        """
        call = _Call(self.max_message, on_message, self.cancel)
        self._open(call, method, metadata, b"" if first is None else frame(first),
                   end_stream=False)
        return GrpcStream(self, call)

    def _open(self, call: _Call | UnaryCall, method: bytes,
              metadata: Sequence[tuple[bytes, bytes]], body: bytes, *, end_stream: bool) -> None:
        if self._pipe is None or self._lost is not None or self._goaway:
            raise errors.ConnectFailed(f"{self.endpoint}: the connection is not open",
                                       endpoint=self.endpoint)
        # At the peer's stream limit this raises StreamLimitReached: nothing was sent.
        stream_id, out = self.h2.request(method, metadata, body, end_stream=end_stream,
                                         stream=call)
        self._calls[stream_id] = call
        self._write(out)

    def _send(self, call: _Call, data: bytes, end: bool) -> None:
        if call.done.called or self._lost is not None:
            raise StreamClosed(f"stream {call.stream_id} has ended")
        self._write(self.h2.send(call.stream_id, data, end_stream=end))

    def cancel(self, call: _Call | UnaryCall) -> None:
        """Reset ``call``'s stream at once (RST_STREAM CANCEL): etcd stops the work, if
        it had not finished. A unary call is not told; one that ended (or never
        opened) is left as it is."""
        if self._calls.pop(call.stream_id, None) is call:
            if self._lost is None and self._pipe is not None:
                self._write(self.h2.cancel(call.stream_id))
            self._stream_ended()

    # -- a stream ends: who waits for one ---------------------------------------------

    def wait_for_stream(self) -> Dual[None]:
        """Fires once a stream of this connection ended (or the connection did): for a
        call that met etcd's MAX_CONCURRENT_STREAMS. Cancel it to stop waiting."""
        waiter: Dual[None] = Dual(self._stop_waiting)
        self._stream_waiters.append(waiter)
        return waiter

    def _stop_waiting(self, waiter: Deferred[Any]) -> None:
        for known in self._stream_waiters:
            if known is waiter:
                self._stream_waiters.remove(known)
                return

    def _stream_ended(self) -> None:
        if self._stream_waiters:
            waiter = self._stream_waiters.popleft()
            waiter.callback(None)

    # -- liveness ----------------------------------------------------------------------

    def check_alive(self, clock: Any, timeout: float) -> None:
        """Make sure the peer still answers: unless something arrives within
        ``timeout`` seconds (a PING is sent to ask), the connection is abandoned and
        its calls fail with ConnectionLost. For after a call timed out: a member that
        went dark keeps its TCP connection open for many minutes, and every call put
        on it would wait out its whole timeout instead of failing over."""
        if self._checking or self._pipe is None or self._lost is not None:
            return
        self._checking = True
        seen = self._received
        self._write(self.h2.ping(b"etcdwamp"))

        def verdict() -> None:
            self._checking = False
            if self._received == seen and self._lost is None:
                self._abandon(errors.ConnectionLost(
                    f"{self.endpoint} did not answer a PING within {timeout:g} s",
                    endpoint=self.endpoint), goodbye=b"", abort=True)

        clock.callLater(timeout, verdict)

    # -- events ----------------------------------------------------------------------

    def _on_data(self, stream_id: int, data: bytes) -> None:
        call = self._calls.get(stream_id)
        if call is None:
            return
        if isinstance(call, UnaryCall):
            self._on_answer(call, data)
            return
        try:
            messages = call.decoder.feed(data)
        except errors.EtcdError as exc:
            self._end(stream_id, call, exc, reset=True)
            return
        for message in messages:
            if self._calls.get(stream_id) is not call:
                return  # ended meanwhile (the consumer cancelled it): nothing more for it
            try:
                call.on_message(message)
            except Exception as exc:  # the consumer's failure ends its stream, not ours
                self._end(stream_id, call, exc, reset=True)
                return

    def _on_answer(self, call: UnaryCall, data: bytes) -> None:
        """DATA of a unary call: usually one frame that holds the whole answer, read
        without a decoder; else (split, or more than one message) a decoder reads it."""
        decoder = call.decoder
        if decoder is None:
            message = whole_message(data, self.max_message)
            if message is not None:
                call.messages += 1
                if call.messages == 1:
                    call.reply = message
                return
            decoder = call.decoder = MessageDecoder(self.max_message)
        try:
            messages = decoder.feed(data)
        except errors.EtcdError as exc:
            self._end(call.stream_id, call, exc, reset=True)
            return
        if messages:
            if not call.messages:
                call.reply = messages[0]
            call.messages += len(messages)

    def _on_trailers(self, event: Trailers) -> None:
        call = self._calls.get(event.stream_id)
        if call is None:
            return
        try:
            code, message = grpc_status(event.headers)
            if code == 0 and call.decoder is not None:
                call.decoder.end()
        except errors.EtcdError as exc:
            self._end(event.stream_id, call, exc)
            return
        if code != 0:
            self._end(event.stream_id, call, status_error(code, message))
        elif not isinstance(call, UnaryCall):
            self._end(event.stream_id, call, None)
        elif call.messages == 1:
            self._end(event.stream_id, call, None, result=call.reply)
        else:
            self._end(event.stream_id, call, errors.ProtocolError(
                f"a unary gRPC call was answered with {call.messages} messages"))

    def _on_reset(self, event: Reset) -> None:
        call = self._calls.get(event.stream_id)
        if call is None:
            return
        exc: errors.EtcdError
        if event.error_code == ErrorCode.REFUSED_STREAM and not call.answered:
            exc = errors.ConnectFailed(f"{self.endpoint} refused the call before processing it",
                                       endpoint=self.endpoint)
        else:
            exc = errors.ConnectionLost(
                f"{self.endpoint} reset the call (HTTP/2 error {event.error_code})",
                endpoint=self.endpoint)
        self._end(event.stream_id, call, exc)

    def _end(self, stream_id: int, call: _Call | UnaryCall, exc: BaseException | None, *,
             result: Any = None, reset: bool = False) -> None:
        if self._calls.pop(stream_id, None) is None:
            return
        if reset and self._lost is None and self._pipe is not None:
            self._write(self.h2.cancel(stream_id))
        self._stream_ended()
        if isinstance(call, UnaryCall):
            call.call_ended(result if exc is None else exc)
        elif exc is None:
            call.done.callback(result)
        else:
            call.done.errback(exc)

    # -- the connection's end -----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and self._pipe is not None:
            self._pipe.write(data)

    def _abandon(self, exc: errors.EtcdError, goodbye: bytes, *, abort: bool = False) -> None:
        self._lost = exc
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            if abort:
                pipe.abort()
            else:
                # Closed once the GOAWAY is sent: an abort would drop it unsent.
                pipe.write(goodbye)
                self._draining = pipe
                pipe.close()
        self._fail_all(exc)
        self._not_ready(str(exc))

    def _not_ready(self, reason: str) -> None:
        if not self.ready.called:
            self.ready.errback(errors.ConnectFailed(
                f"cannot connect to {self.endpoint}: {reason}", endpoint=self.endpoint))

    def _fail_all(self, exc: errors.EtcdError) -> None:
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if isinstance(call, UnaryCall):
                call.call_ended(exc)
            elif not call.done.called:
                call.done.errback(exc)
        waiters, self._stream_waiters = self._stream_waiters, deque()
        for waiter in waiters:
            waiter.callback(None)  # the caller finds the connection gone, and says so

