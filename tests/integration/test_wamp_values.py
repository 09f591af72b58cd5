"""Values every client can carry, and one bad stored value spoiling one row only
(real etcd, real Crossbar; JSON, CBOR and msgpack sessions on the same topics).

Crossbar's broker stops delivering an event to the remaining receivers after
one serializer fails on it, and a msgpack caller whose result cannot be
written gets no answer at all: so every test here has a session of each
serializer receive (or call) the same thing.
"""

from __future__ import annotations

import contextlib
import datetime
import math
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from waiting import until
from wamp_helpers import (
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    node_fixtures,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode

ensure = pytest_twisted.ensureDeferred

DB = b"values/maps/"
EXTRA = {
    "db_prefix": DB.decode(),
    "election": "values/publisher",
    "maps": {
        "notes": {"slot": 1, "value": "json", "read": ["guest", "writer"],
                  "write": ["guest", "writer"]},
        "blobs": {"slot": 2, "value": "cbor"},
    },
    "kv_prefixes": [],
    "presence": {"prefix": "values/presence/"},
}
SERIALIZERS = ("json", "cbor", "msgpack")
TOPICS = ("etcd.map.notes.on_change", "etcd.map.blobs.on_change")
INVALID = "etcd.error.invalid_argument"
MARKER = {"uri": "etcd.error.bad_value", "message": "stored value cannot be decoded"}

crossbar, node = node_fixtures(EXTRA)


def etcd_key(slot: int, key: str) -> bytes:
    return DB + slot.to_bytes(2, "big") + key.encode()


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


async def call_error(session: Any, procedure: str, *args: Any) -> tuple[str, str]:
    """The error URI and message a call fails with (and fail the test if it succeeds)."""
    try:
        await session.call(procedure, *args)
    except ApplicationError as exc:
        return str(exc.error), str(exc.args[0] if exc.args else "")
    raise AssertionError(f"{procedure}{args!r} succeeded")


class Received:
    """What one session received on the map topics, for one test's keys."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.events: list[dict[str, Any]] = []

    async def follow(self, session: Any) -> None:
        def got(event: dict[str, Any]) -> None:
            # A key no reader can have arrives as null: tests find it by revision.
            if event.get("key") is None or str(event.get("key")).startswith(self.mark):
                self.events.append(event)

        for topic in TOPICS:
            await session.subscribe(got, topic)

    def of(self, key: str) -> list[dict[str, Any]]:
        return [ev for ev in self.events if ev["key"] == key]

    def at(self, revision: int) -> list[dict[str, Any]]:
        return [ev for ev in self.events if ev["revision"] == revision]


@contextlib.asynccontextmanager
async def one_of_each(node: CrossbarNode, mark: str
                      ) -> AsyncIterator[dict[str, tuple[Any, Received]]]:
    """A writer session per serializer, each following the map topics: ``{serializer:
    (session, received)}``. The JSON one subscribes first and msgpack last: a failure
    to write msgpack would then hide nothing from the others, so a broken delivery
    shows in the msgpack session itself."""
    sessions: dict[str, tuple[Any, Received]] = {}
    try:
        for serializer in SERIALIZERS:
            session = await connect(node, serializer=serializer)
            received = Received(mark)
            sessions[serializer] = (session, received)
            await received.follow(session)
        yield sessions
    finally:
        for session, _ in sessions.values():
            await disconnect(session)


@ensure
async def test_values_some_client_cannot_carry_are_refused_and_nothing_is_written(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """A guest over JSON putting 2**70, CBOR writers putting NaN, a set, a datetime, an
    unknown tag, undefined or deep nesting: invalid_argument naming the value's path;
    etcd holds nothing under the test's keys after."""
    name = prefix.decode()
    guest = await connect(node, writer=False, serializer="json")
    writer = await connect(node, serializer="cbor")
    try:
        assert await call_error(guest, "etcd.map.notes.put", name + "big",
                                {"n": 2**70}) == (INVALID, "value.n: an integer beyond ±(2**53 - "
                                                  "1), which JavaScript readers cannot hold "
                                                  "exactly (send it as a string)")
        assert (await call_error(writer, "etcd.map.put", "notes", name + "big",
                                 [0, -(2**60)]))[1].startswith("value[1]: an integer beyond")
        refused = {
            "nan": ({"x": math.nan}, "value.x: NaN"),
            "inf": ([math.inf], "value[0]: NaN"),
            "set": ({"s": {1, 2}}, "value.s: set cannot be carried"),
            "when": ({"at": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)},
                     "value.at: datetime cannot be carried"),
            "tag": ({"t": cbor2.CBORTag(4242, "x")}, "value.t: CBORTag cannot be carried"),
            "undefined": ([1, cbor2.undefined], "value[1]: UndefinedType cannot be carried"),
            "deep": (nested(40), "value" + "[0]" * 32 + ": nested too deep"),
            "nul": ("\x00abc", "value: a string starting with NUL"),
        }
        for key, (value, message) in refused.items():
            uri, text = await call_error(writer, "etcd.map.blobs.put", name + key, value)
            assert uri == INVALID and text.startswith(message), (key, text)
        uri, text = await call_error(writer, "etcd.map.txn", [
            {"op": "put", "map": "blobs", "key": name + "ok", "value": 1},
            {"op": "put", "map": "notes", "key": name + "bad", "value": {"n": [math.nan]}}])
        assert uri == INVALID and text.startswith("ops[1].value.n[0]: NaN"), text
        uri, text = await call_error(writer, "etcd.presence.put", name.replace("/", "_"),
                                     {"big": 2**64 - 1})
        assert uri == INVALID and text.startswith("value.big: an integer beyond"), text
        uri, text = await call_error(writer, "etcd.presence.put", "\x00k", 1)
        assert uri == INVALID and "leading NUL" in text, text
        for slot in (1, 2):
            found = await client.get(KeySet(etcd_key(slot, name), prefix=True),
                                     count_only=True)
            assert found.count == 0
        # The edges are accepted, as every client reads them back exact.
        await writer.call("etcd.map.blobs.put", name + "edge", [2**53 - 1, -(2**53 - 1)])
        row = await guest.call("etcd.map.notes.put", name + "edge", {"n": 2**53 - 1})
        assert row["revision"] > 0
    finally:
        await disconnect(guest)
        await disconnect(writer)


@ensure
async def test_a_corrupt_stored_value_reaches_every_subscriber_as_a_marked_event(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """Values written to etcd behind the component's back that do not decode, or that some
    serializer cannot carry: every subscriber (JSON, CBOR, msgpack) gets the event with
    the bad_value marker, and an ordinary event after them still reaches all of them."""
    name = prefix.decode()
    bad = {
        (1, name + "garbage"): b"{not json",
        (1, name + "big"): b'{"n": 1180591620717411303424}',
        (1, name + "nan"): b"[NaN]",
        (2, name + "when"): cbor2.dumps(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
        (2, name + "tag"): cbor2.dumps({"t": cbor2.CBORTag(4242, 1)}),
        (2, name + "undefined"): cbor2.dumps(cbor2.undefined),
    }
    async with one_of_each(node, name) as sessions:
        revisions = {}
        for (slot, key), raw in bad.items():
            revisions[key] = (await client.put(etcd_key(slot, key), raw)).revision
        # A key that does not decode (not UTF-8) and one JSON readers would read as bytes.
        bad_keys = [(await client.put(etcd_key(1, name) + b"\xff", b"1")).revision,
                    (await client.put(DB + b"\x00\x02\x00" + name.encode(),
                                      cbor2.dumps(1))).revision]
        writer = sessions["cbor"][0]
        after = await writer.call("etcd.map.notes.put", name + "after", {"ok": True})

        def all_got_the_last() -> bool:
            return all(received.of(name + "after") for _, received in sessions.values())

        await until(all_got_the_last, why=node.log_tail)
        for serializer, (_, received) in sessions.items():
            for key, revision in revisions.items():
                assert received.of(key) == [{"op": "put", "key": key, "value": None,
                                             "revision": revision, "error": MARKER}], serializer
            for revision in bad_keys:
                assert received.at(revision) == [{"op": "put", "key": None, "value": 1,
                                                  "revision": revision, "error": MARKER}]
            assert received.of(name + "after") == [{"op": "put", "key": name + "after",
                                                    "value": {"ok": True},
                                                    "revision": after["revision"]}]


@ensure
async def test_one_bad_value_spoils_one_row_of_range_get_and_get_and_watch(
        node: CrossbarNode, client: Client, prefix: bytes) -> None:
    """A map with one corrupt value among good ones: range and get_and_watch load every
    row for JSON, CBOR and msgpack callers, the bad one marked; get of it is marked too."""
    name = prefix.decode()
    async with one_of_each(node, name) as sessions:
        writer = sessions["cbor"][0]
        first = (await writer.call("etcd.map.notes.put", f"{name}0", {"i": 0}))["revision"]
        for i in range(1, 5):
            await writer.call("etcd.map.notes.put", f"{name}{i}", {"i": i})
        # Infinity (JSON readers choke on it); 2**70 (msgpack cannot write it: its
        # callers got no answer at all).
        await client.put(etcd_key(1, f"{name}1"), b'{"i": 1e999}')
        bad = await client.put(etcd_key(1, f"{name}2"), b'{"i": 1180591620717411303424}')
        await client.put(etcd_key(1, f"{name}3") + b"\xff", b'"a key not UTF-8"')
        expected = [{"key": f"{name}{i}", "value": {"i": i}} for i in range(5)]
        for i in (1, 2):
            expected[i] = {"key": f"{name}{i}", "value": None, "error": MARKER}
        expected.insert(4, {"key": None, "value": "a key not UTF-8", "error": MARKER})
        for serializer, (session, _) in sessions.items():
            rows = await session.call("etcd.map.notes.range", name, name + "~")
            assert [{k: v for k, v in row.items() if k != "revision"}
                    for row in rows] == expected, serializer
            assert rows[2]["revision"] == bad.revision
            snapshot = await session.call("etcd.map.get_and_watch", "notes")
            mine = [{k: v for k, v in row.items() if k != "revision"}
                    for row in snapshot["items"]
                    if (row["key"] is None and row["revision"] > first)
                    or (row["key"] is not None and row["key"].startswith(name))]
            assert mine == expected, serializer
            assert await session.call("etcd.map.notes.get", f"{name}2") == {
                "key": f"{name}2", "value": None, "revision": bad.revision, "error": MARKER}
