"""Many watches on one client: how long ``watch()`` x N takes until etcd confirmed every
one, what it costs in memory, and whether every event arrives.

For each transport asked (``--transports gateway,grpc``), one client in a fresh process
state: N watches, each on a key of its own; the time from the first ``watch()`` call to
the last watch created (etcd confirmed it); the process's resident memory before and
after (VmRSS); then one put per key (a coalescing writer) and the time until every
watch saw its event, checking that each saw exactly one. The gateway opens an HTTP
connection per watch; gRPC puts every watch on one Watch stream of one connection.

    python benchmarks/many_watches.py [--url http://127.0.0.1:2379] [-n 10000]
        [--transports gateway,grpc] [--gateway-n 2000]
"""

from __future__ import annotations

import argparse
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


async def run_one(reactor: Any, url: str, transport: str, n: int, root: bytes) -> dict[str, float]:
    prefix = root + transport.encode() + b"/"
    client = Client(reactor, url, transport=transport, timeout=120, max_connections=n + 64)
    writer = Client(reactor, url, coalesce=True, transport=transport)
    seen = [0] * n
    left = [n]
    done: defer.Deferred[None] = defer.Deferred()

    def on_batch_for(i: int) -> Any:
        def on_batch(batch: WatchBatch) -> None:
            seen[i] += len(batch.events)
            left[0] -= len(batch.events)
            if left[0] == 0 and not done.called:
                done.callback(None)
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
    await defer.gatherResults([writer.put(prefix + b"%06d" % i, b"v") for i in range(n)])
    await done
    delivered = time.perf_counter() - started
    assert seen == [1] * n, "an event was lost or repeated"
    for watch in watches:
        await watch.cancel()
    await client.close()
    await writer.close()
    return {"n": n, "called_s": called, "created_s": created, "rss_mb": after - before,
            "delivered_s": delivered}


async def main(reactor: Any, url: str, args: argparse.Namespace) -> None:
    root = b"bench/many-watches/%d/" % int(time.time() * 1000)
    rows = []
    for transport in args.transports.split(","):
        n = args.gateway_n if transport == "gateway" else args.n
        rows.append((transport, await run_one(reactor, url, transport, n, root)))
    print(f"{'transport':10} {'watches':>8} {'watch() calls s':>16} {'all created s':>14} "
          f"{'RSS MB':>8} {'KB/watch':>9} {'events delivered s':>19}")
    for transport, r in rows:
        print(f"{transport:10} {int(r['n']):8,} {r['called_s']:16.3f} {r['created_s']:14.3f} "
              f"{r['rss_mb']:8.1f} {r['rss_mb'] * 1024 / r['n']:9.2f} "
              f"{r['delivered_s']:19.3f}")
    if len(rows) == 2:
        (_, a), (_, b) = rows
        print(f"per watch, {rows[1][0]} / {rows[0][0]}: creation time "
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
    args = parser.parse_args(argv)

    def go(url: str) -> int:
        try:
            task.react(lambda reactor: defer.ensureDeferred(main(reactor, url, args)))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        return 0

    if args.url:
        return go(args.url)
    with EtcdCluster(1) as etcd:
        return go(etcd.url)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
