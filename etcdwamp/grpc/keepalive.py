"""Every lease renewal of a client on one gRPC LeaseKeepAlive stream per connection.

etcd's LeaseKeepAlive RPC is one bidirectional stream: each request message renews one
lease, and etcd answers each in the order it came (it handles one, sends its answer,
then reads the next; a lease it does not know gets TTL 0). The Go client keeps one such
stream open for all its leases; so do we, instead of a stream per renewal (the unary
path: a HEADERS, a DATA and a trailer frame each way, every ``ttl / 3`` seconds per
lease). :class:`KeepAliveStream` owns the stream of one connection and auth token; a
renewal is :meth:`KeepAliveStream.renew`, which fires with its answer as a unary call
would, so the transport's failover, deadlines and budgets stay what they are.

- Answers come in request order: the oldest renewal still waiting gets the next one.
  A renewal cancelled meanwhile (its deadline, ``stop_keep_alive``) keeps its place, so
  its late answer is dropped rather than taken for a later renewal's (that would date
  the renewal too late and overestimate the lease's deadline).
- The stream ends with the connection, with an error status etcd sends (e.g. "no
  leader" for a member cut off, which ends require-leader streams), or after
  :meth:`KeepAliveStream.close` once etcd answered what was sent: every renewal still
  waiting fails as a unary call on that connection would, and the next one opens a new
  stream.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from .. import errors
from .._deferred import Dual
from .connection import GrpcConnection, GrpcStream
from .h2 import StreamClosed

__all__ = ["KEEPALIVE_METHOD", "KeepAliveStream"]

KEEPALIVE_METHOD = b"/etcdserverpb.Lease/LeaseKeepAlive"


class KeepAliveStream:
    """The shared LeaseKeepAlive stream of one connection (see the module docstring).

    :param connection: the connection it lives on
    :param metadata: the stream's metadata (auth token, require-leader), sent when it
        opens: a new token needs a new stream
    :param on_end: told when the stream ended (the owner forgets it)
    """

    def __init__(self, connection: GrpcConnection, metadata: tuple[tuple[bytes, bytes], ...],
                 on_end: Callable[[KeepAliveStream], None]) -> None:
        self.connection = connection
        self.metadata = metadata
        self._on_end: Callable[[KeepAliveStream], None] | None = on_end
        self._stream: GrpcStream | None = None
        #: renewals sent and not answered yet, oldest first (cancelled ones too)
        self._waiting: deque[Dual[bytes]] = deque()
        self.ended = False

    @property
    def waiting(self) -> int:
        """Renewals sent and not answered yet (cancelled ones included)."""
        return len(self._waiting)

    def renew(self, message: bytes) -> Dual[bytes]:
        """Send one serialized LeaseKeepAliveRequest; the Deferred fires with etcd's
        serialized answer, or fails as a unary call would (ConnectionLost, or the
        ServerError of the status the stream ended with). Cancelling it only stops
        waiting: the request is on its way already.

        :raises ConnectFailed: the stream ended, or the connection cannot open it
            (nothing sent)
        :raises StreamLimitReached: opening the stream met etcd's stream limit
            (nothing sent)
        """
        if self.ended:
            raise errors.ConnectFailed(
                f"{self.connection.endpoint}: the keep-alive stream has ended",
                endpoint=self.connection.endpoint)
        if self._stream is None:
            # Raises (nothing sent) when the connection cannot take a stream now.
            self._stream = self.connection.stream(KEEPALIVE_METHOD, self._on_message,
                                                  self.metadata, first=message)
            self._stream.finished.addBoth(self._finished)
        else:
            try:
                self._stream.send(message)
            except StreamClosed as exc:
                raise errors.ConnectFailed(f"{self.connection.endpoint}: {exc}",
                                           endpoint=self.connection.endpoint) from None
        waiter: Dual[bytes] = Dual()
        self._waiting.append(waiter)
        return waiter

    def close(self) -> None:
        """Take no more renewals: etcd ends the stream once it answered every one sent
        (at once if none waits)."""
        if self.ended:
            return
        self.ended = True
        if self._stream is None:
            self._told()
        elif not self._waiting:
            self._stream.cancel()  # nothing to wait for: _finished follows
        else:
            with contextlib.suppress(StreamClosed):  # ending already: _finished follows
                self._stream.close_send()

    def _on_message(self, message: bytes) -> None:
        if not self._waiting:
            raise errors.ProtocolError("etcd answered a lease renewal that was not sent")
        waiter = self._waiting.popleft()
        if not waiter.called:  # else cancelled: its answer comes too late for it
            waiter.callback(message)

    def _finished(self, result: Any) -> None:
        self.ended = True
        waiting, self._waiting = self._waiting, deque()
        if waiting and not isinstance(result, Failure):
            result = Failure(errors.ConnectionLost(  # type: ignore[no-untyped-call]
                f"{self.connection.endpoint} ended the keep-alive stream before answering",
                endpoint=self.connection.endpoint))
        for waiter in waiting:
            if not waiter.called:
                waiter.errback(result)
        self._told()

    def _told(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self)
