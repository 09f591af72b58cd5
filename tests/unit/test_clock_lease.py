"""Lease keep-alive on a ``task.Clock`` over the fake gateway: when renewals
happen, when a lease counts as lost, and that revoking stops the loop."""

from __future__ import annotations

from fake_gateway import Rig
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.lease import Lease

KEEPALIVE = "/lease/keepalive"


def kept_alive(rig: Rig, ttl: int) -> tuple[Lease, list[e.LeaseExpired], list[Failure]]:
    """A kept-alive lease granted at the rig's time, with its on_lost calls and
    the outcome of ``lease.lost``."""
    on_lost: list[e.LeaseExpired] = []
    lease: Lease = rig.run(rig.client.lease(ttl, keep_alive=True, on_lost=on_lost.append))
    lost: list[Failure] = []
    lease.lost.addErrback(lost.append)
    return lease, on_lost, lost


def renewal_times(rig: Rig) -> list[float]:
    return [c.at for c in rig.etcd.calls_to(KEEPALIVE)]


def test_renews_every_third_of_the_ttl_and_the_lease_outlives_it() -> None:
    rig = Rig.make()
    lease, on_lost, lost = kept_alive(rig, 9)
    for now in range(1, 31):  # ten TTLs, one second at a time
        rig.advance_to(float(now))
        assert rig.etcd.lease_alive(lease.id), f"the lease expired at {now}s"
    assert renewal_times(rig) == [3.0 * i for i in range(1, 11)]
    assert lease.renewals == 10
    assert not on_lost and not lost and not lease.is_lost


def test_no_renewal_before_its_time() -> None:
    rig = Rig.make()
    kept_alive(rig, 9)
    rig.advance_to(2.99, step=0.01)
    assert renewal_times(rig) == []
    rig.advance(0.01)
    assert renewal_times(rig) == [3.0]


def test_renewals_failing_until_the_ttl_passed_lose_the_lease() -> None:
    """The last renewal succeeded at 3s, so etcd drops the lease at 3 + 9 = 12s;
    the client keeps trying meanwhile and reports the loss when that time comes,
    not before (it might still have been renewed) and not later."""
    rig = Rig.make()
    lease, on_lost, lost = kept_alive(rig, 9)
    rig.advance_to(3.0)
    assert renewal_times(rig) == [3.0]
    rig.etcd.unavailable.add(KEEPALIVE)
    rig.advance_to(11.75)
    assert not lost and not on_lost and not lease.is_lost
    failed_tries = [t for t in renewal_times(rig) if t > 3.0]
    assert len(failed_tries) >= 2, "a failed renewal must be retried before the TTL runs out"
    rig.advance_to(12.0)
    assert lease.is_lost
    assert len(lost) == 1 and lost[0].check(e.LeaseExpired)
    assert lost[0].value.lease_id == lease.id
    assert len(on_lost) == 1 and on_lost[0].lease_id == lease.id

    tries = len(renewal_times(rig))
    rig.advance_to(60.0)
    assert len(renewal_times(rig)) == tries, "a lost lease must not be renewed any more"
    assert len(on_lost) == 1


def test_a_failed_renewal_that_recovers_in_time_keeps_the_lease() -> None:
    rig = Rig.make()
    lease, on_lost, lost = kept_alive(rig, 9)
    rig.advance_to(3.0)
    rig.etcd.unavailable.add(KEEPALIVE)
    rig.advance_to(10.0)
    rig.etcd.unavailable.clear()
    rig.advance_to(40.0)
    assert rig.etcd.lease_alive(lease.id)
    assert not lost and not on_lost and not lease.is_lost


def test_a_hanging_renewal_does_not_delay_the_loss_past_the_ttl() -> None:
    """A holder must learn its lease is gone by the time etcd drops it, even
    when the renewal in flight never gets an answer (request timeout 10s,
    longer than what is left of the TTL)."""
    rig = Rig.make(timeout=10.0)
    lease, _, lost = kept_alive(rig, 9)
    rig.advance_to(3.0)
    rig.etcd.hang.add(KEEPALIVE)
    rig.advance_to(11.75)
    assert not lost
    rig.advance_to(12.0)
    assert lease.is_lost and len(lost) == 1 and lost[0].check(e.LeaseExpired)


def test_a_lease_gone_on_etcd_is_lost_at_the_next_renewal() -> None:
    """etcd answers the renewal of a lease it no longer knows with TTL 0."""
    rig = Rig.make()
    lease, on_lost, lost = kept_alive(rig, 9)
    rig.advance_to(4.0)
    assert rig.etcd.revoke(lease.id)  # revoked by someone else
    rig.advance_to(5.75)
    assert not lost
    rig.advance_to(6.0)
    assert lease.is_lost and len(lost) == 1 and lost[0].check(e.LeaseExpired)
    assert len(on_lost) == 1
    rig.advance_to(30.0)
    assert renewal_times(rig) == [3.0, 6.0]


def test_revoke_stops_the_loop() -> None:
    rig = Rig.make()
    lease, on_lost, lost = kept_alive(rig, 9)
    rig.advance_to(4.0)
    rig.run(lease.revoke())
    assert not rig.etcd.lease_alive(lease.id)
    rig.advance_to(60.0)
    assert renewal_times(rig) == [3.0]
    assert rig.clock.getDelayedCalls() == []
    # Revoking is the owner's choice, not a loss.
    assert not lost and not on_lost and not lease.is_lost


def test_revoke_while_a_renewal_is_in_flight_stops_the_loop() -> None:
    rig = Rig.make()
    lease, _, lost = kept_alive(rig, 9)
    rig.etcd.hold.add(KEEPALIVE)
    rig.advance_to(3.0)
    assert len(rig.etcd.held) == 1  # the renewal is in flight
    rig.etcd.hold.clear()
    rig.run(lease.revoke())
    rig.etcd.release()  # whatever became of the renewal's answer
    rig.flush()
    rig.advance_to(60.0)
    assert renewal_times(rig) == [3.0]
    assert rig.clock.getDelayedCalls() == []
    assert not lost


def test_interval_overrides_the_default_period() -> None:
    rig = Rig.make()
    lease: Lease = rig.run(rig.client.lease(9))
    lease.keep_alive(interval=1.5)
    rig.advance_to(6.0)
    assert renewal_times(rig) == [1.5, 3.0, 4.5, 6.0]
    rig.run(lease.revoke())


def test_a_refresh_of_the_owners_moves_the_deadline_of_the_keep_alive() -> None:
    """Renewals of the loop are rare here (interval 100s); the owner renews at
    5s, so the lease is lost at 5 + 9 = 14s, not at the 9s of the grant."""
    rig = Rig.make()
    lease: Lease = rig.run(rig.client.lease(9))
    lost: list[Failure] = []
    lease.keep_alive(interval=100.0).lost.addErrback(lost.append)
    rig.advance_to(5.0)
    assert rig.run(lease.refresh()) == 9
    rig.advance_to(13.75)
    assert not lost and not lease.is_lost
    rig.advance_to(14.0)
    assert lease.is_lost and len(lost) == 1 and lost[0].check(e.LeaseExpired)


def test_keep_alive_started_late_counts_from_the_grant() -> None:
    """The deadline runs from when the grant was sent, not from keep_alive():
    a lease left alone past its TTL is lost as soon as the loop starts."""
    rig = Rig.make()
    lease: Lease = rig.run(rig.client.lease(9))
    rig.advance_to(10.0)
    assert not rig.etcd.lease_alive(lease.id)
    lease.keep_alive()
    rig.advance(0)
    assert lease.is_lost


def test_a_streak_of_failed_renewals_is_logged_once() -> None:
    """Retries every second while etcd is away, one warning for the whole streak (a
    process holding many leases would otherwise log each of them every second)."""
    from twisted.logger import globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        rig = Rig.make()
        kept_alive(rig, 9)
        rig.advance_to(3.0)
        rig.etcd.unavailable.add(KEEPALIVE)
        rig.advance_to(10.0)
        rig.etcd.unavailable.clear()
        rig.advance_to(14.0)
        rig.etcd.unavailable.add(KEEPALIVE)
        rig.advance_to(19.0)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len([t for t in renewal_times(rig) if 3.0 < t <= 10.0]) >= 5
    warned = [ev for ev in events if "renewal failed" in str(ev.get("log_format"))]
    assert len(warned) == 2  # one per streak


CLUSTER = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]


def test_a_ttl_3_lease_outlives_a_hung_first_member() -> None:
    """Renewals every second through a member that never answers: each attempt
    gets a share of what is left of the TTL (not of the 10 s client timeout),
    so the renewal moves to a healthy member in time, and the hung one is
    demoted: later renewals go to the others first."""
    rig = Rig.make(endpoints=CLUSTER, timeout=10.0)
    lease, on_lost, lost = kept_alive(rig, 3)
    rig.etcd.hung_hosts.add("one.test")
    for now in range(1, 61):
        rig.advance_to(float(now), step=0.125)
        assert rig.etcd.lease_alive(lease.id), f"the lease expired at {now}s"
        assert not lease.is_lost, f"the client gave the lease up at {now}s"
    assert not lost and not on_lost
    renewals = rig.etcd.calls_to(KEEPALIVE)
    hung = [c.at for c in renewals if c.host == "one.test"]
    assert hung and hung[0] == 1.0  # the first renewal went to the hung member...
    first_answered = next(c.at for c in renewals if c.host != "one.test")
    # ...and moved on after a third of the 2 s left (+ one step of the clock),
    # not after a third of the client's 10 s timeout.
    assert 2.0 / 3 <= first_answered - hung[0] <= 2.0 / 3 + 0.125
    # Demoted, it is tried only when its back-off ran out (1 s doubling to 30 s),
    # and only after the member that answered last: never again here.
    assert len(hung) == 1
    assert lease.renewals >= 55


def test_a_ttl_3_lease_outlives_a_member_without_leader() -> None:
    rig = Rig.make(endpoints=CLUSTER, timeout=10.0)
    lease, on_lost, lost = kept_alive(rig, 3)
    rig.etcd.unavailable_hosts.add("one.test")
    rig.advance_to(30.0, step=0.125)
    assert rig.etcd.lease_alive(lease.id) and not lease.is_lost and not lost and not on_lost
    answered = [c for c in rig.etcd.calls_to(KEEPALIVE) if c.host != "one.test"]
    assert [c.at for c in answered] == [float(t) for t in range(1, 31)]  # never late
