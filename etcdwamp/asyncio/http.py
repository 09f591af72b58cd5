"""The asyncio HTTP layer: aiohttp behind the shared transport.

It implements :class:`etcdwamp.transport.HTTP`. Each exchange runs as an
asyncio task and is handed to the shared code as a Deferred: cancelling
that Deferred (the caller cancelled, or the transport's timeout ran out)
fails it with Twisted's ``CancelledError`` at once and cancels the task,
which makes aiohttp drop the connection. A streamed answer (watches,
election observation, snapshots) is delivered the way Twisted delivers one,
to a protocol's ``dataReceived``/``connectionLost``, so the stream consumers
exist once.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from typing import Any

import aiohttp
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from .. import errors
from ..transport import NO_TLS_HINT, REQUIRE_LEADER_HEADER, GatewayHTTP
from .clock import LoopClock

__all__ = ["AiohttpHTTP", "ConnectingCancelled", "StreamedResponse", "ssl_context"]

# Failures that prove the request never left this process: the connection
# (TCP, TLS handshake) could not be made, or not in time.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Failures once a connection carried the request: the answer is unknown.
_LOST = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
         aiohttp.ServerTimeoutError, aiohttp.ClientResponseError, ConnectionError)


class ConnectingCancelled(CancelledError):
    """The exchange was cancelled before it had a connection: not sent (the
    transport's timeout makes this ConnectFailed, as Twisted's
    ``ConnectingCancelledError``)."""


class _Exchange:
    """What one exchange's task knows about itself: whether it got a connection."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


# The exchange the running task performs (each task runs in its own context).
_current: contextvars.ContextVar[_Exchange] = contextvars.ContextVar("etcdwamp_exchange")


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector with Twisted's pool semantics: as many connections
    at once as requests ask for, of which at most ``keep`` per endpoint stay
    open when idle. The bound on calls in flight is the transport's (its
    :class:`~etcdwamp.budget.ConnectionBudget`, the same on both loops), not
    aiohttp's ``limit``: that one would count watches, observed elections and
    waiting locks too, which hold a connection for as long as they last, so a
    few of them would starve every call, and its queue has no bound. It also
    tells the exchange when it got its connection, new or pooled: from then
    on the request may be on its way."""

    def __init__(self, *, keep: int, **kwargs: Any) -> None:
        super().__init__(limit=0, limit_per_host=0, **kwargs)
        self._keep = keep

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        # aiohttp has no public cap on idle connections; past ``keep`` this
        # one is closed instead of joining them. (Should aiohttp stop calling
        # _release, idle connections simply expire after keepalive_timeout.)
        idle = getattr(self, "_conns", {}).get(key, ())
        super()._release(key, protocol,
                         should_close=should_close or len(idle) >= self._keep)

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        connection = await super().connect(req, traces, timeout)
        exchange = _current.get(None)
        if exchange is not None:
            exchange.connected = True
        return connection


def _hung_up_on_handshake(exc: Exception) -> bool:
    """Whether connecting failed because the server closed the connection in the
    TLS handshake without a TLS alert (not an OpenSSL or certificate error):
    asyncio's TLS layer reports that as ConnectionResetError."""
    return (isinstance(exc, aiohttp.ClientConnectorError)
            and not isinstance(exc, aiohttp.ClientSSLError)
            and isinstance(exc.os_error, ConnectionResetError))


def ssl_context(ca_file: str | None, cert_file: str | None,
                key_file: str | None) -> ssl.SSLContext:
    """Verify servers against ``ca_file`` (default: the system's CAs) and present
    ``cert_file``/``key_file`` to an etcd with ``--client-cert-auth``."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


class StreamedResponse:
    """An aiohttp response whose body goes to a Twisted-style protocol."""

    def __init__(self, response: aiohttp.ClientResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.code = response.status
        self._response = response
        self._loop = loop
        self._pump: asyncio.Task[None] | None = None

    def deliverBody(self, protocol: Any) -> None:
        """Feed the body to ``protocol`` as it arrives; ``connectionLost`` at the end
        (``ResponseDone`` when it ended cleanly)."""
        protocol.makeConnection(self)
        self._pump = self._loop.create_task(self._feed(protocol))

    async def _feed(self, protocol: Any) -> None:
        reason = Failure(ResponseDone())  # type: ignore[no-untyped-call]
        try:
            async for chunk in self._response.content.iter_any():
                protocol.dataReceived(chunk)
        except asyncio.CancelledError:
            reason = Failure(ierror.ConnectionAborted())  # type: ignore[no-untyped-call]
        except Exception as exc:
            reason = Failure(ierror.ConnectionLost(str(exc)))  # type: ignore[no-untyped-call]
        finally:
            self._response.close()
        protocol.connectionLost(reason)

    def stopProducing(self) -> None:
        """Drop the connection; the protocol's ``connectionLost`` follows."""
        if self._pump is not None:
            self._pump.cancel()
        else:
            self._response.close()


class AiohttpHTTP(GatewayHTTP):
    """:class:`~etcdwamp.transport.HTTP` over one ``aiohttp.ClientSession``
    (made on first use, inside the running loop); the gateway's JSON, as on
    Twisted (:class:`~etcdwamp.transport.GatewayHTTP`)."""

    def __init__(self, clock: LoopClock, *, connect_timeout: float, pool_size: int,
                 tls: ssl.SSLContext | None = None) -> None:
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str | None, dict[str, str]] = {}

    def _client(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = _Connector(
                keep=self._pool_size, ssl=self._tls if self._tls is not None else True)
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                # The transport times each call; only connecting has its own limit.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"))
        return session

    def _header_set(self, token: str | None) -> dict[str, str]:
        headers = self._headers.get(token)
        if headers is None:
            if len(self._headers) > 16:
                self._headers.clear()  # old tokens: nothing will send them again
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = token
            if self.require_leader:
                headers[REQUIRE_LEADER_HEADER[0].decode()] = REQUIRE_LEADER_HEADER[1].decode()
            self._headers[token] = headers
        return headers

    def _run(self, coro: Any, exchange: _Exchange | None = None) -> Deferred[Any]:
        """Run ``coro`` as a task, seen as a Deferred. Cancelling the Deferred
        fails it with Twisted's CancelledError at once (the transport tells a
        cancellation from a failure by that type; ``Deferred.fromFuture`` would
        wait for the task to unwind and then fail with asyncio's, an exception
        ``except Exception`` does not catch) and cancels the task, which makes
        aiohttp drop the connection. ``exchange``: the request's state, bound
        in the task's context; without a connection yet the cancellation is
        :class:`ConnectingCancelled`."""
        context = contextvars.copy_context()
        if exchange is not None:
            context.run(_current.set, exchange)
        task = self._clock.loop.create_task(coro, context=context)

        def cancel(d: Deferred[Any]) -> None:
            task.cancel()
            if exchange is not None and not exchange.connected:
                d.errback(Failure(ConnectingCancelled()))  # type: ignore[no-untyped-call]

        d: Deferred[Any] = Deferred(cancel)

        def settle(done: asyncio.Task[Any]) -> None:
            if done.cancelled():
                if not d.called:
                    d.errback(Failure(CancelledError()))  # type: ignore[no-untyped-call]
                return
            exc = done.exception()  # retrieved either way, so asyncio never logs it
            if d.called:
                # Cancelled after the task had finished: nobody takes the
                # outcome, so an opened stream must not keep its connection.
                if exc is None and isinstance(done.result(), StreamedResponse):
                    done.result().stopProducing()
                return
            if exc is not None:
                d.errback(Failure(exc, type(exc), exc.__traceback__))  # type: ignore[no-untyped-call]
            else:
                d.callback(done.result())

        task.add_done_callback(settle)
        return d

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        """POST and read the whole answer; cancelling the Deferred drops the connection."""
        return self._run(self._exchange(endpoint + path, body, self._header_set(token)),
                         _Exchange())

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self._client().post(url, data=body, headers=headers) as response:
            return response.status, await response.read()

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        """POST; fires with a :class:`StreamedResponse` once the headers arrived."""
        return self._run(self._open(endpoint + path, body, self._header_set(token)),
                         _Exchange())

    async def _open(self, url: str, body: bytes, headers: dict[str, str]) -> StreamedResponse:
        response = await self._client().post(url, data=body, headers=headers)
        return StreamedResponse(response, self._clock.loop)

    def map_error(self, endpoint: str, exc: Exception, *, timed_out: bool) -> Exception:
        """Map aiohttp's failures onto :mod:`etcdwamp.errors` (see ``HTTP.map_error``)."""
        if endpoint.startswith("https://") and _hung_up_on_handshake(exc):
            # The same error as on Twisted, whose Agent cannot tell this from
            # a connection lost after sending (both loops behave alike).
            return errors.ConnectionLost(
                f"connection to {endpoint} lost before a complete answer{NO_TLS_HINT}: "
                "the server closed the connection during the TLS handshake",
                endpoint=endpoint)
        if isinstance(exc, _NOT_SENT):
            return errors.ConnectFailed(f"cannot connect to {endpoint}: {exc}", endpoint=endpoint)
        if isinstance(exc, ConnectingCancelled) and timed_out:
            # As Twisted's ConnectingCancelledError: the timeout ran out while
            # connecting, so the request provably was not sent.
            return errors.ConnectFailed(f"cannot connect to {endpoint} in time",
                                        endpoint=endpoint)
        if timed_out:
            return errors.RequestTimeout(f"no answer from {endpoint} in time", endpoint=endpoint)
        if isinstance(exc, CancelledError):
            return exc  # a cancellation is never a transport failure
        if isinstance(exc, _LOST):
            return errors.ConnectionLost(
                f"connection to {endpoint} lost before a complete answer: {exc}",
                endpoint=endpoint)
        return exc

    def close(self) -> Deferred[None]:
        """Close the session's pooled connections (a later call opens a new session)."""
        session, self._session = self._session, None
        if session is None or session.closed:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        return self._run(session.close())
