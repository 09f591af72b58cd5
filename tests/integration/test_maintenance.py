"""Maintenance against real etcd: per-member status, hash and defragmentation,
the NOSPACE alarm, snapshots restored with etcdctl, the lease list."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
from ops_client import OpsClient
from twisted.internet import reactor
from twisted.internet.defer import CancelledError

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire import Alarm, AlarmMember

ensure = pytest_twisted.ensureDeferred


@ensure
async def test_status_hash_and_defragment_go_to_the_member_named(
        etcd_cluster3: EtcdCluster) -> None:
    client = OpsClient(reactor, endpoints=etcd_cluster3.urls, timeout=10.0)
    try:
        ids = {}
        for url in etcd_cluster3.urls:
            st = await client.status(endpoint=url)
            ids[url] = st.header.member_id
            assert (await client.hash(endpoint=url)).header.member_id == ids[url]
            assert (await client.defragment(endpoint=url)).header.member_id in (0, ids[url])
        assert len(set(ids.values())) == 3
        every = await client.statuses()
        assert {url: s.header.member_id for url, s in every.items()
                if not isinstance(s, e.EtcdError)} == ids
        leaders = {s.leader for s in every.values() if not isinstance(s, e.EtcdError)}
        assert len(leaders) == 1 and leaders <= set(ids.values())
        with pytest.raises(e.Unimplemented, match="HashKV"):
            await client.hash_kv(endpoint=etcd_cluster3.urls[1])
        copy = io.BytesIO()
        taken = await client.snapshot(copy, endpoint=etcd_cluster3.urls[2])
        assert taken.endpoint == etcd_cluster3.urls[2] and taken.size == len(copy.getvalue())
        with pytest.raises(ValueError):
            await client.status(endpoint="127.0.0.1:2379")
    finally:
        await client.close()


@ensure
async def test_a_member_that_is_down_is_an_error_not_another_members_answer(
        etcd_cluster3: EtcdCluster) -> None:
    client = OpsClient(reactor, endpoints=etcd_cluster3.urls, timeout=5.0)
    try:
        down = etcd_cluster3.members[2]
        down.kill()
        with pytest.raises(e.ConnectFailed):
            await client.status(endpoint=down.url)
        every = await client.statuses()
        assert isinstance(every[down.url], e.ConnectFailed)
        assert not isinstance(every[etcd_cluster3.urls[0]], e.EtcdError)
    finally:
        await client.close()


@ensure
async def test_defragment_gives_compacted_space_back(
        etcd_factory: Callable[..., EtcdCluster], prefix: bytes) -> None:
    cluster = etcd_factory(1)
    client = OpsClient(reactor, url=cluster.url, timeout=30.0)
    try:
        for i in range(200):
            await client.put(prefix + b"%d" % i, b"x" * 4096)
        deleted = await client.delete(KeySet(prefix, prefix=True))
        await client.compact(deleted.revision, physical=True)
        before = await client.status()
        await client.defragment(endpoint=cluster.url)
        after = await client.status()
        assert after.db_size < before.db_size / 2, (before.db_size, after.db_size)
    finally:
        await client.close()


@ensure
async def test_nospace_alarm_refuses_writes_until_compacted_defragmented_and_disarmed(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    cluster = etcd_factory(1, extra_args=["--quota-backend-bytes", str(256 * 1024)])
    client = OpsClient(reactor, url=cluster.url, timeout=30.0)
    try:
        assert (await client.alarm_list()).alarms == ()
        refused = None
        for i in range(1000):
            try:
                await client.put(b"fill/%d" % i, b"x" * 8192)
            except e.NoSpace as exc:
                refused = exc
                break
        assert refused is not None and "database space exceeded" in refused.message
        assert isinstance(refused, e.ResourceExhausted)
        member = (await client.status()).header.member_id
        assert (await client.alarm_list()).alarms == (AlarmMember(member, Alarm.NOSPACE),)
        with pytest.raises(e.NoSpace):
            await client.put(b"small", b"v")
        # disarmed while the backend is still over its quota: the next write raises it again
        assert (await client.alarm_disarm(member, Alarm.NOSPACE)).alarms == \
            (AlarmMember(member, Alarm.NOSPACE),)
        assert (await client.alarm_list()).alarms == ()
        with pytest.raises(e.NoSpace):
            await client.put(b"small", b"v")
        assert (await client.alarm_list()).alarms == (AlarmMember(member, Alarm.NOSPACE),)
        # etcd lets deletes and compaction through under NOSPACE, so space can be freed
        deleted = await client.delete(KeySet(b"fill/", prefix=True))
        await client.compact(deleted.revision, physical=True)
        await client.defragment()
        assert (await client.alarm_list()).alarms != ()  # space freed, still armed
        with pytest.raises(e.NoSpace):
            await client.put(b"small", b"v")
        disarmed = await client.alarm_disarm()
        assert disarmed.alarms == (AlarmMember(member, Alarm.NOSPACE),)
        assert (await client.alarm_list()).alarms == ()
        await client.put(b"small", b"v")
        assert (await client.get(b"small")).kvs[0].value == b"v"
        with pytest.raises(ValueError):
            await client.alarm_disarm(member)
    finally:
        await client.close()


@ensure
async def test_an_activated_nospace_alarm_refuses_writes_until_disarmed(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    """python-etcd3's create_alarm: raised on the answering member by default,
    it stops writes at once, as a full backend would, with no space used up."""
    cluster = etcd_factory(1)
    client = OpsClient(reactor, url=cluster.url, timeout=10.0)
    try:
        await client.put(b"before", b"v")
        member = (await client.status()).header.member_id
        raised = await client.alarm_activate()
        assert raised.alarms == (AlarmMember(member, Alarm.NOSPACE),)
        assert (await client.alarm_list()).alarms == (AlarmMember(member, Alarm.NOSPACE),)
        with pytest.raises(e.NoSpace):
            await client.put(b"after", b"v")
        assert (await client.get(b"before")).kvs[0].value == b"v"  # reads go on
        disarmed = await client.alarm_disarm()
        assert disarmed.alarms == (AlarmMember(member, Alarm.NOSPACE),)
        await client.put(b"after", b"v")
        with pytest.raises(ValueError):
            await client.alarm_activate(member, Alarm.NONE)
    finally:
        await client.close()


def _etcdctl() -> str:
    found = shutil.which("etcdutl") or shutil.which("etcdctl")
    if found is None:
        pytest.fail("snapshot restore needs etcdctl (Debian: etcd-client) or etcdutl")
    return found


@ensure
async def test_snapshot_streams_to_a_file_that_etcdctl_restores(
        etcd_factory: Callable[..., EtcdCluster], tmp_path: Path) -> None:
    cluster = etcd_factory(1)
    client = OpsClient(reactor, url=cluster.url, timeout=10.0)
    try:
        for i in range(50):
            await client.put(b"snap/%02d" % i, b"value-%d" % i)
        # enough data that the backend comes in several frames of 32 KiB
        await client.put(b"snap/big", os.urandom(200 * 1024))
        seen: list[tuple[int, int]] = []
        path = tmp_path / "backup.db"
        info = await client.snapshot(str(path), progress=lambda w, r: seen.append((w, r)))
        assert path.stat().st_size == info.size and not (tmp_path / "backup.db.part").exists()
        assert len(seen) > 3 and seen[-1][0] == info.size
        assert [w for w, _ in seen] == sorted(w for w, _ in seen)  # bytes only grow
        assert seen[0][1] > seen[-2][1] == 0  # remaining counts down to 0
        # into a file object too: the same backend, nothing written since
        buffer = io.BytesIO()
        again = await client.snapshot(buffer)
        assert again.size == len(buffer.getvalue()) == info.size
    finally:
        await client.close()

    restored = cluster.new_member("restored")
    tool = _etcdctl()
    env = {**os.environ, "ETCDCTL_API": "3"}
    subprocess.run(
        [tool, "snapshot", "restore", str(path), "--data-dir", restored.data_dir,
         "--name", restored.name, "--initial-cluster", f"{restored.name}={restored.peer_url}",
         "--initial-advertise-peer-urls", restored.peer_url],
        check=True, capture_output=True, env=env, timeout=60)
    cluster.join(restored, f"{restored.name}={restored.peer_url}")
    fresh = OpsClient(reactor, url=restored.url, timeout=10.0)
    try:
        back = await fresh.get(KeySet(b"snap/", prefix=True))
        assert back.count == 51
        assert back.kvs[0].key == b"snap/00" and back.kvs[0].value == b"value-0"
        assert [m.name for m in (await fresh.member_list()).members] == ["restored"]
    finally:
        await fresh.close()


@ensure
async def test_cancelling_a_snapshot_leaves_no_partial_file(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    client = OpsClient(reactor, url=etcd.url, timeout=10.0)
    try:
        d = client.snapshot(str(tmp_path / "cut.db"))
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(TypeError):
            await client.snapshot(42)  # type: ignore[arg-type]
    finally:
        await client.close()


@ensure
async def test_lease_leases_lists_the_granted_ones(etcd: EtcdCluster) -> None:
    client = OpsClient(reactor, url=etcd.url, timeout=10.0)
    try:
        a = await client.lease_grant(60)
        b = await client.lease_grant(60)
        assert {a.id, b.id} <= set((await client.lease_leases()).ids)
        await client.lease_revoke(a.id)
        ids = (await client.lease_leases()).ids
        assert a.id not in ids and b.id in ids
        await client.lease_revoke(b.id)
    finally:
        await client.close()


@ensure
async def test_snapshot_memory_stays_bounded_by_a_frame_not_the_backend(
        etcd_factory: Callable[..., EtcdCluster], tmp_path: Path) -> None:
    cluster = etcd_factory(1)
    client = OpsClient(reactor, url=cluster.url, timeout=30.0)
    try:
        for i in range(96):
            await client.put(b"bulk/%d" % i, os.urandom(128 * 1024))
        size = (await client.status()).db_size
        assert size > 8 * 1024 * 1024
        tracemalloc.start()
        try:
            info = await client.snapshot(str(tmp_path / "big.db"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.size >= size
        assert peak < 2 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte backend"
    finally:
        await client.close()
