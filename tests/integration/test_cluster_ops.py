"""Membership against real etcd: a loopback cluster grows from 1 to 3 members
(one of them a learner, promoted) and shrinks back, the client following it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from ops_client import OpsClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from waiting import until

from etcdwamp import errors as e
from etcdwamp.testing import EtcdCluster, free_port

ensure = pytest_twisted.ensureDeferred
T = TypeVar("T")


@ensure
async def test_grow_to_three_with_a_promoted_learner_move_the_leader_and_shrink_back(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    cluster = etcd_factory(1)
    m0 = cluster.members[0]
    client = OpsClient(reactor, url=cluster.url, timeout=10.0)
    try:
        (first,) = (await client.member_list()).members
        assert first.name == "m0" and first.client_urls == (m0.url,)

        # a learner (not updated: etcd 3.4's member update drops the learner flag)
        m1 = cluster.new_member("m1")
        joining = await client.member_add([m1.peer_url], learner=True)
        learner = joining.member
        assert learner.is_learner and learner.peer_urls == (m1.peer_url,)
        assert not learner.started
        cluster.join(m1, joining.initial_cluster("m1"), learner=True)
        listed = await client.member_list()
        assert next(m for m in listed.members if m.id == learner.id).is_learner

        # etcd refuses to promote a learner until it caught up with the leader
        async def promoted() -> bool:
            try:
                await client.member_promote(learner.id)
            except e.FailedPrecondition as exc:
                assert "in sync with leader" in exc.message
                return False
            return True

        await until(promoted, timeout=60, why="the learner never caught up")
        with pytest.raises(e.FailedPrecondition):
            await client.member_promote(learner.id)  # not a learner any more

        # a voting member, announced at the wrong peer URL and corrected before it starts
        m2 = cluster.new_member("m2")
        wrong = f"http://127.0.0.1:{free_port()}"
        added = await _while_unhealthy(lambda: client.member_add([wrong]))
        assert not added.member.is_learner and not added.member.started
        updated = await client.member_update(added.member.id, [m2.peer_url])
        assert next(m for m in updated.members if m.id == added.member.id).peer_urls == \
            (m2.peer_url,)
        cluster.join(m2, f"m0={m0.peer_url},m1={m1.peer_url},m2={m2.peer_url}")
        listed = await client.member_list()
        assert sorted(m.name for m in listed.members) == ["m0", "m1", "m2"]
        assert not any(m.is_learner for m in listed.members)

        # the client follows the membership
        urls = await client.refresh_endpoints()
        assert sorted(urls) == sorted(m.url for m in cluster.members)
        assert client.endpoints == urls and client.endpoint == m0.url
        put = await client.put(b"ops/grown", b"3")
        status1 = await client.status(endpoint=m1.url)
        assert status1.header.member_id == learner.id and not status1.is_learner
        assert (await client.status(endpoint=m2.url)).header.member_id == added.member.id
        await until(lambda: _applied(client, m2.url, put.revision),
                    why="m2 never applied the write")

        # leadership moves to the promoted learner, then back to m0
        ids = {m.name: m.id for m in listed.members}
        await client.move_leader(ids["m1"])
        assert (await client.status(endpoint=m0.url)).leader == ids["m1"]
        await client.move_leader(ids["m0"])
        await until(lambda: _leader_is(client, m0.url, ids["m0"]),
                    why="leadership did not come back to m0")

        # shrink: each removed member stops itself
        for name, member in (("m2", m2), ("m1", m1)):
            left = await _while_unhealthy(lambda i=ids[name]: client.member_remove(i))
            assert name not in [m.name for m in left.members]
            process = member.process
            await until(lambda p=process: p is not None and p.poll() is not None,
                        timeout=60, why=f"removed member {name} kept running")
            cluster.forget(member)
        with pytest.raises(e.NotFound):
            await client.member_remove(ids["m1"])
        assert await client.refresh_endpoints() == (m0.url,)
        assert (await client.get(b"ops/grown")).kvs[0].value == b"3"
    finally:
        await client.close()


async def _while_unhealthy(call: Callable[[], Deferred[T]]) -> T:
    """``call()`` until etcd stops refusing it as "unhealthy cluster": its strict
    reconfiguration check refuses membership changes until the leader has been
    connected to every voter for 5 s (a refused change did nothing, so it is
    safe to send again)."""
    results: list[T] = []

    async def accepted() -> bool:
        try:
            results.append(await call())
        except e.Unavailable as exc:
            assert "unhealthy cluster" in exc.message
            return False
        return True

    await until(accepted, timeout=30, why="etcd kept refusing the membership change")
    return results[0]


async def _applied(client: OpsClient, endpoint: str, revision: int) -> bool:
    return (await client.status(endpoint=endpoint)).header.revision >= revision


async def _leader_is(client: OpsClient, endpoint: str, member_id: int) -> bool:
    st: Any = await client.status(endpoint=endpoint)
    return bool(st.leader == member_id)


@ensure
async def test_bad_membership_input_is_refused_before_sending(etcd: EtcdCluster) -> None:
    client = OpsClient(reactor, url=etcd.url)
    try:
        with pytest.raises(TypeError):
            await client.member_add("http://127.0.0.1:1")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await client.member_add(["127.0.0.1:1"])
        with pytest.raises(ValueError):
            await client.member_remove(0)
        with pytest.raises(e.NotFound):
            await client.member_update(12345, ["http://127.0.0.1:1"])
    finally:
        await client.close()
