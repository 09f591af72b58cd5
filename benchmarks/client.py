"""Throughput of etcdwamp's clients, on both event loops, against plain HTTP baselines.

Every implementation talks to the same etcd from one process; ratios are taken
against the plain baseline *of the same loop*, measured in the same run.

The Twisted half runs first, on Twisted's default reactor (epoll) under
``twisted.internet.task.react``:

- **plain treq**: a bare ``treq.client.HTTPClient`` over an ``Agent`` with a
  persistent ``HTTPConnectionPool`` (``maxPersistentPerHost=64``) that posts
  the same JSON bodies (keys and values base64, ints as strings) to
  ``/v3/kv/...``, checks ``response.code == 200`` and decodes the answer with
  ``json.loads`` (plus the base64 of the keys and values it reads);
- **etcdwamp**: ``etcdwamp.Client`` with its defaults (request validation,
  timeouts, failover bookkeeping, typed results);
- **etcdwamp coalesce=True**: ``etcdwamp.Client(coalesce=True)``, on the rows
  where concurrent single-key calls can share a transaction;
- **txaioetcd (patched)**, when installed (``pip install --no-deps
  txaioetcd``; not a project dependency): the abandoned predecessor, 18.10.2,
  as its README uses it. Two patches, both needed to run it at all here: its
  hard-coded ``/v3alpha/`` paths become ``/v3/`` (etcd 3.4 no longer serves
  ``v3alpha``), and treq's global pool, which its module-level ``treq.post``
  uses, gets the same 64 persistent connections as every column (treq's
  default keeps 2 and opens and closes a connection per extra request:
  ~20,000 sockets in TIME_WAIT per run on a machine others share).

Then the asyncio half, with ``asyncio.run`` in the same process (the reactor
has stopped; the asyncio client needs none):

- **plain aiohttp**: a bare ``aiohttp.ClientSession`` with the same
  connection limit (``TCPConnector(limit=64)``) posting the same JSON bodies,
  checking ``status == 200``, decoding with ``json.loads`` and base64 as the
  treq baseline does;
- **etcdwamp.asyncio** and **etcdwamp.asyncio coalesce=True**:
  ``etcdwamp.asyncio.Client`` (aiohttp underneath) with its defaults;
- **aetcd (gRPC)**, when installed (``pip install aetcd``; not a project
  dependency): the asyncio gRPC client, 1.0.0, speaking etcd's native
  protocol (no gateway); it works against etcd 3.4 unpatched, except that
  ``transaction()`` must be given ``failure=[]`` (its default ``None`` fails
  with ``TypeError``). Its ratio is taken against plain aiohttp too.

A column whose package is missing prints ``skipped: <reason>``; nothing is
estimated in its place.

Why two loops one after the other, not both on Twisted's asyncio reactor
(``--reactor asyncio`` runs that way, to check): each client is measured on
the loop its users run. Twisted's asyncio reactor costs the Twisted client
CPU: in one A/B run (3 processes per reactor, alternated; 2,000 sequential and
6,000 concurrent puts of etcdwamp's Twisted client) a sequential put took
314-319 us of client CPU on the asyncio reactor against 249-258 us on epoll
(+25%, and 7% fewer puts/s), a put at 64 outstanding 220-236 us against
190-202 us (+15%); the put rate at 64 outstanding was higher on the asyncio
reactor (2,900-3,700/s against 1,600-2,600/s), which is etcd batching the
burstier arrivals, not a cheaper client.

Rows, each counted in requests per second of wall-clock time
(``time.perf_counter``):

1. sequential put: one put at a time;
2. sequential get: one single-key range at a time (keys preloaded);
3. concurrent put: puts with 64 requests outstanding;
4. concurrent get: single-key gets with 64 requests outstanding;
5. prefix range: full reads of a prefix holding 10,000 keys (preloaded in
   transactions of 100 puts); the baselines decode every key and value;
6. sequential txn: a transaction "create if absent" (compare ``version == 0``,
   one put in ``success``), which must succeed;
7. watch put -> event: one at a time, a put of a fresh key under the row's
   prefix, done when the put answered and the implementation's watch on the
   prefix delivered the key's event (ops/s = 1/latency). The watch runs on a
   second client of the same implementation (a second ``Client``, aiohttp
   session, treq ``Agent`` or aetcd client), opened and confirmed by etcd
   before the warm-up, one per implementation, closed at the row's end; the
   puts go through the implementation's own client. The plain baselines read
   one streaming ``POST /v3/watch``: newline-split JSON frames, base64 of each
   key and value; aetcd pumps ``await client.watch_prefix(prefix)`` in a task.
   txaioetcd has no cell: its watch neither says when etcd created it nor
   closes when cancelled. The coalescing columns do not run it.

For each loop a table of ops/s with ratios, then a table of the client's
CPU time (``time.process_time``: the whole process, every thread, so gRPC's
own threads count for aetcd) per operation; then the watch row's p50 and p99
latency per implementation, in ms; then the summary in the layout
of issue 11 (markdown, one column per implementation), and what ``wrk``
(when installed) drives through the same gateway with raw HTTP puts, on 1
and on 64 connections, and etcdwamp's fraction of it.

Where a request's time goes
---------------------------
Profiled with cProfile (shares of profiled time, scaled to the unprofiled CPU
time; the profiler inflates Python-heavy parts) against a local etcd 3.4 from
``etcdwamp.testing.EtcdCluster`` on the 2-core test machine, other work running:

- A sequential put costs ~260 us of client CPU (the same for a get): ~60 us
  Twisted's reactor and TCP transport (epoll registration of the writer per
  request, ``doWrite``/``doRead``), ~60 us ``twisted.web``'s HTTP/1.1 client
  (writing the request, ``LineReceiver`` parsing the status line and seven
  headers one by one, the response and body-delivery objects), ~40-65 us the
  kernel's ``send``/``recv`` on loopback (a ``send`` wakes etcd on the same
  cores), ~30 us Deferreds and coroutines, ~25 us etcdwamp itself (building and
  validating the request, ``json.dumps``, the deadline timer, failover
  bookkeeping, ``json.loads`` and the typed result) and ~25 us other builtins.
  What etcdwamp had on top of that before this profile: treq's per-request
  layers (a ``FileBodyProducer`` streaming the body through a cooperator task,
  i.e. an extra reactor turn; header and cookie-jar wrappers; a buffered
  response), and ``Agent.request`` parsing the URL and building a new
  endpoint object for every request. The default transport now posts straight
  to ``Agent._requestWithEndpoint`` with the endpoint, pool key, URL and
  header set worked out once and the body written in one ``write``; treq
  remains only for injected clients.
- A 10,000-key range costs ~21 ms: ~6-9 ms ``json.loads`` of the 1.7 MB answer
  (the same for the baseline), ~6 ms the two base64 decodes per key-value,
  ~5 ms building the key-values, ~1 ms HTTP and reactor. Converting each
  key-value's four numbers (int64 travel as JSON strings) and a frozen
  dataclass ``__init__`` per key-value were as much again; the numbers are now
  converted on first use and key-values are built without ``__init__``.
  What remains above the baseline (~5%) is the cyclic GC, not decoding: with
  the collector off both cost the same. The baseline's ``(key, value)`` tuples
  and json's string-only dicts are untracked by the collector; 10,000
  ``KeyValue`` objects are tracked, survive into the old generation and bring
  a full collection forward. (Switching the GC off is process-wide, so the
  client does not.)
- Concurrent puts are bound by per-request cost: one HTTP exchange per put
  costs the same ~200 us of CPU whatever the concurrency. With
  ``coalesce=True`` the 64 puts of a turn travel as one transaction: ~25 us of
  client CPU per put, and etcd applies one Raft entry instead of 64.
- On asyncio, a sequential put of ``etcdwamp.asyncio`` costs ~100 us more
  client CPU than plain aiohttp (330-430 us against 235-315 us per put over
  3,000 puts, three runs). cProfile counts where: plain aiohttp needs 3.7
  event-loop iterations per put (each an ``epoll_wait`` and a pass of
  ``_run_once``), etcdwamp.asyncio 6.8, with one more task and three more
  ``call_soon`` per request. The exchange runs as an asyncio task of its own
  (``AiohttpHTTP._run``), its result reaches the shared code through
  ``Deferred.fromFuture`` (a done-callback, scheduled for the next turn), and
  the ``Dual`` hands the outcome to the awaiting task with ``call_soon``
  again; on top come the shared code's Deferred driver (the
  ``_call_once``/``_send``/``_timed`` coroutines under
  ``Deferred.fromCoroutine``, four callback chains per call) and etcdwamp's
  own request and answer work (~25 us, as on Twisted). aiohttp itself costs
  the same in both. At 64 outstanding the picture is the same: 7 instead of
  5 ``call_soon`` and 2 tasks instead of 1 per put, 153-193 us of client CPU
  per put against 97-107 us (two runs of 6,000 puts). The overhead is per
  request, so it shows on the sequential and uncoalesced concurrent rows;
  with coalescing, one exchange carries up to 128 calls and the asyncio
  client is far ahead of plain aiohttp. A prototype that wakes the awaiting
  task at once instead of through ``call_soon`` when the outcome arrives
  outside any task saved 13-39 us per sequential put (three runs); it is not
  in the library.

Every row runs a short warm-up for each implementation, then several rounds
that alternate which of a loop's implementations goes first, so drift (etcd's
WAL and compaction, the page cache, other work on the machine) hits them
alike. The two loops run one after the other, so compare ratios, not raw
rates, across loops. Each implementation and row uses its own key prefix
under ``bench/<run id>/``, deleted at the end.

Measured
--------
The newest runs, with the gRPC columns (``--grpc``) and the watch row (2026-12-07), are
in README.rst and docs/client.rst. The run below predates both.

One run (``python benchmarks/client.py``, 2026-11-26, 108 s), etcd 3.4.23
from ``EtcdCluster`` on the 2-core machine; each cell is ops/s (range:
seconds per full read; CPU: client ms per op) and, in parentheses, the ratio
to the same loop's plain baseline (CPU: <1 is cheaper). aetcd 1.0.0 and
txaioetcd 18.10.2 were installed for the run.

row                     plain treq       etcdwamp   coalesce=True      txaioetcd
----------------------  ----------  -------------  --------------  -------------
sequential put/s             1,025  1,271 (1.24x)               -    900 (0.88x)
sequential get/s             1,055  1,336 (1.27x)               -  1,093 (1.04x)
put/s, 64 outstanding        2,621  4,274 (1.63x)  14,275 (5.45x)  2,328 (0.89x)
get/s, 64 outstanding        2,344  3,302 (1.41x)  14,553 (6.21x)  2,100 (0.90x)
10,000-key range, s          0.106  0.110 (0.96x)               -  0.121 (0.88x)
sequential txn/s               811    992 (1.22x)               -    749 (0.92x)
CPU/sequential put, ms        0.46   0.28 (0.61x)               -   0.54 (1.18x)
CPU/concurrent put, ms        0.35   0.18 (0.53x)   0.026 (0.07x)   0.40 (1.15x)
CPU/10k range, ms               24     31 (1.28x)               -     41 (1.68x)

row                     plain aiohttp  etcdwamp.asyncio   coalesce=True    aetcd (gRPC)
----------------------  -------------  ----------------  --------------  --------------
sequential put/s                1,390     1,226 (0.88x)               -   1,612 (1.16x)
sequential get/s                1,562     1,426 (0.91x)               -   1,832 (1.17x)
put/s, 64 outstanding           6,635     4,887 (0.74x)  15,149 (2.28x)  11,651 (1.76x)
get/s, 64 outstanding           3,708     3,269 (0.88x)  14,618 (3.94x)   5,501 (1.48x)
10,000-key range, s             0.100     0.104 (0.95x)               -   0.013 (7.80x)
sequential txn/s                1,078       963 (0.89x)               -   1,324 (1.23x)
CPU/sequential put, ms           0.23      0.31 (1.36x)               -    0.35 (1.52x)
CPU/concurrent put, ms           0.11      0.17 (1.57x)   0.025 (0.23x)   0.079 (0.72x)
CPU/10k range, ms                  22        28 (1.25x)               -    2.16 (0.10x)

wrk: 2,113 puts/s on 1 connection, 11,919 on 64; the 10,000-key range read
by wrk on one connection, nothing decoded: 0.077 s.

What it says:

- Twisted: etcdwamp is 1.22-1.63x plain treq on every row but the range
  (0.96x), at about half treq's CPU per request; ``coalesce=True`` puts at
  64 outstanding 5.5x treq, 6.1x txaioetcd and 1.2x what ``wrk`` drives
  through the gateway with raw HTTP. Patched txaioetcd is 0.88-1.04x treq
  (it *is* treq plus its own layers).
- The range is the gateway's: it takes 0.077 s to produce the answer (wrk,
  which decodes nothing), and the answer only leaves etcd once it is whole,
  so a client's decoding adds to that time rather than overlapping it. A
  client at 1.2x plain treq (0.088 s) would have to decode 10,000 key-values
  in ~11 ms; ``json.loads`` and the 20,000 base64 decodes alone take ~9 ms
  (plain treq spends 24 ms of CPU in all). The client CPU of the range stays
  1.25-1.28x the baselines': the cyclic GC over 10,000 tracked ``KeyValue``
  objects (see above), the price of typed results.
- asyncio: etcdwamp.asyncio is 0.74-0.95x plain aiohttp without
  coalescing: aiohttp is the cheaper baseline (0.11 ms CPU per concurrent put
  against treq's 0.35) and the loop crossing costs 60-70 us a request (see
  above). With coalescing it is 2.3x (puts) and 3.9x (gets) aiohttp at 64
  outstanding, ahead of aetcd (15,149 against 11,651 puts/s).
- aetcd (gRPC, no JSON and base64): 1.16-1.76x aiohttp; 7.8x on the
  10,000-key range (no gateway, protobuf decoding in C: 2.2 ms of client CPU
  against ~22-31 ms for every JSON client).
- Run to run, wall-clock rates move by up to ~30% with other work on the
  machine (the previous run had sequential txn at 1.13x treq, this one
  1.22x); CPU per op and the ratios within a loop are steadier. In an
  earlier run the Twisted half's single delete of its ~150,000 keys made
  etcd 3.4 serve the asyncio half's reads ~7x slower (a separate check:
  1,340 -> 180 gets/s after such a delete, puts unchanged, 1,600 again after
  a compaction); the keys are now deleted once, at the end.

Usage::

    PYTHONPATH=. python benchmarks/client.py            # own throw-away etcd
    PYTHONPATH=. python benchmarks/client.py --quick    # smoke run (CI)
    PYTHONPATH=. python benchmarks/client.py --url http://127.0.0.1:2379
    PYTHONPATH=. python benchmarks/client.py --reactor asyncio   # both on one loop
    PYTHONPATH=. python benchmarks/client.py --only asyncio      # one loop's half
    PYTHONPATH=. python benchmarks/client.py --metrics   # + a column with Prometheus metrics

``--metrics`` adds a column per loop, **etcdwamp metrics**: the same client
with ``metrics=PrometheusClientMetrics(CollectorRegistry())``, alternated with
the plain one in the same rounds; its ratio is taken against etcdwamp without
metrics, and a last line prints that ratio for put/s (the metrics' cost).

Exits 0 when every row ran and every answer checked out, non-zero otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import gc
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import aiohttp
import treq
from twisted.internet import defer, protocol, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent

from etcdwamp import Client, CompVersion, KeySet, OpSet, Transaction
from etcdwamp.asyncio import Client as AsyncioClient
from etcdwamp.testing import EtcdCluster
from etcdwamp.watch import WatchBatch

try:  # only for --metrics (the etcdwamp[metrics] extra)
    from prometheus_client import CollectorRegistry

    from etcdwamp.prometheus import PrometheusClientMetrics
except ImportError:  # pragma: no cover - depends on the installation
    CollectorRegistry = None  # type: ignore[assignment,misc]

CONCURRENCY = 64
VALUE_SIZE = 64
PRELOAD_BATCH = 100  # puts per preload transaction (etcd allows 128)
PRELOAD_CONCURRENCY = 8

_JSON_HEADERS: dict[bytes | str, list[bytes | str]] = {b"Content-Type": [b"application/json"]}


class BenchmarkFailure(Exception):
    """An answer was wrong, or the run did not complete."""


Op = Callable[[int], Awaitable[None]]
#: called with the key of every event a watch delivers
OnKey = Callable[[bytes], None]
#: ends a watch and closes what it opened
Closer = Callable[[], Awaitable[None]]


class Implementation(Protocol):
    """What a row needs from a client under test."""

    name: str
    #: runs only on the rows where concurrent single-key calls can share a txn
    coalescing: bool

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes, expected: bytes) -> None: ...

    async def range_prefix(self, prefix: bytes, expected: int) -> None: ...

    async def txn_create(self, key: bytes, value: bytes) -> None: ...

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> Closer | None:
        """Watch ``prefix`` on a second client or connection of the same kind, return
        once etcd confirmed the watch; ``on_key`` gets each event's key. None: the
        implementation cannot watch (it then has no watch row)."""

    async def close(self) -> None: ...


class Loop(Protocol):
    """What a row needs from the event loop its implementations run on."""

    name: str

    async def gather(self, work: Sequence[Coroutine[Any, Any, None]]) -> None:
        """Run coroutines concurrently; raise the first failure itself."""

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a thread, the loop running meanwhile."""

    def signal(self) -> tuple[Awaitable[None], Callable[[], None]]:
        """Something to await and the call that wakes it (once)."""


class TwistedLoop:
    """Coroutines driven by ``Deferred.fromCoroutine`` on the reactor."""

    name = "Twisted"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    async def gather(self, work: Sequence[Coroutine[Any, Any, None]]) -> None:
        try:
            await defer.gatherResults([Deferred.fromCoroutine(c) for c in work],
                                      consumeErrors=True)
        except defer.FirstError as exc:
            exc.subFailure.raiseException()

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self.reactor.getThreadPool()
        return await threads.deferToThreadPool(self.reactor, pool, fn, *args)

    def signal(self) -> tuple[Awaitable[None], Callable[[], None]]:
        waiter: Deferred[None] = Deferred()
        return waiter, functools.partial(waiter.callback, None)


class AsyncioLoop:
    """Coroutines run as asyncio tasks."""

    name = "asyncio"

    async def gather(self, work: Sequence[Coroutine[Any, Any, None]]) -> None:
        tasks = [asyncio.ensure_future(c) for c in work]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def signal(self) -> tuple[Awaitable[None], Callable[[], None]]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return waiter, functools.partial(waiter.set_result, None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _prefix_end(prefix: bytes) -> bytes:
    # Benchmark prefixes are ASCII and end in "/", so the last byte is never 0xFF.
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _watch_body(prefix: bytes) -> bytes:
    return json.dumps({"create_request": {"key": _b64(prefix),
                                          "range_end": _b64(_prefix_end(prefix))}}).encode()


class WatchFrames:
    """What a plain watcher must do with the gateway's watch stream: split it into
    newline-ended JSON frames (keeping a frame split across chunks), ``json.loads``
    each, base64-decode each event's key and value; ``created`` is called once, at
    the frame confirming the watch."""

    def __init__(self, on_key: OnKey, created: Callable[[], None]) -> None:
        self._on_key = on_key
        self._created: Callable[[], None] | None = created
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        """Decode the complete frames of ``data``; raise BenchmarkFailure at an error frame."""
        *frames, self._buffer = (self._buffer + data).split(b"\n")
        b64decode = base64.b64decode
        for frame in frames:
            if not frame.strip():
                continue
            result = json.loads(frame).get("result")
            if result is None:
                raise BenchmarkFailure(f"watch stream failed: {frame[:200]!r}")
            if result.get("created") and self._created is not None:
                created, self._created = self._created, None
                created()
            for event in result.get("events", ()):
                kv = event["kv"]
                b64decode(kv.get("value", ""))
                self._on_key(b64decode(kv["key"]))


class _WatchReceiver(protocol.Protocol):
    """A Twisted response body delivered to a WatchFrames; ``created`` fails if the
    stream ends before etcd confirmed the watch."""

    def __init__(self, on_key: OnKey) -> None:
        self.created: Deferred[None] = Deferred()
        self.frames = WatchFrames(on_key, functools.partial(self.created.callback, None))

    def dataReceived(self, data: bytes) -> None:
        self.frames.feed(data)

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        if not self.created.called:
            self.created.errback(BenchmarkFailure(f"treq watch: the stream ended: {reason}"))


class PlainBaseline:
    """The least a client can do: POST JSON, check 200, ``json.loads`` (and the
    base64 of what it reads). Subclasses bring the HTTP library."""

    name = "baseline"
    coalescing = False

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def put(self, key: bytes, value: bytes) -> None:
        answer = await self._post("put", {"key": _b64(key), "value": _b64(value)})
        if "header" not in answer:
            raise BenchmarkFailure(f"{self.name} put {key!r}: no header in {answer!r}")

    async def get(self, key: bytes, expected: bytes) -> None:
        answer = await self._post("range", {"key": _b64(key)})
        kvs = answer.get("kvs", [])
        if len(kvs) != 1 or base64.b64decode(kvs[0].get("value", "")) != expected:
            raise BenchmarkFailure(f"{self.name} get {key!r}: unexpected answer {answer!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        answer = await self._post(
            "range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        b64decode = base64.b64decode
        pairs = [(b64decode(kv["key"]), b64decode(kv.get("value", "")))
                 for kv in answer.get("kvs", [])]
        if len(pairs) != expected:
            raise BenchmarkFailure(
                f"{self.name} range {prefix!r}: {len(pairs)} keys, expected {expected}"
            )

    async def txn_create(self, key: bytes, value: bytes) -> None:
        k = _b64(key)
        answer = await self._post("txn", {
            "compare": [{"result": "EQUAL", "target": "VERSION", "key": k, "version": "0"}],
            "success": [{"request_put": {"key": k, "value": _b64(value)}}],
        })
        if answer.get("succeeded") is not True:
            raise BenchmarkFailure(f"{self.name} txn {key!r}: did not succeed: {answer!r}")

    async def close(self) -> None:
        raise NotImplementedError


class TreqBaseline(PlainBaseline):
    """A bare ``treq.client.HTTPClient`` over an ``Agent`` with a persistent pool."""

    name = "treq"

    def __init__(self, reactor: Any, url: str) -> None:
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = CONCURRENCY
        agent = Agent(reactor, pool=self._pool)  # type: ignore[no-untyped-call]
        self._http = treq.client.HTTPClient(cast(IAgent, agent))
        self._url = url.rstrip("/")
        self._base = self._url + "/v3/kv/"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        response = await self._http.post(self._base + path, data=data, headers=_JSON_HEADERS)
        content = await treq.content(response)
        if response.code != 200:
            raise BenchmarkFailure(f"treq {path}: HTTP {response.code}: {content[:200]!r}")
        answer: dict[str, Any] = json.loads(content)
        return answer

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> Closer:
        # A second client (an Agent without a persistent pool) for the stream.
        agent = Agent(self._reactor)  # type: ignore[no-untyped-call]
        http = treq.client.HTTPClient(cast(IAgent, agent))
        response = await http.post(self._url + "/v3/watch", data=_watch_body(prefix),
                                   headers=_JSON_HEADERS, unbuffered=True)
        if response.code != 200:
            raise BenchmarkFailure(f"treq watch: HTTP {response.code}")
        receiver = _WatchReceiver(on_key)
        response.deliverBody(receiver)
        await receiver.created

        async def close() -> None:
            receiver.transport.stopProducing()  # type: ignore[union-attr]

        return close

    async def close(self) -> None:
        await self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]


class AiohttpBaseline(PlainBaseline):
    """A bare ``aiohttp.ClientSession`` limited to the same 64 connections."""

    name = "aiohttp"

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")
        self._base = self._url + "/v3/kv/"
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:  # a session belongs to the loop running it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY))
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        async with self._session.post(self._base + path, data=data,
                                      headers={"Content-Type": "application/json"}) as response:
            content = await response.read()
        if response.status != 200:
            raise BenchmarkFailure(f"aiohttp {path}: HTTP {response.status}: {content[:200]!r}")
        answer: dict[str, Any] = json.loads(content)
        return answer

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> Closer:
        # A second session for the stream, without the default 5-minute total timeout.
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        frames = WatchFrames(on_key, functools.partial(created.set_result, None))
        response = await session.post(self._url + "/v3/watch", data=_watch_body(prefix),
                                      headers={"Content-Type": "application/json"})

        async def pump() -> None:
            async for chunk in response.content.iter_any():
                frames.feed(chunk)
            raise BenchmarkFailure("aiohttp watch: the stream ended")

        async def close() -> None:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream
            response.close()
            await session.close()

        if response.status != 200:
            response.close()
            await session.close()
            raise BenchmarkFailure(f"aiohttp watch: HTTP {response.status}")
        stream = asyncio.ensure_future(pump())
        await asyncio.wait([created, stream], return_when=asyncio.FIRST_COMPLETED)
        if not created.done():
            await close()
            stream.result()  # the pump's failure
        return close

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Etcdwamp:
    """etcdwamp's client (either loop's) as an application would use it; ``make``
    builds it (and, for the watch row, a second one that watches)."""

    def __init__(self, make: Callable[[], Client], name: str = "etcdwamp", *,
                 coalescing: bool = False) -> None:
        self._make = make
        self.client = make()
        self.name = name
        self.coalescing = coalescing

    async def put(self, key: bytes, value: bytes) -> None:
        await self.client.put(key, value)

    async def get(self, key: bytes, expected: bytes) -> None:
        result = await self.client.get(key)
        if len(result.kvs) != 1 or result.kvs[0].value != expected:
            raise BenchmarkFailure(f"{self.name} get {key!r}: unexpected result {result!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        result = await self.client.get(KeySet(prefix, prefix=True))
        if len(result.kvs) != expected:
            raise BenchmarkFailure(
                f"{self.name} range {prefix!r}: {len(result.kvs)} keys, expected {expected}"
            )

    async def txn_create(self, key: bytes, value: bytes) -> None:
        result = await self.client.txn(
            Transaction(compare=[CompVersion(key, "==", 0)], success=[OpSet(key, value)])
        )
        if not result.succeeded:
            raise BenchmarkFailure(f"{self.name} txn {key!r}: did not succeed: {result!r}")

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> Closer:
        watcher = self._make()

        def deliver(batch: WatchBatch) -> None:
            for event in batch.events:
                on_key(event.kv.key)

        watch = await watcher.watch(KeySet(prefix, prefix=True), deliver)

        async def close() -> None:
            await watch.cancel()
            await watcher.close()

        return close

    async def close(self) -> None:
        await self.client.close()


class TxaioEtcd:
    """txaioetcd 18.10.2, the abandoned predecessor, as its README uses it.

    Patched only where it cannot talk to etcd 3.4 otherwise: its gateway paths
    are hard-coded ``/v3alpha/...``, which etcd 3.4 no longer serves; they are
    rewritten to ``/v3/...``. It posts with module-level ``treq.post``, i.e.
    treq's global pool; that pool is given the same 64 persistent connections
    per host as every other column (treq's default keeps 2 and opens, then
    closes, a connection for every other request: tens of thousands of
    TIME_WAIT sockets per run on a machine others share).
    """

    name = "txaioetcd"
    coalescing = False

    def __init__(self, module: Any, reactor: Any, url: str) -> None:
        self._tx = module
        self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = CONCURRENCY
        treq.api.set_global_pool(self._pool)  # type: ignore[no-untyped-call]
        self._client = module.Client(reactor, url)

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.set(key, value)

    async def get(self, key: bytes, expected: bytes) -> None:
        result = await self._client.get(key)
        if len(result.kvs) != 1 or result.kvs[0].value != expected:
            raise BenchmarkFailure(f"txaioetcd get {key!r}: unexpected result {result!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        result = await self._client.get(self._tx.KeySet(prefix, prefix=True))
        if len(result.kvs) != expected:
            raise BenchmarkFailure(
                f"txaioetcd range {prefix!r}: {len(result.kvs)} keys, expected {expected}"
            )

    async def txn_create(self, key: bytes, value: bytes) -> None:
        tx = self._tx
        # submit() raises txaioetcd's Failed when the compare does not hold.
        await self._client.submit(tx.Transaction(compare=[tx.CompVersion(key, "==", 0)],
                                                 success=[tx.OpSet(key, value)]))

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> None:
        """None: no watch row. txaioetcd's ``watch()`` tells nothing of etcd creating
        the watch (its Deferred waits for the stream's end), and cancelling that
        Deferred leaves the stream open: its events still arrive (checked against
        etcd 3.4.23), so the watch could not be closed at the row's end."""
        return None

    async def close(self) -> None:
        await self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]


def make_txaioetcd(reactor: Any, url: str) -> TxaioEtcd | str:
    """The txaioetcd column, or why it cannot run."""
    try:
        txaioetcd = importlib.import_module("txaioetcd")
        commons = importlib.import_module("txaioetcd._client_commons")
        tx = importlib.import_module("txaioetcd._client_tx")
    except Exception as exc:  # ImportError, or its own import-time failure
        return f"txaioetcd not importable ({exc}); pip install --no-deps txaioetcd"
    for module in (commons, tx):
        for name in dir(module):
            if name.startswith("ENDPOINT_"):
                setattr(module, name, getattr(module, name).replace("/v3alpha/", "/v3/"))
    return TxaioEtcd(txaioetcd, reactor, url)


class Aetcd:
    """aetcd, the asyncio gRPC client (etcd's native protocol, no gateway)."""

    name = "aetcd"
    coalescing = False

    def __init__(self, module: Any, url: str) -> None:
        parts = urlsplit(url)
        self._make = functools.partial(module.Client, host=parts.hostname or "127.0.0.1",
                                       port=parts.port or 2379)
        self._client = self._make()

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes, expected: bytes) -> None:
        result = await self._client.get(key)
        if result is None or result.value != expected:
            raise BenchmarkFailure(f"aetcd get {key!r}: unexpected result {result!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        result = await self._client.get_prefix(prefix)
        if len(result) != expected:
            raise BenchmarkFailure(f"aetcd range {prefix!r}: {len(result)} keys, "
                                   f"expected {expected}")

    async def txn_create(self, key: bytes, value: bytes) -> None:
        t = self._client.transactions
        # failure=[] spelled out: aetcd 1.0.0's default (None) fails with TypeError.
        succeeded, _ = await self._client.transaction(compare=[t.version(key) == 0],
                                                      success=[t.put(key, value)], failure=[])
        if succeeded is not True:
            raise BenchmarkFailure(f"aetcd txn {key!r}: did not succeed")

    async def open_watch(self, prefix: bytes, on_key: OnKey) -> Closer:
        watcher = self._make()
        watch = await watcher.watch_prefix(prefix)  # returns once etcd created it

        async def pump() -> None:
            async for event in watch:
                on_key(event.kv.key)

        stream = asyncio.ensure_future(pump())

        async def close() -> None:
            await watch.cancel()  # ends the iteration
            await stream
            await watcher.close()

        return close

    async def close(self) -> None:
        await self._client.close()


def make_aetcd(url: str) -> Aetcd | str:
    """The aetcd column, or why it cannot run."""
    try:
        aetcd = importlib.import_module("aetcd")
    except Exception as exc:
        return f"aetcd not importable ({exc}); pip install aetcd"
    return Aetcd(aetcd, url)


def _key(prefix: bytes, index: int) -> bytes:
    return prefix + b"%07d" % index


def _value(index: int) -> bytes:
    return (b"v%07d-" % index).ljust(VALUE_SIZE, b"x")


@dataclass(frozen=True)
class Row:
    """One benchmark row: ``ops`` measured operations per implementation."""

    slug: str  # used in key prefixes
    title: str
    ops: int
    #: None: the watch row (each implementation's op is a WatchProbe)
    make_op: Callable[[Implementation, bytes], Op] | None
    concurrency: int = 1
    warmup: int = 50
    #: keys (prefix + index, value of index) written before timing
    preload: int = 0
    #: also run the coalescing implementations (rows where coalescing can apply)
    coalesced: bool = False


@dataclass
class Outcome:
    title: str
    ops: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: process CPU time (user + system, every thread) while the implementation ran
    cpu: dict[str, float] = field(default_factory=dict)
    #: etcd's CPU time meanwhile (None entries: etcd's process is not known)
    etcd_cpu: dict[str, float] = field(default_factory=dict)
    #: seconds of each measured op, on the rows that keep them (the watch row)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def rate(self, name: str) -> float:
        return self.ops[name] / self.seconds[name]

    def cpu_ms(self, name: str) -> float:
        """Client CPU per operation, in milliseconds."""
        return 1000 * self.cpu[name] / self.ops[name]

    def latency_ms(self, name: str, quantile: float) -> float:
        """The ``quantile`` (0.5: median) of the op latencies, in milliseconds."""
        ordered = sorted(self.latencies[name])
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def etcd_cpu_ms(self, name: str) -> float | None:
        """etcd's CPU per operation, in milliseconds (None: not measured)."""
        if name not in self.etcd_cpu:
            return None
        return 1000 * self.etcd_cpu[name] / self.ops[name]


#: the etcd process whose CPU is read (set by main: the one started here, or --etcd-pid)
ETCD_PID: int | None = None


def etcd_cpu_seconds() -> float | None:
    """etcd's user + system CPU so far (/proc/<pid>/stat), or None."""
    if ETCD_PID is None:
        return None
    try:
        with open(f"/proc/{ETCD_PID}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(loop: Loop, op: Op, indices: range, concurrency: int) -> None:
    if concurrency == 1:
        for i in indices:
            await op(i)
        return
    pending = iter(indices)

    async def worker() -> None:
        for i in pending:  # the workers share one iterator
            await op(i)

    await loop.gather([worker() for _ in range(min(concurrency, len(indices)))])


async def _preload(loop: Loop, client: Client, prefix: bytes, count: int) -> None:
    batches = iter(range(0, count, PRELOAD_BATCH))

    async def worker() -> None:
        for start in batches:
            stop = min(start + PRELOAD_BATCH, count)
            txn = Transaction(success=[OpSet(_key(prefix, i), _value(i))
                                       for i in range(start, stop)])
            result = await client.txn(txn)
            if not result.succeeded:
                raise BenchmarkFailure(f"preload of {prefix!r} failed: {result!r}")

    await loop.gather([worker() for _ in range(PRELOAD_CONCURRENCY)])


class WatchProbe:
    """The watch row's op for one implementation: put a fresh key under the prefix
    with the implementation's client, return once that put answered and the
    implementation's watch on the prefix (on a second client: see ``open_watch``)
    delivered the key's event; keeps each op's latency."""

    def __init__(self, loop: Loop, impl: Implementation, prefix: bytes) -> None:
        self._loop = loop
        self._impl = impl
        self._prefix = prefix
        self._waiting: dict[bytes, Callable[[], None]] = {}
        self._close: Closer | None = None
        self.latencies: list[float] = []

    def _arrived(self, key: bytes) -> None:
        wake = self._waiting.pop(key, None)
        if wake is not None:
            wake()

    async def open(self) -> bool:
        """Open the watch and wait until etcd created it; False: the implementation
        has no watch."""
        self._close = await self._impl.open_watch(self._prefix, self._arrived)
        return self._close is not None

    async def __call__(self, index: int) -> None:
        key = _key(self._prefix, index)
        arrived, self._waiting[key] = self._loop.signal()
        started = time.perf_counter()
        await self._impl.put(key, _value(index))
        await arrived
        self.latencies.append(time.perf_counter() - started)

    async def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            await close()


def _chunks(ops: int, rounds: int) -> list[range]:
    bounds = [ops * r // rounds for r in range(rounds + 1)]
    return [range(bounds[r], bounds[r + 1]) for r in range(rounds) if bounds[r + 1] > bounds[r]]


async def run_row(loop: Loop, row: Row, impls: Sequence[Implementation], root: bytes,
                  setup: Client, rounds: int) -> Outcome:
    outcome = Outcome(row.title)
    probes: dict[str, WatchProbe] = {}
    try:
        return await _measure_row(loop, row, impls, root, setup, rounds, outcome, probes)
    finally:
        for probe in probes.values():  # one watch per implementation and row
            await probe.close()


async def _measure_row(loop: Loop, row: Row, impls: Sequence[Implementation], root: bytes,
                       setup: Client, rounds: int, outcome: Outcome,
                       probes: dict[str, WatchProbe]) -> Outcome:
    ops: dict[str, Op] = {}
    for impl in [i for i in impls if row.coalesced or not i.coalescing]:
        prefix = root + f"{row.slug}/{loop.name}-{impl.name}/".encode()
        if row.preload:
            await _preload(loop, setup, prefix, row.preload)
        if row.make_op is not None:
            ops[impl.name] = row.make_op(impl, prefix)
        else:
            probe = WatchProbe(loop, impl, prefix)
            probes[impl.name] = probe
            if not await probe.open():
                continue  # no watch: no cell in this row
            ops[impl.name] = probe
        outcome.ops[impl.name] = 0
        outcome.seconds[impl.name] = 0.0
        outcome.cpu[impl.name] = 0.0
    impls = [i for i in impls if i.name in ops]
    # Warm-up on indices past the measured ones (fresh keys for puts and txns).
    for impl in impls:
        await _drive(loop, ops[impl.name], range(row.ops, row.ops + row.warmup), row.concurrency)
    for probe in probes.values():
        probe.latencies.clear()  # the warm-up's
    for number, chunk in enumerate(_chunks(row.ops, rounds)):
        order = impls if number % 2 == 0 else list(reversed(impls))
        for impl in order:
            gc.collect()
            started = time.perf_counter()
            cpu = time.process_time()
            etcd_before = etcd_cpu_seconds()
            await _drive(loop, ops[impl.name], chunk, row.concurrency)
            outcome.seconds[impl.name] += time.perf_counter() - started
            outcome.cpu[impl.name] += time.process_time() - cpu
            etcd_after = etcd_cpu_seconds()
            if etcd_before is not None and etcd_after is not None:
                outcome.etcd_cpu[impl.name] = (outcome.etcd_cpu.get(impl.name, 0.0)
                                               + etcd_after - etcd_before)
            outcome.ops[impl.name] += len(chunk)
    for name, probe in probes.items():
        if name in ops:
            outcome.latencies[name] = probe.latencies
    return outcome


def make_rows(quick: bool) -> list[Row]:
    def scale(n: int) -> int:
        return max(n // 10, 1) if quick else n

    range_keys = scale(10_000)

    def put_op(impl: Implementation, prefix: bytes) -> Op:
        return lambda i: impl.put(_key(prefix, i), _value(i))

    def get_op(impl: Implementation, prefix: bytes) -> Op:
        return lambda i: impl.get(_key(prefix, i), _value(i))

    def range_op(impl: Implementation, prefix: bytes) -> Op:
        return lambda i: impl.range_prefix(prefix, range_keys)

    def txn_op(impl: Implementation, prefix: bytes) -> Op:
        return lambda i: impl.txn_create(_key(prefix, i), _value(i))

    warmup = scale(50) if quick else 50
    seq_get = scale(2000)
    return [
        Row("put", f"sequential put ({scale(2000):,})", scale(2000), put_op, warmup=warmup),
        Row("get", f"sequential get ({seq_get:,})", seq_get, get_op, warmup=warmup,
            preload=seq_get + warmup),
        Row("cput", f"put, {CONCURRENCY} outstanding ({scale(10_000):,})", scale(10_000),
            put_op, concurrency=CONCURRENCY, warmup=2 * CONCURRENCY, coalesced=True),
        Row("cget", f"get, {CONCURRENCY} outstanding ({scale(10_000):,})", scale(10_000),
            get_op, concurrency=CONCURRENCY, warmup=2 * CONCURRENCY, coalesced=True,
            preload=scale(10_000) + 2 * CONCURRENCY),
        Row("range", f"prefix range of {range_keys:,} keys ({scale(40)} reads)", scale(40),
            range_op, warmup=2, preload=range_keys),
        Row("txn", f"sequential txn ({scale(1000):,})", scale(1000), txn_op, warmup=warmup),
        Row("watch", f"watch put -> event ({scale(1000):,})", scale(1000), None,
            warmup=warmup),
    ]


async def run_rows(loop: Loop, rows: Sequence[Row], impls: Sequence[Implementation],
                   root: bytes, setup: Client, rounds: int, *,
                   clean_up: bool) -> list[Outcome]:
    outcomes = []
    try:
        for row in rows:
            outcomes.append(await run_row(loop, row, impls, root, setup, rounds))
            print(f"  done: {loop.name}: {row.title}", file=sys.stderr, flush=True)
        if clean_up:
            # Only once, at the very end: after one delete of the ~150,000 keys
            # a half writes, etcd 3.4 serves reads ~7x slower (measured:
            # 1,340 -> 180 gets/s, puts unchanged) until a compaction.
            await setup.delete(KeySet(root, prefix=True))
    finally:
        for impl in impls:
            await impl.close()
        await setup.close()
    return outcomes


@dataclass
class Column:
    """One implementation's column in the tables."""

    loop: str
    name: str  # the implementation's name within its loop
    label: str
    #: the baseline its ratio is taken against (None: it is a baseline)
    baseline: str | None


COLUMNS = [
    Column("Twisted", "treq", "plain treq", None),
    Column("Twisted", "etcdwamp", "etcdwamp", "treq"),
    Column("Twisted", "coalesced", "etcdwamp coalesce=True", "treq"),
    Column("Twisted", "grpc", "etcdwamp grpc", "treq"),
    Column("Twisted", "grpc_coalesced", "etcdwamp grpc coalesce=True", "treq"),
    Column("Twisted", "txaioetcd", "txaioetcd (patched)", "treq"),
    Column("Twisted", "metrics", "etcdwamp metrics", "etcdwamp"),
    Column("asyncio", "aiohttp", "plain aiohttp", None),
    Column("asyncio", "etcdwamp", "etcdwamp.asyncio", "aiohttp"),
    Column("asyncio", "coalesced", "etcdwamp.asyncio coalesce=True", "aiohttp"),
    Column("asyncio", "grpc", "etcdwamp.asyncio grpc", "aiohttp"),
    Column("asyncio", "grpc_coalesced", "etcdwamp.asyncio grpc coalesce=True", "aiohttp"),
    Column("asyncio", "aetcd", "aetcd (gRPC)", "aiohttp"),
    Column("asyncio", "metrics", "etcdwamp.asyncio metrics", "etcdwamp"),
]


@dataclass
class Results:
    """Everything one run measured."""

    rows: list[Row]
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)  # by loop
    skipped: dict[str, str] = field(default_factory=dict)  # column label -> reason
    wrk: dict[int, float | None] = field(default_factory=dict)  # connections -> puts/s
    #: seconds per read of the range row's prefix by wrk on one connection: the
    #: gateway's own time for the answer, nothing decoded (None: not installed)
    wrk_range: float | None = None
    etcd_version: str = "?"
    reactor: str = "?"
    #: also run the "metrics" columns (--metrics)
    metrics: bool = False
    #: also run the gRPC transport's columns (--grpc)
    grpc: bool = False

    def has(self, column: Column, index: int) -> bool:
        outcomes = self.outcomes.get(column.loop)
        return outcomes is not None and column.name in outcomes[index].ops

    def outcome(self, column: Column, index: int) -> Outcome:
        return self.outcomes[column.loop][index]


def _table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    width = [max(len(r[c]) for r in [headers, *lines]) for c in range(len(headers))]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(width[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], width[1:], strict=True))])

    return "\n".join([fmt(headers), fmt(["-" * w for w in width]), *(fmt(r) for r in lines)])


def format_loop_table(results: Results, loop: str, cpu: bool) -> str:
    """One loop's rows: ops/s (or CPU ms/op) per column, then each one's ratio to
    the loop's baseline (ops/s ratio > 1: faster; CPU ratio < 1: cheaper)."""
    outcomes = results.outcomes[loop]
    columns = [c for c in COLUMNS if c.loop == loop
               and any(results.has(c, i) for i in range(len(outcomes)))]
    unit = "CPU ms/op" if cpu else "ops/s"
    headers = [f"{loop}: row", *(f"{c.label} {unit}" for c in columns),
               *(f"{c.label} {'CPU ' if cpu else ''}ratio" for c in columns if c.baseline)]
    lines = []
    for i, o in enumerate(outcomes):
        def value(c: Column, o: Outcome = o, i: int = i) -> str:
            if not results.has(c, i):
                return "-"
            return f"{o.cpu_ms(c.name):.3f}" if cpu else f"{o.rate(c.name):,.1f}"

        def ratio(c: Column, o: Outcome = o, i: int = i) -> str:
            if not results.has(c, i):
                return "-"
            assert c.baseline is not None
            if cpu:
                return f"{o.cpu_ms(c.name) / o.cpu_ms(c.baseline):.2f}"
            return f"{o.rate(c.name) / o.rate(c.baseline):.2f}"

        lines.append([o.title, *(value(c) for c in columns),
                      *(ratio(c) for c in columns if c.baseline)])
    return _table(headers, lines)


def format_latency_table(results: Results, loop: str) -> str | None:
    """One loop's watch row as latencies: p50 and p99 per implementation, in ms
    (None: the loop has no row that kept latencies)."""
    outcome = next((o for o in results.outcomes[loop] if o.latencies), None)
    if outcome is None:
        return None
    lines = [[c.label, f"{outcome.latency_ms(c.name, 0.5):.3f}",
              f"{outcome.latency_ms(c.name, 0.99):.3f}"]
             for c in COLUMNS if c.loop == loop and c.name in outcome.latencies]
    return _table([f"{loop}: {outcome.title}", "p50 ms", "p99 ms"], lines)


def _etcd_ms(digits: int) -> Callable[[Outcome, str], str]:
    def show(o: Outcome, name: str) -> str:
        ms = o.etcd_cpu_ms(name)
        return "?" if ms is None else f"{ms:.{digits}f}"
    return show


def format_summary(results: Results) -> str:
    """The issue-11 layout (markdown): one column per implementation, both loops."""
    slugs = [r.slug for r in results.rows]

    def index(slug: str) -> int:
        return slugs.index(slug)

    lines: list[list[str]] = []
    specs: list[tuple[str, str, Callable[[Outcome, str], str], int | None]] = [
        ("sequential put/s", "put", lambda o, n: f"{o.rate(n):,.0f}", 1),
        ("sequential get/s", "get", lambda o, n: f"{o.rate(n):,.0f}", None),
        (f"put/s, {CONCURRENCY} outstanding", "cput", lambda o, n: f"{o.rate(n):,.0f}",
         CONCURRENCY),
        (f"get/s, {CONCURRENCY} outstanding", "cget", lambda o, n: f"{o.rate(n):,.0f}", None),
        (f"{results.rows[index('range')].preload:,}-key range, s", "range",
         lambda o, n: f"{1 / o.rate(n):.3f}", None),
        ("sequential txn/s", "txn", lambda o, n: f"{o.rate(n):,.0f}", None),
        ("watch put->event p50 ms", "watch", lambda o, n: f"{o.latency_ms(n, 0.5):.2f}", None),
        ("client CPU per sequential put, ms", "put", lambda o, n: f"{o.cpu_ms(n):.2f}", None),
        ("client CPU per concurrent put, ms", "cput", lambda o, n: f"{o.cpu_ms(n):.3f}", None),
        (f"client CPU per {results.rows[index('range')].preload:,} range, ms", "range",
         lambda o, n: f"{o.cpu_ms(n):.0f}", None),
        ("etcd CPU per sequential put, ms", "put", _etcd_ms(3), None),
        ("etcd CPU per concurrent put, ms", "cput", _etcd_ms(3), None),
        ("etcd CPU per sequential get, ms", "get", _etcd_ms(3), None),
        (f"etcd CPU per {results.rows[index('range')].preload:,} range, ms", "range",
         _etcd_ms(1), None),
    ]
    columns = [c for c in COLUMNS if (results.metrics or c.name != "metrics")
               and (results.grpc or not c.name.startswith("grpc"))]
    for title, slug, show, wrk_connections in specs:
        i = index(slug)
        cells = [title]
        for c in columns:
            if results.has(c, i):
                cells.append(show(results.outcome(c, i), c.name))
            else:
                cells.append("skipped" if c.label in results.skipped else "")
        wrk = results.wrk.get(wrk_connections) if wrk_connections else None
        conns = "1 conn" if wrk_connections == 1 else f"{wrk_connections} conns"
        cells.append(f"{wrk:,.0f} ({conns})" if wrk is not None else "")
        lines.append(cells)
    headers = ["row", *(c.label for c in columns), "wrk, raw HTTP"]
    return "\n".join(["| " + " | ".join(headers) + " |",
                      "|" + "---|" * len(headers),
                      *("| " + " | ".join(cells) + " |" for cells in lines)])


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def run_wrk(url: str, root: bytes, connections: int, seconds: int, *,
            path: str = "put", body: str | None = None) -> float | None:
    """Requests per second ``wrk`` drives through the gateway with ``connections``
    connections on one thread: puts under ``root``, or ``body`` posted to
    ``path`` (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    if body is None:
        body = json.dumps({"key": _b64(root + b"wrk"), "value": _b64(_value(0))})
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % body)
    try:
        done = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
             url.rstrip("/") + "/v3/kv/" + path],
            capture_output=True, text=True, timeout=seconds + 30, check=True)
    finally:
        os.unlink(script.name)
    match = re.search(r"Requests/sec:\s*([0-9.]+)", done.stdout)
    if match is None or "Non-2xx" in done.stdout:
        raise BenchmarkFailure(f"wrk did not report clean answers to {path}:\n{done.stdout}")
    return float(match.group(1))


async def twisted_half(reactor: Any, url: str, results: Results, root: bytes,
                       rounds: int, quick: bool, *, last: bool) -> None:
    loop = TwistedLoop(reactor)
    impls: list[Implementation] = [
        TreqBaseline(reactor, url),
        Etcdwamp(lambda: Client(reactor, url, pool_size=CONCURRENCY)),
        Etcdwamp(lambda: Client(reactor, url, pool_size=CONCURRENCY, coalesce=True),
                 "coalesced", coalescing=True)]
    if results.grpc:
        impls += [Etcdwamp(lambda: Client(reactor, url, transport="grpc"), "grpc"),
                  Etcdwamp(lambda: Client(reactor, url, transport="grpc", coalesce=True),
                           "grpc_coalesced", coalescing=True)]
    if results.metrics:
        impls.append(Etcdwamp(lambda: Client(
            reactor, url, pool_size=CONCURRENCY,
            metrics=PrometheusClientMetrics(CollectorRegistry())), "metrics"))
    txaioetcd = make_txaioetcd(reactor, url)
    if isinstance(txaioetcd, str):
        results.skipped["txaioetcd (patched)"] = txaioetcd
    else:
        impls.append(txaioetcd)
    setup = Client(reactor, url)
    results.etcd_version = (await setup.status()).version
    # wrk runs in its own process while this loop idles: its rate is what the
    # gateway can do, the ceiling for any client here.
    wrk_seconds = 1 if quick else 3
    for connections in (1, CONCURRENCY):
        results.wrk[connections] = await loop.in_thread(run_wrk, url, root, connections,
                                                        wrk_seconds)
    # The range row's answer as the gateway alone produces it: wrk reads it whole
    # and decodes nothing, so no JSON client can read that range faster.
    range_row = next(r for r in results.rows if r.slug == "range")
    if results.wrk.get(1) is not None:
        prefix = root + b"range/wrk/"
        await _preload(loop, setup, prefix, range_row.preload)
        body = json.dumps({"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})
        reads = await loop.in_thread(
            functools.partial(run_wrk, url, root, 1, wrk_seconds, path="range", body=body))
        results.wrk_range = None if not reads else 1.0 / reads
    results.outcomes[loop.name] = await run_rows(loop, results.rows, impls, root, setup, rounds,
                                                 clean_up=last)


async def asyncio_half(url: str, results: Results, root: bytes, rounds: int) -> None:
    loop = AsyncioLoop()
    impls: list[Implementation] = [
        AiohttpBaseline(url),
        Etcdwamp(lambda: AsyncioClient(url, pool_size=CONCURRENCY)),
        Etcdwamp(lambda: AsyncioClient(url, pool_size=CONCURRENCY, coalesce=True), "coalesced",
                 coalescing=True)]
    if results.grpc:
        impls += [Etcdwamp(lambda: AsyncioClient(url, transport="grpc"), "grpc"),
                  Etcdwamp(lambda: AsyncioClient(url, transport="grpc", coalesce=True),
                           "grpc_coalesced", coalescing=True)]
    if results.metrics:
        impls.append(Etcdwamp(lambda: AsyncioClient(
            url, pool_size=CONCURRENCY,
            metrics=PrometheusClientMetrics(CollectorRegistry())), "metrics"))
    aetcd = make_aetcd(url)
    if isinstance(aetcd, str):
        results.skipped["aetcd (gRPC)"] = aetcd
    else:
        impls.append(aetcd)
    setup = AsyncioClient(url)
    if results.etcd_version == "?":
        results.etcd_version = (await setup.status()).version
    results.outcomes[loop.name] = await run_rows(loop, results.rows, impls, root, setup, rounds,
                                                 clean_up=True)


def report(results: Results, url: str, rounds: int, total: float) -> None:
    loops = [loop for loop in ("Twisted", "asyncio")
             if any(o.ops for o in results.outcomes[loop])]
    for loop in loops:
        print(format_loop_table(results, loop, cpu=False))
        print()
    for loop in loops:
        print(format_loop_table(results, loop, cpu=True))
        print()
    for loop in loops:
        latencies = format_latency_table(results, loop)
        if latencies is not None:
            print(latencies)
            print()
    print(format_summary(results))
    print()
    for label, reason in results.skipped.items():
        print(f"{label}: skipped: {reason}")
    wrk1, wrk64 = results.wrk.get(1), results.wrk.get(CONCURRENCY)
    if not results.wrk:
        print("wrk: not run (it runs with the Twisted half)")
    elif wrk1 is None or wrk64 is None:
        print("wrk: skipped: not installed (Debian package wrk)")
    else:
        seq, conc = results.rows[0].title, results.rows[2].title
        for loop in loops:
            s = next(o for o in results.outcomes[loop] if o.title == seq)
            c = next(o for o in results.outcomes[loop] if o.title == conc)
            print(f"wrk, raw HTTP puts: {wrk1:,.1f}/s on 1 connection, {wrk64:,.1f}/s on "
                  f"{CONCURRENCY}; {loop} etcdwamp's fraction: sequential put "
                  f"{s.rate('etcdwamp') / wrk1:.2f}, put at {CONCURRENCY} outstanding "
                  f"{c.rate('etcdwamp') / wrk64:.2f} "
                  f"(coalesce=True {c.rate('coalesced') / wrk64:.2f})")
    if results.metrics:
        puts = [r.title for r in results.rows if r.slug in ("put", "cput")]
        for loop in loops:
            cells = []
            for title in puts:
                o = next(o for o in results.outcomes[loop] if o.title == title)
                cells.append(f"{title}: {o.rate('metrics'):,.0f} against {o.rate('etcdwamp'):,.0f}"
                             f"/s, ratio {o.rate('metrics') / o.rate('etcdwamp'):.3f}, CPU per put "
                             f"ratio {o.cpu_ms('metrics') / o.cpu_ms('etcdwamp'):.3f}")
            print(f"metrics overhead, {loop}, with Prometheus metrics against without: "
                  + "; ".join(cells))
    if results.wrk_range is not None:
        title = next(r.title for r in results.rows if r.slug == "range")
        floor = results.wrk_range
        for loop in loops:
            o = next(o for o in results.outcomes[loop] if o.title == title)
            base = "treq" if loop == "Twisted" else "aiohttp"
            if not o.ops.get(base):
                continue
            per_read = o.seconds[base] / o.ops[base]
            print(f"wrk, raw HTTP range ({title}): {floor:.3f} s per read, nothing decoded; "
                  f"{loop}'s plain {base} takes {per_read:.3f} s, so a client that decoded "
                  f"for free would be at most {per_read / floor:.2f}x it")
    print(
        f"Measured: requests completed per second of wall time (time.perf_counter) per "
        f"implementation, one process ({results.reactor}), etcd {results.etcd_version} at "
        f"{url}, {VALUE_SIZE}-byte values; each row alternates a loop's implementations over "
        f"{rounds} rounds after a warm-up; range rows count full reads; ratio = column/the "
        f"same loop's plain baseline (>1: faster; CPU ratio <1: cheaper); {total:.1f}s in total."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="use this etcd (e.g. http://127.0.0.1:2379) instead of "
                                      "starting a throw-away one on a free loopback port")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run with about 1/10 of the operations (for CI)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per row (default 4, or 2 with --quick)")
    parser.add_argument("--reactor", choices=("default", "asyncio"), default="default",
                        help="default: Twisted's default reactor (epoll) for the Twisted half, "
                             "then asyncio.run for the asyncio half; asyncio: both halves on "
                             "Twisted's asyncio reactor, one loop")
    parser.add_argument("--only", choices=("Twisted", "asyncio"), default=None,
                        help="run one loop's half only")
    parser.add_argument("--metrics", action="store_true",
                        help="add a column per loop: etcdwamp with Prometheus client "
                             "metrics, its ratio against etcdwamp without (needs "
                             "etcdwamp[metrics])")
    parser.add_argument("--etcd-pid", type=int, default=None,
                        help="with --url: the etcd process whose CPU per operation to print")
    parser.add_argument("--grpc", action="store_true",
                        help="add the gRPC transport's columns per loop, with and without "
                             "coalescing (needs etcdwamp[grpc])")
    parser.add_argument("--json", metavar="FILE",
                        help="also write every measurement to FILE as JSON")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 4
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.metrics and CollectorRegistry is None:
        parser.error("--metrics needs prometheus_client: pip install etcdwamp[metrics]")
    return args


def measure(url: str, args: argparse.Namespace) -> Results:
    """Run both halves (see ``--reactor``); raise on any failure."""
    results = Results(make_rows(args.quick), metrics=args.metrics, grpc=args.grpc)
    root = f"bench/{os.getpid()}-{time.time_ns()}/".encode()
    failed: list[BaseException] = []
    twisted = args.only in (None, "Twisted")
    aio = args.only in (None, "asyncio")
    one_loop = args.reactor == "asyncio"
    if one_loop:
        from twisted.internet import asyncioreactor
        asyncioreactor.install()  # type: ignore[no-untyped-call]

    async def run(reactor: Any) -> None:
        results.reactor = type(reactor).__name__
        try:
            if twisted:
                await twisted_half(reactor, url, results, root, args.rounds, args.quick,
                                   last=not aio)
            if aio and one_loop:
                await Deferred.fromFuture(asyncio.ensure_future(
                    asyncio_half(url, results, root, args.rounds)))
        except BaseException as exc:
            failed.append(exc)

    if twisted or one_loop:
        with contextlib.suppress(SystemExit):  # react() always exits; failures were kept
            react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
        if failed:
            raise failed[0]
    if aio and not one_loop:
        # Twisted's reactor has stopped (and cannot run again): the asyncio
        # client needs none, only a running asyncio loop.
        asyncio.run(asyncio_half(url, results, root, args.rounds))
        first = f"{results.reactor} for Twisted, then " if twisted else ""
        results.reactor = first + "asyncio.run"
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cluster: EtcdCluster | None = None
    try:
        global ETCD_PID
        if args.url is None:
            cluster = EtcdCluster(1)
            cluster.start()
            url = cluster.url
            process = cluster.members[0].process
            ETCD_PID = None if process is None else process.pid
        else:
            url = args.url
            ETCD_PID = args.etcd_pid
        started = time.perf_counter()
        try:
            results = measure(url, args)
        except Exception:
            traceback.print_exc()
            return 1
        total = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.stop()
    if args.only is not None:
        missing = "asyncio" if args.only == "Twisted" else "Twisted"
        results.outcomes[missing] = [Outcome(r.title) for r in results.rows]
    report(results, url, args.rounds, total)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"url": url, "etcd": results.etcd_version, "reactor": results.reactor,
                       "rounds": args.rounds, "seconds": total,
                       "wrk": {str(k): v for k, v in results.wrk.items()},
                       "wrk_range_seconds": results.wrk_range,
                       "skipped": results.skipped,
                       "rows": [r.slug for r in results.rows],
                       "outcomes": {loop: [vars(o) for o in outcomes]
                                    for loop, outcomes in results.outcomes.items()}},
                      out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
