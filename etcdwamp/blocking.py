"""A blocking, one-shot etcd client over the standard library: the command line's
``get``, ``put`` and ``del``.

A command that sends one request should start as fast as ``etcdctl``. Importing
Twisted's reactor and HTTP client takes several times the whole budget, so these
commands use a plain socket (:mod:`etcdwamp.blocking_http`; :mod:`ssl` only for
``https://``) on the same
wire layer (:mod:`etcdwamp.wire`) and the same failover rules
(:mod:`etcdwamp.failover`) as :class:`etcdwamp.client.Client`: the same requests,
results, exceptions and messages, endpoint after endpoint within ``timeout``.

What it leaves to the asynchronous client: streams, leases kept alive, endpoint
health remembered between calls, concurrency. Not for use inside a reactor or an
event loop: every call blocks the thread until it is answered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from . import errors
from .blocking_http import Broken, Connection, Expired
from .failover import answer_json, attempt_share, give_up, refusal
from .wire.keyset import KeySet
from .wire.requests import (
    API_PREFIXES,
    DEFAULT_MAX_REQUEST_BYTES,
    Request,
    check_size,
    delete_request,
    put_request,
    range_request,
)
from .wire.results import DeleteResult, PutResult, RangeResult

if TYPE_CHECKING:
    import ssl

__all__ = ["BlockingClient"]

T = TypeVar("T")

_HINT_NO_TLS = " (no TLS there? an endpoint that serves plain HTTP needs http://)"
_encode = json.JSONEncoder(separators=(",", ":")).encode


class BlockingClient:
    """Blocking get/put/delete against ``endpoints`` (URLs, as ``Client`` takes them).

    :param timeout: seconds per call, failover and login included
    :param attempt_timeout: at most this long on one endpoint before a read tries
        the next (None: an equal share of what is left)
    :param user: log in as ``user`` with ``password`` before the first call
    :param ca_file: CA bundle for ``https://`` endpoints (default: the system's)
    :param cert_file: client certificate, with ``key_file``
    :param require_leader: refuse answers from a member without a leader (so that a
        cut-off member sends the call on to the next endpoint)
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 10.0,
                 attempt_timeout: float | None = None, user: str | None = None,
                 password: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 require_leader: bool = True,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not endpoints:
            raise ValueError("give at least one endpoint")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file go together")
        self.endpoints = tuple(url.rstrip("/") for url in endpoints)
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.max_request_bytes = max_request_bytes
        self._credentials = None if user is None or password is None else (user, password)
        self._tls_files = (ca_file, cert_file, key_file)
        self._tls: ssl.SSLContext | None = None
        self._clock = clock
        self._headers = {"Content-Type": "application/json"}
        if require_leader:
            self._headers["Grpc-Metadata-hasleader"] = "true"
        self._token: str | None = None
        self._prefixes: dict[str, str] = {}
        self._connections: dict[str, Connection] = {}

    # -- the calls ------------------------------------------------------------------

    def get(self, key: bytes | KeySet, **options: Any) -> RangeResult:
        """Read ``key`` or a :class:`KeySet`; ``options`` as ``Client.get``'s."""
        return self.call(range_request(key, **options))

    def put(self, key: bytes, value: bytes, **options: Any) -> PutResult:
        """Write ``value`` at ``key``; ``options`` as ``Client.put``'s."""
        return self.call(put_request(key, value, **options))

    def delete(self, key: bytes | KeySet, *, prev_kv: bool = False) -> DeleteResult:
        """Delete ``key`` or a :class:`KeySet`."""
        return self.call(delete_request(key, prev_kv=prev_kv))

    def call(self, request: Request[T]) -> T:
        """Send ``request``, failing over across the endpoints, all within ``timeout``
        (logging in first if a user was given)."""
        check_size(request.size, self.max_request_bytes)
        deadline = self._clock() + self.timeout
        if self._credentials is not None and self._token is None:
            from .wire.auth import authenticate_request  # only a login pays for it

            self._token = self._call(authenticate_request(*self._credentials), deadline).token
        return self._call(request, deadline)

    def close(self) -> None:
        """Close the connections kept for the next call."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- failover -------------------------------------------------------------------

    def _call(self, request: Request[T], deadline: float) -> T:
        body = _encode(request.body).encode("ascii")
        failures: list[errors.EtcdError] = []
        for position, endpoint in enumerate(self.endpoints):
            left = deadline - self._clock()
            if left <= 0:
                if failures:
                    break  # the last attempt's failure is the answer
                raise errors.RequestTimeout(
                    f"the timeout ran out before {request.path} was sent", endpoint=endpoint)
            limit = (attempt_share(left, len(self.endpoints) - position, self.attempt_timeout)
                     if request.idempotent else left)
            try:
                status, content = self._exchange(endpoint, request.path, body,
                                                 self._clock() + limit,
                                                 idempotent=request.idempotent)
            except errors.ConnectFailed as exc:
                failures.append(exc)
                continue
            except errors.OutcomeUnknown as exc:
                if not request.idempotent:
                    raise
                failures.append(exc)
                continue
            if status != 200:
                judged = refusal(status, content, idempotent=request.idempotent,
                                 endpoint=endpoint)
                if judged.move_on:
                    failures.append(judged.error)
                    continue
                raise judged.error
            return request.parse(answer_json(endpoint, content))
        raise give_up(failures)

    def _exchange(self, endpoint: str, path: str, body: bytes, deadline: float, *,
                  idempotent: bool) -> tuple[int, bytes]:
        """POST ``body`` to ``endpoint``'s gateway, finding its prefix on the way: a
        path the gateway does not serve is answered 404 without a gRPC status,
        before anything is applied, so the next prefix may be tried."""
        known = self._prefixes.get(endpoint)
        for prefix in (known,) if known is not None else API_PREFIXES:
            status, content = self._post(endpoint, prefix + path, body, deadline,
                                         idempotent=idempotent)
            if known is None and status in (404, 501) and not _grpc_status(content):
                continue
            self._prefixes[endpoint] = prefix
            return status, content
        raise errors.Unimplemented(
            f"{endpoint} serves none of the etcd v3 gateway prefixes {', '.join(API_PREFIXES)}")

    # -- one HTTP exchange ------------------------------------------------------------

    def _post(self, endpoint: str, url_path: str, body: bytes, deadline: float, *,
              idempotent: bool) -> tuple[int, bytes]:
        """One request and its whole answer, by ``deadline``.

        :raises ConnectFailed: no connection (or no TLS session): nothing was sent
        :raises RequestTimeout: sent, and no complete answer by ``deadline``
        :raises ConnectionLost: sent, and the connection broke before the answer ended
        """
        limit = max(0.0, deadline - self._clock())  # what the timeout message names
        connection = self._connections.get(endpoint)
        reused = connection is not None and not connection.closed
        if connection is None or connection.closed:
            connection = self._connect(endpoint, deadline)
        headers = self._headers if self._token is None else {
            **self._headers, "Authorization": self._token}
        try:
            return connection.post(url_path, body, headers, deadline)
        except Expired:
            connection.close()
            raise errors.RequestTimeout(f"no answer from {endpoint} within {limit:.1f} s",
                                        endpoint=endpoint) from None
        except (OSError, Broken) as exc:
            connection.close()
            if reused and idempotent and not connection.received:
                # Most likely a kept connection the server had closed as idle:
                # as the Twisted transport with a pooled one, send once more.
                return self._post(endpoint, url_path, body, deadline, idempotent=False)
            raise errors.ConnectionLost(
                f"connection to {endpoint} lost before a complete answer: {_words(exc)}",
                endpoint=endpoint) from None

    def _connect(self, endpoint: str, deadline: float) -> Connection:
        parts = urlsplit(endpoint)
        tls = self._tls_context() if parts.scheme == "https" else None
        connection = Connection(parts.hostname or "", parts.port or 2379, tls=tls,
                                clock=self._clock)
        limit = max(0.0, deadline - self._clock())
        try:
            connection.open(deadline)  # and the TLS handshake: no byte of the request yet
        except (OSError, Expired) as exc:
            connection.close()
            hint = _HINT_NO_TLS if tls is not None and _no_tls(exc) else ""
            reason = (f"no connection within {limit:.1f} s"
                      if isinstance(exc, (TimeoutError, Expired)) else _words(exc))
            raise errors.ConnectFailed(f"cannot connect to {endpoint}: {reason}{hint}",
                                       endpoint=endpoint) from None
        self._connections[endpoint] = connection
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import ssl  # only https endpoints pay for it

            ca_file, cert_file, key_file = self._tls_files
            context = ssl.create_default_context(cafile=ca_file)
            if cert_file is not None:
                context.load_cert_chain(cert_file, key_file)
            self._tls = context
        return self._tls


def _grpc_status(content: bytes) -> bool:
    """Whether ``content`` is a gateway error body (it has a gRPC ``code``)."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "code" in parsed


def _no_tls(exc: BaseException) -> bool:
    """Whether a TLS handshake failed the way a plain-HTTP server makes it fail: it
    hangs up or answers bytes that are no TLS record; not a refused certificate."""
    reason = getattr(exc, "reason", None)
    if reason in ("UNEXPECTED_EOF_WHILE_READING", "WRONG_VERSION_NUMBER",
                  "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
        return True
    return isinstance(exc, (ConnectionResetError, EOFError))


def _words(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
