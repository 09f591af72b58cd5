"""The asyncio flavour, as ``autobahn.asyncio``: ``from etcdwamp.asyncio import Client``.

Same methods, arguments, results and exceptions as :class:`etcdwamp.Client`
(Twisted), awaited in asyncio code; ``async with Client(url=...) as etcd:``
closes it. Watches (``async for batch in etcd.watch(...)``), leases, locks,
elections, ``range_iter``, coalescing, auth, TLS, failover and pmap
(``Database(etcd)``) work unchanged, because everything above HTTP is one
shared code base: it uses Deferreds as plain futures (no reactor runs) and
hands users :class:`~etcdwamp._deferred.Dual` objects, which an asyncio task
awaits like a future. Cancelling the task that awaits a call (or
``asyncio.wait_for`` running out) cancels the request at once with
``asyncio.CancelledError``; it is not re-sent. Only time (the running loop,
:class:`~etcdwamp.asyncio.clock.LoopClock`) and HTTP
(:class:`~etcdwamp.asyncio.http.AiohttpHTTP`) are asyncio's own.

Why aiohttp
-----------
Measured (``benchmarks/client.py``, one run, etcd 3.4 on a 2-core machine): a
bare aiohttp session posting the gateway's JSON did 1,374 sequential puts/s
and 6,713 puts/s at 64 outstanding, against 1,010 and 2,748 for a bare treq
client (Twisted's HTTP stack, the only other one at hand, and it would need a
reactor in an asyncio program), at 0.107 against 0.332 ms of client CPU per
concurrent put. Beyond speed it streams response bodies (watches stay open
for hours), pools keep-alive connections per host, speaks TLS with client
certificates, and cancels a request by dropping its connection. The client
itself runs at 0.75-0.94x bare aiohttp without coalescing (an extra task and
loop turns per request bridge the shared code) and 2.2-4x with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..budget import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED
from ..client import Client as _TwistedClient
from ..metrics import NO_METRICS, ClientMetrics
from ..probe import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT
from ..transport import HTTP
from ..wire import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS
from .clock import LoopClock
from .http import AiohttpHTTP, ssl_context

__all__ = ["Client", "LoopClock"]


class Client(_TwistedClient):
    """An etcd3 client for asyncio (see the module docstring).

    :param url: the endpoint, e.g. ``"http://127.0.0.1:2379"``; or ``endpoints``
        (neither: ``$ETCDWAMP_ENDPOINTS``, ``$ETCDCTL_ENDPOINTS``, localhost)
    :param loop: the asyncio loop (default: the running one, on first use)

    Every other argument is :class:`etcdwamp.Client`'s.
    """

    framework = "asyncio"

    def __init__(
        self,
        url: str | None = None,
        *,
        endpoints: Sequence[str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_size: int = 64,
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
        clock = LoopClock(loop)
        super().__init__(
            clock, url, endpoints=endpoints, timeout=timeout, connect_timeout=connect_timeout,
            pool_size=pool_size, clock=clock, api_prefix=api_prefix,
            max_request_bytes=max_request_bytes, max_txn_ops=max_txn_ops, user=user,
            password=password, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
            coalesce=coalesce, coalesce_window=coalesce_window,
            max_connections=max_connections, max_queued=max_queued,
            require_leader=require_leader, attempt_timeout=attempt_timeout,
            probe_interval=probe_interval, probe_timeout=probe_timeout, metrics=metrics,
            transport=transport)

    @staticmethod
    def _grpc_http(reactor: Any, clock: Any, *, connect_timeout: float, ca_file: str | None,
                   cert_file: str | None, key_file: str | None) -> HTTP:
        from ..grpc.http import GrpcHTTP
        from ..grpc.sockets import connect_asyncio, h2_ssl_context

        context = None
        if ca_file is not None or cert_file is not None:
            context = h2_ssl_context(ca_file, cert_file, key_file)

        def connect(endpoint: str) -> Any:
            return connect_asyncio(endpoint, timeout=connect_timeout, context=context,
                                   clock=clock)

        grpc_http: HTTP = GrpcHTTP(connect, clock=clock)
        return grpc_http

    @staticmethod
    def _default_http(reactor: object, *, connect_timeout: float, pool_size: int,
                      ca_file: str | None, cert_file: str | None,
                      key_file: str | None) -> HTTP:
        assert isinstance(reactor, LoopClock)
        tls = None
        if ca_file is not None or cert_file is not None:
            tls = ssl_context(ca_file, cert_file, key_file)
        return AiohttpHTTP(reactor, connect_timeout=connect_timeout, pool_size=pool_size,
                           tls=tls)
