"""Every watch of a client on one gRPC Watch stream per connection (watch ids).

etcd's Watch RPC is one bidirectional stream that carries any number of watchers: a
create request starts one (with the id the client chose), its events come tagged with
that id, a cancel request ends it. The Go client and aetcd put all their watches on
one such stream; so do we. :class:`WatchMux` owns the stream of one connection and
hands each :class:`~etcdwamp.watch.Watch` a *view* of it that looks like the stream of
its own the gateway gives it (see :class:`WatchView`): the watch sends its create
requests with its own ids 0, 1, ... and reads its frames with those ids; the mux maps
them to ids unique on the stream (from 1: etcd reads 0 as "pick one for me") and back.

A mux may exist before its connection: the watches made while the connection is being
opened attach to it at once, their creates wait, and go out together when it opens (if
it cannot be opened, each of those views ends with the failure). So a program that makes
thousands of watches at start pays for one wait, not one per watch.

A view that is stopped cancels its watchers on the shared stream; the others go on.
When the shared stream ends (the connection is lost, etcd ends it with an error), every
view ends with it, and each watch reconnects as it would after its own stream broke:
the next view goes on a new stream, resuming at each watcher's revision.

etcd 3.4 answers a create it refuses before assigning an id (a stale auth token) with
"created and canceled" for watch id -1; creates are answered in order, so that frame
belongs to the oldest create still unanswered.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from .. import errors
from ..wire.watch import WatchResponse
from . import codec
from .connection import GrpcConnection, GrpcStream
from .gateway_frames import error_frame

__all__ = ["WatchMux", "WatchView"]

WATCH_METHOD = b"/etcdserverpb.Watch/Watch"


class WatchView:
    """One watch's part of the shared stream, as a streamed ``IResponse``: its
    ``deliverBody`` protocol gets one frame per message (decoded already: the
    protocol's decoder is :class:`~etcdwamp.grpc.http.WatchMessages`)."""

    __slots__ = ("_creates", "_mux", "ended", "local", "protocol")

    code = 200

    def __init__(self, mux: WatchMux, creates: Sequence[Mapping[str, Any]]) -> None:
        self._mux = mux
        self._creates: Sequence[Mapping[str, Any]] = creates
        self.protocol: Any = None
        #: stream id -> this watch's own id
        self.local: dict[int, int] = {}
        self.ended = False

    def deliverBody(self, protocol: Any) -> None:
        """Start: send this watch's create requests, deliver its frames to ``protocol``."""
        self.protocol = protocol
        protocol.makeConnection(self)
        creates, self._creates = self._creates, ()  # sent: not kept while the watch lasts
        self._mux.attach(self, creates)

    @property
    def connected(self) -> bool:
        """Whether the connection is open (else the watch's creates wait for it)."""
        return self._mux.connection is not None

    def stopProducing(self) -> None:
        """The watch stops (or moves): cancel its watchers; its protocol is told at once."""
        self._mux.detach(self)
        self.end(None)

    def frame(self, response: WatchResponse) -> None:
        """A frame for one of this view's watchers (its id is the stream's)."""
        if self.ended:
            return
        own = self.local.get(response.watch_id, response.watch_id)
        if own != response.watch_id:
            r = response  # (the constructor: dataclasses.replace costs twice as much)
            response = WatchResponse(r.header, own, r.created, r.canceled, r.compact_revision,
                                     r.cancel_reason, r.fragment, r.events)
        self.protocol.dataReceived(_Decoded(response))

    def error_frame(self, frame: bytes) -> None:
        """A gateway-style error frame for this view (see :class:`.http.JsonFrame`)."""
        if not self.ended:
            self.protocol.dataReceived(frame)

    def end(self, failure: Failure | None) -> None:
        """The view is over: its protocol's ``connectionLost``."""
        if self.ended:
            return
        self.ended = True
        if self.protocol is not None:
            self.protocol.connectionLost(
                failure if failure is not None
                else Failure(ResponseDone()))  # type: ignore[no-untyped-call]


class _Decoded(bytes):
    """A frame already decoded, carried through ``dataReceived`` to WatchMessages."""

    response: WatchResponse

    def __new__(cls, response: WatchResponse) -> _Decoded:
        self = super().__new__(cls, b"")
        self.response = response
        return self


class WatchMux:
    """The shared Watch stream of one connection (see the module docstring).

    :param connection: the connection it lives on, or None while that connection is
        being opened (then :meth:`connected` or :meth:`connect_failed` follows; the
        creates of the watches attached meanwhile wait, and go out together)
    :param metadata: the call's metadata (the auth token of the first watch on it:
        etcd checks it when the stream's watchers are created, see
        :mod:`etcdwamp.watch`)
    :param on_end: told when the stream ended (the owner forgets this mux)
    """

    def __init__(self, connection: GrpcConnection | None, metadata: tuple[tuple[bytes, bytes], ...],
                 on_end: Callable[[WatchMux], None]) -> None:
        self.connection = connection
        self.metadata = metadata
        self._on_end = on_end
        self._stream: GrpcStream | None = None
        self._views: dict[int, WatchView] = {}  # stream watch id -> its view
        self._unanswered: deque[int] = deque()  # creates sent, not yet created/refused
        #: stream watch id -> its create, while the connection is being opened
        self._waiting: dict[int, bytes] = {}
        self._next_id = 1
        self.ended = False

    @property
    def watchers(self) -> int:
        """Watchers on the stream now."""
        return len(self._views)

    def attach(self, view: WatchView, creates: Sequence[Mapping[str, Any]]) -> None:
        """Create ``view``'s watchers on the stream (opened on first use)."""
        messages = []
        for create in creates:
            request = dict(create["create_request"])
            own = int(request.get("watch_id", 0))
            stream_id = self._next_id
            self._next_id += 1
            request["watch_id"] = str(stream_id)
            view.local[stream_id] = own
            self._views[stream_id] = view
            message = codec.encode_watch({"create_request": request})
            if self.connection is None:
                self._waiting[stream_id] = message
            else:
                self._unanswered.append(stream_id)
                messages.append(message)
        if messages:
            try:
                self._send(messages)
            except errors.EtcdError as exc:
                self.detach(view)
                view.end(Failure(exc))  # type: ignore[no-untyped-call]

    def _send(self, messages: list[bytes]) -> None:
        """Send create/cancel requests, opening the stream with the first one."""
        if self._stream is None:
            assert self.connection is not None
            self._stream = self.connection.stream(WATCH_METHOD, self._on_message,
                                                  self.metadata, first=messages[0])
            self._stream.finished.addBoth(self._finished)
            messages = messages[1:]
        for message in messages:
            self._stream.send(message)

    def connected(self, connection: GrpcConnection) -> None:
        """The connection is open: the creates that waited for it go out."""
        if self.ended:
            return  # every watch left meanwhile
        self.connection = connection
        waiting, self._waiting = self._waiting, {}
        self._unanswered.extend(waiting)
        try:
            self._send(list(waiting.values()))
        except errors.EtcdError as exc:
            self.connect_failed(Failure(exc))  # type: ignore[no-untyped-call]

    def connect_failed(self, failure: Failure) -> None:
        """The connection could not be opened: every watch on this mux ends with
        ``failure`` (each then reconnects as after a failed attempt)."""
        if self.ended:
            return
        self.ended = True
        self._on_end(self)
        self._waiting.clear()
        views = {id(v): v for v in self._views.values()}
        self._views.clear()
        for view in views.values():
            view.end(failure)

    def detach(self, view: WatchView) -> None:
        """Cancel ``view``'s watchers (the others stay)."""
        for stream_id in list(view.local):
            if self._views.get(stream_id) is view:
                del self._views[stream_id]
                if self._waiting.pop(stream_id, None) is not None:
                    continue  # never sent
                if self._stream is not None and not self.ended:
                    # If the stream is ending, its end cancels everything anyway.
                    with contextlib.suppress(errors.EtcdError):
                        self._stream.send(codec.encode_watch(
                            {"cancel_request": {"watch_id": str(stream_id)}}))
        view.local.clear()
        if not self._views and not self.ended:
            # The last watch left: end the stream rather than keep an idle one. The
            # next watch opens a fresh one, which etcd checks against its current
            # leader (require-leader is checked when a stream opens) and token.
            self.ended = True
            self._on_end(self)
            if self._stream is not None:
                self._stream.cancel()

    def _on_message(self, message: bytes) -> None:
        response = codec.decode_watch(message)
        stream_id = response.watch_id
        refused = stream_id == -1 and response.created and response.canceled
        if refused and self._unanswered:
            # Refused before an id was assigned: the oldest create's, delivered with
            # its -1 as on a stream of its own (the watch renews its token on it).
            stream_id = self._unanswered[0]
        if response.created or response.canceled:
            with contextlib.suppress(ValueError):
                self._unanswered.remove(stream_id)
        view = self._views.get(stream_id)
        if view is None:
            return  # a watcher cancelled meanwhile: its last frames are dropped
        if response.canceled:
            del self._views[stream_id]
        # Not refused, the frame carries stream_id already; refused, it keeps its -1.
        view.frame(response)

    def _finished(self, result: Any) -> None:
        if isinstance(result, Failure) and isinstance(result.value, CancelledError):
            return None  # ended by detach: nobody is left on it
        self.ended = True
        self._on_end(self)
        views = {id(v): v for v in self._views.values()}
        self._views.clear()
        for view in views.values():
            if isinstance(result, Failure) and isinstance(result.value, errors.ServerError):
                view.error_frame(error_frame(result.value))
                view.end(None)
            else:
                view.end(result if isinstance(result, Failure) else None)
        return None
