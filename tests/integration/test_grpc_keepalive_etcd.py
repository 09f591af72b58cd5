"""Lease keep-alive over gRPC against a real etcd, on both loops: every renewal of a
client's leases travels on one LeaseKeepAlive stream (etcd's own gRPC metrics count
the streams it started and the messages it received on them), leases stay alive,
and a lease etcd no longer knows is lost while the others renew on the same stream."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

import pytest
from loops import ensure, make_client
from waiting import until

from etcdwamp import errors as e
from etcdwamp.testing import EtcdCluster

pytestmark = pytest.mark.integration

LEASES = 10


def keepalive_metric(etcd: EtcdCluster, name: str) -> int:
    """etcd's ``name`` counter for its LeaseKeepAlive method."""
    with urllib.request.urlopen(etcd.url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    pattern = (rf'^{name}{{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",'
               rf'grpc_type="bidi_stream"}} (\d+)$')
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"etcd has no {name} for LeaseKeepAlive"
    return int(found.group(1))


@ensure
async def test_every_renewal_of_a_client_travels_on_one_stream(
        etcd_factory: Callable[..., EtcdCluster], loop: str, prefix: bytes) -> None:
    etcd = etcd_factory(1)  # its own: nothing else renews leases on it
    client = make_client(loop, url=etcd.url, transport="grpc")
    try:
        leases = [await client.lease(2) for _ in range(LEASES)]
        for lease in leases:
            lease.keep_alive(interval=0.2)
        await until(lambda: all(lease.renewals >= 5 for lease in leases), timeout=20,
                    why=lambda: f"renewals: {[lease.renewals for lease in leases]}")
        renewals = sum(lease.renewals for lease in leases)
        assert keepalive_metric(etcd, "grpc_server_started_total") == 1
        assert keepalive_metric(etcd, "grpc_server_msg_received_total") >= renewals
        assert not any(lease.is_lost for lease in leases)
        for lease in leases:
            assert await lease.remaining() > 0
        for lease in leases:
            await lease.revoke()
    finally:
        await client.close()


@ensure
async def test_a_lease_etcd_forgot_is_lost_and_the_others_renew_on(
        etcd: EtcdCluster, loop: str, prefix: bytes) -> None:
    client = make_client(loop, url=etcd.url, transport="grpc")
    other = make_client(loop, url=etcd.url, transport="grpc")
    try:
        doomed = await client.lease(5)
        kept = await client.lease(5)
        doomed.keep_alive(interval=0.2)
        kept.keep_alive(interval=0.2)
        await until(lambda: doomed.renewals >= 1 and kept.renewals >= 1, timeout=10)
        lost = doomed.lost
        await other.lease_revoke(doomed.id)  # behind the keep-alive's back
        with pytest.raises(e.LeaseExpired):
            await lost
        seen = kept.renewals
        await until(lambda: kept.renewals >= seen + 3, timeout=10,
                    why="the other lease stopped renewing")
        assert not kept.is_lost
        await kept.revoke()
    finally:
        await client.close()
        await other.close()
