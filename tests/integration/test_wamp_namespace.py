"""The component on a namespace (``extra.etcd.namespace``), in a real Crossbar
router against a real etcd, embedded (Twisted) and outside it (asyncio).

Everything it keeps (map records, raw keys, the publisher's leader key and
checkpoint) lives under the namespace; callers and subscribers see keys
without it, and a key with the same name outside it is invisible to them.
The test's own etcd client is not namespaced: it checks where keys really are.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from waiting import until
from wamp_helpers import (
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    node_fixtures,
    publisher_keys,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode

ensure = pytest_twisted.ensureDeferred

NS = b"nstenant/"
DB = b"nsw/maps/"
RAW = "nsw/raw/"
ELECTION = b"nsw/publisher"
EXTRA = {
    "etcd": {"namespace": NS.decode()},
    "db_prefix": DB.decode(),
    "maps": {"notes": {"slot": 1, "key": "string", "value": "json"}},
    "kv_prefixes": [RAW],
    "election": ELECTION.decode(),
}


crossbar, node = node_fixtures(EXTRA)


def note_key(name: str) -> bytes:
    """A record of ``notes`` as the component addresses it (inside the namespace)."""
    return DB + b"\x00\x01" + name.encode()


@ensure
async def test_everything_it_keeps_lives_under_the_namespace(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    name = prefix.decode()
    s = await connect(node)
    try:
        await s.call("etcd.map.put", "notes", name, {"n": 1})
        stored = (await client.get(NS + note_key(name))).first
        assert stored is not None and stored.value == b'{"n":1}'
        assert (await client.get(note_key(name))).count == 0  # nothing outside it
        got = await s.call("etcd.map.get", "notes", name)
        assert got["key"] == name and got["value"] == {"n": 1}

        key = RAW + name + "k"
        await s.call("etcd.kv.put", key, b"inside")
        got = await s.call("etcd.kv.get", key)
        assert got["key"] == key.encode() and got["value"] == b"inside"
        assert (await client.get(NS + key.encode())).first.value == b"inside"

        # A key of the same name outside the namespace is not the component's.
        await client.put((RAW + name + "outside").encode(), b"x")
        rng = await s.call("etcd.kv.range", RAW + name)
        assert [r["key"] for r in rng] == [key.encode()]
        with pytest.raises(ApplicationError) as err:
            await s.call("etcd.kv.get", RAW + name + "outside")
        assert err.value.error == "etcd.error.not_found"

        # The publisher's election is inside it too (it won, and it says so).
        async def publishing() -> bool:
            return bool((await s.call("etcd.status"))["publisher"])

        await until(publishing, timeout=30)
        keys = await publisher_keys(node, NS + ELECTION)
        leader = await client.election(keys.election).leader()
        assert leader is not None and leader.key.startswith(NS + ELECTION + b"/")
        assert (await client.get(KeySet(ELECTION, prefix=True))).count == 0
    finally:
        await disconnect(s)


@ensure
async def test_events_carry_keys_inside_the_namespace_only(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """The same-named record outside the namespace is written first: had it been
    published, it would have arrived before the one inside."""
    name = prefix.decode()
    s = await connect(node)
    events: list[dict[str, Any]] = []
    try:
        await s.subscribe(lambda ev: events.append(ev) if ev["key"].startswith(name) else None,
                          "etcd.map.notes.on_change")
        await client.put(note_key(name + "a"), b'"outside"')
        inside = await client.put(NS + note_key(name + "a"), b'"inside"')
        await until(lambda: len(events) >= 1, timeout=30)
        assert [(ev["key"], ev["value"], ev["revision"]) for ev in events] == [
            (name + "a", "inside", inside.revision)]
    finally:
        await disconnect(s)


@ensure
async def test_deleting_the_namespaced_leader_key_deposes_the_publisher(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """The publisher watches its own leader key (a full key, though it runs on a
    namespace): deleting it makes the publisher step down and campaign again,
    under a new lease, and events flow again."""
    name = prefix.decode()
    election = client.election((await publisher_keys(node, NS + ELECTION)).election)
    before = await election.leader()
    assert before is not None
    await client.delete(before.key)

    async def new_leader() -> bool:
        now = await election.leader()
        return now is not None and now.lease != before.lease

    await until(new_leader, timeout=30)
    s = await connect(node)
    events: list[dict[str, Any]] = []
    try:
        await s.subscribe(lambda ev: events.append(ev) if ev["key"].startswith(name) else None,
                          "etcd.map.notes.on_change")
        written = await client.put(NS + note_key(name), b"1")
        await until(lambda: len(events) >= 1, timeout=30)
        assert events[0]["revision"] == written.revision
    finally:
        await disconnect(s)
