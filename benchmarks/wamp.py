"""WAMP benchmark: map calls through Crossbar against the direct client doing the same work.

In one process run, against one local etcd and one Crossbar node (both started
here unless --url/--ws are given):

- ``etcd.map.put`` and ``etcd.map.get`` calls per second with 64 outstanding
  calls, beside the direct client doing the same puts/gets (same JSON values,
  same keys): the WAMP overhead ratio;
- event latency: put through the direct client, wait for the
  ``etcd.map.notes.on_change`` event at a WAMP subscriber; p50/p99 in ms.

    python benchmarks/wamp.py [--quick]
    python benchmarks/wamp.py --metrics-overhead [--quick]

``--metrics-overhead``: ``etcd.map.put`` calls per second (64 outstanding) on two
nodes over one etcd, one with ``extra.metrics`` on and one with it off, rounds
interleaved (off, on, off, on, ...), best round of each; prints on/off. Measured
(2026-12-07, 2-core machine shared with other test runs, load ~2.5), three runs:
0.992, 0.988, 1.074 (noise either way; the sink costs ~1.4 us a call, timing and
the errback ~1 us, against ~300 us a WAMP put costs the router). Before the sink
cached its labelled series (``labels()`` on every call, ~4.3 us) it was 0.947, 0.953.

Measured (2026-11-26, etcd 3.4.23, the committed node config, component
embedded with its defaults, 2-core machine), two runs:

==========================  ==============  ==============
row                         run 1           run 2
==========================  ==============  ==============
map.put, 64 outstanding     3,352 (0.88x)   3,622 (0.86x)
map.get, 64 outstanding     3,493 (0.71x)   3,752 (0.74x)
event latency p50 / p99     1.07 / 2.00 ms  1.05 / 2.08 ms
==========================  ==============  ==============

(ratio: via WAMP / the direct client without coalescing.) Before the
publisher spaced its checkpoint writes (``checkpoint_interval``, 0.1 s) the
latency was p50 1.5-1.9 ms, p99 3.3-4.2 ms: a checkpoint write after nearly
every event doubled etcd's writes while each put waited for its event.

Where a WAMP put's time goes (per-process CPU over 8,000 calls, and a
py-spy profile of the router worker): the benchmark process spends ~65 us
per call (Autobahn client), etcd ~75 us (coalesced: one transaction per
batch), the router worker ~210 us. Of the router's, 74% is Crossbar and
Autobahn (WebSocket frames, CBOR, dealer, authorization; ~11% of it builds
debug strings, ``pformat`` and ``click.style`` via ``hlval``/``hltype``,
which Crossbar evaluates although debug logging is off) and 26% is
etcdwamp (the procedure, coalescing, the HTTP exchange, the publisher's
watch and events). No process is saturated (the router at ~70%): with one
session holding 64 calls the work moves in convoys (64 CALLs read in one
turn, one etcd transaction, 64 RESULTs, 64 new CALLs), so the stages take
turns instead of overlapping. Spread over 4 sessions of 16 outstanding
calls the same puts ran 3,334-3,461/s, over 8 of 8 3,398-3,535/s, against
3,081-3,153/s from one session (direct client 3,343-3,749/s). So map.put
reaches 0.86-0.88x the uncoalesced direct client, short of 1.0x: the
remaining cost is Crossbar's per call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from etcdwamp import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
EXTRA = {"db_prefix": "bench-wamp/", "election": "bench-wamp/publisher",
         "maps": {"notes": {"slot": 1, "key": "string", "value": "json"}}}
VALUE = {"text": "hello", "n": 42, "tags": ["a", "b"]}


async def join(reactor: Any, url: str, ticket: str) -> Any:
    joined: Deferred[Any] = Deferred()
    component = Component(transports=[{"url": url, "serializers": ["cbor"],
                                       "max_retries": 0}], realm="realm1",
                          authentication={"ticket": {"authid": "writer",
                                                     "ticket": ticket}})
    component.on_join(lambda session, details: joined.callback(session))
    component.start(reactor)
    return await joined


async def rate(n: int, outstanding: int, one: Any) -> float:
    keys = iter(range(n))

    async def worker() -> None:
        for i in keys:
            await one(i)

    t0 = time.perf_counter()
    await defer.gatherResults([Deferred.fromCoroutine(worker()) for _ in range(outstanding)],
                              consumeErrors=True)
    return n / (time.perf_counter() - t0)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(reactor: Any, etcd_url: str, ws_url: str, ticket: str, quick: bool) -> None:
    n = 500 if quick else 5000
    n_lat = 100 if quick else 1000
    session = await join(reactor, ws_url, ticket)
    client = Client(reactor, url=etcd_url)
    base = b"bench-wamp/\x00\x01"
    encoded = json.dumps(VALUE, separators=(",", ":")).encode()

    async def wamp_put(i: int) -> None:
        await session.call("etcd.map.put", "notes", f"k{i % 1000}", VALUE)

    async def direct_put(i: int) -> None:
        await client.put(base + b"k%d" % (i % 1000), encoded)

    async def wamp_get(i: int) -> None:
        got = await session.call("etcd.map.get", "notes", f"k{i % 1000}")
        assert got["value"] == VALUE

    async def direct_get(i: int) -> None:
        got = await client.get(base + b"k%d" % (i % 1000))
        assert json.loads(got.kvs[0].value) == VALUE

    rows = []
    for label, direct, wamp in (("map.put, 64 outstanding", direct_put, wamp_put),
                                ("map.get, 64 outstanding", direct_get, wamp_get)):
        await rate(max(n // 10, 64), 64, direct)  # warm-up
        await rate(max(n // 10, 64), 64, wamp)
        d_rates, w_rates = [], []
        for _ in range(2):
            d_rates.append(await rate(n, 64, direct))
            w_rates.append(await rate(n, 64, wamp))
        rows.append((label, max(d_rates), max(w_rates)))

    arrived: dict[str, Deferred[float]] = {}

    def on_change(event: dict[str, Any]) -> None:
        d = arrived.get(event["key"])
        if d is not None and not d.called:
            d.callback(time.perf_counter())

    await session.subscribe(on_change, "etcd.map.notes.on_change")
    latencies = []
    for i in range(n_lat):
        key = f"lat{i}"
        arrived[key] = Deferred()
        t0 = time.perf_counter()
        await client.put(base + key.encode(), encoded)
        latencies.append((await arrived[key] - t0) * 1000.0)

    await session.leave()
    await client.close()
    print(f"{'row':28} {'direct client/s':>16} {'via WAMP/s':>11} {'ratio':>7}")
    for label, d, w in rows:
        print(f"{label:28} {d:16.1f} {w:11.1f} {w / d:7.2f}")
    print(f"event latency put -> WAMP subscriber: p50 {pct(latencies, 0.5):.2f} ms, "
          f"p99 {pct(latencies, 0.99):.2f} ms over {n_lat} events")
    print(f"(calls: {n} per round, best of 2; ratio = via WAMP / direct client; "
          "CBOR serializer, JSON map values)")


async def overhead(reactor: Any, on: CrossbarNode, off: CrossbarNode, quick: bool) -> None:
    """map.put per second with extra.metrics on and off, rounds interleaved."""
    n = 500 if quick else 5000
    rounds = 2 if quick else 5
    sessions = {"on": await join(reactor, on.url, on.writer_ticket),
                "off": await join(reactor, off.url, off.writer_ticket)}

    def put(session: Any) -> Any:
        async def one(i: int) -> None:
            await session.call("etcd.map.put", "notes", f"k{i % 1000}", VALUE)
        return one

    for session in sessions.values():  # warm-up
        await rate(max(n // 5, 64), 64, put(session))
    best = {"on": 0.0, "off": 0.0}
    for _ in range(rounds):
        for name in ("off", "on"):
            best[name] = max(best[name], await rate(n, 64, put(sessions[name])))
    for session in sessions.values():
        await session.leave()
    print(f"map.put, 64 outstanding: metrics off {best['off']:.1f}/s, on {best['on']:.1f}/s, "
          f"ratio on/off {best['on'] / best['off']:.3f} (best of {rounds} interleaved "
          f"rounds of {n} calls)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="etcd URL (default: start a throw-away one)")
    parser.add_argument("--ws", help="WAMP URL of a running node configured like "
                                     "crossbar/.crossbar (default: start one)")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--metrics-overhead", action="store_true",
                        help="map.put with extra.metrics on vs off (starts its own etcd "
                             "and two nodes)")
    args = parser.parse_args()

    def go(etcd_url: str, ws_url: str, ticket: str) -> int:
        try:
            task.react(lambda reactor: defer.ensureDeferred(
                run(reactor, etcd_url, ws_url, ticket, args.quick)))
        except SystemExit as exc:
            return int(exc.code or 0) if isinstance(exc.code, int) else 1
        return 0

    config = str(ROOT / "crossbar" / ".crossbar" / "config.json")
    if args.metrics_overhead:
        with EtcdCluster(1) as etcd, \
                CrossbarNode(config, etcd.urls, extra_overrides={**EXTRA, "metrics": True}) \
                as on, \
                CrossbarNode(config, etcd.urls, extra_overrides={
                    **EXTRA, "metrics": False, "election": "bench-wamp/publisher-off"}) as off:
            try:
                task.react(lambda reactor: defer.ensureDeferred(
                    overhead(reactor, on, off, args.quick)))
            except SystemExit as exc:
                return int(exc.code or 0) if isinstance(exc.code, int) else 1
            return 0
    if args.url and args.ws:
        ticket = os.environ.get("ETCDWAMP_WRITER_TICKET")
        if not ticket:
            parser.error("--ws needs the node's writer ticket in ETCDWAMP_WRITER_TICKET")
        return go(args.url, args.ws, ticket)
    if args.url:
        with CrossbarNode(config, [args.url], extra_overrides=EXTRA) as node:
            return go(args.url, node.url, node.writer_ticket)
    with EtcdCluster(1) as etcd, CrossbarNode(config, etcd.urls, extra_overrides=EXTRA) as node:
        return go(etcd.url, node.url, node.writer_ticket)


if __name__ == "__main__":
    sys.exit(main())
