"""The workload of the partition suite, run as a process inside the client namespace.

``python partition_workload.py CONFIG_JSON`` (``PYTHONPATH`` = the repository). It
starts a Crossbar node (the committed config, its component pointed at the
cluster's members), then, until told ``stop`` on stdin (or stdin closes):

- writers put unique values to a few keys: two through the *test* client (the
  scenario's endpoint order: the faulted member first), one through a *steady*
  client (a healthy member first) so that events keep coming whatever the
  test client does;
- readers do linearizable ``get``s through each client;
- a WAMP session of the writer role calls ``kv.put`` and ``kv.get`` on the component
  (one actor each);
- the test client watches the prefix, and the same WAMP session subscribes to the
  component's events for it.

Every operation is recorded with its invocation and completion times
(``time.monotonic``, the clock the orchestrator shares) and its outcome: ``ok``,
``failed`` (definitely not applied) or ``indefinite`` (may have been applied:
``OutcomeUnknown`` and its subclasses; through WAMP the ``outcome_unknown``
URI); so is every watch and WAMP event with the time it arrived. After ``stop``
the workload lets its calls end (each within its timeout), reads etcd's own
history of the prefix with plain HTTP (a watch from revision 1, not the client
under test), waits a bounded time for both channels to deliver it, and writes
everything as JSON (the Crossbar node's log beside it, as ``crossbar.log``).

Lines on stdout, each ``WORD JSON``: ``crossbar`` (the node's PID), ``ready``,
``progress`` (at most every 0.1 s, when it changed: counters, and how ``fresh`` each
part is: ``watch``/``wamp``, the latest acknowledgement among the writes whose
events arrived; ``test``/``calls``, the latest invocation among the test client's
and the WAMP calls that succeeded) and ``done``
(the history file). The orchestrator waits on them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor, stdio, task, threads
from twisted.internet.defer import Deferred, DeferredList
from twisted.protocols.basic import LineReceiver
from waiting import until
from wamp_helpers import CONFIG, connect, disconnect

from etcdwamp import errors
from etcdwamp.client import Client
from etcdwamp.testing import CrossbarNode
from etcdwamp.wire import KeySet
from etcdwamp.wire.watch import WatchEvent

#: the component's kv prefix in the committed config, and the topic of its events
KV_PREFIX = "demo/raw/"
TOPIC = "etcd.kv.demo_raw.on_change"
RESYNC = "etcd.kv.demo_raw.on_resync"


def emit(word: str, **fields: Any) -> None:
    """One line for the orchestrator."""
    sys.stdout.write(f"{word} {json.dumps(fields)}\n")
    sys.stdout.flush()


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


class _Commands(LineReceiver):
    """``stop`` on stdin, or stdin closing, ends the workload."""

    delimiter = b"\n"

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop

    def lineReceived(self, line: bytes) -> None:
        if line.strip() == b"stop":
            self.stop()

    def connectionLost(self, reason: Any = None) -> None:
        self.stop()


class Workload:
    """Everything one run does and records (see the module docstring)."""

    def __init__(self, config: dict[str, Any], node: CrossbarNode) -> None:
        self.config = config
        self.node = node
        self.prefix = KV_PREFIX + config["name"] + "/"
        self.keys = [f"{self.prefix}k{i}" for i in range(config["keys"])]
        self.timeout = float(config["timeout"])
        self.ops: list[dict[str, Any]] = []
        self.watched: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []
        self.resyncs: list[Any] = []
        self.watch_end: str | None = None
        #: completion time of each acknowledged write, by value
        self.acked: dict[str, float] = {}
        #: per channel: the latest acknowledgement among the writes it delivered; per
        #: client ("test", "wamp"): the latest invocation among its calls that succeeded
        self.fresh = {"watch": 0.0, "wamp": 0.0, "test": 0.0, "calls": 0.0}
        self.stopping = False
        self.stopped: Deferred[None] = Deferred()

    # -- recording -------------------------------------------------------------

    async def record(self, actor: str, kind: str, key: str, value: str | None,
                     call: Callable[[], Awaitable[Any]],
                     outcome_of: Callable[[Exception], str]) -> tuple[dict[str, Any], Any]:
        """Run ``call`` as one recorded operation: the record, and ``call``'s result
        (None when it failed)."""
        op: dict[str, Any] = {"id": len(self.ops), "actor": actor, "kind": kind, "key": key,
                              "value": value, "invoke": time.monotonic(), "complete": None,
                              "outcome": "pending", "error": None}
        self.ops.append(op)
        try:
            result = await call()
        except Exception as exc:
            op["complete"] = time.monotonic()
            op["outcome"] = outcome_of(exc)
            op["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            return op, None
        op["complete"] = time.monotonic()
        op["outcome"] = "ok"
        client = {"test": "test", "wamp": "calls"}.get(actor.split("-")[0], "")
        if client:
            self.fresh[client] = max(self.fresh[client], op["invoke"])
        if kind == "write":
            self.acked[str(value)] = op["complete"]
        return op, result

    def delivered(self, channel: str, key: str, value: str, revision: int) -> None:
        events = self.watched if channel == "watch" else self.published
        events.append({"key": key, "value": value, "revision": revision, "t": time.monotonic()})
        acked = self.acked.get(value)
        if acked is not None:
            self.fresh[channel] = max(self.fresh[channel], acked)

    # -- the parts ---------------------------------------------------------------

    async def writer(self, actor: str, client: Client, first_key: int) -> None:
        n = 0
        while not self.stopping:
            key = self.keys[(first_key + n) % len(self.keys)]
            value = f"{actor}-{n}"
            n += 1
            await self.record(actor, "write", key, value,
                              lambda k=key, v=value: client.put(k.encode(), v.encode()),
                              _client_outcome)
            await self.pace()

    async def reader(self, actor: str, client: Client, first_key: int) -> None:
        n = 0
        while not self.stopping:
            key = self.keys[(first_key + n) % len(self.keys)]
            n += 1
            op, got = await self.record(actor, "read", key, None,
                                        lambda k=key: client.get(k.encode()), _client_outcome)
            if op["outcome"] == "ok":
                op["value"] = _text(got.first.value) if got.first is not None else None
            await self.pace()

    async def wamp_writer(self, session: Any, first_key: int) -> None:
        n = 0
        while not self.stopping:
            key = self.keys[(first_key + n) % len(self.keys)]
            value = f"wamp-w-{n}"
            n += 1
            await self.record("wamp-w", "write", key, value,
                              lambda k=key, v=value: session.call("etcd.kv.put", k, v),
                              _wamp_outcome)
            await self.pace()

    async def wamp_reader(self, session: Any, first_key: int) -> None:
        n = 0
        while not self.stopping:
            key = self.keys[(first_key + n) % len(self.keys)]
            n += 1
            op, got = await self.record("wamp-r", "read", key, None,
                                        lambda k=key: _wamp_get(session, k), _wamp_outcome)
            if op["outcome"] == "ok":
                op["value"] = got["value"]
            await self.pace()

    async def pace(self) -> None:
        """The gap between two calls of one actor: a steady load, not a flood."""
        await task.deferLater(reactor, self.config["pace"])

    async def progress(self) -> None:
        last: dict[str, Any] = {}
        while not self.stopping:
            now = {"acked": len(self.acked), "watched": len(self.watched),
                   "published": len(self.published), "fresh": dict(self.fresh)}
            if now != last:
                emit("progress", **now)
                last = now
            await task.deferLater(reactor, 0.1)  # wait-ok: the reporter's period

    # -- the run -----------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.config
        test = Client(reactor, endpoints=cfg["endpoints"], timeout=self.timeout)
        steady = Client(reactor, endpoints=cfg["steady_endpoints"], timeout=self.timeout)
        session = await connect(self.node)
        await session.subscribe(self.on_publish, TOPIC)
        await session.subscribe(lambda *a, **kw: self.resyncs.append([a, kw]), RESYNC)
        start = (await steady.get(KeySet(self.prefix.encode(), prefix=True))).header.revision
        watch = test.watch(KeySet(self.prefix.encode(), prefix=True), on_event=self.on_watch,
                           start_revision=start + 1)
        watch.finished.addBoth(self.on_watch_end)
        await watch.created
        # Both channels carry events before the load starts (the publisher leads).
        await self.record("steady", "write", self.keys[0], "warm-up",
                          lambda: steady.put(self.keys[0].encode(), b"warm-up"),
                          _client_outcome)
        await until(lambda: self.watched and self.published, timeout=60,
                    why="the warm-up write reached no watch or no subscriber")
        stdio.StandardIO(_Commands(self.stop))
        emit("ready", start=start)
        loops = [
            self.writer("test-w0", test, 0), self.writer("test-w1", test, 1),
            self.writer("steady-w", steady, 2),
            self.reader("test-r", test, 0), self.reader("steady-r", steady, 1),
            self.wamp_writer(session, 3), self.wamp_reader(session, 2), self.progress(),
        ]
        running = [Deferred.fromCoroutine(c) for c in loops]
        await self.stopped
        stopped_at = time.monotonic()
        # Every call ends within its timeout; one that does not is left pending
        # (the checker counts it) rather than holding the run forever.
        settled = DeferredList(running, consumeErrors=True)
        grace: Deferred[None] = task.deferLater(reactor, self.timeout + 5)
        await DeferredList([settled, grace], fireOnOneCallback=True, consumeErrors=True)
        grace.cancel()
        history = await threads.deferToThread(
            etcd_history, cfg["steady_endpoints"], self.prefix)
        revisions = {e["revision"] for e in history}

        def caught_up() -> bool:
            return (revisions <= {e["revision"] for e in self.watched}
                    and revisions <= {e["revision"] for e in self.published})

        with contextlib.suppress(AssertionError):  # what is missing, the checker reports
            await until(caught_up, timeout=cfg["catch_up"])
        finals = await threads.deferToThread(
            final_values, cfg["steady_endpoints"], self.keys)
        out = {"timeout": self.timeout, "wamp_timeout": self.timeout, "prefix": self.prefix,
               "start": start, "stopped": stopped_at, "ops": self.ops,
               "finals": finals, "watch": self.watched, "wamp": self.published,
               "resyncs": self.resyncs, "watch_end": self.watch_end,
               "watch_reconnects": watch.reconnects, "etcd": history}
        Path(cfg["history"]).write_text(json.dumps(out))
        watch.cancel()
        await disconnect(session)
        await test.close()
        await steady.close()
        emit("done", history=cfg["history"])

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stopped.callback(None)

    def on_watch(self, event: WatchEvent) -> None:
        self.delivered("watch", event.kv.key.decode(), event.kv.value.decode(), event.revision)

    def on_watch_end(self, result: Any) -> None:
        self.watch_end = None if result is None else str(getattr(result, "value", result))

    def on_publish(self, event: dict[str, Any]) -> None:
        self.delivered("wamp", str(_text(event["key"])), str(_text(event["value"])),
                       int(event["revision"]))


def _client_outcome(exc: Exception) -> str:
    """``indefinite`` where the library says the request may have been applied."""
    return "indefinite" if isinstance(exc, errors.OutcomeUnknown) else "failed"


def _wamp_outcome(exc: Exception) -> str:
    if isinstance(exc, ApplicationError) and exc.error.endswith(".error.outcome_unknown"):
        return "indefinite"
    return "failed"


async def _wamp_get(session: Any, key: str) -> dict[str, Any]:
    """``kv.get``: an absent key is an answer too (``value`` None)."""
    try:
        got = await session.call("etcd.kv.get", key)
    except ApplicationError as exc:
        if exc.error.endswith(".error.not_found"):
            return {"value": None}
        raise
    return {"value": _text(got["value"])}


# -- etcd's own account, over plain HTTP (not the client under test) -----------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _first_answer(endpoints: list[str], fetch: Callable[[str], Any]) -> Any:
    """``fetch(endpoint)`` from the first endpoint that answers it."""
    failures = []
    for endpoint in endpoints:
        try:
            return fetch(endpoint)
        except OSError as exc:
            failures.append(f"{endpoint}: {exc}")
    raise RuntimeError("no endpoint answered: " + "; ".join(failures))


def etcd_history(endpoints: list[str], prefix: str) -> list[dict[str, Any]]:
    """Every put under ``prefix`` in etcd's history, in revision order: a plain
    watch from revision 1, read until the newest revision under the prefix."""
    raw = prefix.encode()

    def fetch(endpoint: str) -> list[dict[str, Any]]:
        newest = _post(endpoint + "/v3/kv/range", {
            "key": _b64(raw), "range_end": _b64(_prefix_end(raw)), "limit": 1,
            "sort_order": "DESCEND", "sort_target": "MOD"}).get("kvs", [])
        if not newest:
            return []
        last = int(newest[0]["mod_revision"])
        events: list[dict[str, Any]] = []
        request = urllib.request.Request(
            endpoint + "/v3/watch", method="POST",
            data=json.dumps({"create_request": {
                "key": _b64(raw), "range_end": _b64(_prefix_end(raw)),
                "start_revision": 1}}).encode())
        with urllib.request.urlopen(request, timeout=10) as stream:
            for line in stream:  # the gateway sends one JSON object per line
                result = json.loads(line)["result"]
                for event in result.get("events", []):
                    kv = event["kv"]
                    events.append({"key": base64.b64decode(kv["key"]).decode(),
                                   "value": base64.b64decode(kv.get("value", "")).decode(),
                                   "revision": int(kv["mod_revision"]),
                                   "type": event.get("type", "PUT")})
                if events and events[-1]["revision"] >= last:
                    return events
        raise RuntimeError("the history watch ended early")

    history: list[dict[str, Any]] = _first_answer(endpoints, fetch)
    return history


def final_values(endpoints: list[str], keys: list[str]) -> dict[str, Any]:
    """Each key's value now, by a linearizable read over plain HTTP, with the
    times it was asked and answered."""
    def fetch(endpoint: str) -> dict[str, Any]:
        out = {}
        for key in keys:
            invoke = time.monotonic()
            kvs = _post(endpoint + "/v3/kv/range", {"key": _b64(key.encode())}).get("kvs", [])
            out[key] = {"value": base64.b64decode(kvs[0]["value"]).decode() if kvs else None,
                        "invoke": invoke, "complete": time.monotonic()}
        return out

    finals: dict[str, Any] = _first_answer(endpoints, fetch)
    return finals


def main() -> None:
    config = json.loads(sys.argv[1])
    node = CrossbarNode(str(CONFIG), config["endpoints"],
                        extra_overrides={"etcd": {"timeout": config["timeout"]}})
    try:
        node.start()
        assert node.process is not None
        emit("crossbar", pid=node.process.pid)
        workload = Workload(config, node)
        task.react(lambda _reactor: Deferred.fromCoroutine(workload.run()))
    finally:
        # The node's directory goes with it: its log stays beside the history.
        with contextlib.suppress(OSError):
            shutil.copy(node.log_path, Path(config["history"]).with_name("crossbar.log"))
        node.stop()


if __name__ == "__main__":
    main()
