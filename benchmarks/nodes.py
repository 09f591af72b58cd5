"""Nodes benchmark: delivered events/s and latency with 1, 2, 3 Crossbar nodes behind
HAProxy, and the CPU cost per event per subscriber and per call on one node.

The deployment of docs/operations.rst ("Several nodes behind a load balancer"): N nodes
from the committed ``crossbar/.crossbar/config.json`` (component embedded, its defaults),
HAProxy from ``crossbar/haproxy.cfg``, one etcd (``--members``, default 1; started here
unless ``--url``). Everything runs in this one process's reactor:

- S anonymous subscribers (the role browsers have) join through HAProxy, so round-robin
  spreads them evenly over the nodes, and subscribe to ``etcd.map.notes.on_change``;
- one writer joins through HAProxy and puts notes with ``--window`` puts outstanding; a
  put's slot frees when the call returned and its event reached all S subscribers, so
  the writer runs at the speed the whole chain delivers and no queue grows unbounded;
- delivered events/s = events received summed over subscribers; latency = event arrival
  minus the put's send time (one clock, this process), over every delivered event;
- CPU seconds of each process from ``/proc/<pid>/stat`` over the measured interval:
  the nodes (Crossbar controller + router worker, which hosts the component), HAProxy,
  etcd, and this process (writer + subscribers: in a deployment, the browsers).

Part 1 runs the same S subscribers (``--subscribers``, 60) on 1, 2, 3 nodes (``--nodes``):
at full speed (``--window`` 16 puts outstanding), and at a fixed ``--rate`` (20 puts/s,
started on time whatever is outstanding) for the latency and CPU per put at light load.
Part 2 runs one node: ``map.put`` at full speed with no subscriber (the cost of a call),
then 0, 1, 10, 100, 300 subscribers (``--sweep``) at the fixed rate, and fits, per
process, CPU per put = a + b x S: ``a`` the fixed cost of a put with its event (the call,
etcd's write and watch event, the publisher), ``b`` the cost per event per subscriber.
The rate is the same in every row because a put's fixed cost depends on it (at full
speed calls and etcd writes are batched). The model of docs/operations.rst ("Capacity:
measured and modelled") is built from these figures.

    python benchmarks/nodes.py [--quick] [--nodes 1,2,3] [--members 1|3] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from etcdwamp.testing import BalancedNodes, CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "crossbar" / ".crossbar" / "config.json"
HAPROXY_TEMPLATE = ROOT / "crossbar" / "haproxy.cfg"
# Own prefixes, so a shared etcd (--url) keeps its other data apart; the rest of the
# committed extra (maps, kv prefix, presence: the watches a node opens) stays as it is.
EXTRA = {"db_prefix": "bench-nodes/", "election": "bench-nodes/publisher"}
TOPIC = "etcd.map.notes.on_change"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GROUPS = ("nodes", "haproxy", "etcd", "bench")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # "pid (comm) state ...": comm may hold spaces; utime, stime are fields 14, 15.
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` in MB (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def node_pids(node: CrossbarNode) -> list[int]:
    """The node's Crossbar controller and its worker processes (the router worker)."""
    assert node.process is not None
    controller = node.process.pid
    pids = [controller]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == controller:
                    pids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return pids


def pct(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (NaN without any)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load() -> str:
    """The load averages, as ``uptime`` prints them."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


@dataclass
class Result:
    """One measured interval."""

    nodes: int
    subscribers: int
    window: int  # puts outstanding (rate 0)
    rate: float  # puts started per second (0: as fast as ``window`` allows)
    seconds: float
    puts: int
    delivered: int
    latencies_ms: list[float]
    cpu: dict[str, float]  # CPU seconds by process group (GROUPS)
    spread: list[int]  # connections per node, as HAProxy counts them
    load: str  # the load averages at its end
    rss: dict[str, float]  # resident MB by process group, subscribers still connected
    etcd_known: bool = True  # etcd was started here, so its CPU was measured

    @property
    def puts_per_s(self) -> float:
        return self.puts / self.seconds

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.seconds

    def us_per_put(self, group: str) -> float:
        return self.cpu[group] / self.puts * 1e6 if self.puts else float("nan")


@dataclass
class Pending:
    """A put whose event some subscribers still owe."""

    sent: float
    missing: int
    done: Deferred[None] = field(default_factory=Deferred)


class Bench:
    """The writer and subscribers of one measurement, in this process's reactor."""

    def __init__(self, reactor: Any, url: str, realm: str, ticket: str) -> None:
        self.reactor = reactor
        self.url = url
        self.realm = realm
        self.ticket = ticket
        self.pending: dict[str, Pending] = {}
        self.counting = False
        self.delivered = 0
        self.latencies: list[float] = []

    async def join(self, ticket: str | None) -> Any:
        """A session joined through the balancer: the writer with ``ticket``, else a guest."""
        joined: Deferred[Any] = Deferred()
        auth = {"ticket": {"authid": "writer", "ticket": ticket}} if ticket else None
        component = Component(transports=[{"url": self.url, "serializers": ["cbor"],
                                           "max_retries": 0}],
                              realm=self.realm, authentication=auth)
        component.on_join(lambda session, details: joined.callback(session)
                          if not joined.called else None)
        done = component.start(self.reactor)
        done.addErrback(lambda f: joined.errback(f) if not joined.called else None)
        return await joined

    def on_change(self, event: dict[str, Any]) -> None:
        """An event at one subscriber: counted, its latency kept while measuring."""
        waiting = self.pending.get(event["key"])
        if waiting is None:
            return
        if self.counting:
            self.delivered += 1
            self.latencies.append((time.perf_counter() - waiting.sent) * 1000.0)
        waiting.missing -= 1
        if waiting.missing == 0:
            del self.pending[event["key"]]
            waiting.done.callback(None)

    async def subscribers(self, count: int) -> list[Any]:
        """``count`` guest sessions subscribed to the map's events, joined one by one."""
        sessions = []
        for _ in range(count):
            session = await self.join(None)
            await session.subscribe(self.on_change, TOPIC)
            sessions.append(session)
        return sessions

    async def put(self, writer: Any, key: str, n: int, subscribers: int,
                  counted: list[int]) -> None:
        """One ``map.put``; returns once it returned and all subscribers got its event."""
        waiting = Pending(time.perf_counter(), subscribers)
        if subscribers:
            self.pending[key] = waiting
        await writer.call("etcd.map.put", "notes", key, {"text": "hello", "n": n})
        if subscribers:
            await waiting.done
        if self.counting:
            counted[0] += 1

    async def write(self, writer: Any, worker: int, subscribers: int,
                    until: Callable[[], bool], counted: list[int]) -> None:
        """Put after put until ``until()``: one of ``window`` writers at full speed."""
        n = 0
        while not until():
            n += 1
            await self.put(writer, f"w{worker}", n, subscribers, counted)

    async def pace(self, writer: Any, rate: float, subscribers: int,
                   until: Callable[[], bool], counted: list[int]) -> None:
        """Start ``rate`` puts per second, whatever is outstanding, until ``until()``."""
        started, n, puts = time.monotonic(), 0, []
        while not until():
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await task.deferLater(self.reactor, delay)
            # Keys repeat only long after: a key has one put outstanding at a time.
            puts.append(Deferred.fromCoroutine(
                self.put(writer, f"p{n % 4096}", n, subscribers, counted)))
            n += 1
        await defer.gatherResults(puts, consumeErrors=True)


async def measure(bench: Bench, pids: dict[str, list[int]], node_count: int,
                  subscribers: int, phases: Sequence[tuple[int, float, float]],
                  spread: Callable[[], list[int]]) -> list[Result]:
    """S subscribers and a writer through the balancer; for each ``(window, rate,
    seconds)`` of ``phases``: warm up, then measure ``seconds`` with ``window`` puts
    outstanding (``rate`` 0) or ``rate`` puts started per second."""
    writer = await bench.join(bench.ticket)
    sessions = await bench.subscribers(subscribers)
    results = []
    try:
        connections = spread()
        for window, rate, seconds in phases:
            stop_at = [time.monotonic() + min(1.0, seconds / 4)]  # warm-up
            counted = [0]

            def until(stop_at: list[float] = stop_at) -> bool:
                return time.monotonic() >= stop_at[0]

            async def rounds(window: int = window, rate: float = rate,
                             until: Callable[[], bool] = until,
                             counted: list[int] = counted) -> None:
                if rate:
                    await bench.pace(writer, rate, subscribers, until, counted)
                    return
                await defer.gatherResults(
                    [Deferred.fromCoroutine(bench.write(writer, w, subscribers, until, counted))
                     for w in range(window)], consumeErrors=True)

            await rounds()
            bench.delivered, bench.latencies, counted[0] = 0, [], 0
            before = {g: sum(cpu_seconds(p) for p in pids[g]) for g in GROUPS}
            t0 = time.perf_counter()
            stop_at[0] = time.monotonic() + seconds
            bench.counting = True
            await rounds()
            bench.counting = False
            elapsed = time.perf_counter() - t0
            after = {g: sum(cpu_seconds(p) for p in pids[g]) for g in GROUPS}
            memory = {g: sum(rss_mb(p) for p in pids[g]) for g in GROUPS}
            results.append(Result(node_count, subscribers, window, rate, elapsed, counted[0],
                                  bench.delivered, bench.latencies,
                                  {g: after[g] - before[g] for g in GROUPS}, connections,
                                  load(), memory, etcd_known=bool(pids["etcd"])))
        return results
    finally:
        for session in [writer, *sessions]:
            if session.is_attached():
                await session.leave()


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares ``y = a + b x``; returns ``(a, b)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def us(value: float) -> str:
    """A figure in microseconds for a table cell."""
    return "n/a" if value != value else f"{value:,.1f}"  # NaN: not measured


def print_nodes(results: list[tuple[Result, Result, str]]) -> None:
    """Part 1: per node count, the full-speed run, the fixed-rate run and etcd's watchers."""
    base, paced, _ = results[0]
    print(f"\nPart 1: {base.subscribers} subscribers spread over the nodes, one writer "
          "(all through HAProxy); processes nodes/haproxy/etcd/bench")
    print(f"{'':32} {f'-- {base.window} puts outstanding --':^52} "
          f"{f'-- {paced.rate:.0f} puts/s --':^44}")
    print(f"{'nodes':>5} {'conns/node':>12} {'watch/streams':>13} {'puts/s':>7} "
          f"{'delivered ev/s':>14} {'p50/p99 ms':>12} {'cores busy':>17} "
          f"{'p50/p99 ms':>12} {'CPU us per put':>31}  {'load 1/5/15 min':>15} {'ratio':>6}")
    for r, slow, watchers in results:
        spread = "/".join(str(c) for c in r.spread)
        busy = "/".join(f"{r.cpu[g] / r.seconds:.2f}" if g != "etcd" or r.etcd_known
                        else "n/a" for g in GROUPS)
        print(f"{r.nodes:5d} {spread:>12} {watchers:>13} {r.puts_per_s:7,.0f} "
              f"{r.delivered_per_s:14,.0f} "
              f"{pct(r.latencies_ms, 0.5):5.1f}/{pct(r.latencies_ms, 0.99):<6.1f} "
              f"{busy:>17} "
              f"{pct(slow.latencies_ms, 0.5):5.1f}/{pct(slow.latencies_ms, 0.99):<6.1f} "
              f"{'/'.join(cpu_cells(slow, slow.puts)):>31}  {r.load:>15} "
              f"{r.delivered_per_s / base.delivered_per_s:6.2f}")
    print("(conns/node: HAProxy's connections per node, subscribers + writer; "
          "watch/streams: etcd's watchers and watch streams; cores busy: CPU seconds per "
          "second; ratio: delivered events/s against 1 node in this run)")
    if len(results) > 1 and paced.etcd_known:
        xs = [float(slow.nodes) for _, slow, _ in results]
        for group, what in (("etcd", "its watchers' fan-out"),
                            ("nodes", "each node's publisher and subscribers")):
            a, b = fit(xs, [slow.us_per_put(group) for _, slow, _ in results])
            print(f"  {group} CPU per put at {paced.rate:.0f} puts/s = {a:,.1f} + {b:,.1f} us "
                  f"x nodes ({what})")


def cpu_cells(r: Result, per: float) -> list[str]:
    """CPU microseconds of each process group per ``per`` units of work."""
    return [us(r.cpu[g] / per * 1e6 if per else float("nan"))
            if g != "etcd" or r.etcd_known else "n/a" for g in GROUPS]


def print_costs(call: Result | None, rows: list[Result]) -> dict[str, tuple[float, float]]:
    """Part 2: the cost of a call, the rows at a fixed put rate, and the fit; returns the
    fit ``(a, b)`` by process group."""
    print("\nPart 2: one node; CPU us per put (with its events) by process, "
          "nodes/haproxy/etcd/bench")
    print(f"{'row':34} {'puts/s':>7} {'delivered ev/s':>14} {'p50/p99 ms':>12}  "
          f"{'CPU us per put':>30}  {'node us/event':>13} {'MB node/haproxy':>15}  "
          f"{'load 1/5/15 min':>15} {'ratio':>6}")
    base = rows[0]
    for label, r in ([(f"map.put, {call.window} outstanding, 0 subs", call)] if call else []) + [
            (f"{r.rate:.0f} puts/s, {r.subscribers} subscribers", r) for r in rows]:
        latency = (f"{pct(r.latencies_ms, 0.5):5.1f}/{pct(r.latencies_ms, 0.99):<6.1f}"
                   if r.latencies_ms else "-")
        per_event = us(r.cpu["nodes"] / r.delivered * 1e6) if r.delivered else "-"
        print(f"{label:34} {r.puts_per_s:7,.0f} {r.delivered_per_s:14,.0f} {latency:>12}  "
              f"{'/'.join(cpu_cells(r, r.puts)):>30}  {per_event:>13} "
              f"{r.rss['nodes']:7.1f}/{r.rss['haproxy']:<7.1f}  {r.load:>15} "
              f"{r.us_per_put('nodes') / base.us_per_put('nodes'):6.2f}")
    print(f"(ratio: the node's CPU per put against {base.subscribers} subscribers at the "
          "same rate in this run)")
    xs = [float(r.subscribers) for r in rows]
    if len(set(xs)) < 2:
        print("(no fit: it needs two subscriber counts at least)")
        return {}
    print("\nFitted CPU per put = a + b x subscribers (least squares over the fixed-rate "
          "rows):")
    model: dict[str, tuple[float, float]] = {}
    for group in GROUPS:
        if group == "etcd" and not base.etcd_known:
            print(f"  {group:8} n/a (etcd not started here)")
            continue
        a, b = fit(xs, [r.us_per_put(group) for r in rows])
        model[group] = (a, b)
        print(f"  {group:8} a = {a:8.1f} us per put, b = {b:6.2f} us per event per subscriber")
    for group in ("nodes", "haproxy"):
        mb, per = fit(xs, [r.rss[group] for r in rows])
        print(f"  {group} resident memory = {mb:.1f} MB + {per * 1024:.1f} kB x subscribers")
    return model


def print_model(model: dict[str, tuple[float, float]]) -> None:
    """What the fit predicts for 10 nodes and 10,000 subscribers, read both ways."""
    a, b = model["nodes"]
    hb = model["haproxy"][1]
    print("\nModel (one core per node; events/s = 1e6 / (a + b x S), delivered = "
          "S x events/s; HAProxy carries every node's deliveries):")
    for per_node, label in ((1_000, "10 nodes x 1,000 (10,000 in all)"),
                            (10_000, "10 nodes x 10,000 (100,000 in all)")):
        cost = a + b * per_node
        events = 1e6 / cost if cost > 0 else float("nan")
        print(f"  {label:36} a node: {events:8,.1f} events/s, "
              f"{events * per_node:9,.0f} delivered/s; HAProxy needs "
              f"{events * per_node * 10 * hb / 1e6:5.2f} cores at that rate")


async def etcd_watchers(url: str) -> str:
    """etcd's count of watchers and of watch streams (one per gateway HTTP stream), from
    its metrics, as ``"watchers/streams"``."""
    names = ("etcd_debugging_mvcc_watcher_total", "etcd_debugging_mvcc_watch_stream_total")

    def read() -> str:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            found = dict(line.split()[:2] for line in response.read().decode().splitlines()
                         if line.split(" ", 1)[0] in names)
        return "/".join(str(int(float(found[n]))) if n in found else "?" for n in names)
    counted: str = await deferToThread(read)
    return counted


async def run(reactor: Any, etcd_urls: list[str], etcd_pids: list[int],
              args: argparse.Namespace) -> None:
    seconds = 1.0 if args.quick else args.seconds
    subscribers = args.subscribers or (6 if args.quick else 60)
    sweep = args.sweep or ([0, 10, 30] if args.quick else [0, 1, 10, 100, 300])
    rate = args.rate
    began = time.monotonic()
    counts = args.nodes or ([1, 2] if args.quick else [1, 2, 3])
    print(f"etcd: {len(etcd_urls)} member(s){'' if etcd_pids else ' (given, not measured)'}; "
          f"{seconds:g} s per row; "
          f"{os.cpu_count()} cores; load at start {load()}")
    by_nodes: list[tuple[Result, Result, str]] = []
    costs: list[Result] = []
    call: Result | None = None
    for count in sorted(set(counts) | {1}):
        nodes = BalancedNodes(str(CONFIG), str(HAPROXY_TEMPLATE), etcd_urls, count=count,
                              extra_overrides=EXTRA)
        try:
            # Side by side: a node spends seconds importing, most of a quick run.
            await defer.gatherResults([deferToThread(node.start) for node in nodes.nodes],
                                      consumeErrors=True)
            await deferToThread(nodes.balancer.start)
            haproxy = nodes.balancer.process
            pids = {"nodes": [p for node in nodes.nodes for p in node_pids(node)],
                    "haproxy": [haproxy.pid] if haproxy is not None else [],
                    "etcd": etcd_pids, "bench": [os.getpid()]}
            bench = Bench(reactor, nodes.url, nodes.realm, nodes.writer_ticket)
            if count == min(counts):
                info = dict(line.split(": ", 1) for line in
                            nodes.balancer.command("show info").splitlines() if ": " in line)
                print("HAProxy: " + ", ".join(f"{k} {info.get(k, '?')}" for k in (
                    "Version", "Nbthread", "Ulimit-n", "Maxsock", "Maxconn")))

            def spread(nodes: BalancedNodes = nodes) -> list[int]:
                states = nodes.server_states()
                return [states[nodes.server_name(i)].current for i in range(len(nodes.nodes))]

            if count in counts:
                rows = await measure(bench, pids, count, subscribers,
                                     [(args.window, 0, seconds), (0, rate, seconds)], spread)
                by_nodes.append((rows[0], rows[1], await etcd_watchers(etcd_urls[0])))
            if count == 1 and not args.skip_costs:
                call = (await measure(bench, pids, 1, 0, [(args.window, 0, seconds)],
                                      spread))[0]
                for s in sweep:
                    costs += await measure(bench, pids, 1, s, [(0, rate, seconds)], spread)
        finally:
            await deferToThread(nodes.stop)
    if by_nodes:
        print_nodes(by_nodes)
    if costs:
        model = print_costs(call, costs)
        if len({r.subscribers for r in costs}) > 1:
            print_model(model)
    print(f"\n(ran {time.monotonic() - began:.0f} s; load at the end {load()})")


def parse_counts(text: str) -> list[int]:
    """A comma-separated list of counts, each 0 or more."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not counts or any(c < 0 for c in counts):
        raise argparse.ArgumentTypeError(f"counts must be 0 or more: {text!r}")
    return counts


def parse_nodes(text: str) -> list[int]:
    """A comma-separated list of node counts, each 1 or more."""
    counts = parse_counts(text)
    if 0 in counts:
        raise argparse.ArgumentTypeError(f"node counts must be positive: {text!r}")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="etcd URL (default: start a throw-away etcd)")
    parser.add_argument("--members", type=int, choices=(1, 3), default=1,
                        help="members of the etcd started here (default 1)")
    parser.add_argument("--nodes", type=parse_nodes,
                        help="node counts for part 1, comma separated (default 1,2,3; "
                             "1,2 with --quick)")
    parser.add_argument("--subscribers", type=int, default=0,
                        help="subscribers in part 1 (default 60; 6 with --quick)")
    parser.add_argument("--sweep", type=parse_counts,
                        help="subscriber counts of part 2 (default 0,1,10,100,300; "
                             "0,10,30 with --quick)")
    parser.add_argument("--window", type=int, default=16, help="puts outstanding (16)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="puts per second of the fixed-rate rows (20)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured seconds per row (10; 3 with --quick)")
    parser.add_argument("--skip-costs", action="store_true", help="part 1 only")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()

    def go(urls: list[str], pids: list[int]) -> int:
        try:
            task.react(lambda reactor: defer.ensureDeferred(run(reactor, urls, pids, args)))
        except SystemExit as exc:  # react() always exits; keep its status
            return exc.code if isinstance(exc.code, int) else 1
        return 0

    if args.url:
        return go([args.url], [])
    with EtcdCluster(args.members) as etcd:
        return go(etcd.urls, [m.process.pid for m in etcd.members if m.process is not None])


if __name__ == "__main__":
    sys.exit(main())
