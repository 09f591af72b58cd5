"""The WAMP component on each etcd transport: reads of a 10,000-key map through Crossbar.

One etcd, the map preloaded with 10,000 JSON records, and two Crossbar nodes with the
committed config, one whose component's client speaks the JSON gateway and one gRPC
(``extra.etcd.transport``). For each node, in alternating rounds:

- ``etcd.map.get`` of random keys, 64 calls outstanding: calls per second;
- ``etcd.map.get_and_watch`` of the whole map, called progressively (pages of
  ``range_page`` rows): seconds until the last page, and the rows received.

Prints each row for both transports and the gRPC/gateway ratio.

    python benchmarks/wamp_transports.py [--quick] [--keys 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from autobahn.wamp.types import CallOptions
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from etcdwamp import Client, OpSet, Transaction
from etcdwamp.testing import CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
EXTRA = {"db_prefix": "bench-transports/",
         "maps": {"notes": {"slot": 1, "key": "string", "value": "json"}}}
VALUE = {"text": "hello", "n": 42, "tags": ["a", "b"]}
BASE = b"bench-transports/\x00\x01"


async def join(reactor: Any, url: str, ticket: str) -> Any:
    joined: Deferred[Any] = Deferred()
    component = Component(transports=[{"url": url, "serializers": ["cbor"],
                                       "max_retries": 0}], realm="realm1",
                          authentication={"ticket": {"authid": "writer", "ticket": ticket}})
    component.on_join(lambda session, details: joined.callback(session))
    component.start(reactor)
    return await joined


async def preload(client: Client, keys: int) -> None:
    value = json.dumps(VALUE, separators=(",", ":")).encode()
    for start in range(0, keys, 128):
        ops = [OpSet(BASE + b"k%06d" % i, value) for i in range(start, min(start + 128, keys))]
        await client.txn(Transaction(success=ops))


async def gets_per_second(session: Any, keys: int, n: int) -> float:
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            got = await session.call("etcd.map.get", "notes", f"k{random.randrange(keys):06d}")
            assert got["value"] == VALUE

    started = time.perf_counter()
    await defer.gatherResults([Deferred.fromCoroutine(worker()) for _ in range(64)],
                              consumeErrors=True)
    return n / (time.perf_counter() - started)


async def snapshot_seconds(session: Any, keys: int) -> float:
    rows = [0]

    def page(result: Any) -> None:
        rows[0] += len(result["items"])

    started = time.perf_counter()
    last = await session.call("etcd.map.get_and_watch", "notes",
                              options=CallOptions(on_progress=page))
    seconds = time.perf_counter() - started
    rows[0] += len(last["items"])
    assert rows[0] == keys, f"{rows[0]} rows of {keys}"
    return seconds


async def run(reactor: Any, etcd_url: str, nodes: dict[str, CrossbarNode], keys: int,
              quick: bool) -> None:
    client = Client(reactor, etcd_url)
    await preload(client, keys)
    sessions = {name: await join(reactor, node.url, node.writer_ticket)
                for name, node in nodes.items()}
    n = 1000 if quick else 5000
    rounds = 2 if quick else 4
    gets: dict[str, list[float]] = {name: [] for name in nodes}
    snaps: dict[str, list[float]] = {name: [] for name in nodes}
    for session in sessions.values():  # warm-up
        await gets_per_second(session, keys, 200)
        await snapshot_seconds(session, keys)
    for number in range(rounds):
        order = list(sessions) if number % 2 == 0 else list(reversed(sessions))
        for name in order:
            gets[name].append(await gets_per_second(sessions[name], keys, n))
            snaps[name].append(await snapshot_seconds(sessions[name], keys))
    for session in sessions.values():
        await session.leave()
    await client.close()
    print(f"{'row':40} {'gateway':>10} {'grpc':>10} {'grpc/gateway':>13}")
    g, r = max(gets["gateway"]), max(gets["grpc"])
    print(f"{'map.get/s, 64 outstanding (best)':40} {g:10.1f} {r:10.1f} {r / g:13.2f}")
    g, r = statistics.median(snaps["gateway"]), statistics.median(snaps["grpc"])
    print(f"{f'get_and_watch of {keys:,} rows, s (median)':40} {g:10.3f} {r:10.3f} "
          f"{g / r:13.2f}")
    print(f"({rounds} alternating rounds; get_and_watch ratio = gateway time / gRPC time, "
          ">1: gRPC faster)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    keys = 1000 if args.quick else args.keys
    config = str(ROOT / "crossbar" / ".crossbar" / "config.json")
    with EtcdCluster(1) as etcd, \
            CrossbarNode(config, etcd.urls, extra_overrides={
                **EXTRA, "election": "bench-transports/gateway",
                "max_snapshot_rows": max(keys, 10_000)}) as gateway, \
            CrossbarNode(config, etcd.urls, extra_overrides={
                **EXTRA, "election": "bench-transports/grpc",
                "max_snapshot_rows": max(keys, 10_000),
                "etcd": {"transport": "grpc"}}) as grpc:
        try:
            task.react(lambda reactor: defer.ensureDeferred(
                run(reactor, etcd.url, {"gateway": gateway, "grpc": grpc}, keys, args.quick)))
        except SystemExit as exc:
            return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
