"""A held lock learns at once that its lease is lost (fake gateway, task.Clock):
``held`` turns False, ``lost`` fails with LeaseExpired, ``on_lost`` is called."""

from __future__ import annotations

from fake_gateway import Rig
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.lock import Lock


def holding(rig: Rig, ttl: int = 9) -> tuple[Lock, list[e.LeaseExpired], list[Failure]]:
    on_lost: list[e.LeaseExpired] = []
    lock = rig.client.lock(b"job", ttl=ttl, on_lost=on_lost.append)
    lost: list[Failure] = []
    lock.lost.addErrback(lost.append)  # taken before acquiring: of the coming holding
    rig.run(lock.acquire())
    assert lock.held
    return lock, on_lost, lost


def test_a_lease_revoked_elsewhere_is_lost_at_the_next_renewal() -> None:
    rig = Rig.make()
    lock, on_lost, lost = holding(rig)
    assert lock.lease is not None
    rig.advance_to(4.0)
    assert rig.etcd.revoke(lock.lease.id)
    assert lock.held and not lost  # the client cannot know before it asks
    rig.advance_to(6.0)  # the next renewal (every ttl/3 = 3 s)
    assert not lock.held
    assert len(lost) == 1 and lost[0].check(e.LeaseExpired)
    assert [x.lease_id for x in on_lost] == [lock.lease.id]
    later: list[Failure] = []
    lock.lost.addErrback(later.append)
    assert len(later) == 1, "a Deferred taken after the loss fails at once"


def test_renewals_failing_until_the_ttl_ran_out_lose_the_lock_on_time() -> None:
    rig = Rig.make()
    lock, on_lost, lost = holding(rig)
    rig.advance_to(3.0)
    rig.etcd.unavailable.add("/lease/keepalive")
    rig.advance_to(11.75)
    assert lock.held and not lost
    rig.advance_to(12.0)  # last renewal sent at 3 s + ttl 9 s
    assert not lock.held and len(lost) == 1 and len(on_lost) == 1


def test_a_released_lock_is_not_reported_lost() -> None:
    rig = Rig.make()
    lock, on_lost, lost = holding(rig)
    rig.advance_to(4.0)
    rig.run(lock.release())
    rig.advance_to(60.0)
    assert not lost and not on_lost and not lock.held
    assert rig.clock.getDelayedCalls() == []


def test_each_holding_has_its_own_loss_signal() -> None:
    rig = Rig.make()
    lock, on_lost, first = holding(rig)
    rig.run(lock.release())
    second: list[Failure] = []
    lock.lost.addErrback(second.append)
    rig.run(lock.acquire())
    assert lock.lease is not None
    rig.etcd.revoke(lock.lease.id)
    rig.advance_to(3.0)
    assert not first, "the first holding ended with its release"
    assert len(second) == 1 and second[0].check(e.LeaseExpired)
    assert len(on_lost) == 1


def test_an_on_lost_that_raises_is_logged_and_lost_still_fails() -> None:
    from twisted.logger import globalLogPublisher

    rig = Rig.make()

    def broken(_: e.LeaseExpired) -> None:
        raise RuntimeError("a bug in the holder's callback")

    lock = rig.client.lock(b"job", ttl=3, on_lost=broken)
    rig.run(lock.acquire())
    lost: list[Failure] = []
    lock.lost.addErrback(lost.append)
    assert lock.lease is not None
    rig.etcd.revoke(lock.lease.id)
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        rig.advance_to(1.0)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(lost) == 1 and lost[0].check(e.LeaseExpired)
    raised = [ev for ev in events if "on_lost callback raised" in str(ev.get("log_format"))]
    assert len(raised) == 1
