"""The publisher's leadership and resume logic on a ``task.Clock``, over a small
fake of the client calls it makes (election, checkpoint read/write, watches).

Behaviour against a real etcd and Crossbar is tests/integration/test_wamp_faults.py's
job; these tests pin down orderings that real processes hit only by chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from etcdwamp import errors
from etcdwamp.wamp.publisher import Publisher
from etcdwamp.wamp.settings import Settings


class FakeLease:
    def __init__(self) -> None:
        self.alive = True
        self._waiting: list[Deferred[None]] = []

    @property
    def lost(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def lose(self) -> None:
        self.alive = False
        for d in self._waiting:
            d.errback(errors.LeaseExpired(1))
        self._waiting = []


class FakeElection:
    """Campaigns queue behind a leader whose lease is alive, as in etcd."""

    def __init__(self, etcd: FakeClient) -> None:
        self.etcd = etcd
        self.lease: FakeLease | None = None
        self.leader_key: bytes | None = None

    async def campaign(self, value: bytes) -> bytes:
        self.lease = FakeLease()
        while self.etcd.leader is not None and self.etcd.leader.alive:
            d: Deferred[None] = Deferred()
            self.etcd.queued.append(d)
            await d
        self.etcd.leader = self.lease
        self.leader_key = value
        return value

    async def resign(self) -> None:
        # Election.resign revokes the lease, or at least stops renewing it
        # when etcd does not answer: either way the leadership ends.
        if self.lease is not None:
            self.lease.alive = False
        self.lease, self.leader_key = None, None
        self.etcd.wake()


@dataclass
class FakeWatch:
    keyset: Any
    callback: Any
    start: int
    cancelled: bool = False
    finished: Deferred[None] = field(default_factory=Deferred)

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Stored:
    value: bytes


@dataclass
class Range:
    first: Stored | None


@dataclass
class Status:
    revision: int


class FakeClient:
    def __init__(self, revision: int = 100) -> None:
        self.revision = revision
        self.leader: FakeLease | None = None
        self.queued: list[Deferred[None]] = []
        self.kv: dict[bytes, bytes] = {}
        self.watches: list[FakeWatch] = []
        self.failing_reads = 0

    def wake(self) -> None:
        queued, self.queued = self.queued, []
        for d in queued:
            d.callback(None)

    def election(self, name: bytes, *, ttl: int = 10) -> FakeElection:
        return FakeElection(self)

    async def get(self, key: bytes) -> Range:
        if self.failing_reads:
            self.failing_reads -= 1
            raise errors.ConnectionLost("etcd went away mid-answer")
        value = self.kv.get(key)
        return Range(None if value is None else Stored(value))

    async def status(self) -> Status:
        return Status(self.revision)

    async def put(self, key: bytes, value: bytes) -> None:
        self.kv[key] = value

    def watch(self, keyset: Any, callback: Any, *, start_revision: int,
              prev_kv: bool = False) -> FakeWatch:
        watch = FakeWatch(keyset, callback, start_revision)
        self.watches.append(watch)
        return watch

    def live_watches(self) -> list[FakeWatch]:
        return [w for w in self.watches if not w.cancelled]


def settings() -> Settings:
    return Settings.from_extra({"etcd": {"endpoints": ["http://127.0.0.1:2379"]},
                                "db_prefix": "app/", "kv_prefixes": ["raw/"],
                                "election": "pub"})


def test_a_failure_right_after_winning_gives_the_leadership_back_and_leads_again() -> None:
    """etcd fails between the won campaign and the checkpoint read: the publisher
    resigns that leadership (else its kept-alive lease would keep the leader key,
    and its own next campaign would wait behind it forever), and campaigns again
    after a pause, this time to publish."""
    clock = Clock()
    etcd = FakeClient()
    etcd.failing_reads = 1
    publisher = Publisher(etcd, settings(), {}, lambda *a, **k: None,  # type: ignore[arg-type]
                          lambda: 1, clock)
    publisher.start()
    assert etcd.watches == [] and not publisher.is_publisher
    clock.advance(10)
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [etcd.revision + 1]


def test_leadership_lost_and_won_again_resumes_after_the_checkpoint() -> None:
    """The usual path still works: a lost lease stops the watches; the next
    leadership resumes after the stored checkpoint."""
    clock = Clock()
    etcd = FakeClient()
    publisher = Publisher(etcd, settings(), {}, lambda *a, **k: None,  # type: ignore[arg-type]
                          lambda: 1, clock)
    publisher.start()
    assert publisher.is_publisher and len(etcd.live_watches()) == 1
    etcd.kv[b"pub.checkpoint"] = b"150"
    assert etcd.leader is not None
    etcd.leader.lose()
    clock.advance(10)
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [151]
