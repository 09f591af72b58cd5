"""The component's access rules through a real Crossbar, against a real etcd.

Each rule is tried on every path to the data, and every refusal is checked to
have changed nothing in etcd. The router (committed config) lets guests call
only ``etcd.map.notes.*``; here the notes map is owner-only, so what a guest
may do there is decided by the component.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    node_fixtures,
    node_for,
    registered,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

DB = b"acc/maps/"
RAW = "acc/raw/"
LOCKED = RAW + "locked/"
EXTRA = {
    "db_prefix": DB.decode(),
    "maps": {
        "notes": {"slot": 1, "owner": True, "read": ["guest", "writer"],
                  "write": ["guest", "writer"]},
        "team": {"slot": 2, "read": ["writer"], "write": ["writer"]},
        "guestonly": {"slot": 3, "read": ["guest"], "write": ["guest"]},
        "readonly": {"slot": 4, "read": ["writer"], "write": []},
        "open": {"slot": 5},
    },
    "kv_prefixes": [RAW, {"prefix": LOCKED, "read": ["guest"], "write": ["guest"],
                                  "nested": True}],
    "presence": {"prefix": "acc/presence/"},
    "election": "acc/publisher",
}
E = "etcd.error."
DENIED = E + "permission_denied"


crossbar, node = node_fixtures(EXTRA)


def map_key(slot: int, key: str) -> bytes:
    return DB + slot.to_bytes(2, "big") + key.encode()


async def call_error(session: Any, procedure: str, *args: Any, **kwargs: Any) -> str:
    try:
        await session.call(procedure, *args, **kwargs)
    except ApplicationError as exc:
        return str(exc.error)
    raise AssertionError(f"{procedure}{args} unexpectedly succeeded")


async def snapshot(client: Client) -> list[tuple[bytes, int]]:
    """Every key a call here could touch, with its mod revision."""
    found = []
    for ks in (KeySet(DB, prefix=True), KeySet(RAW.encode(), prefix=True)):
        found += [(kv.key, kv.mod_revision) for kv in (await client.get(ks, keys_only=True)).kvs]
    return found


@ensure
async def test_roles_not_listed_are_refused_on_every_procedure(node: CrossbarNode,
                                                               client: Client,
                                                               prefix: bytes) -> None:
    s = await connect(node)  # the writer
    name = prefix.decode()
    try:
        await client.put(map_key(3, name), b'"guest data"')
        before = await snapshot(client)
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("etcd.map.get", ("guestonly", name)),
            ("etcd.map.put", ("guestonly", name, 1)),
            ("etcd.map.delete", ("guestonly", name)),
            ("etcd.map.count", ("guestonly",)),
            ("etcd.map.range", ("guestonly",)),
            ("etcd.map.get_and_watch", ("guestonly",)),
            ("etcd.map.guestonly.get", (name,)),
            ("etcd.map.guestonly.put", (name, 1)),
            ("etcd.map.guestonly.delete", (name,)),
            ("etcd.map.guestonly.count", ()),
            ("etcd.map.guestonly.range", ()),
            ("etcd.map.guestonly.get_and_watch", ()),
            ("etcd.map.readonly.put", (name, 1)),
            ("etcd.map.readonly.delete", (name,)),
        ]
        for procedure, args in calls:
            assert await call_error(s, procedure, *args) == DENIED, procedure
        assert await snapshot(client) == before
        # The same caller is served where the rules name its role.
        put = await s.call("etcd.map.team.put", name, {"ok": True})
        assert (await s.call("etcd.map.get", "team", name))["revision"] == put["revision"]
        assert await s.call("etcd.map.readonly.count") >= 0
        assert await s.call("etcd.map.open.put", name, 1)
    finally:
        await disconnect(s)


@ensure
async def test_a_txn_is_refused_whole_when_one_op_or_expectation_breaks_a_rule(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    s = await connect(node)
    name = prefix.decode()
    try:
        first = await s.call("etcd.map.team.put", name + "a", 1)
        before = await snapshot(client)
        allowed = {"op": "put", "map": "team", "key": name + "b", "value": 2}
        for bad_op in ({"op": "put", "map": "guestonly", "key": name, "value": 1},
                       {"op": "delete", "map": "guestonly", "key": name},
                       {"op": "put", "map": "readonly", "key": name, "value": 1}):
            assert await call_error(s, "etcd.map.txn", [allowed, bad_op]) == DENIED
        # An expectation reads: it needs the read rule.
        assert await call_error(s, "etcd.map.txn", [allowed], expect=[
            {"map": "guestonly", "key": name, "revision": 0}]) == DENIED
        assert await snapshot(client) == before
        ok = await s.call("etcd.map.txn", [allowed], expect=[
            {"map": "team", "key": name + "a", "revision": first["revision"]}])
        assert (await client.get(map_key(2, name + "b"))).kvs[0].mod_revision == ok["revision"]
    finally:
        await disconnect(s)


@ensure
async def test_owner_maps_let_callers_write_only_their_own_key(node: CrossbarNode,
                                                              client: Client) -> None:
    alice = await connect(node, writer=False)
    bob = await connect(node, writer=False)
    try:
        a, b = alice._authid, bob._authid
        assert a and b and a != b
        await alice.call("etcd.map.notes.put", a, {"by": "alice"})
        await bob.call("etcd.map.notes.put", b, {"by": "bob"})
        before = await snapshot(client)
        assert await call_error(bob, "etcd.map.notes.put", a, {"by": "bob"}) == DENIED
        assert await call_error(bob, "etcd.map.notes.delete", a) == DENIED
        assert await call_error(bob, "etcd.map.notes.put", "anything-else", 1) == DENIED
        assert await snapshot(client) == before
        # Reads follow the read rule: bob may read alice's record.
        assert (await bob.call("etcd.map.notes.get", a))["value"] == {"by": "alice"}
        deleted = await alice.call("etcd.map.notes.delete", a)
        assert deleted["deleted"] is True
        assert (await client.get(map_key(1, a))).count == 0
    finally:
        await disconnect(alice)
        await disconnect(bob)


@ensure
async def test_raw_keys_only_under_kv_prefixes(node: CrossbarNode, client: Client,
                                               prefix: bytes) -> None:
    s = await connect(node)
    mine = RAW + prefix.decode()
    try:
        await client.put(b"acc/outside", b"1")
        await client.put((LOCKED + "x").encode(), b"guest's")
        before = await snapshot(client)
        outside = ["acc/outside", "acc/publisher.checkpoint", "acc/publisher/x",
                   "acc/presence/1/me", DB.decode() + "\x00\x01k", "", "acc/raw"]
        for key in outside:
            assert await call_error(s, "etcd.kv.get", key) == DENIED, key
            assert await call_error(s, "etcd.kv.put", key, "v") == DENIED, key
            assert await call_error(s, "etcd.kv.delete", key) == DENIED, key
        assert await call_error(s, "etcd.kv.delete", "acc/", prefix=True) == DENIED
        assert await call_error(s, "etcd.kv.range", "") == DENIED
        # A nested prefix keeps its own rules, also inside a wider range.
        assert await call_error(s, "etcd.kv.get", LOCKED + "x") == DENIED
        assert await call_error(s, "etcd.kv.delete", RAW, prefix=True) == DENIED
        assert await call_error(s, "etcd.kv.range", RAW) == DENIED
        assert await call_error(s, "etcd.kv.txn", [
            {"op": "put", "key": mine + "ok", "value": "1"},
            {"op": "put", "key": "acc/outside", "value": "2"}]) == DENIED
        assert await call_error(s, "etcd.kv.txn", [
            {"op": "put", "key": mine + "ok", "value": "1"}],
            expect=[{"key": "acc/outside", "revision": 0}]) == DENIED
        assert await snapshot(client) == before
        assert (await client.get(b"acc/outside")).kvs[0].value == b"1"
        await s.call("etcd.kv.put", mine + "ok", "1")
        assert [r["key"] for r in await s.call("etcd.kv.range", mine)] == [
            (mine + "ok").encode()]
    finally:
        await disconnect(s)


@ensure
async def test_denials_are_logged_without_values(node: CrossbarNode, prefix: bytes) -> None:
    s = await connect(node)
    secret = "value-" + uuid.uuid4().hex
    try:
        assert await call_error(s, "etcd.map.guestonly.put", prefix.decode(), secret) == DENIED
    finally:
        await disconnect(s)
    line = "denied map.put on map guestonly to authid=writer authrole=writer"
    await until(lambda: line in node.log_tail(400), why=node.log_tail)
    assert secret not in node.log_tail(2000)


@ensure
async def test_presence_keys_belong_to_their_session(node: CrossbarNode,
                                                     client: Client) -> None:
    watcher = await connect(node)
    one = await connect(node)
    two = await connect(node)
    events: list[dict[str, Any]] = []
    id_one, id_two = one._session_id, two._session_id
    sessions = {id_one, id_two}
    await watcher.subscribe(lambda ev: events.append(ev) if ev["session"] in sessions else None,
                            "etcd.presence.on_change")
    try:
        await one.call("etcd.presence.put", "status", "online")
        await two.call("etcd.presence.put", "status", "away")
        # Same key name, two sessions: two keys; neither replaced the other.
        present = [p for p in await watcher.call("etcd.presence.list")
                   if p["session"] in sessions]
        assert sorted((p["session"], p["key"], p["value"], p["authid"]) for p in present) == \
            sorted([(one._session_id, "status", "online", "writer"),
                    (two._session_id, "status", "away", "writer")])
        # Deleting "status" as session two removes only its own key.
        assert (await two.call("etcd.presence.delete", "status"))["deleted"] is True
        raw_one = b"acc/presence/%d/status" % id_one
        assert cbor2.loads((await client.get(raw_one)).kvs[0].value)["value"] == "online"
        assert await call_error(one, "etcd.presence.put", "a/b", 1) == E + "invalid_argument"
        # Leaving removes the session's keys, and subscribers hear joins and leaves.
        await disconnect(one)

        async def gone() -> bool:
            return (await client.get(raw_one)).count == 0

        await until(gone)
        await until(lambda: [(e["op"], e["session"]) for e in events] == [
            ("join", id_one), ("join", id_two), ("leave", id_two), ("leave", id_one)],
            why=lambda: str(events))
        assert events[-1]["authid"] == "writer" and events[-1]["key"] == "status"
    finally:
        await disconnect(two)
        await disconnect(watcher)


@pytest.fixture(scope="module")
def bare_crossbar(etcd: EtcdCluster, component_loop: str) -> Iterator[CrossbarNode]:
    """The component with maps only: no kv_prefixes, no presence."""
    with node_for(component_loop, CONFIG, etcd.urls, extra_overrides={
            "db_prefix": "acc2/", "election": "acc2-publisher", "kv_prefixes": [],
            "presence": None, "maps": {"notes": {"slot": 1}}}) as cb:
        yield cb


@pytest_twisted.async_fixture
async def bare_node(bare_crossbar: CrossbarNode) -> CrossbarNode:
    return await registered(bare_crossbar)


@ensure
async def test_without_kv_prefixes_no_raw_procedure_exists(bare_node: CrossbarNode) -> None:
    s = await connect(bare_node)
    try:
        for procedure in ("etcd.kv.get", "etcd.kv.put", "etcd.kv.delete", "etcd.kv.range",
                          "etcd.kv.txn", "etcd.presence.put", "etcd.presence.list"):
            assert await call_error(s, procedure, "acc2/x") == "wamp.error.no_such_procedure"
        assert (await s.call("etcd.map.notes.put", "k", 1))["revision"] > 0
    finally:
        await disconnect(s)
