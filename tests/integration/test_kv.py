"""Client against a real etcd: every KV method and option really reaches etcd."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from loops import ensure, make_client

from etcdwamp import KeySet, SortOrder, SortTarget
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster


async def _fill(client: Client, prefix: bytes, items: dict[bytes, bytes]) -> dict[bytes, int]:
    """Put items in order; return each key's mod revision."""
    revs = {}
    for k, v in items.items():
        revs[k] = (await client.put(prefix + k, v)).revision
    return revs


@ensure
async def test_status_reports_version_and_revision(client: Client) -> None:
    """status() parses the member's version, ids and a positive revision."""
    st = await client.status()
    assert st.version.startswith("3.")
    assert st.leader != 0 and st.leader == st.header.member_id  # single member leads
    assert st.db_size > 0
    assert st.raft_index > 0
    put = await client.put(b"status-probe", b"x")
    assert (await client.status()).revision >= put.revision


@pytest.mark.gateway_only
@ensure
async def test_detects_v3_prefix(client: Client) -> None:
    """The client finds the /v3 gateway of etcd 3.4+ by itself."""
    await client.status()
    assert client.transport.prefixes[client.endpoint] == "/v3"


@ensure
async def test_put_get_roundtrip_and_metadata(client: Client, prefix: bytes) -> None:
    """A put returns the new revision; get returns value, versions and revisions."""
    r1 = await client.put(prefix + b"k", b"v1")
    r2 = await client.put(prefix + b"k", b"v2")
    assert r2.revision == r1.revision + 1
    got = await client.get(prefix + b"k")
    assert got.count == 1 and not got.more
    kv = got.kvs[0]
    assert (kv.key, kv.value) == (prefix + b"k", b"v2")
    assert (kv.create_revision, kv.mod_revision, kv.version) == (r1.revision, r2.revision, 2)
    assert kv.lease == 0


@ensure
async def test_get_missing_key_is_empty_not_none(client: Client, prefix: bytes) -> None:
    """A missing key gives an empty result with count 0 (the gateway omits both fields)."""
    got = await client.get(prefix + b"missing")
    assert got.kvs == () and got.count == 0 and got.more is False
    assert got.first is None


@ensure
async def test_binary_and_empty_values(client: Client, prefix: bytes) -> None:
    """Arbitrary bytes, including NUL/0xFF and the empty value, round-trip exactly."""
    blob = bytes(range(256))
    await client.put(prefix + b"\x00\xff", blob)
    await client.put(prefix + b"empty", b"")
    assert (await client.get(prefix + b"\x00\xff")).kvs[0].value == blob
    empty = await client.get(prefix + b"empty")
    assert empty.count == 1 and empty.kvs[0].value == b""


@ensure
async def test_put_prev_kv(client: Client, prefix: bytes) -> None:
    """prev_kv=True returns the value that was overwritten (None for a new key)."""
    first = await client.put(prefix + b"k", b"old", prev_kv=True)
    assert first.prev_kv is None
    second = await client.put(prefix + b"k", b"new", prev_kv=True)
    assert second.prev_kv is not None and second.prev_kv.value == b"old"
    third = await client.put(prefix + b"k", b"newer")
    assert third.prev_kv is None  # not asked for


@ensure
async def test_put_with_lease_and_ignore_flags(client: Client, prefix: bytes) -> None:
    """lease attaches the key; ignore_value keeps the value; ignore_lease keeps the lease."""
    lease = await client.lease_grant(60)
    await client.put(prefix + b"k", b"v", lease=lease.id)
    assert (await client.get(prefix + b"k")).kvs[0].lease == lease.id
    info = await client.lease_time_to_live(lease.id, keys=True)
    assert prefix + b"k" in info.keys and 0 < info.ttl <= 60 and info.granted_ttl == 60

    await client.put(prefix + b"k", b"", ignore_value=True, lease=0, ignore_lease=True)
    kv = (await client.get(prefix + b"k")).kvs[0]
    assert kv.value == b"v" and kv.lease == lease.id and kv.version == 2

    await client.put(prefix + b"k", b"w", ignore_lease=True)
    kv = (await client.get(prefix + b"k")).kvs[0]
    assert kv.value == b"w" and kv.lease == lease.id

    await client.lease_revoke(lease.id)
    assert (await client.get(prefix + b"k")).count == 0
    assert (await client.lease_time_to_live(lease.id)).ttl == -1


@ensure
async def test_put_unknown_lease_is_lease_not_found(client: Client, prefix: bytes) -> None:
    with pytest.raises(e.LeaseNotFound):
        await client.put(prefix + b"k", b"v", lease=123456789)
    assert (await client.get(prefix + b"k")).count == 0


@ensure
async def test_ignore_value_on_missing_key_fails(client: Client, prefix: bytes) -> None:
    """etcd refuses ignore_value for a key that does not exist; the error is typed."""
    with pytest.raises(e.InvalidArgument):
        await client.put(prefix + b"nokey", b"", ignore_value=True)


@ensure
async def test_range_prefix_limit_more_and_count(client: Client, prefix: bytes) -> None:
    """limit truncates, more tells there is more, count is the full count."""
    await _fill(client, prefix, {b"a": b"1", b"b": b"2", b"c": b"3"})
    got = await client.get(KeySet(prefix, prefix=True), limit=2)
    assert [kv.key for kv in got.kvs] == [prefix + b"a", prefix + b"b"]
    assert got.more is True and got.count == 3
    everything = await client.get(KeySet(prefix, prefix=True))
    assert everything.more is False and everything.count == 3


@ensure
async def test_range_explicit_range_end(client: Client, prefix: bytes) -> None:
    """KeySet(key, range_end=...) is half-open [key, range_end)."""
    await _fill(client, prefix, {b"a": b"1", b"b": b"2", b"c": b"3"})
    got = await client.get(KeySet(prefix + b"a", range_end=prefix + b"c"))
    assert [kv.key for kv in got.kvs] == [prefix + b"a", prefix + b"b"]


@ensure
async def test_prefix_ending_in_ff_bytes(client: Client, prefix: bytes) -> None:
    """A prefix ending in 0xFF covers exactly the keys that start with it."""
    p = prefix + b"\xff\xff"
    await client.put(p + b"x", b"1")
    await client.put(p, b"0")
    await client.put(prefix + b"\xfe", b"outside")
    got = await client.get(KeySet(p, prefix=True))
    assert [kv.key for kv in got.kvs] == [p, p + b"x"]


@ensure
async def test_empty_prefix_is_all_keys(client: Client, prefix: bytes) -> None:
    """KeySet(b'', prefix=True) and KeySet.all() see every key, including ours."""
    await client.put(prefix + b"k", b"v")
    for ks in (KeySet(b"", prefix=True), KeySet.all()):
        got = await client.get(ks, keys_only=True)
        assert prefix + b"k" in [kv.key for kv in got.kvs]
        assert got.count >= 1


@ensure
async def test_keys_only_and_count_only(client: Client, prefix: bytes) -> None:
    await _fill(client, prefix, {b"a": b"1", b"b": b"2"})
    keys = await client.get(KeySet(prefix, prefix=True), keys_only=True)
    assert [kv.value for kv in keys.kvs] == [b"", b""]
    assert [kv.key for kv in keys.kvs] == [prefix + b"a", prefix + b"b"]
    counted = await client.get(KeySet(prefix, prefix=True), count_only=True)
    assert counted.kvs == () and counted.count == 2


@ensure
async def test_sort_order_and_targets(client: Client, prefix: bytes) -> None:
    """sort_order/sort_target are sent: descending by key, by value, by mod revision."""
    await _fill(client, prefix, {b"a": b"3", b"b": b"1", b"c": b"2"})
    ks = KeySet(prefix, prefix=True)
    desc = await client.get(ks, sort_order=SortOrder.DESCEND)
    assert [kv.key[-1:] for kv in desc.kvs] == [b"c", b"b", b"a"]
    by_value = await client.get(ks, sort_order="ascend", sort_target=SortTarget.VALUE)
    assert [kv.value for kv in by_value.kvs] == [b"1", b"2", b"3"]
    await client.put(prefix + b"a", b"3")  # a becomes the most recently modified
    by_mod = await client.get(ks, sort_order="descend", sort_target="mod")
    assert by_mod.kvs[0].key == prefix + b"a"
    by_version = await client.get(ks, sort_order="descend", sort_target="version")
    assert by_version.kvs[0].key == prefix + b"a"
    by_create = await client.get(ks, sort_order="descend", sort_target="create")
    assert by_create.kvs[0].key == prefix + b"c"


@ensure
async def test_revision_reads_history(client: Client, prefix: bytes) -> None:
    """revision= reads the store as it was."""
    r1 = await client.put(prefix + b"k", b"v1")
    await client.put(prefix + b"k", b"v2")
    old = await client.get(prefix + b"k", revision=r1.revision)
    assert old.kvs[0].value == b"v1"


@ensure
async def test_serializable_read(client: Client, prefix: bytes) -> None:
    await client.put(prefix + b"k", b"v")
    got = await client.get(prefix + b"k", serializable=True)
    assert got.kvs[0].value == b"v"


@ensure
async def test_mod_and_create_revision_filters(client: Client, prefix: bytes) -> None:
    """min/max mod/create revision filters select by revision."""
    revs = await _fill(client, prefix, {b"a": b"1", b"b": b"2", b"c": b"3"})
    ks = KeySet(prefix, prefix=True)

    async def keys(**opts: int) -> list[bytes]:
        return [kv.key[-1:] for kv in (await client.get(ks, **opts)).kvs]

    assert await keys(min_mod_revision=revs[b"b"]) == [b"b", b"c"]
    assert await keys(max_mod_revision=revs[b"b"]) == [b"a", b"b"]
    await client.put(prefix + b"a", b"again")  # mod revision moves, create does not
    assert await keys(min_create_revision=revs[b"c"]) == [b"c"]
    assert await keys(max_create_revision=revs[b"a"]) == [b"a"]
    assert await keys(min_mod_revision=revs[b"c"] + 1) == [b"a"]


@ensure
async def test_future_revision_is_typed(client: Client, prefix: bytes) -> None:
    with pytest.raises(e.FutureRevision):
        await client.get(prefix + b"k", revision=10**9)


@ensure
async def test_delete_single_prefix_and_prev_kv(client: Client, prefix: bytes) -> None:
    await _fill(client, prefix, {b"a": b"1", b"b": b"2", b"c": b"3"})
    one = await client.delete(prefix + b"a", prev_kv=True)
    assert one.deleted == 1 and [kv.value for kv in one.prev_kvs] == [b"1"]
    missing = await client.delete(prefix + b"a")
    assert missing.deleted == 0 and missing.prev_kvs == ()
    rest = await client.delete(KeySet(prefix, prefix=True))
    assert rest.deleted == 2 and rest.prev_kvs == ()
    assert (await client.get(KeySet(prefix, prefix=True))).count == 0


@pytest.mark.parametrize("physical", [False, True])
@ensure
async def test_compact_then_old_revision_is_compacted(loop: str,
                                                      etcd_factory: Callable[..., EtcdCluster],
                                                      physical: bool) -> None:
    """After compact(r), reading below r raises RevisionCompacted; r itself is readable.
    Without ``physical`` too: etcd marks the history compacted before it answers,
    only freeing the space happens later. (An etcd of its own: on the shared one, a
    physical compaction frees the whole history of every test before it, which took
    longer than the call's 10 s on a busy machine.)"""
    cluster = etcd_factory(1)
    client = make_client(loop, url=cluster.url)
    try:
        r1 = await client.put(b"k", b"v1")
        r2 = await client.put(b"k", b"v2")
        await client.compact(r2.revision, physical=physical)
        with pytest.raises(e.RevisionCompacted):
            await client.get(b"k", revision=r1.revision)
        assert (await client.get(b"k", revision=r2.revision)).kvs[0].value == b"v2"
        with pytest.raises(e.RevisionCompacted):
            await client.compact(r1.revision)
    finally:
        await client.close()


@ensure
async def test_range_iter_pages_at_one_revision(client: Client, prefix: bytes) -> None:
    """range_iter yields every key once, in order, from the snapshot it started at."""
    keys = [prefix + b"%04d" % i for i in range(57)]
    for k in keys:
        await client.put(k, k[-4:])
    seen = []
    async for kv in client.range_iter(KeySet(prefix, prefix=True), page_size=10):
        if len(seen) == 5:
            # Writes during the iteration are not seen: pages share one revision.
            await client.put(prefix + b"0000zz", b"late")
            await client.delete(keys[-1])
        seen.append(kv.key)
    assert seen == keys


@ensure
async def test_range_iter_at_given_revision_and_single_key(client: Client,
                                                           prefix: bytes) -> None:
    r = await client.put(prefix + b"a", b"1")
    await client.put(prefix + b"b", b"2")
    at_r = [kv.key async for kv in client.range_iter(KeySet(prefix, prefix=True),
                                                     page_size=1, revision=r.revision)]
    assert at_r == [prefix + b"a"]
    single = [kv.value async for kv in client.range_iter(prefix + b"b")]
    assert single == [b"2"]
