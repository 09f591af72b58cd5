"""Bounded reads through a real Crossbar router and a real etcd, with the component
embedded in the router (Twisted) and outside it on asyncio: a result too big for
one answer is refused at once, progressive pages carry every row exactly once,
a snapshot in pages continues with the change topic, and a crowd of big reads
keeps the memory of the process serving them (Crossbar's router worker, or the
asyncio component) within bounds read from ``/proc``."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest_twisted
from autobahn.wamp.types import CallOptions
from twisted.internet.defer import Deferred, DeferredList
from waiting import until
from wamp_helpers import (
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    error_of,
    loop_fixture,  # noqa: F401 (a fixture)
    node_fixtures,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode
from etcdwamp.wire import OpSet, Transaction

ensure = pytest_twisted.ensureDeferred

DB = b"wreads/maps/"
# The shipped bounds: range_page 100, max_range_rows 1000, max_snapshot_rows 10000.
EXTRA = {
    "db_prefix": DB.decode(),
    "maps": {"notes": {"slot": 1}, "live": {"slot": 2}, "big": {"slot": 3}},
    "kv_prefixes": ["wreads/raw/"],
    "presence": None,
    "election": "wreads/publisher",
}
BIG_ROWS = 20_000
#: the most the serving process's peak RSS may grow while the crowd reads
RSS_BOUND = 100 * 1024 * 1024

crossbar, node = node_fixtures(EXTRA)


def slot_key(slot: int, key: str) -> bytes:
    return DB + slot.to_bytes(2, "big") + key.encode()


async def fill(client: Client, keys: list[bytes], value: bytes) -> None:
    """Write ``value`` at every key, 128 puts per etcd transaction."""
    for i in range(0, len(keys), 128):
        await client.txn(Transaction(success=[OpSet(k, value) for k in keys[i:i + 128]]))


@ensure
async def test_plain_range_beyond_the_maximum_is_refused_and_paging_reads_it_all(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    name = prefix.decode()
    keys = [f"{name}{i:05d}" for i in range(1500)]
    await fill(client, [slot_key(1, k) for k in keys], b"1")
    await fill(client, [b"wreads/raw/" + k.encode() for k in keys], b"1")
    s = await connect(node)
    try:
        refused = await error_of(s.call("etcd.map.range", "notes", name, name + "\uffff"))
        assert refused.error == "etcd.error.too_large"
        message = str(refused.args[0])
        assert "1000 rows" in message and "limit=1000" in message and "from_key" in message
        raw = await error_of(s.call("etcd.kv.range", "wreads/raw/" + name))
        assert raw.error == "etcd.error.too_large" and "from_key" in str(raw.args[0])
        # A limit above the maximum is refused too, never cut short.
        over = await error_of(s.call("etcd.map.notes.range", name, name + "\uffff", 1200))
        assert over.error == "etcd.error.too_large"

        # Paging as documented: from the last key received, skipping it when it
        # comes again.
        got: list[str] = []
        start = name
        while True:
            page = await s.call("etcd.map.notes.range", start, name + "\uffff", 1000)
            fresh = [r["key"] for r in page if not got or r["key"] > got[-1]]
            got += fresh
            if len(page) < 1000:
                break
            start = page[-1]["key"]
        assert got == keys
        got = []
        start = "wreads/raw/" + name
        while True:
            page = await s.call("etcd.kv.range", "wreads/raw/" + name, 1000, start)
            got += [r["key"].decode() for r in page if not got or r["key"].decode() > got[-1]]
            if len(page) < 1000:
                break
            start = page[-1]["key"].decode()
        assert got == ["wreads/raw/" + k for k in keys]
        # from_key outside the prefix is the caller's mistake.
        outside = await error_of(s.call("etcd.kv.range", "wreads/raw/" + name, 0, "wreads/x"))
        assert outside.error == "etcd.error.invalid_argument"
    finally:
        await disconnect(s)


@ensure
async def test_progressive_range_delivers_every_row_exactly_once(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    name = prefix.decode()
    keys = [f"{name}{i:05d}" for i in range(1234)]
    await fill(client, [slot_key(1, k) for k in keys], b'"v"')
    s = await connect(node)
    try:
        pages: list[list[dict[str, Any]]] = []
        # Writes into the range while it is read change nothing: one revision.
        calling = s.call("etcd.map.range", "notes", name, name + "\uffff",
                         options=CallOptions(on_progress=pages.append))
        await until(lambda: pages, why="no progressive page arrived")
        later = [f"{name}{i:05d}x" for i in range(0, 1234, 7)]
        await fill(client, [slot_key(1, k) for k in later], b"2")
        last = await calling
        assert [len(p) for p in pages] == [100] * 12 and len(last) == 34
        rows = [r for p in [*pages, last] for r in p]
        assert [r["key"] for r in rows] == keys
        assert all(r["value"] == "v" for r in rows)
        # A limit is honoured, in pages too (the later writes are there now).
        pages.clear()
        last = await s.call("etcd.map.range", "notes", name, name + "\uffff", 250,
                            options=CallOptions(on_progress=pages.append))
        assert [r["key"] for p in [*pages, last] for r in p] == sorted(keys + later)[:250]
        assert [len(p) for p in pages] == [100, 100] and len(last) == 50
    finally:
        await disconnect(s)


@ensure
async def test_snapshot_pages_continue_with_the_change_topic(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    name = prefix.decode()
    # The map is shared by both placements' runs: this run's keys carry its prefix.
    await fill(client, [slot_key(2, f"{name}{i:04d}") for i in range(450)], b"0")
    s = await connect(node)
    try:
        events: list[dict[str, Any]] = []
        await s.subscribe(lambda ev: events.append(ev) if ev["key"].startswith(name) else None,
                          "etcd.map.live.on_change")
        pages: list[dict[str, Any]] = []
        writes: list[int] = []

        async def write_while_reading() -> None:
            await until(lambda: pages, why="no snapshot page arrived")
            for i in range(0, 500, 10):  # updates and new keys
                key = slot_key(2, f"{name}{i:04d}")
                writes.append((await client.put(key, b"%d" % (i + 1))).revision)

        writing = Deferred.fromCoroutine(write_while_reading())
        last = await s.call("etcd.map.live.get_and_watch",
                            options=CallOptions(on_progress=pages.append))
        await writing
        revision = last["revision"]
        assert len(pages) >= 4 and {p["revision"] for p in pages} == {revision}
        state = {r["key"]: r["value"] for p in [*pages, last] for r in p["items"]
                 if r["key"].startswith(name)}
        assert len(state) == 450 and sum(len(p["items"]) for p in [*pages, last]) >= 450
        # The topic carries on from the snapshot's revision to the last write.
        await until(lambda: events and events[-1]["revision"] >= writes[-1],
                    why="the last write's event did not arrive")
        for ev in events:
            if ev["revision"] > revision:
                state[ev["key"]] = ev["value"]
        stored = (await client.get(KeySet(slot_key(2, name), prefix=True))).kvs
        assert state == {kv.key[len(DB) + 2:].decode(): json.loads(kv.value) for kv in stored}
        assert any(w > revision for w in writes)
    finally:
        await disconnect(s)


def _status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` size field (``VmRSS``, ``VmHWM``) in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def router_worker(node: CrossbarNode) -> int:
    """The PID of the node's router worker: the child of the node process whose command
    line (or title) names Crossbar's router worker class."""
    assert node.process is not None
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().decode(errors="replace").lower()
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        if ppid == node.process.pid and "router" in command:
            found.append(int(entry))
    assert len(found) == 1, f"router worker processes: {found}"
    return found[0]


def serving_processes(node: CrossbarNode) -> dict[str, int]:
    """The processes that hold read results: Crossbar's router worker, and the
    asyncio component when it runs outside Crossbar."""
    pids = {"router worker": router_worker(node)}
    if node.component_loop == "asyncio":
        pids["asyncio component"] = node.components[0].pid
    return pids


@ensure
async def test_a_crowd_of_big_reads_stays_within_the_memory_bound(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """16 progressive get_and_watch of a 20,000-key, 10 MB map and a range without
    limit raise the serving processes' peak RSS by at most 100 MB; plain calls for
    the same are refused at once with too_large."""
    big = (await client.get(KeySet(slot_key(3, ""), prefix=True), count_only=True)).count
    if big < BIG_ROWS:  # the first placement fills it, the second reuses it
        value = json.dumps({"text": "x" * 480}).encode()
        await fill(client, [slot_key(3, f"{i:06d}") for i in range(BIG_ROWS)], value)
    sessions = [await connect(node, serializer=serializer)
                for serializer in ("cbor", "json", "msgpack", "cbor")]
    try:
        plain = await error_of(sessions[0].call("etcd.map.big.get_and_watch"))
        assert plain.error == "etcd.error.too_large"
        assert "receive_progress" in str(plain.args[0])
        plain = await error_of(sessions[1].call("etcd.map.big.range"))
        assert plain.error == "etcd.error.too_large"

        pids = serving_processes(node)
        before = {what: _status(pid, "VmRSS") for what, pid in pids.items()}
        for pid in pids.values():
            with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")  # VmHWM (peak RSS) starts again from now
        rows: list[int] = []

        async def read(s: Any, procedure: str) -> int:
            rows.append(0)
            mine = len(rows) - 1

            def count(result: Any) -> None:
                items = result["items"] if isinstance(result, dict) else result
                rows[mine] += len(items)

            count(await s.call(procedure, options=CallOptions(on_progress=count)))
            return rows[mine]

        calls = [Deferred.fromCoroutine(read(sessions[i % 4], "etcd.map.big.get_and_watch"))
                 for i in range(16)]
        calls.append(Deferred.fromCoroutine(read(sessions[0], "etcd.map.big.range")))
        done = await DeferredList(calls, fireOnOneErrback=True, consumeErrors=True)
        assert [n for _, n in done] == [BIG_ROWS] * 17
        growth = {what: _status(pid, "VmHWM") - before[what] for what, pid in pids.items()}
        print(f"peak RSS growth ({node.component_loop}): "
              + ", ".join(f"{what} {before[what] / 2**20:.0f} MiB + {g / 2**20:.1f} MiB"
                          for what, g in growth.items()))
        assert all(g <= RSS_BOUND for g in growth.values()), growth
    finally:
        for s in sessions:
            await disconnect(s)
