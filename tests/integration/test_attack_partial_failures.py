"""Breaks found by attacking issue 20's partial-failure handling on a real
3-member cluster, on both loops: each test names what must hold.

A member stopped with SIGSTOP keeps what it was sent in its socket buffers
and carries it out once it runs again, after whatever the others applied
meanwhile. So a state change it did not answer must reach the caller as an
open outcome, never be re-sent to another member: that copy and the late one
would both apply, the late one last.
"""

from __future__ import annotations

from loops import ensure
from members import a_follower, others_only, victim_first
from stall import stalled
from waiting import until

from etcdwamp import errors
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, EtcdMember


def clients(cluster: EtcdCluster, victim: EtcdMember, loop: str) -> tuple[Client, Client]:
    """A client that lists ``victim`` first (no probes), and one of the others only."""
    return (victim_first(cluster, victim, loop, timeout=3.0, probe_interval=None),
            others_only(cluster, victim, loop, timeout=3.0))


@ensure
async def test_a_proclaim_a_hung_member_did_not_answer_is_not_sent_elsewhere(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    victim = await a_follower(etcd_cluster3, loop)
    client, other = clients(etcd_cluster3, victim, loop)
    contender = client.election(prefix + b"e", ttl=30)
    await contender.campaign(b"first")  # through the victim, which still runs
    try:
        with stalled(victim):
            try:
                await contender.proclaim(b"stale")
            except errors.OutcomeUnknown:
                pass
            else:
                raise AssertionError("a proclaim the hung member never answered succeeded")
            # Not applied through another member meanwhile: the hung member's
            # copy is the only one, and it is the caller's to settle.
            leader = await other.election(prefix + b"e").leader()
            assert leader is not None and leader.value == b"first"
    finally:
        await contender.resign()
        await client.close()
        await other.close()


@ensure
async def test_a_short_lease_outlives_a_hung_first_member_with_an_attempt_timeout(
        etcd_cluster3: EtcdCluster, loop: str, prefix: bytes) -> None:
    """The CLI's settings (``attempt_timeout=2``, ``timeout=10``) and ``lock --ttl 3``:
    a renewal whose first attempt goes to the hung member still leaves time for
    the others before the TTL runs out (it got all of it: the lease was lost)."""
    victim = await a_follower(etcd_cluster3, loop)
    client = victim_first(etcd_cluster3, victim, loop, timeout=10.0, attempt_timeout=2.0)
    lease = await client.lease(3, keep_alive=True)
    try:
        with stalled(victim):
            renewed = lease.renewals
            # Three TTLs' worth of renewals while the member hangs.
            await until(lambda: lease.renewals >= renewed + 9 or lease.is_lost, timeout=30,
                        why=lambda: f"renewals: {lease.renewals - renewed}")
            assert not lease.is_lost
        assert (await lease.remaining()) > 0
    finally:
        if not lease.is_lost:
            await lease.revoke()
        await client.close()
