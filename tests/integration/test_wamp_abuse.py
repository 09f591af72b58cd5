"""One anonymous browser cannot take the service down: sizes, key caps, rates, quiet logs
and errors that reveal nothing, through a real Crossbar against a real etcd of this
module's own (it is paused with SIGSTOP here, which the shared etcd must never be)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from stall import stalled
from twisted.internet import defer, reactor
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    error_of,
    loop_fixture,  # noqa: F401 (a fixture)
    node_for,
    registered,
)

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

DB = b"abuse/maps/"
RAW = "abuse/raw/"
E = "etcd.error."
GUEST_RATES = {"calls_per_second": 1000, "writes_per_second": 20,
               "write_bytes_per_second": 64 * 1024, "in_flight": 1000}
EXTRA = {
    "etcd": {"timeout": 3},
    "db_prefix": DB.decode(),
    "election": "abuse/publisher",
    "maps": {
        "notes": {"slot": 1, "read": ["guest", "writer"], "write": ["guest", "writer"]},
        "secret": {"slot": 2, "read": ["writer"], "write": ["writer"]},
        "capped": {"slot": 3, "read": ["writer"], "write": ["writer"], "max_keys": 5},
    },
    "kv_prefixes": [{"prefix": RAW, "read": ["writer"], "write": ["writer"],
                     "max_key_bytes": 64, "max_keys": 3}],
    "presence": {"prefix": "abuse/presence/", "max_keys": 3, "max_value_bytes": 500},
    "limits": {"default": {"session": GUEST_RATES, "authid": GUEST_RATES},
               "roles": {"writer": None}},
}


@pytest.fixture(scope="module")
def own_etcd(component_loop: str) -> Iterator[EtcdCluster]:
    """A fresh etcd per placement: the tests count keys, and fill a capped map."""
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def crossbar(own_etcd: EtcdCluster, component_loop: str) -> Iterator[CrossbarNode]:
    with node_for(component_loop, CONFIG, own_etcd.urls, extra_overrides=EXTRA) as cb:
        yield cb


@pytest_twisted.async_fixture
async def node(crossbar: CrossbarNode) -> CrossbarNode:
    return await registered(crossbar)


@pytest_twisted.async_yield_fixture
async def etcd_client(own_etcd: EtcdCluster) -> Any:
    c = Client(reactor, url=own_etcd.url)
    try:
        yield c
    finally:
        await c.close()


async def stored(client: Client, prefix: bytes) -> int:
    return (await client.get(KeySet(prefix, prefix=True), count_only=True)).count


@ensure
async def test_sizes_are_refused_before_anything_is_sent(node: CrossbarNode,
                                                         etcd_client: Client) -> None:
    guest = await connect(node, writer=False)
    writer = await connect(node)
    try:
        before = await stored(etcd_client, b"abuse/")
        # The writer (no rates): a refused call still spends the caller's byte rate.
        big = await error_of(writer.call("etcd.map.notes.put", "sizes", "x" * 70_000))
        assert big.error == E + "too_large" and "at most 65536" in big.args[0]  # default
        long_key = await error_of(writer.call("etcd.map.notes.put", "k" * 2000, 1))
        assert long_key.error == E + "too_large"  # the default max_key_bytes, 1 KiB
        txn = await error_of(writer.call("etcd.map.txn", [
            {"op": "put", "map": "notes", "key": "sizes-ok", "value": 1},
            {"op": "put", "map": "notes", "key": "sizes-big", "value": "y" * 70_000}]))
        assert txn.error == E + "too_large"
        raw = await error_of(writer.call("etcd.kv.put", RAW + "k" * 80, "v"))
        assert raw.error == E + "too_large"
        assert await stored(etcd_client, b"abuse/") == before  # nothing written, not half
        assert await guest.call("etcd.map.notes.put", "sizes", "x" * 60_000)
    finally:
        await disconnect(guest)
        await disconnect(writer)


@ensure
async def test_max_keys_is_exact_under_concurrent_creators(node: CrossbarNode,
                                                           etcd_client: Client) -> None:
    """20 writers creating keys at once in a map capped at 5: never more than 5 stored,
    every success stored, every refusal ``quota_exceeded`` (or ``conflict`` after too
    many concurrent rounds); updates and a create after a delete still pass."""
    capped = DB + (3).to_bytes(2, "big")
    sessions = [await connect(node) for _ in range(4)]
    try:
        calls = [sessions[i % 4].call("etcd.map.capped.put", f"c{i}", i) for i in range(20)]
        outcomes = await defer.DeferredList(calls, consumeErrors=True)
        succeeded = [r for ok, r in outcomes if ok]
        refused = [f.value.error for ok, f in outcomes if not ok]
        assert set(refused) <= {E + "quota_exceeded", E + "conflict"}, refused
        assert E + "quota_exceeded" in refused
        assert 1 <= len(succeeded) <= 5
        assert await stored(etcd_client, capped) == len(succeeded)
        s = sessions[0]
        for i in range(20, 40):  # fill up to the cap, one at a time
            if await stored(etcd_client, capped) == 5:
                break
            await s.call("etcd.map.capped.put", f"c{i}", i)
        assert await stored(etcd_client, capped) == 5
        over = await error_of(s.call("etcd.map.capped.put", "one-more", 1))
        assert over.error == E + "quota_exceeded" and "at most 5 keys" in over.args[0]
        existing = (await etcd_client.get(KeySet(capped, prefix=True), limit=1)).kvs[0]
        key = existing.key[len(capped):].decode()
        await s.call("etcd.map.capped.put", key, "updated")  # an update creates nothing
        two = await error_of(s.call("etcd.map.txn", [
            {"op": "delete", "map": "capped", "key": key},
            {"op": "put", "map": "capped", "key": "n1", "value": 1},
            {"op": "put", "map": "capped", "key": "n2", "value": 2}]))
        assert two.error == E + "quota_exceeded"
        assert await stored(etcd_client, capped) == 5
        await s.call("etcd.map.txn", [{"op": "delete", "map": "capped", "key": key},
                                      {"op": "put", "map": "capped", "key": "n1", "value": 1}])
        assert await stored(etcd_client, capped) == 5
        # Wide transactions on a capped map: decided by the cap, or refused whole
        # (never etcd's own "too many ops") when the guarded form cannot fit in etcd's
        # 128 operations per branch.
        wide = [{"op": "put", "map": "capped", "key": f"w{i}", "value": i} for i in range(100)]
        over = await error_of(s.call("etcd.map.txn", wide, expect=[
            {"map": "notes", "key": f"e{i}", "revision": 0} for i in range(20)]))
        assert over.error == E + "quota_exceeded"
        widest = await error_of(s.call("etcd.map.txn", wide + [
            {"op": "put", "map": "capped", "key": f"x{i}", "value": i} for i in range(28)], expect=[
            {"map": "notes", "key": "e0", "revision": 0}]))
        assert widest.error == E + "too_large" and "split it" in widest.args[0]
        assert await stored(etcd_client, capped) == 5
        # kv prefixes have caps of their own
        for i in range(3):
            await s.call("etcd.kv.put", f"{RAW}k{i}", "v")
        assert (await error_of(s.call("etcd.kv.put", f"{RAW}k9", "v"))).error == \
            E + "quota_exceeded"
        await s.call("etcd.kv.put", f"{RAW}k0", "again")
    finally:
        for s in sessions:
            await disconnect(s)


@ensure
async def test_a_guest_past_its_write_rate_is_refused_at_once(node: CrossbarNode,
                                                              etcd_client: Client) -> None:
    """60 puts at once against 20 writes/s: the excess fails with ``rate_limited`` and a
    ``retry_after``, sends nothing to etcd, and a put after that wait passes."""
    notes = DB + (1).to_bytes(2, "big") + b"rate-"
    guest = await connect(node, writer=False)
    try:
        outcomes = await defer.DeferredList(
            [guest.call("etcd.map.notes.put", f"rate-{i}", i) for i in range(60)],
            consumeErrors=True)
        succeeded = sum(1 for ok, _ in outcomes if ok)
        errors = [f.value for ok, f in outcomes if not ok]
        assert errors and all(e.error == E + "rate_limited" for e in errors)
        assert all(0 < e.kwargs["retry_after"] <= 1.0 for e in errors)
        assert 20 <= succeeded < 60
        assert await stored(etcd_client, notes) == succeeded

        async def admitted() -> bool:
            try:
                await guest.call("etcd.map.notes.put", "rate-later", 1)
            except ApplicationError as exc:
                assert exc.error == E + "rate_limited"
                return False
            return True

        await until(admitted, timeout=10)
        status = await guest.call("etcd.status")
        assert status["rate_limited_calls"] >= len(errors)
    finally:
        await disconnect(guest)


@ensure
async def test_errors_tell_callers_what_they_did_not_how_we_are_built(
        node: CrossbarNode, own_etcd: EtcdCluster) -> None:
    guest = await connect(node, writer=False)
    writer = await connect(node)
    try:
        wrong = await error_of(writer.call("etcd.map.get", "notes"))
        assert wrong.error == E + "invalid_argument"
        assert wrong.args[0].startswith("etcd.map.get(name, key): ")
        extra = await error_of(guest.call("etcd.map.notes.get", "a", "b"))
        assert extra.error == E + "invalid_argument"
        assert extra.args[0].startswith("etcd.map.notes.get(key): ")
        unknown = await error_of(writer.call("etcd.map.get", "nope", "k"))
        assert unknown.error == E + "invalid_argument" and "secret" not in unknown.args[0]
        same = await error_of(writer.call("etcd.map.txn", [
            {"op": "put", "map": "notes", "key": "dup", "value": 1},
            {"op": "delete", "map": "notes", "key": "dup"}]))
        assert same.error == E + "invalid_argument" and "abuse" not in same.args[0]
        with stalled(own_etcd.members[0]):
            away = await error_of(guest.call("etcd.map.notes.get", "x"))
        assert away.error == E + "unavailable"
        for leak in ("127.0.0.1", "http", ":", "within"):
            assert leak not in away.args[0], away.args
    finally:
        await disconnect(guest)
        await disconnect(writer)


@ensure
async def test_calls_abandoned_by_a_leaving_caller_are_counted_not_logged(
        node: CrossbarNode, own_etcd: EtcdCluster) -> None:
    """300 calls pending on a hung etcd when their caller disconnects: each is cancelled
    and counted; the log gains no traceback (it gained one per call before)."""
    writer = await connect(node)
    before = (await writer.call("etcd.status"))["cancelled_calls"]
    tracebacks = node.log_tail(100_000).count("Traceback")
    guest = await connect(node, writer=False)
    with stalled(own_etcd.members[0]):
        pending = [guest.call("etcd.map.notes.count") for _ in range(300)]
        for d in pending:
            d.addErrback(lambda _: None)
        await guest.leave()
        # The router interrupts the guest's calls when it processes its leave; a call
        # made after that reaches the component after those interrupts (one ordered
        # stream), and this one needs no etcd (its arguments are wrong).
        await error_of(writer.call("etcd.map.get", "notes"))

    async def all_cancelled() -> bool:
        return bool((await writer.call("etcd.status"))["cancelled_calls"] >= before + 300)

    await until(all_cancelled, timeout=30)
    await disconnect(writer)
    assert node.log_tail(100_000).count("Traceback") == tracebacks


@ensure
async def test_presence_keys_and_values_per_session_are_bounded(
        node: CrossbarNode, etcd_client: Client) -> None:
    """A session holds at most ``max_keys`` presence keys (counted in etcd, so over every
    instance) of at most ``max_value_bytes``; others are unaffected."""
    s = await connect(node)
    other = await connect(node)
    try:
        for i in range(3):
            await s.call("etcd.presence.put", f"p{i}", {"at": i})
        over = await error_of(s.call("etcd.presence.put", "p3", 1))
        assert over.error == E + "quota_exceeded"
        await s.call("etcd.presence.put", "p0", {"at": "again"})  # replacing is not adding
        big = await error_of(s.call("etcd.presence.put", "p0", "x" * 600))
        assert big.error == E + "too_large"
        assert await stored(etcd_client, f"abuse/presence/{s._session_id}/".encode()) == 3
        await other.call("etcd.presence.put", "p0", 1)  # another session has its own keys
        await s.call("etcd.presence.delete", "p1")
        await s.call("etcd.presence.put", "p3", 1)
    finally:
        await disconnect(s)
        await disconnect(other)


@ensure
async def test_guests_flooding_with_big_values_store_only_their_byte_rate(
        node: CrossbarNode, etcd_client: Client) -> None:
    """The measured attack: 1 MB puts filled a 32 MiB quota in 1.9 s. Now a value above
    64 KiB is refused by size, and 5 guests sending 40 puts of 50 kB each at once store no more than
    their byte rate allows (64 KiB/s each here), the rest refused at once."""
    flood = DB + (1).to_bytes(2, "big") + b"g"
    guests = [await connect(node, writer=False) for _ in range(5)]
    try:
        sizer = await connect(node, writer=False)
        huge = await error_of(sizer.call("etcd.map.notes.put", "huge", "x" * 200_000))
        assert huge.error == E + "too_large", huge.args
        await disconnect(sizer)
        calls = [g.call("etcd.map.notes.put", f"g{n}-{i}", "y" * 50_000)
                 for n, g in enumerate(guests) for i in range(40)]
        outcomes = await defer.DeferredList(calls, consumeErrors=True)
        accepted = sum(1 for ok, _ in outcomes if ok)
        refused = {f.value.error for ok, f in outcomes if not ok}
        assert refused == {E + "rate_limited"}
        # one bucket of 64 KiB each, plus what refills while 200 calls are handled
        assert 4 <= accepted <= 10, accepted
        assert await stored(etcd_client, flood) == accepted
    finally:
        for g in guests:
            await disconnect(g)
