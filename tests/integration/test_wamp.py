"""The WAMP component in a real Crossbar router, against a real etcd; every test runs
with the component embedded in the router (Twisted) and outside it on asyncio
(``component_loop``, see wamp_helpers)."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import cbor2
import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    node_fixtures,
    publisher_keys,
    until_registered,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode, EtcdCluster
from etcdwamp.wamp.routers import PublisherKeys

ensure = pytest_twisted.ensureDeferred

DB = b"wamptest/maps/"
EXTRA = {
    "db_prefix": DB.decode(),
    "maps": {
        "notes": {"slot": 1, "key": "string", "value": "json"},
        "users": {"slot": 2, "key": "uuid", "value": "cbor"},
        "counters": {"slot": 3, "key": "oid", "value": "oid"},
    },
    "kv_prefixes": ["wamptest/raw/"],
    "presence": {"prefix": "wamptest/presence/"},
    "election": "wamptest/publisher",
}
RAW = "wamptest/raw/"
E = "etcd.error."


crossbar, node = node_fixtures(EXTRA, instances=2)


def note_key(name: str) -> bytes:
    return DB + b"\x00\x01" + name.encode()


async def call_error(session: Any, procedure: str, *args: Any, **kwargs: Any) -> str:
    """The error URI a call fails with (and fail the test if it succeeds)."""
    try:
        await session.call(procedure, *args, **kwargs)
    except ApplicationError as exc:
        return str(exc.error)
    raise AssertionError(f"{procedure}{args} unexpectedly succeeded")


@ensure
async def test_map_procedures_match_etcd(node: CrossbarNode, client: Client,
                                         prefix: bytes) -> None:
    s = await connect(node)
    try:
        name = prefix.decode()
        put = await s.call("etcd.map.put", "notes", name + "a", {"text": "hello", "n": 1})
        stored = (await client.get(note_key(name + "a"))).kvs[0]
        assert stored.mod_revision == put["revision"]
        assert stored.value == b'{"text":"hello","n":1}'
        got = await s.call("etcd.map.get", "notes", name + "a")
        assert got == {"key": name + "a", "value": {"text": "hello", "n": 1},
                       "revision": put["revision"]}
        for i in range(5):
            await s.call("etcd.map.put", "notes", f"{name}b{i}", i)
        assert await s.call("etcd.map.count", "notes", name, name + "\uffff") == 6
        rng = await s.call("etcd.map.range", "notes", name + "b", name + "c", 3)
        assert [r["key"] for r in rng] == [f"{name}b{i}" for i in range(3)]
        deleted = await s.call("etcd.map.delete", "notes", name + "a")
        assert deleted["deleted"] is True
        assert (await client.get(note_key(name + "a"))).count == 0
        assert await call_error(s, "etcd.map.get", "notes", name + "a") == E + "not_found"

        oid = str(uuid.uuid4())
        await s.call("etcd.map.put", "users", oid, {"name": "alice", "tags": [b"\x00"]})
        assert (await s.call("etcd.map.get", "users", oid))["value"] == {
            "name": "alice", "tags": [b"\x00"]}
        await s.call("etcd.map.put", "counters", 2**64 - 1, 7)
        assert (await s.call("etcd.map.get", "counters", str(2**64 - 1)))["value"] == 7

        status = await s.call("etcd.status")
        assert status["version"].startswith("3.") and status["revision"] >= deleted["revision"]
    finally:
        await disconnect(s)


@ensure
async def test_progressive_range(node: CrossbarNode, prefix: bytes) -> None:
    s = await connect(node)
    try:
        name = prefix.decode()
        for i in range(250):
            await s.call("etcd.map.put", "notes", f"{name}{i:04d}", i)
        pages: list[list[Any]] = []
        last = await s.call("etcd.map.range", "notes", name, name + "\uffff",
                            options=CallOptions(on_progress=pages.append))
        keys = [r["key"] for page in [*pages, last] for r in page]
        assert keys == [f"{name}{i:04d}" for i in range(250)]
        assert len(pages) == 2  # pages of 100 as progressive results, the rest at the end
    finally:
        await disconnect(s)


@ensure
async def test_txn_with_expectations(node: CrossbarNode, client: Client,
                                     prefix: bytes) -> None:
    s = await connect(node)
    try:
        name = prefix.decode()
        first = await s.call("etcd.map.put", "notes", name + "x", 1)
        ok = await s.call("etcd.map.txn", [
            {"op": "put", "map": "notes", "key": name + "x", "value": 2},
            {"op": "put", "map": "notes", "key": name + "y", "value": 3},
        ], expect=[{"map": "notes", "key": name + "x", "revision": first["revision"]},
                   {"map": "notes", "key": name + "y", "revision": 0}])
        assert (await client.get(note_key(name + "y"))).kvs[0].mod_revision == ok["revision"]
        stale = await call_error(s, "etcd.map.txn", [
            {"op": "delete", "map": "notes", "key": name + "x"},
            {"op": "put", "map": "notes", "key": name + "z", "value": 9},
        ], expect=[{"map": "notes", "key": name + "x", "revision": first["revision"]}])
        assert stale == E + "conflict"
        assert (await client.get(note_key(name + "x"))).count == 1  # nothing written
        assert (await client.get(note_key(name + "z"))).count == 0
    finally:
        await disconnect(s)


@ensure
async def test_raw_kv_procedures(node: CrossbarNode, client: Client, prefix: bytes) -> None:
    s = await connect(node)
    try:
        mine = RAW + prefix.decode()
        key = mine + "k"
        await s.call("etcd.kv.put", key, b"\x00\xffbin")
        got = await s.call("etcd.kv.get", key)
        assert got["value"] == b"\x00\xffbin" and got["key"] == key.encode()
        assert isinstance(got["lease"], str)
        await s.call("etcd.kv.txn", [{"op": "put", "key": key + "2", "value": "v"}])
        rng = await s.call("etcd.kv.range", mine)
        assert [r["key"] for r in rng] == [key.encode(), (key + "2").encode()]
        assert (await s.call("etcd.kv.delete", mine, prefix=True))["deleted"] == 2
        assert (await client.get(KeySet(mine.encode(), prefix=True), count_only=True)).count == 0
    finally:
        await disconnect(s)


@ensure
async def test_json_serializer_carries_bytes_and_ints(node: CrossbarNode,
                                                      prefix: bytes) -> None:
    s = await connect(node, serializer="json")
    try:
        key = RAW + prefix.decode() + "j"
        await s.call("etcd.kv.put", key, b"\x00\x01")
        got = await s.call("etcd.kv.get", key)
        assert got["value"] == b"\x00\x01" and isinstance(got["revision"], int)
    finally:
        await disconnect(s)


@ensure
async def test_guest_reaches_only_what_the_router_grants(node: CrossbarNode, client: Client,
                                                         prefix: bytes) -> None:
    """The committed config lets anonymous guests call notes' per-map procedures only."""
    s = await connect(node, writer=False)
    try:
        name = prefix.decode()
        for procedure, args in [("etcd.map.put", ("notes", name, 1)),
                                ("etcd.map.get", ("notes", name)),
                                ("etcd.map.users.get", (str(uuid.uuid4()),)),
                                ("etcd.kv.get", (RAW + name,)),
                                ("etcd.map.txn", ([{"op": "put", "map": "notes", "key": name,
                                                    "value": 1}],))]:
            assert await call_error(s, procedure, *args) == "wamp.error.not_authorized"
        assert await call_error(s, "etcd.map.notes.get", name) == E + "not_found"
        assert (await client.get(note_key(name))).count == 0
    finally:
        await disconnect(s)


@ensure
async def test_watch_events_reach_subscribers_in_order(node: CrossbarNode,
                                                       client: Client, prefix: bytes) -> None:
    """1,000 writes produce 1,000 events in revision order."""
    s = await connect(node)
    events: list[dict[str, Any]] = []
    name = prefix.decode()
    try:
        await s.subscribe(lambda ev: events.append(ev) if ev["key"].startswith(name) else None,
                          "etcd.map.notes.on_change")
        revisions = []
        for i in range(1000):
            revisions.append((await client.put(note_key(f"{name}{i % 10}"), b"%d" % i)).revision)
        await client.delete(note_key(name + "0"))
        await until(lambda: len(events) >= 1001, timeout=60)
        mine = events[:1001]
        assert [ev["revision"] for ev in mine[:1000]] == revisions
        assert [ev["value"] for ev in mine[:1000]] == list(range(1000))
        assert mine[-1]["op"] == "delete" and mine[-1]["value"] is None
    finally:
        await disconnect(s)


@ensure
async def test_get_and_watch_under_concurrent_writes_is_exact(node: CrossbarNode,
                                                              client: Client,
                                                              prefix: bytes) -> None:
    name = prefix.decode()
    s = await connect(node)
    try:
        state: dict[str, Any] = {}
        early: list[dict[str, Any]] = []
        snapshot_rev: list[int] = []

        def apply(ev: dict[str, Any]) -> None:
            if not ev["key"].startswith(name):
                return
            if not snapshot_rev:
                early.append(ev)
            elif ev["revision"] > snapshot_rev[0]:
                if ev["op"] == "delete":
                    state.pop(ev["key"], None)
                else:
                    state[ev["key"]] = ev["value"]

        await s.subscribe(apply, "etcd.map.notes.on_change")

        revisions: list[int] = []
        snapshot: list[str] = []  # "asked", then "read"

        async def writer() -> None:
            for i in range(300):
                # Writes go on while the snapshot is read (from 150 on, it has
                # been asked for), and the last ones surely come after it: a
                # fast writer must not finish before the snapshot starts.
                if i == 150:
                    await until(lambda: snapshot)
                if i == 250:
                    await until(lambda: "read" in snapshot)
                key = note_key(f"{name}{i % 17}")
                if i % 5 == 4:
                    revisions.append((await client.delete(key)).revision)
                else:
                    revisions.append((await client.put(key, b"%d" % i)).revision)

        writing = Deferred.fromCoroutine(writer())
        await until(lambda: len(revisions) >= 50)  # the snapshot starts mid-stream
        snapshot.append("asked")
        snap = await s.call("etcd.map.get_and_watch", "notes")
        snapshot.append("read")
        state.update({r["key"]: r["value"] for r in snap["items"] if r["key"].startswith(name)})
        snapshot_rev.append(snap["revision"])
        for ev in early:
            apply(ev)
        await writing
        # The snapshot really fell between writes: some came before it, some after.
        assert revisions[0] < snap["revision"] < revisions[-1]
        final = {kv.key[len(DB) + 2:].decode(): int(kv.value)
                 for kv in (await client.get(KeySet(note_key(name), prefix=True))).kvs}
        await until(lambda: state == final, timeout=30)
    finally:
        await disconnect(s)


@ensure
async def test_presence_key_disappears_with_its_session(node: CrossbarNode,
                                                        client: Client, prefix: bytes) -> None:
    s = await connect(node)
    key = prefix.decode().replace("/", "_") + "me"
    result = await s.call("etcd.presence.put", key, "online")
    raw = b"wamptest/presence/%d/%s" % (s._session_id, key.encode())
    kv = (await client.get(raw)).kvs[0]
    assert cbor2.loads(kv.value) == {"authid": "writer", "value": "online"}
    assert str(kv.lease) == result["lease"]
    await disconnect(s)

    async def gone() -> bool:
        return (await client.get(raw)).count == 0

    await until(gone)


@ensure
async def test_calls_are_served_by_both_instances_and_publisher_fails_over(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    s = await connect(node)
    name = prefix.decode()
    events: list[int] = []
    try:
        publishers = {(await s.call("etcd.status"))["publisher"] for _ in range(6)}
        assert publishers == {True, False}  # roundrobin reached both; one publishes
        await s.subscribe(lambda ev: events.append(ev["revision"])
                          if ev["key"].startswith(name) else None, "etcd.map.notes.on_change")
        written = []
        for i in range(50):
            written.append((await client.put(note_key(f"{name}{i}"), b"1")).revision)
        # Kill the publisher's leadership the way a crash would: its lease ends.
        keys = await publisher_keys(node, "wamptest/publisher")
        leader = await client.election(keys.election).leader()
        assert leader is not None
        await client.lease_revoke(leader.lease)
        for i in range(50, 100):
            written.append((await client.put(note_key(f"{name}{i}"), b"1")).revision)
        await until(lambda: set(written) <= set(events), timeout=60)
        # At least once across the failover, in order for each publisher.
        assert sorted(set(events)) == sorted(written)
    finally:
        await disconnect(s)


bad_args = st.one_of(
    st.tuples(st.just("etcd.map.put"), st.sampled_from(["notes", "nosuch", 1, None]),
              st.one_of(st.text(max_size=5), st.integers(), st.none(), st.binary(max_size=4)),
              st.one_of(st.floats(allow_nan=True), st.none(), st.sets(st.integers()))),
    st.tuples(st.just("etcd.map.get"), st.sampled_from(["users", "counters", "x"]),
              st.one_of(st.text(max_size=5), st.integers(min_value=-5, max_value=-1),
                        st.lists(st.integers(), max_size=2))),
    st.tuples(st.just("etcd.kv.put"), st.one_of(st.integers(), st.none(), st.just("")),
              st.binary(max_size=3)),
    st.tuples(st.just("etcd.map.txn"), st.one_of(st.just([]), st.integers(),
              st.lists(st.fixed_dictionaries({"op": st.just("put"), "map": st.just("notes"),
                                              "key": st.just("k"), "value": st.just(1)}),
                       min_size=129, max_size=130))),
    st.tuples(st.just("etcd.kv.put"), st.just(RAW + "fuzz/big"),
              st.just(b"x" * (1536 * 1024 + 1))),
    st.tuples(st.just("etcd.kv.put"), st.sampled_from(["wamptest/publisher.checkpoint",
                                                       "wamptest/maps/x", "", "other"]),
              st.binary(max_size=3)),
    st.tuples(st.just("etcd.map.put"), st.just("notes"), st.just(b"\xff\xfe"), st.just(1)),
)

STABLE = {E + "invalid_argument", E + "too_large", E + "not_found", E + "conflict",
          E + "permission_denied"}
# Everything a fuzzed call could touch; the publisher's own keys are elsewhere.
TOUCHABLE = [KeySet(DB, prefix=True), KeySet(RAW.encode(), prefix=True),
             KeySet(b"wamptest/publisher.checkpoint"), KeySet(b"other"), KeySet(b"\x00")]


@pytest.mark.usefixtures("etcd")
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=bad_args)
@ensure
async def test_bad_input_gets_a_stable_error_and_changes_nothing(
        node: CrossbarNode, client: Client, call: tuple[Any, ...]) -> None:
    s = await connect(node)
    try:
        async def state() -> list[list[tuple[bytes, int]]]:
            return [[(kv.key, kv.mod_revision) for kv in (await client.get(ks, keys_only=True)).kvs
                     if not kv.key.startswith(b"wamptest/publisher")]
                    for ks in TOUCHABLE]

        before = await state()
        procedure, *args = call
        try:
            await s.call(procedure, *args)
        except ApplicationError as exc:
            assert exc.error in STABLE, exc
        else:
            # Only a well-formed call may succeed (a valid map and a JSON value).
            assert procedure == "etcd.map.put" and args[0] == "notes"
            await s.call("etcd.map.delete", "notes", args[1])
            return
        assert await state() == before
    finally:
        await disconnect(s)



def test_command_line_wamp_example(node: CrossbarNode) -> None:
    """examples/wamp_notes.py lists the map, writes a note and sees its own change."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(CONFIG.parents[2] / "examples" / "wamp_notes.py"),
                           "--url", node.url, "--seconds", "1"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=node.env)
    assert done.returncode == 0, done.stderr
    assert "notes at revision" in done.stdout
    assert "wrote from-python at revision" in done.stdout
    assert "change: put from-python" in done.stdout


@ensure
async def test_successor_that_cannot_resume_publishes_resync(node: CrossbarNode,
                                                             client: Client,
                                                             prefix: bytes) -> None:
    """A publisher taking over from a checkpoint whose history was compacted publishes
    an explicit resync event, then goes on publishing changes."""
    s = await connect(node)
    resyncs: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    name = prefix.decode()
    try:
        await s.subscribe(resyncs.append, "etcd.map.notes.on_resync")
        await s.subscribe(lambda ev: changes.append(ev) if ev["key"].startswith(name)
                          else None, "etcd.map.notes.on_change")
        # Let the publisher catch up (its checkpoint reaches our write), so it
        # writes no checkpoint of its own after ours below.
        mark = await client.put(note_key(name + "mark"), b"0")
        keys = await publisher_keys(node, "wamptest/publisher")
        checkpoint = keys.checkpoint

        async def caught_up() -> bool:
            kv = (await client.get(checkpoint)).first
            return kv is not None and int(kv.value) >= mark.revision

        await until(caught_up)
        # A checkpoint long gone: history after revision 1 is compacted away.
        latest = await client.put(checkpoint, b"1")
        await client.compact(latest.revision, physical=True)
        leader = await client.election(keys.election).leader()
        assert leader is not None
        await client.lease_revoke(leader.lease)  # the publisher dies
        await until(lambda: len(resyncs) >= 1, timeout=30, why=node.log_tail)
        assert resyncs[0]["compact_revision"] == latest.revision
        after = await client.put(note_key(name + "after"), b"2")
        await until(lambda: any(ev["revision"] == after.revision for ev in changes),
                    timeout=30)
    finally:
        await disconnect(s)


@ensure
async def test_every_event_of_one_revision_reaches_subscribers(node: CrossbarNode,
                                                               client: Client,
                                                               prefix: bytes) -> None:
    """A transaction writes several keys at one revision: each is an event."""
    s = await connect(node)
    name = prefix.decode()
    events: list[dict[str, Any]] = []
    try:
        await s.subscribe(lambda ev: events.append(ev) if ev["key"].startswith(name) else None,
                          "etcd.map.notes.on_change")
        done = await s.call("etcd.map.txn", [
            {"op": "put", "map": "notes", "key": f"{name}{i}", "value": i} for i in range(5)])
        await s.call("etcd.map.put", "notes", name + "last", 5)
        await until(lambda: any(ev["key"] == name + "last" for ev in events))
        # At least once across a publisher failover (an earlier test kills
        # publishers): subscribers drop what they have seen, so do we.
        seen = list(dict.fromkeys((ev["key"], ev["revision"]) for ev in events))
        assert seen[:5] == [(f"{name}{i}", done["revision"]) for i in range(5)]
        assert len(seen) == 6
    finally:
        await disconnect(s)


@ensure
async def test_twisted_and_asyncio_instances_share_calls_and_the_publisher(
        etcd: EtcdCluster) -> None:
    """One instance embedded in the router, one on asyncio outside it, same extra: both
    name the same router, calls reach both, one of them publishes, and when its
    leadership ends the other takes over and publishes what follows."""
    db = "mixed/maps/"
    name = "mixed"
    node = CrossbarNode(str(CONFIG), etcd.urls, extra_overrides={
        "db_prefix": db, "election": "mixed/publisher", "maps": {"notes": {"slot": 1}},
        "kv_prefixes": [], "presence": None})
    client = Client(reactor, etcd.url)
    try:
        node.start()
        node.start_component()
        await until_registered(node, 2)
        s = await connect(node)
        try:
            routers: dict[str, str] = {}

            async def answers() -> dict[str, bool]:
                found: dict[str, bool] = {}
                for _ in range(6):
                    status = await s.call("etcd.status")
                    found[status["framework"]] = status["publisher"]
                    routers[status["framework"]] = status["router"]
                return found

            async def one_publishes() -> bool:
                found = await answers()
                return set(found) == {"twisted", "asyncio"} and sum(found.values()) == 1

            await until(one_publishes, why=node.log_tail)
            # Embedded, the router id comes from the process; outside, from the WELCOME.
            assert node.process is not None
            assert routers["twisted"] == routers["asyncio"]
            node_id = f"{socket.gethostname().lower()}-{node.process.pid}"
            assert routers["twisted"].startswith(node_id + "/")
            before = [fw for fw, publishes in (await answers()).items() if publishes]
            events: list[int] = []
            await s.subscribe(lambda ev: events.append(ev["revision"]),
                              "etcd.map.notes.on_change")
            key = (db + "\x00\x01" + name).encode()
            written = [(await client.put(key + b"%d" % i, b"1")).revision for i in range(20)]
            await until(lambda: set(written) <= set(events))
            leader = await client.election(
                PublisherKeys(b"mixed/publisher", routers["twisted"]).election).leader()
            assert leader is not None
            await client.lease_revoke(leader.lease)

            async def other_publishes() -> bool:
                found = await answers()
                return [fw for fw, publishes in found.items() if publishes] not in ([], before)

            await until(other_publishes, why=node.log_tail)
            written += [(await client.put(key + b"%d" % i, b"2")).revision
                        for i in range(20, 40)]
            await until(lambda: set(written) <= set(events), why=node.log_tail)
        finally:
            await disconnect(s)
    finally:
        await client.close()
        node.stop()
