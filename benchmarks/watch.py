"""Watch benchmark: etcdwamp's Watch against a minimal plain-treq watch stream.

Measured in one process run, against one local etcd (started here unless --url):

- latency: put one key, wait until the watcher's callback sees that event;
  1,000 times one after the other; p50 / p99 in milliseconds;
- throughput: 10,000 puts written with 64 outstanding requests; events per
  second until the watcher has received all of them.

The baseline opens ``POST /v3/watch`` with treq, splits the body on newlines
and decodes each frame with ``json.loads`` + base64: the least work a correct
watcher must do. Both watchers get the same puts (issued by the same writer).

    python benchmarks/watch.py [--url http://127.0.0.1:2379] [--quick]
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import harness
import treq
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool

from etcdwamp import Client, KeySet
from etcdwamp.watch import WatchBatch

OnKey = Callable[[bytes], None]


class _Lines(Protocol):
    def __init__(self, on_key: OnKey) -> None:
        self.buf = b""
        self.on_key = on_key

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            result = json.loads(line)["result"]
            for ev in result.get("events", ()):
                kv = ev["kv"]
                base64.b64decode(kv.get("value", ""))
                self.on_key(base64.b64decode(kv["key"]))


class BaselineWatcher:
    """Plain treq: one streaming POST, newline-split JSON frames."""

    def __init__(self, reactor: Any, url: str) -> None:
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=pool))
        self.url = url
        self.response: Any = None

    async def start(self, prefix: bytes, on_key: OnKey) -> None:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps({"create_request": {
            "key": base64.b64encode(prefix).decode(),
            "range_end": base64.b64encode(end).decode()}}).encode()
        self.response = await self.http.post(self.url + "/v3/watch", data=body,
                                             unbuffered=True)
        if self.response.code != 200:
            raise RuntimeError(f"watch failed: HTTP {self.response.code}")
        created: Deferred[None] = Deferred()
        proto = _Lines(on_key)
        original = proto.dataReceived

        def data(chunk: bytes) -> None:
            original(chunk)
            if not created.called:
                created.callback(None)

        proto.dataReceived = data  # type: ignore[method-assign]
        self.proto = proto
        self.response.deliverBody(proto)
        await created  # the "created" frame arrived

    def stop(self) -> None:
        self.proto.transport.stopProducing()  # type: ignore[attr-defined]


class EtcdwampWatcher:
    def __init__(self, reactor: Any, url: str) -> None:
        self.client = Client(reactor, url=url)
        self.watch: Any = None

    async def start(self, prefix: bytes, on_key: OnKey) -> None:
        def callback(batch: WatchBatch) -> None:
            for ev in batch.events:
                on_key(ev.kv.key)

        self.watch = await self.client.watch(KeySet(prefix, prefix=True), callback)

    def stop(self) -> None:
        self.watch.cancel()


async def latency(reactor: Any, watcher: Any, writer: Client, prefix: bytes,
                  n: int) -> list[float]:
    arrived: dict[bytes, Deferred[float]] = {}

    def on_key(key: bytes) -> None:
        d = arrived.get(key)
        if d is not None and not d.called:
            d.callback(time.perf_counter())

    await watcher.start(prefix, on_key)
    samples = []
    for i in range(n):
        key = prefix + b"%06d" % i
        arrived[key] = Deferred()
        t0 = time.perf_counter()
        await writer.put(key, b"x" * 64)
        t1 = await arrived[key]
        samples.append((t1 - t0) * 1000.0)
    watcher.stop()
    return samples


async def throughput(reactor: Any, watcher: Any, writer: Client, prefix: bytes,
                     n: int, outstanding: int = 64) -> float:
    seen = [0]
    done: Deferred[None] = Deferred()

    def on_key(key: bytes) -> None:
        seen[0] += 1
        if seen[0] == n and not done.called:
            done.callback(None)

    await watcher.start(prefix, on_key)
    t0 = time.perf_counter()
    keys = iter(range(n))

    async def worker() -> None:
        for i in keys:
            await writer.put(prefix + b"%06d" % i, b"x" * 64)

    await defer.gatherResults([Deferred.fromCoroutine(worker()) for _ in range(outstanding)])
    await done
    elapsed = time.perf_counter() - t0
    watcher.stop()
    return n / elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(reactor: Any, url: str, quick: bool) -> None:
    n_lat = 100 if quick else 1000
    n_thr = 1000 if quick else 10000
    writer = Client(reactor, url=url)
    rows = []
    lat: dict[str, list[float]] = {}
    thr: dict[str, float] = {}
    for rnd in range(2):  # alternate implementations; keep the second round
        for name, factory in (("baseline", BaselineWatcher), ("etcdwamp", EtcdwampWatcher)):
            lat[name] = await latency(reactor, factory(reactor, url), writer,
                                      b"bench/lat/%s/%d/" % (name.encode(), rnd), n_lat)
            thr[name] = await throughput(reactor, factory(reactor, url), writer,
                                         b"bench/thr/%s/%d/" % (name.encode(), rnd), n_thr)
    for label, q in (("latency p50 (ms)", 0.5), ("latency p99 (ms)", 0.99)):
        b, w = pct(lat["baseline"], q), pct(lat["etcdwamp"], q)
        rows.append((label, b, w, b / w if w else float("nan")))
    rows.append(("events/s (64 outstanding puts)", thr["baseline"], thr["etcdwamp"],
                 thr["etcdwamp"] / thr["baseline"]))
    await writer.close()
    print(f"{'row':34} {'baseline':>12} {'etcdwamp':>12} {'ratio':>8}")
    for label, b, w, ratio in rows:
        print(f"{label:34} {b:12.2f} {w:12.2f} {ratio:8.2f}")
    print(f"(latency: {n_lat} sequential put->callback; throughput: {n_thr} puts; "
          f"ratio > 1 means etcdwamp is better; mean etcdwamp latency "
          f"{statistics.mean(lat['etcdwamp']):.2f} ms)")



if __name__ == "__main__":
    sys.exit(harness.main(run, __doc__))
