"""Many watches on one client: how long ``watch()`` x N takes until etcd confirmed every
one, what it costs in memory, and whether every event arrives.

For each loop asked (``--loops twisted,asyncio``: :class:`etcdwamp.Client` and
:class:`etcdwamp.asyncio.Client`) and each transport asked (``--transports gateway,grpc``),
in a process of its own and (unless ``--url`` names one) with an etcd of its own, one
new client: N watches, each on a key of its own, made at once (before the client's first
connection is open); the time from the first ``watch()`` call to the last watch created
(etcd confirmed it); the process's resident memory before and after (VmRSS); then one
put per key (a coalescing writer) and the time until every watch saw its event,
checking that each saw exactly one. The gateway opens an HTTP connection per watch;
gRPC puts every watch on one Watch stream of one connection.

    python benchmarks/many_watches.py [--url http://127.0.0.1:2379] [-n 10000]
        [--transports gateway,grpc] [--gateway-n 2000] [--loops twisted,asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

from twisted.internet import defer, task

from etcdwamp import Client
from etcdwamp.testing import EtcdCluster
from etcdwamp.watch import WatchBatch


def rss_mb() -> float:
    """This process's resident memory, MB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run_one(loop: str, url: str, transport: str, n: int,
                  root: bytes) -> dict[str, float]:
    """One client of ``loop`` with ``n`` watches on ``transport`` (see the docstring)."""
    prefix = root + transport.encode() + b"/"
    client = make_client(loop, url, transport=transport, timeout=120, max_connections=n + 64)
    writer = make_client(loop, url, coalesce=True, transport=transport)
    seen = [0] * n
    left = [n]
    done = new_waiter(loop)

    def on_batch_for(i: int) -> Any:
        def on_batch(batch: WatchBatch) -> None:
            seen[i] += len(batch.events)
            left[0] -= len(batch.events)
            if left[0] == 0 and not done.done():
                done.set_result(None)
        return on_batch

    before = rss_mb()
    started = time.perf_counter()
    watches = [client.watch(prefix + b"%06d" % i, on_batch_for(i)) for i in range(n)]
    called = time.perf_counter() - started
    for watch in watches:
        await watch
    created = time.perf_counter() - started
    after = rss_mb()
    started = time.perf_counter()
    for put in [writer.put(prefix + b"%06d" % i, b"v") for i in range(n)]:
        await put
    await done
    delivered = time.perf_counter() - started
    assert seen == [1] * n, "an event was lost or repeated"
    for watch in watches:
        await watch.cancel()
    await client.close()
    await writer.close()
    return {"n": n, "called_s": called, "created_s": created, "rss_mb": after - before,
            "delivered_s": delivered}


def make_client(loop: str, url: str, **kwargs: Any) -> Client:
    """A client of ``loop`` ("twisted" or "asyncio")."""
    if loop == "asyncio":
        from etcdwamp.asyncio import Client as AsyncioClient

        return AsyncioClient(url, **kwargs)
    from twisted.internet import reactor

    return Client(reactor, url, **kwargs)


def new_waiter(loop: str) -> Any:
    """Something to await that ``set_result`` fires, on ``loop``."""
    if loop == "asyncio":
        return asyncio.get_running_loop().create_future()
    return _Waiter()


class _Waiter(defer.Deferred[None]):
    def done(self) -> bool:
        return self.called

    def set_result(self, value: None) -> None:
        self.callback(value)


async def measure(loop: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every transport asked, on ``loop``, in this process."""
    root = b"bench/many-watches/%d/%s/" % (int(time.time() * 1000), loop.encode())
    rows = []
    for transport in args.transports.split(","):
        n = args.gateway_n if transport == "gateway" else args.n
        row: dict[str, Any] = await run_one(loop, url, transport, n, root)
        rows.append({"loop": loop, "transport": transport, **row})
    return rows


def run_loop(loop: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """:func:`measure` on ``loop``, run as that loop's users run it."""
    if loop == "asyncio":
        return asyncio.run(measure(loop, url, args))
    rows: list[dict[str, Any]] = []

    async def main(reactor: Any) -> None:
        rows.extend(await measure(loop, url, args))

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as exc:
        if exc.code:
            raise
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    """Print the table of every row."""
    print(f"{'loop':8} {'transport':10} {'watches':>8} {'watch() calls s':>16} "
          f"{'all created s':>14} {'RSS MB':>8} {'KB/watch':>9} {'events delivered s':>19}")
    for r in rows:
        print(f"{r['loop']:8} {r['transport']:10} {int(r['n']):8,} {r['called_s']:16.3f} "
              f"{r['created_s']:14.3f} {r['rss_mb']:8.1f} {r['rss_mb'] * 1024 / r['n']:9.2f} "
              f"{r['delivered_s']:19.3f}")
    for loop in dict.fromkeys(r["loop"] for r in rows):
        pair = [r for r in rows if r["loop"] == loop]
        if len(pair) == 2:
            a, b = pair
            print(f"{loop}, per watch, {b['transport']} / {a['transport']}: creation time "
                  f"{(b['created_s'] / b['n']) / (a['created_s'] / a['n']):.3f}, memory "
                  f"{(b['rss_mb'] / b['n']) / max(a['rss_mb'] / a['n'], 1e-9):.3f}")


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an etcd to use (default: start a throw-away one)")
    parser.add_argument("-n", type=int, default=10_000, help="watches on the gRPC client")
    parser.add_argument("--gateway-n", type=int, default=2_000,
                        help="watches on the gateway client (one connection each)")
    parser.add_argument("--transports", default="gateway,grpc")
    parser.add_argument("--loops", default="twisted,asyncio")
    parser.add_argument("--rows-of", choices=("twisted", "asyncio"),
                        help=argparse.SUPPRESS)  # a child process: one loop, rows as JSON
    args = parser.parse_args(argv)

    if args.rows_of:
        print(json.dumps(run_loop(args.rows_of, args.url, args)))
        return 0
    rows = []
    for loop in args.loops.split(","):
        for transport in args.transports.split(","):
            # Each run in a fresh process (memory freed by one run is not reused by the
            # next, which would make the later runs look cheaper) and, unless --url
            # names one, with a fresh etcd (one that served 10,000 watches before
            # creates the next 10,000 slower).
            with contextlib.ExitStack() as stack:
                url = args.url or stack.enter_context(EtcdCluster(1)).url
                child = subprocess.run(
                    [sys.executable, __file__, *argv, "--url", url, "--rows-of", loop,
                     "--transports", transport],
                    check=True, stdout=subprocess.PIPE, text=True)
            rows += json.loads(child.stdout.strip().splitlines()[-1])
    report(rows)
    return 0

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
