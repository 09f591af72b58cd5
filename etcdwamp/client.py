"""Floor 2: the Twisted etcd3 client over the JSON gateway.

Every request goes through one :class:`~etcdwamp.transport.Transport`
(``client.transport``), which watches, leases, locks and elections use too. By
default it posts straight to Twisted's ``Agent`` over a persistent
:class:`~twisted.web.client.HTTPConnectionPool`; a treq-style client may be
injected instead (tests pass ``http_client=treq.testing.StubTreq(resource)``).
All request building and answer parsing happens in :mod:`etcdwamp.wire`.

Failover and the outcome of writes
----------------------------------
With several endpoints, a request goes to the endpoint that answered last; if
no connection can be made to it, the next one is tried, for every kind of
request, since such a request provably never reached etcd. When a request
*was* sent but no answer came (timeout, connection lost after sending, an
``Unavailable`` answer other than ``NoLeader``), only idempotent requests
(ranges, status, read-only transactions) are retried on the next endpoint. A write in that situation
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
``timeout`` instead of waiting on one member after another; and the member
that did not answer in time is demoted, no longer the first one the next call
tries.

Partitions and hung members
---------------------------
Every request and stream carries etcd's require-leader metadata
(``require_leader=True``): a member cut off from the majority answers
:class:`~etcdwamp.errors.NoLeader` instead of serving stale data or waiting,
and etcd ends a watch it serves once it lost its leader. ``NoLeader`` is
answered before anything is proposed, so *every* request, writes included,
moves on to the next endpoint. A read (any idempotent request) gets a share of
the call's ``timeout`` per attempt (``attempt_timeout``), then moves on too;
the last endpoint gets what is left. A member that timed out or had no leader
is *demoted* for a back-off period (1 s, doubling to 30 s while it keeps
failing; see :mod:`etcdwamp.health`): calls try the others first, so a hung
member costs one attempt, not one per call. ``client.transport.health``
tells which endpoints are demoted.

A write etcd answers with an error that leaves its outcome open (its own
request timeout, ``leader changed``: gRPC codes 14, 4, 1) raises
:class:`~etcdwamp.errors.IndefiniteAnswer`, an
:class:`~etcdwamp.errors.OutcomeUnknown`: it may have been applied. The
table of which errors mean "not applied" and which "maybe" is in
``docs/cluster.rst``.

Cancellation
------------
Cancelling a Deferred the client returned fails it with ``CancelledError`` at
once and drops the connection carrying the request. It is never mistaken for a
transport failure: a cancelled request is not retried, not sent to another
endpoint, not re-authenticated, and not turned into ``RequestTimeout``. A
cancelled write, like a timed-out one, may or may not have been applied.
``d.addTimeout(seconds, reactor)`` therefore works as with any Twisted API.

Connections
-----------
Calls are bounded, however many are made at once: each takes one of
``max_connections`` slots of its endpoint before sending (coalesced
transactions too, one slot each); more calls wait in a first-in-first-out
queue of at most ``max_queued`` calls (for the whole client), and a call
beyond that fails at once with :class:`~etcdwamp.errors.Busy` (nothing was
sent: retry later). Waiting counts against the call's timeout (then
``RequestTimeout``); a waiting call that is cancelled leaves the queue at
once. A call failing over to another endpoint takes a slot of that one.
Watches, elections being observed, blocking calls (lock, campaign,
defragment) and lease keep-alives hold their connections outside this budget
(see :class:`~etcdwamp.transport.Transport` for why), so they never starve
calls, nor calls them. ``pool_size`` is unrelated: how many idle connections
are kept open for reuse.

Coalescing
----------
With ``coalesce=True``, concurrent ``put``, ``delete`` and ``get`` calls of
single keys made in one reactor turn (or within ``coalesce_window``) travel
as one transaction; each caller still gets its own typed result, but
coalesced writes share one revision. Failure isolation, cancellation and the
timeout are described in :mod:`etcdwamp.coalesce`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from . import errors
from ._deferred import deferred
from .budget import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED
from .cli_endpoints import endpoint_urls
from .coalesce import Coalescer
from .lease import Lease, grant
from .lock import Election, Lock
from .metrics import NO_METRICS, ClientMetrics
from .namespace import Namespace
from .operations import OperationsMixin
from .probe import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT
from .range_pages import key_values
from .tls import grpc_tls, tls_policy
from .transport import HTTP, AgentHTTP, HTTPClientLike, Transport, TreqHTTP
from .watch import Watch, WatchBatch
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
    Transaction,
    TxnResult,
    compact_request,
    delete_request,
    lease_grant_request,
    lease_revoke_request,
    lease_ttl_request,
    put_request,
    range_request,
    txn_request,
)
from .wire.auth import (
    Permission,
    auth_disable_request,
    auth_enable_request,
    role_add_request,
    role_grant_permission_request,
    user_add_request,
    user_grant_role_request,
)
from .wire.watch import WatchEvent, WatchFilter

__all__ = ["Client", "HTTPClientLike"]

T = TypeVar("T")

class Client(OperationsMixin):
    """An etcd3 client.

    :param reactor: the Twisted reactor (also the clock for timeouts unless ``clock``)
    :param url: the endpoint, e.g. ``"http://127.0.0.1:2379"``; or use ``endpoints``.
        With neither, as the ``etcdwamp`` command: ``$ETCDWAMP_ENDPOINTS``, then
        ``$ETCDCTL_ENDPOINTS`` (comma-separated URLs or ``host:port``), then
        ``http://127.0.0.1:2379``
    :param endpoints: several member URLs of one cluster, tried in order on failure
    :param timeout: seconds a call may take, failover to other endpoints and
        logging in again included (a stream: until its answer starts)
    :param connect_timeout: seconds to establish a TCP connection
    :param pool_size: idle persistent connections kept per endpoint (calls in flight
        are bounded by ``max_connections`` instead)
    :param max_connections: calls in flight per endpoint at once, each on its own
        connection (see "Connections" above)
    :param max_queued: calls that may wait for a connection, for the whole client;
        beyond it a call fails at once with :class:`~etcdwamp.errors.Busy`
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
    :param coalesce: send concurrent single-key ``put``/``get``/``delete`` calls
        as one transaction (see "Coalescing" above)
    :param coalesce_window: seconds a coalesced call waits for company
        (0: only calls made in the same reactor turn share a transaction)
    :param require_leader: send etcd's require-leader metadata with every
        request and stream, so a member cut off from its cluster answers
        ``NoLeader`` at once and ends its watches (see "Partitions" above)
    :param attempt_timeout: seconds one attempt of a request that may move to
        another endpoint (reads, idempotent requests) waits at most before it
        does, never more than an equal share of what is left of ``timeout`` per
        endpoint not yet tried; None (default): that share. The last endpoint
        gets all that is left.
    :param probe_interval: seconds between probes of an endpoint that carries
        streams (watches, observed elections), from one probe's answer to the
        next; None or 0: no probes (see :mod:`etcdwamp.probe`)
    :param probe_timeout: seconds a probe may take before its endpoint is
        demoted and its streams move (worst-case detection of a hung member:
        ``probe_interval + probe_timeout``)
    :param metrics: where the client reports request attempts, endpoint
        health, watch streams and coalesced ops (default: nowhere); e.g.
        :class:`etcdwamp.prometheus.PrometheusClientMetrics` (``etcdwamp[metrics]``)
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
        coalesce: bool = False,
        coalesce_window: float = 0.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_queued: int = DEFAULT_MAX_QUEUED,
        require_leader: bool = True,
        attempt_timeout: float | None = None,
        probe_interval: float | None = DEFAULT_PROBE_INTERVAL,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        metrics: ClientMetrics = NO_METRICS,
        transport: str = "gateway",
    ) -> None:
        if transport not in ("gateway", "grpc"):
            raise ValueError(f"transport must be 'gateway' or 'grpc', not {transport!r}")
        if transport == "grpc" and http_client is not None:
            raise ValueError("http_client is the gateway's: not with transport='grpc'")
        if url is not None and endpoints is not None:
            raise ValueError("give url or endpoints, not both")
        if url is None and endpoints is None:
            # As the CLI (and txaioetcd's Client(reactor)): the environment, else localhost.
            urls = endpoint_urls(None, tls=ca_file is not None or cert_file is not None)
        else:
            urls = [url] if url is not None else list(endpoints or ())
        if not urls:
            raise ValueError("no etcd endpoint given (url=... or endpoints=[...])")
        for u in urls:
            if not isinstance(u, str):
                raise TypeError(f"endpoint URLs must be str, not {type(u).__name__}")
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"endpoint URL must start with http:// or https://: {u!r}")
            if transport == "grpc":
                from .grpc.sockets import check_endpoint

                check_endpoint(u)
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
        if not isinstance(coalesce, bool):
            raise TypeError(f"coalesce must be a bool, not {type(coalesce).__name__}")
        if isinstance(coalesce_window, bool) or not isinstance(coalesce_window, (int, float)):
            raise TypeError("coalesce_window must be a number of seconds, not "
                            f"{type(coalesce_window).__name__}")
        if coalesce_window < 0:
            raise ValueError("coalesce_window must not be negative")
        if not isinstance(require_leader, bool):
            raise TypeError(f"require_leader must be a bool, not {type(require_leader).__name__}")
        if attempt_timeout is not None and (
                isinstance(attempt_timeout, bool) or not isinstance(attempt_timeout, (int, float))
                or not attempt_timeout > 0):
            raise ValueError(f"attempt_timeout must be a positive number of seconds or None, "
                             f"not {attempt_timeout!r}")
        if not isinstance(metrics, ClientMetrics):
            raise TypeError("metrics must be an etcdwamp.metrics.ClientMetrics "
                            f"(e.g. PrometheusClientMetrics()), not {type(metrics).__name__}")
        self.endpoints: tuple[str, ...] = tuple(u.rstrip("/") for u in urls)
        self.max_request_bytes = max_request_bytes
        self.max_txn_ops = max_txn_ops
        self._reactor = reactor
        clock = clock if clock is not None else reactor
        http: HTTP
        if transport == "grpc":
            http = self._grpc_http(reactor, clock, connect_timeout=connect_timeout,
                                   ca_file=ca_file, cert_file=cert_file, key_file=key_file)
            api_prefix = "/v3"  # nothing to detect: the gRPC API has one version
        elif http_client is None:
            http = self._default_http(reactor, connect_timeout=connect_timeout,
                                      pool_size=pool_size, ca_file=ca_file,
                                      cert_file=cert_file, key_file=key_file)
        else:
            http = TreqHTTP(http_client)
        #: the seam every part of the client sends through (watches, leases, locks too)
        self.transport = Transport(
            http, clock, self.endpoints, timeout=timeout, max_request_bytes=max_request_bytes,
            api_prefix=api_prefix,
            credentials=None if user is None else (user, password or ""),
            max_connections=max_connections, max_queued=max_queued,
            require_leader=require_leader, attempt_timeout=attempt_timeout,
            probe_interval=probe_interval, probe_timeout=probe_timeout, metrics=metrics)
        self._coalescer: Coalescer | None = None
        if coalesce:
            self._coalescer = Coalescer(self.transport, window=coalesce_window,
                                        max_ops=min(max_txn_ops, 128),
                                        max_bytes=max_request_bytes)

    #: the event loop the client's methods run on (``etcdwamp.asyncio.Client``: "asyncio")
    framework = "twisted"

    @staticmethod
    def _default_http(reactor: Any, *, connect_timeout: float, pool_size: int,
                      ca_file: str | None, cert_file: str | None,
                      key_file: str | None) -> HTTP:
        """The HTTP layer used unless ``http_client`` is given: Twisted's Agent."""
        tls = None
        if ca_file is not None or cert_file is not None:
            tls = tls_policy(ca_file, cert_file, key_file)
        return AgentHTTP(reactor, connect_timeout=connect_timeout, pool_size=pool_size, tls=tls)

    @staticmethod
    def _grpc_http(reactor: Any, clock: Any, *, connect_timeout: float, ca_file: str | None,
                   cert_file: str | None, key_file: str | None) -> HTTP:
        """The gRPC transport's HTTP (``transport="grpc"``): one HTTP/2 connection per
        endpoint, over Twisted's sockets; its timers (connecting, liveness checks) run
        on ``clock``."""
        from .grpc.http import GrpcHTTP
        from .grpc.sockets import connect_twisted

        creator = None
        if ca_file is not None or cert_file is not None:
            creator = grpc_tls(ca_file, cert_file, key_file)

        def connect(endpoint: str) -> Any:
            return connect_twisted(reactor, endpoint, timeout=connect_timeout, tls=creator,
                                   clock=clock)

        grpc_http: HTTP = GrpcHTTP(connect, clock=clock)
        return grpc_http

    # -- transport ----------------------------------------------------------

    @property
    def timeout(self) -> float:
        """Seconds a call may take (failover and logging in again included)."""
        return self.transport.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("timeouts must be positive")
        self.transport.timeout = seconds

    @property
    def endpoint(self) -> str:
        """The endpoint requests currently go to first."""
        return self.transport.endpoint

    @property
    def _token(self) -> str | None:
        # The transport's auth token; tests read it, and plant stale ones.
        return self.transport.token

    @_token.setter
    def _token(self, token: str | None) -> None:
        self.transport.token = token

    @property
    def root(self) -> Client:
        """The client itself (a :class:`~etcdwamp.namespace.Namespace` answers
        with the client under it): where keys are addressed in full."""
        return self

    @property
    def coalescing(self) -> bool:
        """Whether concurrent single-key put/get/delete calls share transactions."""
        return self._coalescer is not None

    def _request(self, request: Request[T]) -> Deferred[T]:
        """Send ``request``; the Deferred fires with its parsed answer."""
        return self.transport.call(request)

    async def _call(self, request: Request[T]) -> T:
        return await self.transport.call_async(request)

    def call(self, request: Request[T]) -> Deferred[T]:
        """Send a prebuilt :class:`~etcdwamp.wire.Request` (for APIs without a method)."""
        return self._request(request)

    def close(self) -> Deferred[None]:
        """Close pooled connections (the client may be used again afterwards), once
        the clean-ups under way finished (a cancelled lock's or campaign's lease
        revoke, each bounded by ``timeout``)."""
        return self.transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- KV -------------------------------------------------------------------

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
        request = range_request(
            key, limit=limit, revision=revision, sort_order=sort_order,
            sort_target=sort_target, serializable=serializable, keys_only=keys_only,
            count_only=count_only, min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision, min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        if (self._coalescer is not None and not serializable
                and isinstance(key, (bytes, bytearray, memoryview))):
            # A serializable read is cheaper alone than inside a txn, which
            # etcd always serves linearizably.
            return self._coalescer.submit(request)
        return self._request(request)

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
        request = put_request(key, value, lease=lease, prev_kv=prev_kv,
                              ignore_value=ignore_value, ignore_lease=ignore_lease)
        if self._coalescer is not None:
            return self._coalescer.submit(request)
        return self._request(request)

    set = put  # txaioetcd's name

    def delete(self, key: bytes | KeySet, *, prev_kv: bool = False) -> Deferred[DeleteResult]:
        """Delete one key or a :class:`KeySet`; ``result.deleted`` counts the keys removed."""
        request = delete_request(key, prev_kv=prev_kv)
        if self._coalescer is not None and not isinstance(key, KeySet):
            return self._coalescer.submit(request)
        return self._request(request)

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

    @deferred
    async def submit(self, transaction: Transaction) -> TxnResult:
        """txaioetcd's name for :meth:`txn`, with txaioetcd's outcome: when the compares
        do not hold it raises :class:`~etcdwamp.errors.TxnFailed` (``etcdwamp.Failed``,
        carrying the result) instead of returning ``succeeded=False``."""
        result = await self.txn(transaction)
        if not result.succeeded:
            raise errors.TxnFailed(result)
        return result

    def range_iter(
        self,
        key: bytes | KeySet,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> AsyncIterator[KeyValue]:
        """Iterate a range in key order, at most ``page_size`` keys per request.

        Every page is read at one revision (``revision``, or the revision of the
        first page), so the iteration is a consistent snapshot however long it
        takes, and memory stays bounded by the page size (three pages are read
        ahead of the one being consumed, as etcd serves them on several cores).
        If that revision is compacted meanwhile, :class:`RevisionCompacted` is
        raised. The pages after the first are windows of the range sized to hold
        about a page each, so that etcd's work grows linearly with the range (a
        limited page costs etcd a walk over every key to the range's end): see
        :mod:`etcdwamp.range_pages`.

        :raises ValueError: ``page_size`` is not a positive int (on first use)
        """
        return key_values(self.get, key, page_size=page_size, revision=revision,
                          keys_only=keys_only, serializable=serializable)

    # -- leases (low level; see Lease for keep-alive) -------------------------

    def lease_grant(self, ttl: int, *, lease_id: int = 0) -> Deferred[LeaseGrantResult]:
        """Grant a lease of ``ttl`` seconds (etcd picks the id unless ``lease_id``)."""
        return self._request(lease_grant_request(ttl, lease_id))

    @deferred
    async def lease(self, ttl: int, *, keep_alive: bool = False,
                    on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Lease:
        """Grant a lease of ``ttl`` seconds as a :class:`~etcdwamp.lease.Lease`;
        with ``keep_alive`` it is renewed automatically until revoked or lost."""
        return await grant(self.transport, ttl, keep_alive=keep_alive, on_lost=on_lost)

    def lease_revoke(self, lease_id: int) -> Deferred[LeaseRevokeResult]:
        """Revoke a lease, deleting every key attached to it."""
        return self._request(lease_revoke_request(lease_id))

    def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> Deferred[LeaseInfo]:
        """Remaining TTL of a lease (``-1`` once gone) and optionally its keys."""
        return self._request(lease_ttl_request(lease_id, keys=keys))

    def lock(self, name: bytes, *, ttl: int = 10,
             on_lost: Callable[[errors.LeaseExpired], object] | None = None) -> Lock:
        """A :class:`~etcdwamp.lock.Lock` named ``name`` (not yet acquired);
        ``on_lost`` is called if its lease is lost while it is held."""
        return Lock(self.transport, name, ttl=ttl, on_lost=on_lost)

    def election(self, name: bytes, *, ttl: int = 10) -> Election:
        """An :class:`~etcdwamp.lock.Election` named ``name``."""
        return Election(self.transport, name, ttl=ttl)

    # -- namespaces -------------------------------------------------------------

    def namespace(self, prefix: bytes) -> Namespace[Client]:
        """A view of this client whose keys all live under ``prefix``; see
        :class:`~etcdwamp.namespace.Namespace`."""
        return Namespace(self, prefix)

    # -- auth administration ---------------------------------------------------

    @deferred
    async def auth_enable(self) -> None:
        """Turn authentication on (a ``root`` user with the ``root`` role must exist)."""
        await self._call(auth_enable_request())

    @deferred
    async def auth_disable(self) -> None:
        """Turn authentication off (as ``root``)."""
        await self._call(auth_disable_request())

    @deferred
    async def user_add(self, user: str, password: str) -> None:
        """Create a user with a password."""
        await self._call(user_add_request(user, password))

    @deferred
    async def role_add(self, role: str) -> None:
        """Create a role (grant it permissions with :meth:`role_grant_permission`)."""
        await self._call(role_add_request(role))

    @deferred
    async def user_grant_role(self, user: str, role: str) -> None:
        """Give ``user`` the permissions of ``role``."""
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
        on_event: Callable[[WatchEvent], object] | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Sequence[WatchFilter | str] = (),
        progress_notify: bool = True,
    ) -> Watch:
        """Watch one or several keys/key sets; see :mod:`etcdwamp.watch`.

        Returns a :class:`Watch` at once; ``await`` it (or its ``created``) to
        know etcd confirmed the watch. Batches go to ``callback`` if given, each
        event on its own to ``on_event`` if given, else batches to ``async for
        batch in watch``. ``start_revision`` 0 means "from now"; an old one
        replays history from there.
        """
        if isinstance(keys, (bytes, bytearray, memoryview, KeySet)):
            keysets: list[bytes | KeySet] = [keys if isinstance(keys, KeySet) else bytes(keys)]
        elif isinstance(keys, str):
            raise TypeError("keys must be bytes or KeySet, not str")
        else:
            keysets = list(keys)
        return Watch(self.transport, keysets, callback, on_event=on_event,
                     start_revision=start_revision, prev_kv=prev_kv, filters=filters,
                     progress_notify=progress_notify)

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
