"""Several endpoints: failover when a member is down, and the outcome-unknown rule."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from loops import ensure, make_client
from twisted.internet import protocol, reactor
from twisted.internet.interfaces import IListeningPort
from waiting import until

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.testing import EtcdCluster, free_port


class _Silent(protocol.Protocol):
    """Accepts a connection and never answers: a hung server."""


@pytest.fixture
def silent_url() -> Iterator[str]:
    factory = protocol.Factory.forProtocol(_Silent)
    port: IListeningPort = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    port.stopListening()


@ensure
async def test_three_members_one_killed_client_keeps_working(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    """Reads and writes keep working when the member in use is killed (SIGKILL)."""
    client = make_client(loop, endpoints=etcd_cluster3.urls, timeout=5.0, connect_timeout=2.0)
    try:
        await client.put(prefix + b"before", b"1")
        first = client.endpoint
        victim = next(m for m in etcd_cluster3.members if m.url == first)
        victim_id = (await client.status()).header.member_id
        victim.kill()
        # Reads fail over at once (a pooled connection to the victim is lost,
        # the next member is tried). If the victim led, writes wait for the
        # survivors to elect a new leader: wait for that election itself.
        statuses: list[object] = []

        async def survivors_have_a_new_leader() -> bool:
            try:
                st = await client.status()
            except e.NoLeader:
                # Require-leader: while the survivors elect, every member refuses.
                statuses.append("no leader")
                return False
            statuses.append(st)
            return st.leader not in (0, victim_id)

        await until(survivors_have_a_new_leader, timeout=30,
                    why=lambda: f"last status: {statuses[-1:]}")
        assert client.endpoint != first
        for i in range(20):
            await client.put(prefix + b"after/%d" % i, b"v")
        assert client.endpoint != first
        got = await client.get(KeySet(prefix, prefix=True), count_only=True)
        assert got.count == 21
        assert (await client.get(prefix + b"before")).kvs[0].value == b"1"

        # The killed member comes back and catches up; the client may use it again.
        victim.start()
        etcd_cluster3.wait_healthy([victim])
        only_victim = make_client(loop, url=victim.url, timeout=5.0)
        try:
            caught_up = await only_victim.get(KeySet(prefix, prefix=True),
                                              count_only=True)
            assert caught_up.count == 21
        finally:
            await only_victim.close()
    finally:
        await client.close()


@ensure
async def test_all_endpoints_down_is_connect_failed(loop: str) -> None:
    client = make_client(loop, endpoints=[f"http://127.0.0.1:{free_port()}",
                                        f"http://127.0.0.1:{free_port()}"])
    try:
        with pytest.raises(e.ConnectFailed, match="no etcd endpoint reachable"):
            await client.put(b"k", b"v")
    finally:
        await client.close()


@ensure
async def test_dead_first_endpoint_falls_over_for_writes(etcd: EtcdCluster, loop: str,
                                                         prefix: bytes) -> None:
    """A refused connection proves the write never reached etcd: the next one is tried."""
    client = make_client(loop, endpoints=[f"http://127.0.0.1:{free_port()}", etcd.url])
    try:
        await client.put(prefix + b"k", b"v")
        assert client.endpoint == etcd.url
        assert (await client.get(prefix + b"k")).kvs[0].value == b"v"
    finally:
        await client.close()


# The silent server accepts the HTTP/1 request: on gRPC no HTTP/2 handshake ever
# completes, so nothing is sent and the call is ConnectFailed (test_grpc_client.py).
@pytest.mark.gateway_only
@ensure
async def test_hung_endpoint_write_is_outcome_unknown(silent_url: str, etcd: EtcdCluster,
                                                      loop: str, prefix: bytes) -> None:
    """A write sent to a server that never answers is not retried elsewhere: its
    outcome is unknown, and the caller is told so."""
    client = make_client(loop, endpoints=[silent_url, etcd.url], timeout=0.5,
                    api_prefix="/v3")
    try:
        with pytest.raises(e.RequestTimeout) as info:
            await client.put(prefix + b"k", b"v")
        assert isinstance(info.value, e.OutcomeUnknown)
        assert info.value.endpoint == silent_url
        direct = make_client(loop, url=etcd.url)
        try:
            assert (await direct.get(prefix + b"k")).count == 0
        finally:
            await direct.close()
    finally:
        await client.close()


# The silent server accepts the HTTP/1 request: on gRPC no HTTP/2 handshake ever
# completes, so nothing is sent and the call is ConnectFailed (test_grpc_client.py).
@pytest.mark.gateway_only
@ensure
async def test_hung_endpoint_read_falls_over(silent_url: str, etcd: EtcdCluster,
                                             loop: str, prefix: bytes) -> None:
    """The timeout bounds the whole call: a read to a hung member gets half of
    it (two endpoints), then the next member answers within the timeout; the
    hung member is demoted, so the next read goes straight to the other."""
    client = make_client(loop, endpoints=[silent_url, etcd.url], timeout=1.0,
                         api_prefix="/v3")
    writer = make_client(loop, endpoints=[etcd.url], api_prefix="/v3")
    try:
        await writer.put(prefix + b"k", b"v")
        started = time.monotonic()
        assert (await client.get(prefix + b"k")).kvs[0].value == b"v"
        assert time.monotonic() - started < 1.0
        assert client.endpoint == etcd.url
        assert not client.transport.health.is_healthy(silent_url)
        started = time.monotonic()
        assert (await client.get(prefix + b"k")).count == 1
        assert time.monotonic() - started < 0.4  # not another half-timeout on the hung one
    finally:
        await client.close()
        await writer.close()
