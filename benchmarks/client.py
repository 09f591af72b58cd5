"""Throughput of etcdwamp's ``Client`` against a minimal treq baseline.

Both implementations talk to the same etcd through its JSON gateway, from one
process and one Twisted reactor (``twisted.internet.task.react``):

- **baseline**: a bare ``treq.client.HTTPClient`` over an ``Agent`` with a
  persistent ``HTTPConnectionPool`` (``maxPersistentPerHost=64``) that posts
  the same JSON bodies (keys and values base64, ints as strings) to
  ``/v3/kv/...``, checks ``response.code == 200`` and decodes the answer with
  ``json.loads`` (plus the base64 of the keys and values it reads);
- **etcdwamp**: ``etcdwamp.Client`` with its defaults (request validation,
  timeouts, failover bookkeeping, typed results);
- **coalesce=True**: ``etcdwamp.Client(coalesce=True)``, on the rows where
  concurrent single-key calls can share a transaction.

Rows, each counted in requests per second of wall-clock time
(``time.perf_counter``):

1. sequential put: one put at a time;
2. sequential get: one single-key range at a time (keys preloaded);
3. concurrent put: puts with 64 requests outstanding;
4. concurrent get: single-key gets with 64 requests outstanding;
5. prefix range: full reads of a prefix holding 10,000 keys (preloaded in
   transactions of 100 puts); the baseline decodes every key and value;
6. sequential txn: a transaction "create if absent" (compare ``version == 0``,
   one put in ``success``), which must succeed.

A second table gives the client's CPU time (``time.process_time``) per
operation, and a last line what ``wrk`` (when installed) drives through the
same gateway with raw HTTP puts, on 1 and on 64 connections, and etcdwamp's
fraction of it.

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

Every row runs a short warm-up for each implementation, then several rounds
that alternate which implementation goes first, so drift (etcd's WAL and
compaction, the page cache) hits both alike. Each implementation and row uses
its own key prefix under ``bench/<run id>/``, deleted at the end.

Usage::

    PYTHONPATH=. python benchmarks/client.py            # own throw-away etcd
    PYTHONPATH=. python benchmarks/client.py --quick    # smoke run (CI)
    PYTHONPATH=. python benchmarks/client.py --url http://127.0.0.1:2379

Exits 0 when every row ran and every answer checked out, non-zero otherwise.
"""

from __future__ import annotations

import argparse
import base64
import gc
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

import treq
from twisted.internet import defer, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent

from etcdwamp import Client, CompVersion, KeySet, OpSet, Transaction
from etcdwamp.testing import EtcdCluster

CONCURRENCY = 64
VALUE_SIZE = 64
PRELOAD_BATCH = 100  # puts per preload transaction (etcd allows 128)
PRELOAD_CONCURRENCY = 8

_JSON_HEADERS: dict[bytes | str, list[bytes | str]] = {b"Content-Type": [b"application/json"]}


class BenchmarkFailure(Exception):
    """An answer was wrong, or the run did not complete."""


Op = Callable[[int], Awaitable[None]]


class Implementation(Protocol):
    """What a row needs from a client under test."""

    name: str

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes, expected: bytes) -> None: ...

    async def range_prefix(self, prefix: bytes, expected: int) -> None: ...

    async def txn_create(self, key: bytes, value: bytes) -> None: ...

    async def close(self) -> None: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _prefix_end(prefix: bytes) -> bytes:
    # Benchmark prefixes are ASCII and end in "/", so the last byte is never 0xFF.
    return prefix[:-1] + bytes([prefix[-1] + 1])


class Baseline:
    """The least a client can do: POST JSON, check 200, ``json.loads``."""

    name = "baseline"

    def __init__(self, reactor: Any, url: str) -> None:
        self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = CONCURRENCY
        agent = Agent(reactor, pool=self._pool)  # type: ignore[no-untyped-call]
        self._http = treq.client.HTTPClient(cast(IAgent, agent))
        self._base = url.rstrip("/") + "/v3/kv/"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        response = await self._http.post(self._base + path, data=data, headers=_JSON_HEADERS)
        content = await treq.content(response)
        if response.code != 200:
            raise BenchmarkFailure(f"baseline {path}: HTTP {response.code}: {content[:200]!r}")
        answer: dict[str, Any] = json.loads(content)
        return answer

    async def put(self, key: bytes, value: bytes) -> None:
        answer = await self._post("put", {"key": _b64(key), "value": _b64(value)})
        if "header" not in answer:
            raise BenchmarkFailure(f"baseline put {key!r}: no header in {answer!r}")

    async def get(self, key: bytes, expected: bytes) -> None:
        answer = await self._post("range", {"key": _b64(key)})
        kvs = answer.get("kvs", [])
        if len(kvs) != 1 or base64.b64decode(kvs[0].get("value", "")) != expected:
            raise BenchmarkFailure(f"baseline get {key!r}: unexpected answer {answer!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        answer = await self._post(
            "range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        b64decode = base64.b64decode
        pairs = [(b64decode(kv["key"]), b64decode(kv.get("value", "")))
                 for kv in answer.get("kvs", [])]
        if len(pairs) != expected:
            raise BenchmarkFailure(
                f"baseline range {prefix!r}: {len(pairs)} keys, expected {expected}"
            )

    async def txn_create(self, key: bytes, value: bytes) -> None:
        k = _b64(key)
        answer = await self._post("txn", {
            "compare": [{"result": "EQUAL", "target": "VERSION", "key": k, "version": "0"}],
            "success": [{"request_put": {"key": k, "value": _b64(value)}}],
        })
        if answer.get("succeeded") is not True:
            raise BenchmarkFailure(f"baseline txn {key!r}: did not succeed: {answer!r}")

    async def close(self) -> None:
        await self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]


class Etcdwamp:
    """etcdwamp's ``Client`` as an application would use it."""

    name = "etcdwamp"

    def __init__(self, reactor: Any, url: str, *, coalesce: bool = False) -> None:
        self.client = Client(reactor, url, pool_size=CONCURRENCY, coalesce=coalesce)

    async def put(self, key: bytes, value: bytes) -> None:
        await self.client.put(key, value)

    async def get(self, key: bytes, expected: bytes) -> None:
        result = await self.client.get(key)
        if len(result.kvs) != 1 or result.kvs[0].value != expected:
            raise BenchmarkFailure(f"etcdwamp get {key!r}: unexpected result {result!r}")

    async def range_prefix(self, prefix: bytes, expected: int) -> None:
        result = await self.client.get(KeySet(prefix, prefix=True))
        if len(result.kvs) != expected:
            raise BenchmarkFailure(
                f"etcdwamp range {prefix!r}: {len(result.kvs)} keys, expected {expected}"
            )

    async def txn_create(self, key: bytes, value: bytes) -> None:
        result = await self.client.txn(
            Transaction(compare=[CompVersion(key, "==", 0)], success=[OpSet(key, value)])
        )
        if not result.succeeded:
            raise BenchmarkFailure(f"etcdwamp txn {key!r}: did not succeed: {result!r}")

    async def close(self) -> None:
        await self.client.close()


class Coalesced(Etcdwamp):
    """etcdwamp's ``Client(coalesce=True)``: concurrent single-key calls share txns."""

    name = "coalesced"

    def __init__(self, reactor: Any, url: str) -> None:
        super().__init__(reactor, url, coalesce=True)


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
    make_op: Callable[[Implementation, bytes], Op]
    concurrency: int = 1
    warmup: int = 50
    #: keys (prefix + index, value of index) written before timing
    preload: int = 0
    #: also run etcdwamp with coalesce=True (rows where coalescing can apply)
    coalesced: bool = False


@dataclass
class Outcome:
    title: str
    ops: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: process CPU time (user + system) while the implementation ran
    cpu: dict[str, float] = field(default_factory=dict)

    def rate(self, name: str) -> float:
        return self.ops[name] / self.seconds[name]

    def cpu_ms(self, name: str) -> float:
        """Client CPU per operation, in milliseconds."""
        return 1000 * self.cpu[name] / self.ops[name]


async def _in_thread(reactor: Any, fn: Callable[..., Any], *args: Any) -> Any:
    return await threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


async def _gather(work: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines concurrently; raise the first failure itself."""
    try:
        await defer.gatherResults([Deferred.fromCoroutine(c) for c in work],
                                  consumeErrors=True)
    except defer.FirstError as exc:
        exc.subFailure.raiseException()


async def _drive(op: Op, indices: range, concurrency: int) -> None:
    if concurrency == 1:
        for i in indices:
            await op(i)
        return
    pending = iter(indices)

    async def worker() -> None:
        for i in pending:  # the workers share one iterator
            await op(i)

    await _gather([worker() for _ in range(min(concurrency, len(indices)))])


async def _preload(client: Client, prefix: bytes, count: int) -> None:
    batches = iter(range(0, count, PRELOAD_BATCH))

    async def worker() -> None:
        for start in batches:
            stop = min(start + PRELOAD_BATCH, count)
            txn = Transaction(success=[OpSet(_key(prefix, i), _value(i))
                                       for i in range(start, stop)])
            result = await client.txn(txn)
            if not result.succeeded:
                raise BenchmarkFailure(f"preload of {prefix!r} failed: {result!r}")

    await _gather([worker() for _ in range(PRELOAD_CONCURRENCY)])


def _chunks(ops: int, rounds: int) -> list[range]:
    bounds = [ops * r // rounds for r in range(rounds + 1)]
    return [range(bounds[r], bounds[r + 1]) for r in range(rounds) if bounds[r + 1] > bounds[r]]


async def run_row(row: Row, impls: Sequence[Implementation], root: bytes, setup: Client,
                  rounds: int) -> Outcome:
    outcome = Outcome(row.title)
    impls = [i for i in impls if row.coalesced or i.name != "coalesced"]
    ops: dict[str, Op] = {}
    for impl in impls:
        prefix = root + f"{row.slug}/{impl.name}/".encode()
        if row.preload:
            await _preload(setup, prefix, row.preload)
        ops[impl.name] = row.make_op(impl, prefix)
        outcome.ops[impl.name] = 0
        outcome.seconds[impl.name] = 0.0
        outcome.cpu[impl.name] = 0.0
    # Warm-up on indices past the measured ones (fresh keys for puts and txns).
    for impl in impls:
        await _drive(ops[impl.name], range(row.ops, row.ops + row.warmup), row.concurrency)
    for number, chunk in enumerate(_chunks(row.ops, rounds)):
        order = impls if number % 2 == 0 else list(reversed(impls))
        for impl in order:
            gc.collect()
            started = time.perf_counter()
            cpu = time.process_time()
            await _drive(ops[impl.name], chunk, row.concurrency)
            outcome.seconds[impl.name] += time.perf_counter() - started
            outcome.cpu[impl.name] += time.process_time() - cpu
            outcome.ops[impl.name] += len(chunk)
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
    ]


def _table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    width = [max(len(r[c]) for r in [headers, *lines]) for c in range(len(headers))]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(width[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], width[1:], strict=True))])

    return "\n".join([fmt(headers), fmt(["-" * w for w in width]), *(fmt(r) for r in lines)])


def format_table(outcomes: Sequence[Outcome]) -> str:
    headers = ("row", "baseline ops/s", "etcdwamp ops/s", "coalesce=True ops/s",
               "coalesce ratio", "ratio")
    lines = []
    for o in outcomes:
        base = o.rate("baseline")
        has = "coalesced" in o.ops
        lines.append((o.title, f"{base:,.1f}", f"{o.rate('etcdwamp'):,.1f}",
                      f"{o.rate('coalesced'):,.1f}" if has else "-",
                      f"{o.rate('coalesced') / base:.2f}" if has else "-",
                      f"{o.rate('etcdwamp') / base:.2f}"))
    return _table(headers, lines)


def format_cpu_table(outcomes: Sequence[Outcome]) -> str:
    headers = ("row", "baseline CPU ms/op", "etcdwamp CPU ms/op", "coalesce=True CPU ms/op",
               "CPU ratio")
    lines = []
    for o in outcomes:
        has = "coalesced" in o.ops
        lines.append((o.title, f"{o.cpu_ms('baseline'):.3f}", f"{o.cpu_ms('etcdwamp'):.3f}",
                      f"{o.cpu_ms('coalesced'):.3f}" if has else "-",
                      f"{o.cpu_ms('etcdwamp') / o.cpu_ms('baseline'):.2f}"))
    return _table(headers, lines)


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"%s","value":"%s"}'
"""


def run_wrk(url: str, root: bytes, connections: int, seconds: int) -> float | None:
    """Puts per second ``wrk`` drives through the gateway with ``connections``
    connections on one thread (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (_b64(root + b"wrk"), _b64(_value(0))))
    try:
        done = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
             url.rstrip("/") + "/v3/kv/put"],
            capture_output=True, text=True, timeout=seconds + 30, check=True)
    finally:
        os.unlink(script.name)
    match = re.search(r"Requests/sec:\s*([0-9.]+)", done.stdout)
    if match is None or "Non-2xx" in done.stdout:
        raise BenchmarkFailure(f"wrk did not report clean puts:\n{done.stdout}")
    return float(match.group(1))


async def benchmark(reactor: Any, url: str, quick: bool, rounds: int) -> None:
    rows = make_rows(quick)
    root = f"bench/{os.getpid()}-{time.time_ns()}/".encode()
    setup = Client(reactor, url)
    impls: list[Implementation] = [Baseline(reactor, url), Etcdwamp(reactor, url),
                                   Coalesced(reactor, url)]
    started = time.perf_counter()
    try:
        status = await setup.status()
        outcomes = []
        for row in rows:
            outcomes.append(await run_row(row, impls, root, setup, rounds))
            print(f"  done: {row.title}", file=sys.stderr, flush=True)
        # wrk runs in its own process while this reactor idles: its rate is
        # what the gateway can do, the ceiling for any client here.
        wrk_seconds = 1 if quick else 3
        wrk = {n: await _in_thread(reactor, run_wrk, url, root, n, wrk_seconds)
               for n in (1, CONCURRENCY)}
        total = time.perf_counter() - started
        await setup.delete(KeySet(root, prefix=True))
    finally:
        for impl in impls:
            await impl.close()
        await setup.close()
    print(format_table(outcomes))
    print()
    print(format_cpu_table(outcomes))
    print()
    if wrk[1] is None or wrk[CONCURRENCY] is None:
        print("wrk: not installed (Debian package wrk), raw-HTTP row skipped")
    else:
        seq = next(o for o in outcomes if o.title.startswith("sequential put"))
        conc = next(o for o in outcomes if o.title.startswith(f"put, {CONCURRENCY}"))
        print(f"wrk, raw HTTP puts: {wrk[1]:,.1f}/s on 1 connection, "
              f"{wrk[CONCURRENCY]:,.1f}/s on {CONCURRENCY} connections; etcdwamp's fraction: "
              f"sequential put {seq.rate('etcdwamp') / wrk[1]:.2f}, "
              f"put at {CONCURRENCY} outstanding {conc.rate('etcdwamp') / wrk[CONCURRENCY]:.2f} "
              f"(coalesce=True {conc.rate('coalesced') / wrk[CONCURRENCY]:.2f})")
    print(
        f"Measured: requests completed per second of wall time (time.perf_counter) per "
        f"implementation, one process and reactor, etcd {status.version} at {url}, "
        f"{VALUE_SIZE}-byte values; each row alternates the implementations over {rounds} "
        f"rounds after a warm-up; range rows count full reads; ratio = etcdwamp/baseline "
        f"(>1: etcdwamp faster); {total:.1f}s in total."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="use this etcd (e.g. http://127.0.0.1:2379) instead of "
                                      "starting a throw-away one on a free loopback port")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run with about 1/10 of the operations (for CI)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per row (default 4, or 2 with --quick)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 4
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    completed: list[bool] = []

    async def run(reactor: Any) -> None:
        try:
            await benchmark(reactor, url, args.quick, args.rounds)
        except Exception:
            traceback.print_exc()
            raise SystemExit(1) from None
        completed.append(True)

    cluster: EtcdCluster | None = None
    code: int | str | None = 1
    try:
        if args.url is None:
            cluster = EtcdCluster(1)
            cluster.start()
            url = cluster.url
        else:
            url = args.url
        try:
            react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
        except SystemExit as exc:
            code = exc.code
    finally:
        if cluster is not None:
            cluster.stop()
    if code == 0 and not completed:
        print("benchmark did not complete (reactor stopped early)", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
