"""Floor 2: the Twisted etcd3 client over the JSON gateway.

The transport is injected: by default a treq ``HTTPClient`` over an ``Agent``
with its own persistent :class:`~twisted.web.client.HTTPConnectionPool`; tests
pass ``http_client=treq.testing.StubTreq(resource)``. All request building and
answer parsing happens in :mod:`etcdwamp.wire`.

Failover and the outcome of writes
----------------------------------
With several endpoints, a request goes to the endpoint that answered last; if
no connection can be made to it, the next one is tried, for every kind of
request, since such a request provably never reached etcd. When a request
*was* sent but no answer came (timeout, connection lost after sending, an
``Unavailable`` answer), only idempotent requests (ranges, status, read-only
transactions) are retried on the next endpoint. A write in that situation
raises :class:`~etcdwamp.errors.OutcomeUnknown`: it may or may not have been
applied, and the caller decides (read back, or guard the retry with a
transaction compare on the mod revision).

``timeout`` bounds the whole call, failover included: the deadline is taken
when the call starts, and each attempt (on the next endpoint, after a lost
connection, to detect the gateway prefix, to log in again) only gets what is
left of it. When it is spent, the call fails with the error of its last
attempt: :class:`~etcdwamp.errors.RequestTimeout` for a request sent without
an answer, :class:`~etcdwamp.errors.ConnectFailed` if no endpoint could even
be reached. During a slow leader election a read therefore fails after
``timeout`` instead of waiting on one member after another; and since a
timeout ends the call, the member that did not answer in time is no longer
the first one the next call tries.

Cancellation
------------
Cancelling a Deferred the client returned fails it with ``CancelledError`` at
once and drops the connection carrying the request. It is never mistaken for a
transport failure: a cancelled request is not retried, not sent to another
endpoint, not re-authenticated, and not turned into ``RequestTimeout``. A
cancelled write, like a timed-out one, may or may not have been applied.
``d.addTimeout(seconds, reactor)`` therefore works as with any Twisted API.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import treq
from twisted.internet import defer
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.web import _newclient
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed

from . import errors
from ._deferred import deferred
from .lease import Lease
from .lock import Election, Lock
from .tls import tls_policy
from .watch import Watch, WatchBatch, read_body, relay
from .wire import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    CompactResult,
    DeleteResult,
    KeySet,
    KeyValue,
    LeaseGrantResult,
    LeaseInfo,
    LeaseRevokeResult,
    PutResult,
    RangeResult,
    Request,
    SortOrder,
    SortTarget,
    StatusResult,
    Transaction,
    TxnResult,
    as_keyset,
    check_size,
    compact_request,
    delete_request,
    error_from_response,
    lease_grant_request,
    lease_revoke_request,
    lease_ttl_request,
    put_request,
    range_request,
    status_request,
    txn_request,
)
from .wire.auth import (
    Permission,
    auth_disable_request,
    auth_enable_request,
    authenticate_request,
    role_add_request,
    role_grant_permission_request,
    user_add_request,
    user_grant_role_request,
)
from .wire.watch import WatchFilter

__all__ = ["Client", "HTTPClientLike"]

T = TypeVar("T")

#: gateway prefixes tried in order: etcd 3.4+, 3.3, 3.2
API_PREFIXES = ("/v3", "/v3beta", "/v3alpha")

_JSON_HEADERS = {b"Content-Type": [b"application/json"]}

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


class HTTPClientLike(Protocol):
    """The part of ``treq.client.HTTPClient`` the client uses. Cancelling a
    Deferred that ``post`` returned must abort that request, as treq's does."""

    def post(self, url: str, data: bytes, headers: Any, **kwargs: Any) -> Deferred[Any]: ...


class Client:
    """An etcd3 client.

    :param reactor: the Twisted reactor (also the clock for timeouts unless ``clock``)
    :param url: the endpoint, e.g. ``"http://127.0.0.1:2379"``; or use ``endpoints``
    :param endpoints: several member URLs of one cluster, tried in order on failure
    :param timeout: seconds a call may take, failover to other endpoints and
        logging in again included (a stream: until its answer starts)
    :param connect_timeout: seconds to establish a TCP connection
    :param pool_size: persistent connections kept per endpoint (bounds concurrency)
    :param http_client: a treq-style client to use instead of the built-in one
    :param clock: an ``IReactorTime`` for timeouts (tests pass ``task.Clock``)
    :param api_prefix: skip detection and use this gateway prefix (e.g. ``"/v3"``)
    :param max_request_bytes: refuse larger requests before sending (etcd's
        ``--max-request-bytes``)
    :param max_txn_ops: refuse larger transactions before sending (etcd's ``--max-txn-ops``)
    :param user: authenticate as this user (with ``password``); the token is
        renewed transparently when etcd reports it expired
    :param ca_file: PEM file of the CA that signed the servers' certificates (https)
    :param cert_file: PEM client certificate (with ``key_file``) for etcd's
        ``--client-cert-auth``
    """

    def __init__(
        self,
        reactor: Any,
        url: str | None = None,
        *,
        endpoints: Sequence[str] | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_size: int = 64,
        http_client: HTTPClientLike | None = None,
        clock: Any = None,
        api_prefix: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        user: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        if url is not None and endpoints is not None:
            raise ValueError("give url or endpoints, not both")
        urls = [url] if url is not None else list(endpoints or ())
        if not urls:
            raise ValueError("no etcd endpoint given (url=... or endpoints=[...])")
        for u in urls:
            if not isinstance(u, str):
                raise TypeError(f"endpoint URLs must be str, not {type(u).__name__}")
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"endpoint URL must start with http:// or https://: {u!r}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        if (cert_file is None) != (key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        if api_prefix is not None and not api_prefix.startswith("/"):
            raise ValueError(f"api_prefix must start with '/': {api_prefix!r}")
        self.endpoints: tuple[str, ...] = tuple(u.rstrip("/") for u in urls)
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        self.max_txn_ops = max_txn_ops
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._api_prefix = api_prefix
        self._prefixes: dict[str, str] = {}
        self._preferred = 0
        self._credentials = None if user is None else (user, password or "")
        self._token: str | None = None
        self._auth_lock = DeferredLock()
        self._pool: HTTPConnectionPool | None = None
        if http_client is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
            self._pool.maxPersistentPerHost = pool_size
            extra: dict[str, Any] = {}
            if ca_file is not None or cert_file is not None:
                extra["contextFactory"] = tls_policy(ca_file, cert_file, key_file)
            agent = Agent(  # type: ignore[no-untyped-call]
                reactor, connectTimeout=connect_timeout, pool=self._pool, **extra
            )
            http_client = cast(HTTPClientLike, treq.client.HTTPClient(agent))  # type: ignore[arg-type]
        self._http: HTTPClientLike = http_client

    # -- transport ----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint requests currently go to first."""
        return self.endpoints[self._preferred]

    def _order(self) -> list[int]:
        n = len(self.endpoints)
        return [(self._preferred + i) % n for i in range(n)]

    def _headers(self) -> dict[bytes, list[bytes]]:
        if self._token is None:
            return _JSON_HEADERS
        return {**_JSON_HEADERS, b"Authorization": [self._token.encode("ascii")]}

    def _exchange(self, url: str, body: bytes) -> Deferred[tuple[int, bytes]]:
        # Plain Deferred chaining rather than a coroutine: this runs for every
        # request, and cancelling the result still reaches whichever step runs
        # (the Agent aborts a pending request; read_body drops the connection).
        def read(response: Any) -> Deferred[tuple[int, bytes]]:
            code = int(response.code)
            return read_body(response).addCallback(lambda data: (code, data))

        posted: Deferred[Any] = self._http.post(url, data=body, headers=self._headers())
        return posted.addCallback(read)

    async def _current_token(self, deadline: float | None = None) -> str | None:
        """The token the next request carries, authenticating first if auth is
        configured and there is none yet. Completes without waiting when the
        token is known, so a request sent right after carries exactly this one."""
        if self._credentials is not None and self._token is None:
            await self._authenticate(None, deadline)
        return self._token

    def _deadline(self, timeout: float | None) -> float:
        """When a call starting now with ``timeout`` (None: the client's) must end."""
        now: float = self._clock.seconds()
        return now + (self.timeout if timeout is None else timeout)

    def _left(self, deadline: float) -> float:
        now: float = self._clock.seconds()
        return max(0.0, deadline - now)

    async def _open_stream(self, url: str, body: bytes) -> Any:
        await self._current_token()
        return await self._http.post(url, data=body, headers=self._headers(), unbuffered=True)

    async def _post(self, endpoint: str, url: str, body: bytes,
                    timeout: float | None = None) -> tuple[int, bytes]:
        """One HTTP exchange: status and whole body."""
        return await self._timed(endpoint, self._exchange(url, body), timeout)

    async def _post_stream(self, endpoint: str, url: str, body: bytes) -> Any:
        """Open a streaming exchange: the response once its headers arrived
        (the timeout covers only that); the caller reads the body."""
        return await self._timed(endpoint, Deferred.fromCoroutine(self._open_stream(url, body)),
                                 None)

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
        timer = None if math.isinf(limit) else self._clock.callLater(limit, expire)
        try:
            return await guarded
        except Exception as exc:
            if cancelled and not timed_out:
                raise CancelledError() from exc
            raise self._exchange_error(endpoint, exc, limit, timed_out=timed_out) from exc
        finally:
            if timer is not None and timer.active():
                timer.cancel()

    def _exchange_error(self, endpoint: str, exc: Exception, limit: float, *,
                        timed_out: bool) -> Exception:
        """Map the failure of an exchange the caller did not cancel."""
        if isinstance(exc, _NOT_SENT):
            # Also when our timeout cancelled the connection attempt: not sent.
            return errors.ConnectFailed(f"cannot connect to {endpoint}: {exc}", endpoint=endpoint)
        if timed_out:
            return errors.RequestTimeout(f"no answer from {endpoint} within {limit}s",
                                         endpoint=endpoint)
        return self._transport_error(endpoint, exc)

    @staticmethod
    def _transport_error(endpoint: str, exc: Exception) -> Exception:
        """Map a failure of an exchange that was not cut short by our timeout."""
        if isinstance(exc, CancelledError):
            return exc  # a cancellation is never a transport failure
        if isinstance(exc, ResponseFailed):
            reasons = getattr(exc, "reasons", [])
            if reasons and all(r.check(*_NOT_SENT) for r in reasons):
                return errors.ConnectFailed(f"cannot connect to {endpoint}: {exc}",
                                            endpoint=endpoint)
        if isinstance(exc, (ResponseFailed, _newclient.ResponseNeverReceived,
                            ierror.ConnectionLost, ierror.ConnectionDone)):
            return errors.ConnectionLost(
                f"connection to {endpoint} lost before a complete answer: {exc}",
                endpoint=endpoint,
            )
        return exc

    async def _prefix(self, endpoint: str, deadline: float | None = None) -> str:
        """The gateway prefix of ``endpoint`` (detected once, then cached)."""
        if self._api_prefix is not None:
            return self._api_prefix
        known = self._prefixes.get(endpoint)
        if known is not None:
            return known
        if deadline is None:
            deadline = self._deadline(None)
        probe = b"{}"
        last: errors.ServerError | None = None
        for prefix in API_PREFIXES:
            status, content = await self._post(
                endpoint, endpoint + prefix + "/maintenance/status", probe, self._left(deadline)
            )
            if status == 200:
                self._prefixes[endpoint] = prefix
                return prefix
            last = error_from_response(status, content)
            if status not in (404, 501):
                raise last
        raise errors.Unimplemented(
            f"{endpoint} serves none of the etcd v3 gateway prefixes "
            f"{', '.join(API_PREFIXES)} (last answer: {last})"
        )

    async def _send(self, endpoint: str, path: str, body: bytes, *,
                    idempotent: bool, deadline: float) -> tuple[int, bytes]:
        """POST to one endpoint, ending by ``deadline``. An idempotent request
        whose connection was lost is sent once more: the usual cause is a
        pooled keep-alive connection the server closed just as we reused it."""
        prefix = (self._api_prefix or self._prefixes.get(endpoint)
                  or await self._prefix(endpoint, deadline))
        try:
            return await self._post(endpoint, endpoint + prefix + path, body,
                                    self._left(deadline))
        except errors.ConnectionLost:
            if not idempotent or self._left(deadline) <= 0:
                raise
        return await self._post(endpoint, endpoint + prefix + path, body, self._left(deadline))

    async def _authenticate(self, stale: str | None, deadline: float | None = None) -> None:
        """Get a new token, once for all concurrent callers that saw ``stale`` fail;
        by ``deadline`` (the caller's), and never later than the client's timeout."""
        assert self._credentials is not None
        own = self._deadline(None)
        deadline = own if deadline is None else min(deadline, own)
        await self._lock_auth(deadline)
        try:
            if self._token is not None and self._token != stale:
                return  # another caller already renewed it
            self._token = None
            result = await self._call_once(authenticate_request(*self._credentials), deadline)
            self._token = result.token
        finally:
            self._auth_lock.release()

    async def _lock_auth(self, deadline: float) -> None:
        """Take the login lock, waiting for another caller's login at most until
        ``deadline``."""
        acquiring: Deferred[Any] = self._auth_lock.acquire()
        if acquiring.called:
            await acquiring
            return
        timer = self._clock.callLater(self._left(deadline), acquiring.cancel)
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

    def _request(self, request: Request[T]) -> Deferred[T]:
        """Send ``request``; the Deferred fires with its parsed answer."""
        if self._credentials is None:
            return Deferred.fromCoroutine(self._call_once(request))
        return Deferred.fromCoroutine(self._call(request))

    async def _call(self, request: Request[T]) -> T:
        deadline = self._deadline(request.timeout)
        if self._credentials is None:
            return await self._call_once(request, deadline)
        token = await self._current_token(deadline)
        try:
            return await self._call_once(request, deadline)
        except errors.Unauthenticated:
            # The token expired (--auth-token-ttl) or the member restarted:
            # authenticate again and retry once.
            await self._authenticate(token, deadline)
            return await self._call_once(request, deadline)

    async def _call_once(self, request: Request[T], deadline: float | None = None) -> T:
        """Send ``request``, failing over to the next endpoints, all by ``deadline``
        (None: ``request.timeout`` or the client's from now)."""
        check_size(request.size, self.max_request_bytes)
        if deadline is None:
            deadline = self._deadline(request.timeout)
        body = json.dumps(request.body, separators=(",", ":")).encode("ascii")
        failures: list[errors.EtcdError] = []
        for index in self._order():
            endpoint = self.endpoints[index]
            if self._left(deadline) <= 0:
                if failures:
                    break  # the last attempt's failure is the answer
                # Logging in took the whole budget before anything was sent:
                # still the timeout's error, the type callers handle timeouts by.
                raise errors.RequestTimeout(
                    f"the timeout ran out before {request.path} was sent", endpoint=endpoint)
            try:
                status, content = await self._send(endpoint, request.path, body,
                                                   idempotent=request.idempotent,
                                                   deadline=deadline)
            except errors.ConnectFailed as exc:
                failures.append(exc)
                continue
            except errors.OutcomeUnknown as exc:
                if (isinstance(exc, errors.RequestTimeout) and request.timeout is None
                        and self._preferred == index):
                    # A timeout now ends the call, so no retry moves on from a
                    # hung member: the next call starts with another one. (Not
                    # for a request with its own timeout, e.g. a lock that
                    # waited as long as its caller allowed.)
                    self._preferred = (index + 1) % len(self.endpoints)
                if not request.idempotent:
                    raise
                failures.append(exc)
                continue
            if status != 200:
                err = error_from_response(status, content)
                if isinstance(err, errors.Unavailable) and request.idempotent:
                    failures.append(err)
                    continue
                self._preferred = index
                raise err
            self._preferred = index
            try:
                decoded = json.loads(content)
            except ValueError as exc:
                raise errors.ProtocolError(
                    f"{endpoint} answered 200 with a body that is not JSON: {content[:200]!r}"
                ) from exc
            if not isinstance(decoded, dict):
                raise errors.ProtocolError(f"{endpoint} answered 200 with {decoded!r}")
            return request.parse(decoded)
        if all(isinstance(f, errors.ConnectFailed) for f in failures):
            raise errors.ConnectFailed(
                "no etcd endpoint reachable: " + "; ".join(str(f) for f in failures)
            ) from (failures[-1] if failures else None)
        # Some endpoint took the request without a clean answer: re-raise the
        # latest such failure (not a ConnectFailed, which would claim "not sent").
        raise next(f for f in reversed(failures) if not isinstance(f, errors.ConnectFailed))

    def call(self, request: Request[T]) -> Deferred[T]:
        """Send a prebuilt :class:`~etcdwamp.wire.Request` (for APIs without a method)."""
        return self._request(request)

    def close(self) -> Deferred[None]:
        """Close pooled connections (the client may be used again afterwards)."""
        if self._pool is None:
            return defer.succeed(None)
        d: Deferred[None] = self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]
        return d

    # -- KV -------------------------------------------------------------------

    def status(self) -> Deferred[StatusResult]:
        """The status of the member answering (version, db size, leader, revision)."""
        return self._request(status_request())

    def get(
        self,
        key: bytes | KeySet,
        *,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder | str = SortOrder.NONE,
        sort_target: SortTarget | str = SortTarget.KEY,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> Deferred[RangeResult]:
        """Read one key or a :class:`KeySet`. ``0`` means "not set" for every int option.

        :raises RevisionCompacted: ``revision`` was compacted
        :raises FutureRevision: ``revision`` is newer than the store
        """
        return self._request(range_request(
            key, limit=limit, revision=revision, sort_order=sort_order,
            sort_target=sort_target, serializable=serializable, keys_only=keys_only,
            count_only=count_only, min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision, min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        ))

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> Deferred[PutResult]:
        """Write ``value`` at ``key``; ``result.revision`` is the new store revision.

        :raises TypeError: key or value is not bytes
        :raises RequestTooLarge: key + value exceed ``max_request_bytes``
        :raises LeaseNotFound: ``lease`` does not exist
        """
        return self._request(put_request(
            key, value, lease=lease, prev_kv=prev_kv, ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        ))

    set = put  # txaioetcd's name

    def delete(self, key: bytes | KeySet, *, prev_kv: bool = False) -> Deferred[DeleteResult]:
        """Delete one key or a :class:`KeySet`; ``result.deleted`` counts the keys removed."""
        return self._request(delete_request(key, prev_kv=prev_kv))

    def compact(self, revision: int, *, physical: bool = False) -> Deferred[CompactResult]:
        """Discard history before ``revision`` (``physical``: wait until it is purged)."""
        return self._request(compact_request(revision, physical=physical))

    def txn(self, transaction: Transaction) -> Deferred[TxnResult]:
        """Run a transaction. A failed compare is a result (``succeeded=False``),
        not an exception.

        :raises TooManyOps: more ops than ``max_txn_ops``
        :raises DuplicateKey: one branch writes a key twice
        """
        return self._request(txn_request(transaction, max_ops=self.max_txn_ops))

    submit = txn  # txaioetcd's name

    async def range_iter(
        self,
        key: bytes | KeySet,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> AsyncIterator[KeyValue]:
        """Iterate a range in key order, ``page_size`` keys per request.

        Every page is read at one revision (``revision``, or the revision of the
        first page), so the iteration is a consistent snapshot however long it
        takes, and memory stays bounded by the page size. If that revision is
        compacted meanwhile, :class:`RevisionCompacted` is raised.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        keyset = as_keyset(key)
        start, end = keyset.resolve()
        if end is None:
            single = await self.get(keyset, revision=revision, keys_only=keys_only,
                                    serializable=serializable)
            for kv in single.kvs:
                yield kv
            return
        while True:
            page = await self.get(KeySet(start, range_end=end), limit=page_size,
                                  revision=revision, keys_only=keys_only,
                                  serializable=serializable)
            if not revision:
                revision = page.header.revision
            for kv in page.kvs:
                yield kv
            if not page.more or not page.kvs:
                return
            # The next page starts right after the last key seen.
            start = page.kvs[-1].key + b"\x00"

    # -- leases (low level; see Lease for keep-alive) -------------------------

    def lease_grant(self, ttl: int, *, lease_id: int = 0) -> Deferred[LeaseGrantResult]:
        """Grant a lease of ``ttl`` seconds (etcd picks the id unless ``lease_id``)."""
        return self._request(lease_grant_request(ttl, lease_id))

    @deferred
    async def lease(self, ttl: int, *, keep_alive: bool = False,
                    on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Lease:
        """Grant a lease of ``ttl`` seconds as a :class:`~etcdwamp.lease.Lease`;
        with ``keep_alive`` it is renewed automatically until revoked or lost."""
        sent = self._clock.seconds()
        granted = await self._call(lease_grant_request(ttl))
        lease = Lease(self, granted.id, granted.ttl, granted_at=sent)
        if keep_alive:
            lease.keep_alive(on_lost)
        return lease

    def lease_revoke(self, lease_id: int) -> Deferred[LeaseRevokeResult]:
        """Revoke a lease, deleting every key attached to it."""
        return self._request(lease_revoke_request(lease_id))

    def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> Deferred[LeaseInfo]:
        """Remaining TTL of a lease (``-1`` once gone) and optionally its keys."""
        return self._request(lease_ttl_request(lease_id, keys=keys))

    def lock(self, name: bytes, *, ttl: int = 10) -> Lock:
        """A :class:`~etcdwamp.lock.Lock` named ``name`` (not yet acquired)."""
        return Lock(self, name, ttl=ttl)

    def election(self, name: bytes, *, ttl: int = 10) -> Election:
        """An :class:`~etcdwamp.lock.Election` named ``name``."""
        return Election(self, name, ttl=ttl)

    # -- auth administration ---------------------------------------------------

    @deferred
    async def auth_enable(self) -> None:
        """Turn authentication on (a ``root`` user with the ``root`` role must exist)."""
        await self._call(auth_enable_request())

    @deferred
    async def auth_disable(self) -> None:
        await self._call(auth_disable_request())

    @deferred
    async def user_add(self, user: str, password: str) -> None:
        await self._call(user_add_request(user, password))

    @deferred
    async def role_add(self, role: str) -> None:
        await self._call(role_add_request(role))

    @deferred
    async def user_grant_role(self, user: str, role: str) -> None:
        await self._call(user_grant_role_request(user, role))

    @deferred
    async def role_grant_permission(self, role: str, keys: bytes | KeySet,
                                    permission: Permission | str) -> None:
        """Let ``role`` read/write (``Permission``) the keys of ``keys``."""
        await self._call(role_grant_permission_request(role, keys, permission))

    # -- watches -------------------------------------------------------------

    def watch(
        self,
        keys: bytes | KeySet | Sequence[bytes | KeySet],
        callback: Callable[[WatchBatch], object] | None = None,
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Sequence[WatchFilter | str] = (),
        progress_notify: bool = True,
    ) -> Watch:
        """Watch one or several keys/key sets; see :mod:`etcdwamp.watch`.

        Returns a :class:`Watch` at once; ``await`` it (or its ``created``) to
        know etcd confirmed the watch. Batches go to ``callback`` if given,
        else to ``async for batch in watch``. ``start_revision`` 0 means "from
        now"; an old one replays history from there.
        """
        if isinstance(keys, (bytes, bytearray, memoryview, KeySet)):
            keysets: list[bytes | KeySet] = [keys if isinstance(keys, KeySet) else bytes(keys)]
        elif isinstance(keys, str):
            raise TypeError("keys must be bytes or KeySet, not str")
        else:
            keysets = list(keys)
        return Watch(self, keysets, callback, start_revision=start_revision, prev_kv=prev_kv,
                     filters=filters, progress_notify=progress_notify)

    @deferred
    async def get_and_watch(
        self,
        keys: bytes | KeySet,
        callback: Callable[[WatchBatch], object] | None = None,
        *,
        prev_kv: bool = False,
    ) -> tuple[RangeResult, Watch]:
        """A snapshot at revision R and a watch from R + 1: no gap, no duplicate.

        This is also the recovery recipe after :class:`~etcdwamp.errors.WatchCompacted`.
        The returned watch is already created.
        """
        snapshot = await self.get(keys)
        watch = self.watch(keys, callback, start_revision=snapshot.header.revision + 1,
                           prev_kv=prev_kv)
        await watch.created
        return snapshot, watch
