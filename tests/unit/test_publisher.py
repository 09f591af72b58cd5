"""The publisher's leadership and resume logic on a ``task.Clock``, over a small
fake of the client calls it makes (election, checkpoint read/write, watches).

Behaviour against a real etcd and Crossbar is tests/integration/test_wamp_faults.py's
job; these tests pin down orderings that real processes hit only by chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from etcdwamp import errors
from etcdwamp.pmap import Database
from etcdwamp.wamp.maps import WampMap
from etcdwamp.wamp.metrics import ComponentMetrics
from etcdwamp.wamp.publisher import Publisher
from etcdwamp.wamp.settings import Settings
from etcdwamp.watch import WatchBatch
from etcdwamp.wire import CompCreated, KeySet, KeyValue, OpGet, OpSet, Transaction
from etcdwamp.wire.concurrency import LeaderKey
from etcdwamp.wire.watch import EventType, WatchEvent


class FakeLease:
    def __init__(self, etcd: FakeClient | None = None) -> None:
        self.alive = True
        self.etcd = etcd
        self._waiting: list[Deferred[None]] = []

    async def revoke(self) -> None:
        if self.etcd is not None and self.etcd.no_leader:
            raise errors.NoLeader("etcdserver: no leader")
        self.alive = False
        if self.etcd is not None:
            self.etcd.wake()

    def lose_here(self) -> None:
        """No renewal was confirmed in time, yet etcd still holds the lease (a new
        raft leader extends every lease): lost for its holder, alive on etcd."""
        for d in self._waiting:
            d.errback(errors.LeaseExpired(1))
        self._waiting = []

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
        self.leader_key: LeaderKey | None = None

    async def campaign(self, value: bytes) -> LeaderKey:
        self.lease = FakeLease(self.etcd)
        while self.etcd.leader is not None and self.etcd.leader.alive:
            d: Deferred[None] = Deferred()
            self.etcd.queued.append(d)
            await d
        self.etcd.leader = self.lease
        self.leader_key = LeaderKey(b"pub", b"pub/" + value, self.etcd.revision, 1)
        return self.leader_key

    async def resign(self) -> None:
        # Election.resign revokes the lease, or at least stops renewing it
        # when etcd does not answer: either way the leadership ends.
        if self.etcd.no_leader:  # etcd cannot delete the key now: the lease lives on
            self.lease, self.leader_key = None, None
            raise errors.NoLeader("etcdserver: no leader")
        if self.lease is not None:
            self.lease.alive = False
        self.lease, self.leader_key = None, None
        self.etcd.wake()


@dataclass
class FakeWatch:
    keyset: KeySet
    callback: Any
    start: int
    cancelled: bool = False
    finished: Deferred[None] = field(default_factory=Deferred)
    next: int = 0  # the revision it would resume from, as Watch keeps it

    def __post_init__(self) -> None:
        self.next = self.start

    def cancel(self) -> None:
        self.cancelled = True

    def resume_revision(self, keyset: KeySet) -> int:
        assert keyset == self.keyset
        return self.next


@dataclass
class Stored:
    key: bytes
    value: bytes
    create_revision: int = 0


@dataclass
class Range:
    kvs: list[Stored]
    revision: int = 0

    @property
    def first(self) -> Stored | None:
        return self.kvs[0] if self.kvs else None


@dataclass
class Status:
    revision: int


@dataclass
class TxnAnswer:
    succeeded: bool
    responses: list[Range]
    revision: int = 0


class FakeClient:
    def __init__(self, revision: int = 100) -> None:
        self.revision = revision
        self.leader: FakeLease | None = None
        self.queued: list[Deferred[None]] = []
        self.kv: dict[bytes, bytes] = {}
        self.watches: list[FakeWatch] = []
        self.failing_reads = 0
        self.no_leader = False  # resigns and revokes fail, as while etcd elects a leader
        self.txns: list[Transaction] = []
        self.held: Deferred[None] | None = None  # writes wait for it while set
        self.denied: bytes | None = None  # keys under it are refused, as etcd's RBAC does
        # written by someone else between a read and the next transaction
        self.meanwhile: dict[bytes, bytes] = {}
        # create revisions, numbered apart from self.revision (which tests set)
        self.created: dict[bytes, int] = {}
        self.creations = 0

    @property
    def root(self) -> FakeClient:
        return self

    def create_revision(self, key: bytes) -> int:
        if key not in self.created:
            self.creations += 1
            self.created[key] = self.creations
        return self.created[key]

    def recreate(self, key: bytes, value: bytes) -> None:
        """``key`` deleted and created anew: it gets a new create revision."""
        self.created.pop(key, None)
        self.kv[key] = value

    def wake(self) -> None:
        queued, self.queued = self.queued, []
        for d in queued:
            d.callback(None)

    def election(self, name: bytes, *, ttl: int = 10) -> FakeElection:
        return FakeElection(self)

    async def get(self, key: bytes | KeySet) -> Range:
        if self.failing_reads:
            self.failing_reads -= 1
            raise errors.ConnectionLost("etcd went away mid-answer")
        if isinstance(key, KeySet):
            assert key.prefix
            self.check_access(key.key)
            return Range([Stored(k, v, self.create_revision(k)) for k, v in sorted(self.kv.items())
                          if k.startswith(key.key)])
        value = self.kv.get(key)
        return Range([] if value is None else [Stored(key, value, self.create_revision(key))],
                     self.revision)

    async def status(self) -> Status:
        return Status(self.revision)

    async def put(self, key: bytes, value: bytes) -> None:
        self.kv[key] = value

    async def txn(self, transaction: Transaction) -> TxnAnswer:
        self.txns.append(transaction)
        if self.held is not None:
            await self.held
        self.kv.update(self.meanwhile)
        self.meanwhile = {}
        for compare in transaction.compare:
            # The only compare the publisher makes: "the key does not exist yet".
            assert isinstance(compare, CompCreated) and compare.operand == 0
            if compare.keyset.key in self.kv:
                gets = [op for op in transaction.failure if isinstance(op, OpGet)]
                return TxnAnswer(False, [await self.get(op.keyset.key) for op in gets])
        for op in transaction.success:
            assert isinstance(op, OpSet)
            self.check_access(op.key)
        for op in transaction.success:
            assert isinstance(op, OpSet)
            if op.key not in self.kv:
                self.created.pop(op.key, None)
            self.kv[op.key] = op.value
        created = [self.create_revision(c.keyset.key) for c in transaction.compare]
        return TxnAnswer(True, [], created[0] if created else 0)

    @property
    def checkpoint_writes(self) -> list[Transaction]:
        """The publisher's recordings (unconditional, unlike its creation of a missing
        checkpoint)."""
        return [t for t in self.txns if not t.compare]

    def check_access(self, key: bytes) -> None:
        if self.denied is not None and key.startswith(self.denied):
            raise errors.PermissionDenied("etcdserver: permission denied")

    def watch(self, keyset: Any, callback: Any, *, start_revision: int,
              prev_kv: bool = False) -> FakeWatch:
        watch = FakeWatch(keyset, callback, start_revision)
        self.watches.append(watch)
        return watch

    def live_watches(self) -> list[FakeWatch]:
        """The feeds' watches (the publisher also watches its own leader key)."""
        return [w for w in self.watches if not w.cancelled and isinstance(w.keyset, KeySet)]


def settings(*kv_prefixes: str) -> Settings:
    return Settings.from_extra({"etcd": {"endpoints": ["http://127.0.0.1:2379"]},
                                "db_prefix": "app/", "kv_prefixes": list(kv_prefixes or ["raw/"]),
                                "election": "pub"})


def started(etcd: FakeClient, *kv_prefixes: str, session: int = 1,
            publish: Any = None, prepare: bool = True,
            metrics: ComponentMetrics | None = None) -> tuple[Clock, Publisher]:
    """A publisher over ``etcd`` on a fresh ``task.Clock``, prepared (as the session does
    before it registers any procedure) unless not ``prepare``, and started."""
    clock = Clock()
    publisher = Publisher(etcd, settings(*kv_prefixes), {},  # type: ignore[arg-type]
                          publish or (lambda *a, **k: None), lambda: session, clock,
                          metrics=metrics)
    if prepare:
        assert Deferred.fromCoroutine(publisher.prepare()).called
    publisher.start()
    return clock, publisher


def deliver(watch: FakeWatch, key: bytes, revision: int) -> None:
    """A batch of one put event, as the watch would hand it over."""
    kv = KeyValue(key, b"v", revision, revision, 1, 0)
    watch.next = revision + 1
    watch.callback(WatchBatch(watch.keyset, revision, (WatchEvent(EventType.PUT, kv, None),)))


class NoClient:
    """A Database's client: its limits are read, nothing is ever sent."""

    max_txn_ops = 128
    max_request_bytes = 1536 * 1024


def test_events_reach_whom_the_read_and_events_rules_name() -> None:
    """Each event names who may receive it: a map's and presence's read roles; a map with
    ``events: "owner"`` also the key as the only authid (the router delivers to nobody
    else), so each key's changes reach only its owner."""
    s = Settings.from_extra({
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]}, "db_prefix": "app/",
        "election": "pub", "presence": {"prefix": "here/", "read": ["writer"]},
        "maps": {"inbox": {"slot": 3, "read": ["guest", "writer"], "owner": True,
                           "events": "owner"},
                 "notes": {"slot": 1, "read": ["writer"]}}})
    db = Database(NoClient(), prefix=b"app/")  # type: ignore[arg-type]
    maps = {spec.name: WampMap(spec, db) for spec in s.maps}
    etcd = FakeClient()
    sent: dict[str, Any] = {}
    publisher = Publisher(etcd, s, maps,  # type: ignore[arg-type]
                          lambda topic, event, options: sent.__setitem__(topic, options),
                          lambda: 1, Clock())
    assert Deferred.fromCoroutine(publisher.prepare()).called
    publisher.start()
    watches = {w.keyset.key: w for w in etcd.live_watches()}
    for key, value in ((b"app/\x00\x03alice", b'{"n": 1}'), (b"app/\x00\x01bob", b"2"),
                       (b"here/7/status", cbor2.dumps({"authid": "ann", "value": "on"}))):
        watch = next(w for start, w in watches.items() if key.startswith(start))
        kv = KeyValue(key, value, 101, 101, 1, 0)
        watch.callback(WatchBatch(watch.keyset, 101, (WatchEvent(EventType.PUT, kv, None),)))
    inbox = sent["etcd.map.inbox.on_change"]
    assert inbox.eligible_authid == ["alice"]
    assert inbox.eligible_authrole == ["guest", "writer"]
    notes = sent["etcd.map.notes.on_change"]
    assert notes.eligible_authid is None and notes.eligible_authrole == ["writer"]
    here = sent["etcd.presence.on_change"]
    assert here.eligible_authid is None and here.eligible_authrole == ["writer"]


def test_a_failure_right_after_winning_gives_the_leadership_back_and_leads_again() -> None:
    """etcd fails between the won campaign and the checkpoint read: the publisher
    resigns that leadership (else its kept-alive lease would keep the leader key,
    and its own next campaign would wait behind it forever), and campaigns again
    after a pause, this time to publish."""
    etcd = FakeClient()
    etcd.failing_reads = 1
    clock, publisher = started(etcd, prepare=False)
    assert etcd.watches == [] and not publisher.is_publisher
    clock.advance(10)
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [etcd.revision + 1]


class Recorded(ComponentMetrics):
    def __init__(self) -> None:
        self.reports: list[tuple[str, Any]] = []

    def event_published(self, kind: str, count: int = 1) -> None:
        self.reports.append((kind, count))

    def publisher_leader(self, is_leader: bool) -> None:
        self.reports.append(("leader", is_leader))


def test_the_publisher_reports_its_leadership_and_events_by_kind() -> None:
    """Leadership changes are reported once each; a batch counts its published events
    under its feed's kind, one report per batch."""
    etcd = FakeClient()
    metrics = Recorded()
    _, publisher = started(etcd, "raw/", metrics=metrics)
    assert metrics.reports == [("leader", True)]
    (watch,) = etcd.live_watches()
    deliver(watch, b"raw/a", 101)
    deliver(watch, b"raw/b", 102)
    assert metrics.reports == [("leader", True), ("kv", 1), ("kv", 1)]
    assert etcd.leader is not None
    etcd.leader.lose()  # it steps down and, alone, wins the next campaign at once
    assert metrics.reports[3:] == [("leader", False), ("leader", True)]
    assert publisher.is_publisher


def test_leadership_lost_and_won_again_resumes_after_the_checkpoint() -> None:
    """The usual path still works: a lost lease stops the watches; the next
    leadership resumes after the stored checkpoint."""
    etcd = FakeClient()
    clock, publisher = started(etcd)
    assert publisher.is_publisher and len(etcd.live_watches()) == 1
    etcd.kv[b"pub.checkpoint"] = b"150"
    assert etcd.leader is not None
    etcd.leader.lose()
    clock.advance(10)
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [151]


def test_a_feed_behind_another_loses_no_event_when_the_leadership_changes() -> None:
    """Two raw prefixes are two feeds on two watch streams, which etcd does not
    order between them: the second still owes its event at 102 when the first
    publishes 103 and records it. After the leadership is lost and won again,
    the second feed resumes at 102 at the latest, the first after 103."""
    etcd = FakeClient()
    published: list[int] = []
    clock, _publisher = started(
        etcd, "raw/", "raw2/",
        publish=lambda topic, event, **kw: published.append(event["revision"]))
    first, second = etcd.live_watches()
    assert (first.keyset.key, second.keyset.key) == (b"raw/", b"raw2/")
    deliver(first, b"raw/a", 103)
    assert published == [103]
    assert etcd.leader is not None
    etcd.leader.lose()
    clock.advance(10)
    resumed = {w.keyset.key: w.start for w in etcd.live_watches()}
    assert resumed[b"raw/"] == 104  # nothing published twice
    assert resumed[b"raw2/"] <= 102, "the second feed's event at 102 would be lost"


def test_each_feed_records_its_own_position_and_a_lowered_shared_one_still_replays() -> None:
    """Publishing on one feed records every feed's position (what its watch
    delivered, or was told by a progress notification); a shared checkpoint
    lowered by hand (to replay) still wins over a feed's own higher one."""
    etcd = FakeClient()
    clock, publisher = started(etcd, "raw/", "raw2/")
    first, second = etcd.live_watches()
    second.next = 120  # a progress notification: nothing for raw2/ before 120
    deliver(first, b"raw/a", 125)
    assert etcd.kv[b"pub.checkpoint"] == b"125"
    assert etcd.kv[b"pub.checkpoint/" + b"raw/".hex().encode()] == b"125"
    assert etcd.kv[b"pub.checkpoint/" + b"raw2/".hex().encode()] == b"119"
    etcd.kv[b"pub.checkpoint"] = b"7"
    publisher.feeds[0].published = 0  # as a successor instance would start
    assert etcd.leader is not None
    etcd.leader.lose()
    clock.advance(10)
    assert sorted(w.start for w in etcd.live_watches()) == [8, 8]


def test_checkpoint_writes_one_at_a_time_with_the_newest_state() -> None:
    """Batches arriving while a checkpoint write is in flight make one more
    write, checkpoint_interval (0.1 s) after it, with the newest checkpoint,
    not one write each."""
    etcd = FakeClient()
    clock, _publisher = started(etcd)
    (watch,) = etcd.live_watches()
    etcd.held = Deferred()
    for revision in (101, 102, 103):
        deliver(watch, b"raw/a", revision)
    assert len(etcd.checkpoint_writes) == 1
    held, etcd.held = etcd.held, None
    held.callback(None)
    assert etcd.kv[b"pub.checkpoint"] == b"101"
    clock.advance(0.099)
    assert len(etcd.checkpoint_writes) == 1
    clock.advance(0.001)
    assert len(etcd.checkpoint_writes) == 2
    assert etcd.kv[b"pub.checkpoint"] == b"103"
    assert etcd.kv[b"pub.checkpoint/" + b"raw/".hex().encode()] == b"103"


def test_a_quiet_publisher_records_at_once_and_stopping_drops_the_wait() -> None:
    """The first batch after a quiet spell is recorded at once; a batch that
    comes during the pause after a write waits for it, and stopping ends the
    pause without writing (a successor resumes from the last checkpoint)."""
    etcd = FakeClient()
    clock, publisher = started(etcd)
    (watch,) = etcd.live_watches()
    deliver(watch, b"raw/a", 101)
    assert etcd.kv[b"pub.checkpoint"] == b"101"
    clock.advance(1.0)
    deliver(watch, b"raw/a", 102)
    assert etcd.kv[b"pub.checkpoint"] == b"102"  # quiet for longer than the interval
    deliver(watch, b"raw/a", 103)
    assert etcd.kv[b"pub.checkpoint"] == b"102"  # within the interval: waits
    stopped = Deferred.fromCoroutine(publisher.stop())
    assert stopped.called and not clock.getDelayedCalls()
    assert etcd.kv[b"pub.checkpoint"] == b"102" and len(etcd.checkpoint_writes) == 2


def test_a_publisher_deposed_during_the_pause_leaves_the_checkpoint_to_its_successor() -> None:
    """Leadership lost while the recorder waits out checkpoint_interval: the
    batches still unrecorded are not written (the successor records its own)."""
    etcd = FakeClient()
    clock, publisher = started(etcd)
    (watch,) = etcd.live_watches()
    deliver(watch, b"raw/a", 101)
    deliver(watch, b"raw/a", 102)  # waits for the pause
    assert etcd.kv[b"pub.checkpoint"] == b"101"
    ours = etcd.leader
    assert ours is not None
    etcd.leader = FakeLease()  # a successor leads once our lease has expired
    ours.lose()
    assert not publisher.is_publisher
    clock.advance(0.1)
    assert etcd.kv[b"pub.checkpoint"] == b"101" and len(etcd.checkpoint_writes) == 1


def test_without_access_to_the_feed_positions_it_publishes_as_before() -> None:
    """An etcd role that grants the shared checkpoint key only (all a publisher
    used to need): the publisher still publishes and records that key."""
    etcd = FakeClient()
    etcd.denied = b"pub.checkpoint/"
    etcd.kv[b"pub.checkpoint"] = b"90"
    clock, publisher = started(etcd)
    assert publisher.is_publisher
    (watch,) = etcd.live_watches()
    assert watch.start == 91
    deliver(watch, b"raw/a", 95)
    assert etcd.kv[b"pub.checkpoint"] == b"95"
    deliver(watch, b"raw/a", 96)
    clock.advance(0.1)  # checkpoint_interval
    assert etcd.kv[b"pub.checkpoint"] == b"96"
    assert not any(key.startswith(b"pub.checkpoint/") for key in etcd.kv)


def test_deleting_the_leader_key_deposes_the_publisher_at_once() -> None:
    """A revoked lease or a leader key removed by an operator: the publisher
    steps down when the key's deletion arrives, not at its next keep-alive,
    and gives back its lease."""
    etcd = FakeClient()
    _clock, publisher = started(etcd, session=7)
    assert publisher.is_publisher and etcd.live_watches()
    guard = next(w for w in etcd.watches if w.keyset == b"pub/7")
    assert guard.start == etcd.revision + 1
    lease = etcd.leader
    assert lease is not None and lease.alive
    gone = KeyValue(b"pub/7", b"", 0, 0, 0, 0)
    feeds = etcd.live_watches()
    guard.callback(WatchBatch(b"pub/7", 101, (WatchEvent(EventType.DELETE, gone, None),)))
    assert all(w.cancelled for w in [*feeds, guard])  # stepped down at once
    assert not lease.alive  # resigned: the lease no longer renewed
    # ...and campaigned again; with nobody else here it leads again, anew.
    assert publisher.is_publisher and etcd.leader is not lease
    assert etcd.live_watches() and not set(map(id, etcd.live_watches())) & set(map(id, feeds))


def test_the_first_leader_resumes_before_the_writes_served_while_it_waited() -> None:
    """On a fresh etcd an orphaned leader key (a dead instance's, its lease not yet
    expired) keeps the first publisher waiting while writes are served: prepared at
    join, before serving any, the checkpoint holds the revision then, and the leader
    elected once the orphan's lease expires resumes right after it; nothing to resync."""
    etcd = FakeClient(revision=100)
    orphan = etcd.leader = FakeLease()
    published: list[tuple[str, Any]] = []
    _clock, publisher = started(etcd, publish=lambda topic, event, **kw:
                                published.append((topic, event)))
    assert etcd.kv[b"pub.checkpoint"] == b"100"
    assert not publisher.is_publisher and not etcd.live_watches()
    etcd.revision = 140  # 40 writes served meanwhile
    orphan.lose()
    etcd.wake()
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [101]
    assert published == []
    assert etcd.kv[b"pub.checkpoint"] == b"100"


def test_a_checkpoint_created_anew_since_the_join_makes_the_leader_resync() -> None:
    """Another router's publisher deletes the checkpoints of a router without a
    candidate, which an instance between its join and its first campaign is: the
    checkpoint this instance prepared may go, and another instance create it anew,
    later than writes this one served. Leading from that one, it cannot tell what it
    missed: it sends ``on_resync`` on every feed, as without a checkpoint."""
    etcd = FakeClient(revision=100)
    etcd.leader = FakeLease()  # somebody else leads for now
    published: list[tuple[str, Any]] = []
    _clock, publisher = started(etcd, "raw/", publish=lambda topic, event, **kw:
                                published.append((topic, event)))
    assert etcd.kv[b"pub.checkpoint"] == b"100"
    etcd.recreate(b"pub.checkpoint", b"140")  # gone, then created at 140 by another
    etcd.leader.lose()
    etcd.wake()
    assert publisher.is_publisher
    assert [w.start for w in etcd.live_watches()] == [141]
    assert published == [("etcd.kv.raw.on_resync", {"compact_revision": 141})]


def test_prepare_never_overwrites_a_checkpoint() -> None:
    """A checkpoint already there is left as it is, without a write; one created by
    another instance between the read and the write wins (the write is conditional),
    and the leader resumes after that one."""
    etcd = FakeClient(revision=100)
    etcd.kv[b"pub.checkpoint"] = b"90"
    started(etcd)
    assert etcd.txns == [] and etcd.kv[b"pub.checkpoint"] == b"90"
    assert [w.start for w in etcd.live_watches()] == [91]

    etcd = FakeClient(revision=100)
    etcd.meanwhile = {b"pub.checkpoint": b"97"}
    etcd.leader = FakeLease()  # somebody else leads for now
    started(etcd)
    (creation,) = etcd.txns
    assert creation.compare and etcd.kv[b"pub.checkpoint"] == b"97"
    assert etcd.leader is not None
    etcd.leader.lose()
    etcd.wake()
    assert [w.start for w in etcd.live_watches()] == [98]


def test_a_leader_that_finds_no_checkpoint_resyncs_every_feed_first() -> None:
    """etcd failed when the instance joined, so it could not prepare a checkpoint
    (logged, not raised): the leader then cannot tell which writes it missed. It
    creates the checkpoint, starts every watch at the current revision + 1, and sends
    ``on_resync`` on every feed with that revision, before any event."""
    etcd = FakeClient(revision=100)
    etcd.failing_reads = 1
    published: list[tuple[str, Any]] = []
    clock, publisher = started(etcd, "raw/", "raw2/", publish=lambda topic, event, **kw:
                               published.append((topic, event)))
    assert publisher.is_publisher
    assert etcd.kv[b"pub.checkpoint"] == b"100"
    first, second = etcd.live_watches()
    assert (first.start, second.start) == (101, 101)
    assert published == [("etcd.kv.raw.on_resync", {"compact_revision": 101}),
                         ("etcd.kv.raw2.on_resync", {"compact_revision": 101})]
    deliver(first, b"raw/a", 101)
    assert published[-1][0] == "etcd.kv.raw.on_change" and len(published) == 3
    # The next leadership finds the checkpoint: no second resync.
    assert etcd.leader is not None
    etcd.leader.lose()
    clock.advance(10)
    assert publisher.is_publisher and len(published) == 3


def test_a_leadership_not_given_back_is_revoked_before_the_next_campaign() -> None:
    """The publisher's lease is lost for it while etcd has no leader (so it cannot
    resign), yet etcd keeps the lease and the leader key: the next campaign revokes
    that lease first instead of waiting a whole TTL behind its own old key."""
    etcd = FakeClient()
    clock, publisher = started(etcd)
    lease = etcd.leader
    assert publisher.is_publisher and lease is not None
    etcd.no_leader = True
    lease.lose_here()
    assert not publisher.is_publisher and lease.alive  # the resign failed
    clock.advance(0.1)  # the first pause: etcd still has no leader, it waits again
    assert not publisher.is_publisher and lease.alive
    etcd.no_leader = False
    clock.advance(0.2)
    assert not lease.alive  # revoked, so the campaign did not wait for its TTL
    assert publisher.is_publisher and etcd.leader is not lease
