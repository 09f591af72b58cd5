"""The publisher: one instance at a time turns etcd watch events into WAMP events.

Topics (``p`` = the URI prefix):

- ``p.map.<name>.on_change``: ``{op, key, value, revision}`` (plus ``prev_value`` when
  ``extra.prev_value``), and ``p.map.<name>.on_resync`` ``{compact_revision}`` when
  events before that revision may be missing (a compaction made the watch lose history,
  or the publisher found no checkpoint): re-read with ``get_and_watch``;
- ``p.kv.<name>.on_change`` / ``p.kv.<name>.on_resync`` for the keys under each of
  ``kv_prefixes`` (``name`` is the prefix's topic name; keys under a longer configured
  prefix go to that prefix's topic only);
- ``p.presence.on_change``: ``{op: "join"|"leave", session, authid, key, value, revision}``.

Events obey the read rules of what they come from: every event and resync
notice of a map, a kv prefix or presence is published with
``eligible_authrole`` = that thing's ``read`` roles (Crossbar delivers it to
sessions of those roles only; without a ``read`` rule, to every subscriber
the router admits; with ``read: []``, to nobody: nothing is published). A
map with ``"events": "owner"`` also sets ``eligible_authid`` to the key, so
each key's changes reach only the sessions authenticated as that key.

A router delivers an event only to its own subscribers, so every router
(Crossbar router worker) has a publisher of its own: the instances on one
router campaign in that router's etcd election (see :mod:`.routers` for the
keys); the leader publishes and records the last published revision in etcd
(the router's checkpoint), so a successor on the same router resumes from
there. Each watched key set (feed) also records how far it got on its own
(``<checkpoint>/<key set in hex>``): the feeds are separate watches, which etcd
does not order between them, so a feed may still owe events older than what
another one published; it resumes from its own position, never after the
shared one. Across a failover events are delivered at least once (subscribers
drop revisions they have seen); one publisher never publishes a revision twice,
even when it loses and regains leadership, and never skips one: without
history (compacted) it says so on ``on_resync``.

The first publisher of a fresh etcd has no checkpoint to resume from, yet the
instances may have served writes before any of them led (while a dead
predecessor's leader key waits for its lease to expire, say). So every instance
creates the checkpoint, if absent, at join, before it serves anything
(:meth:`Publisher.prepare`): whoever leads first resumes before every write an
instance served. A leader that still finds none (the checkpoint deleted, or
etcd unreachable when every instance joined) cannot tell what it missed: it
starts at the current revision and says so on every ``on_resync``.

A router id lives as long as its worker process, so checkpoints of routers
gone would pile up: whenever a publisher starts leading, it deletes the
checkpoint (and positions) of every other router that has no candidate left,
in one transaction per router that deletes only while that router's election
is empty (a router that still has a candidate is never touched). An instance
between its join and its first campaign has no candidate yet: its router's
checkpoint may go then and be created anew, later than writes it served. So
an instance remembers the checkpoint it knew (its create revision); leading
from one created since, it says so on ``on_resync``, as without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from autobahn.wamp.types import PublishOptions
from twisted.internet.defer import CancelledError, Deferred, DeferredList, FirstError
from twisted.internet.task import deferLater
from twisted.logger import Logger

from .. import errors
from ..client import Client
from ..lease import Lease
from ..lock import Election
from ..namespace import Namespace, NamespacedWatch
from ..watch import Watch, WatchBatch
from ..wire import (
    DEFAULT_MAX_TXN_OPS,
    CompCreated,
    KeySet,
    KeyValue,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
)
from ..wire.watch import EventType
from .maps import WampMap
from .metrics import ComponentMetrics
from .presence import decode_presence
from .routers import PublisherKeys
from .settings import Settings

__all__ = ["Publisher"]

_RETRY_MIN = 0.1
_RETRY_MAX = 5.0
_OPS_PER_TXN = DEFAULT_MAX_TXN_OPS


def _settled(d: Deferred[Any], *, cancel: bool = False) -> Deferred[None]:
    """Fires once ``d`` has (after cancelling it, with ``cancel``), whatever its outcome;
    ``d`` keeps its result for its other callbacks."""
    done: Deferred[None] = Deferred()

    def settle(result: Any) -> Any:
        done.callback(None)
        return result

    d.addBoth(settle)
    if cancel:
        d.cancel()
    return done


class _Feed:
    """One watched key set, how its events become WAMP events, and who may get them."""

    def __init__(self, keyset: KeySet, topic: str,
                 event: Callable[[str, KeyValue, KeyValue | None, int], dict[str, Any]],
                 prev_kv: bool, readers: frozenset[str] | None, *,
                 owner_of: Callable[[bytes], str] | None = None,
                 excluded: tuple[bytes, ...] = (), kind: str = "map") -> None:
        self.keyset = keyset
        self.kind = kind  # map, kv or presence: the metrics' ``kind`` label
        self.topic = topic
        self.event = event
        self.prev_kv = prev_kv
        #: nobody may read it (``read: []``): nothing is published at all, since
        #: an empty eligible list means "no filter" to the router
        self.silent = readers is not None and not readers
        self.options = PublishOptions(
            acknowledge=False,
            eligible_authrole=sorted(readers) if readers else None)
        self.owner_of = owner_of
        self.excluded = excluded  # longer configured prefixes with topics of their own
        # The highest revision this instance published on this feed: a
        # publisher that regains leadership resumes after it, whatever an
        # older checkpoint says, so it never repeats an event.
        self.published = 0
        self.watch: Watch | NamespacedWatch | None = None
        self.recorded = -1  # the position last written to this feed's checkpoint
        self.floor = 0  # the revision before the one this feed's watch started at


class Publisher:
    """Publishes the changes of every map, kv prefix and presence as WAMP events, from one
    instance at a time on each router: the one leading that router's election
    (``router``: see :mod:`.routers`; None: one election for all, ``settings.election``).

    Whoever leads resumes from the checkpoint the previous leader recorded, so an event is
    published at least once across failover; subscribers drop repeats by revision.
    ``is_publisher`` tells whether this instance leads now.
    """

    log = Logger()

    def __init__(self, client: Client | Namespace[Client],
                 settings: Settings, maps: dict[str, WampMap],
                 publish: Callable[..., Any], session_id: Callable[[], Any],
                 clock: Any, *, router: str | None = None,
                 metrics: ComponentMetrics | None = None) -> None:
        self.client = client
        self.metrics = metrics if metrics is not None else ComponentMetrics()
        #: this router's election and checkpoint keys
        self.keys = PublisherKeys(settings.election, router)
        self.clock = clock
        self.settings = settings
        self._publish = publish
        self._session_id = session_id
        self._is_publisher = False
        self._stopping = False
        self._watches: list[Watch | NamespacedWatch] = []
        self._election: Election | None = None
        #: the lease of a leadership that could not be given back (its resign failed:
        #: the cluster had no leader, say); revoked before the next campaign
        self._unreleased: Lease | None = None
        self._running: Deferred[None] | None = None
        self._recording = False  # a checkpoint write is under way
        self._recorder: Deferred[None] | None = None
        self._pause: Deferred[None] | None = None  # the wait between two checkpoint writes
        self._positions = True  # the feeds' own positions can be read and written
        self._positions_prefix = self.keys.checkpoint + b"/"
        self._unrecorded: bytes | None = None
        #: the create revision of the checkpoint this instance knows (None: none yet)
        self._known: int | None = None
        p = settings.prefix
        prev = settings.prev_value
        self.feeds: list[_Feed] = []
        for m in maps.values():
            owner_of = None
            if m.spec.events == "owner":
                owner_of = self._owner_of(m)
            self.feeds.append(_Feed(KeySet(m.base, prefix=True), f"{p}.map.{m.name}",
                                    self._map_event(m, prev), prev, m.spec.read,
                                    owner_of=owner_of))
        for kv_prefix in settings.kv_prefixes:
            nested = tuple(other.prefix for other in settings.kv_prefixes
                           if other.prefix != kv_prefix.prefix
                           and other.prefix.startswith(kv_prefix.prefix))
            self.feeds.append(_Feed(KeySet(kv_prefix.prefix, prefix=True),
                                    f"{p}.kv.{kv_prefix.name}", self._raw_event(prev), prev,
                                    kv_prefix.read, excluded=nested, kind="kv"))
        if settings.presence is not None:
            self.feeds.append(_Feed(KeySet(settings.presence.prefix, prefix=True),
                                    f"{p}.presence", self._presence_event(settings.presence.prefix),
                                    True, settings.presence.read, kind="presence"))

    @property
    def is_publisher(self) -> bool:
        """Whether this instance leads its election and publishes now."""
        return self._is_publisher

    @is_publisher.setter
    def is_publisher(self, leading: bool) -> None:
        if leading != self._is_publisher:
            self._is_publisher = leading
            self.metrics.publisher_leader(leading)

    def lag(self, revision: int) -> int:
        """How far behind etcd's ``revision`` (the health check's) this instance may be,
        in revisions: the largest over its feeds, 0 when it does not lead.

        Measured without reading the maps (a range filtered by mod revision makes etcd
        scan the whole prefix, limit or not). A feed whose watch streams has lag 0:
        etcd pushes each change as it commits, and a batch is published before the
        next is taken. A feed whose watch is down (reconnecting after a partition or a
        member's death) or not started lags by ``revision`` minus the revision up to
        which it is known published: an upper bound, since revisions of keys outside
        the feed count too."""
        if not self.is_publisher:
            return 0
        worst = 0
        for feed in self.feeds:
            watch = feed.watch
            if watch is not None and watch.streaming:
                continue
            position = max(feed.published, feed.floor)
            if watch is not None:
                position = max(position, watch.resume_revision(feed.keyset) - 1)
            worst = max(worst, revision - position)
        return worst

    # -- event shapes -----------------------------------------------------------

    @staticmethod
    def _owner_of(m: WampMap) -> Callable[[bytes], str]:
        def owner(raw: bytes) -> str:
            try:
                return str(m.key_out(raw))
            except Exception:  # a key that does not decode has no owner: nobody gets it
                return ""
        return owner

    @staticmethod
    def _map_event(m: WampMap, prev: bool
                   ) -> Callable[[str, KeyValue, KeyValue | None, int], dict[str, Any]]:
        def event(op: str, kv: KeyValue, prev_kv: KeyValue | None,
                  revision: int) -> dict[str, Any]:
            # A stored value no reader can have becomes a marker (``error``,
            # ``prev_error``): the event still reaches every subscriber.
            out = {"op": op, **m.record(kv, value=op == "put"), "revision": revision}
            if prev:
                prev_value, prev_error = m.readable(prev_kv) if prev_kv else (None, None)
                out["prev_value"] = prev_value
                if prev_error is not None:
                    out["prev_error"] = prev_error
            return out
        return event

    @staticmethod
    def _raw_event(prev: bool
                   ) -> Callable[[str, KeyValue, KeyValue | None, int], dict[str, Any]]:
        def event(op: str, kv: KeyValue, prev_kv: KeyValue | None,
                  revision: int) -> dict[str, Any]:
            out: dict[str, Any] = {"op": op, "key": kv.key,
                                   "value": kv.value if op == "put" else None,
                                   "revision": revision}
            if prev:
                out["prev_value"] = prev_kv.value if prev_kv else None
            return out
        return event

    @staticmethod
    def _presence_event(prefix: bytes
                        ) -> Callable[[str, KeyValue, KeyValue | None, int], dict[str, Any]]:
        def event(op: str, kv: KeyValue, prev_kv: KeyValue | None,
                  revision: int) -> dict[str, Any]:
            # A deleted key has no value: who it was comes from the previous one.
            out = decode_presence(prefix, kv if op == "put" or prev_kv is None else prev_kv)
            out["op"] = "join" if op == "put" else "leave"
            out["revision"] = revision
            if op != "put":
                out["value"] = None
            return out
        return event

    # -- lifecycle ----------------------------------------------------------------

    async def prepare(self) -> None:
        """Create the checkpoint at the current revision unless one exists; call it
        before this instance serves any write (at join, before registering procedures).

        Then the first publisher, whenever it is elected, resumes before every write
        an instance served. Never fails for etcd's sake (it is logged): a leader that
        finds no checkpoint then publishes ``on_resync`` instead.
        """
        try:
            _, _, self._known = await self._checkpoint()
        except errors.EtcdError as exc:
            self.log.warn("etcdwamp: publisher checkpoint not prepared ({exc}); if none "
                          "exists when a publisher is elected, it sends on_resync", exc=exc)

    async def _checkpoint(self) -> tuple[int, bool, int]:
        """The recorded checkpoint, whether it was there, and its create revision: if
        absent, it is created at the current revision (unless someone else creates it
        first, whose value wins: an existing checkpoint is never overwritten here)."""
        key = self.keys.checkpoint
        found = await self.client.get(key)
        if found.first is not None:
            return int(found.first.value), True, found.first.create_revision
        # Every write served after this read has a higher revision than it.
        at = found.revision
        created = await self.client.txn(Transaction(
            compare=[CompCreated(key, "==", 0)], success=[OpSet(key, str(at).encode())],
            failure=[OpGet(key)]))
        if created.succeeded:
            return at, False, created.revision
        (kv,) = created.responses[0].kvs  # type: ignore[union-attr]
        return int(kv.value), True, kv.create_revision

    def start(self) -> None:
        """Start campaigning in the background; once leading, watch and publish until stopped."""
        self._running = Deferred.fromCoroutine(self._run())
        self._running.addErrback(self._crashed)

    def _crashed(self, failure: Any) -> None:
        if not self._stopping:
            self.log.failure("etcdwamp: publisher loop failed", failure)

    async def stop(self) -> None:
        """Stop publishing: cancel the watches and the campaign; resign the leadership if held.

        Returns once nothing of the publisher talks to etcd any more (the client may be
        closed then: an asyncio loop that ends next would drop a request still under way).
        """
        self._stopping = True
        self._stop_watches()
        running = self._running
        if running is not None and not running.called:
            # Cancelled, the campaign gives up its leadership on its way out:
            # wait for that, not just for the cancel.
            await _settled(running, cancel=True)
        if self._pause is not None:
            self._pause.cancel()
        if self._recorder is not None and not self._recorder.called:
            await _settled(self._recorder)
        if self._election is not None:
            with contextlib.suppress(errors.EtcdError):  # best effort: the lease expires anyway
                await self._election.resign()
        if self._unreleased is not None:
            with contextlib.suppress(errors.EtcdError):  # (likewise)
                await self._unreleased.revoke()
            self._unreleased = None

    def _stop_watches(self) -> None:
        for watch in self._watches:
            watch.cancel()
        self._watches = []

    async def _run(self) -> None:
        delay = _RETRY_MIN
        while not self._stopping:
            try:
                await self._lead_once()
                delay = _RETRY_MIN
            except errors.EtcdError as exc:
                # etcd unreachable or the lease gone mid-way: campaign again,
                # after a pause that grows while etcd stays away.
                self.log.warn("etcdwamp: publisher lost its footing ({exc}); campaigning "
                              "again in {delay:.1f}s", exc=exc, delay=delay)
                self.is_publisher = False
                self._stop_watches()
                await deferLater(self.clock, delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _lead_once(self) -> None:
        if self._unreleased is not None:
            # Our last leader key may still be alive on etcd (a new raft leader extends
            # every lease, the one we gave up for lost too): the campaign would wait a
            # whole TTL behind it. Revoke it first; while etcd still cannot, this raises
            # and _run tries again after its pause.
            await self._unreleased.revoke()
            self._unreleased = None
        election = self.client.election(self.keys.election, ttl=5)
        self._election = election
        await election.campaign(str(self._session_id()).encode())
        try:
            await self._lead(election)
        except BaseException:
            # Stopped while leading with the lease still renewed (etcd failed
            # while we read the checkpoint, say): give the leadership back, or
            # the leader key outlives us and every later campaign, our own
            # next one included, waits behind it forever.
            await self._resign(election)
            raise

    async def _resign(self, election: Election) -> None:
        """Give ``election``'s leadership back; if etcd cannot take it now, remember its
        lease for the next campaign to revoke."""
        lease = election.lease
        try:
            await election.resign()
        except errors.EtcdError:
            if lease is not None:
                self._unreleased = lease

    async def _lead(self, election: Election) -> None:
        assert election.lease is not None
        self.is_publisher = True
        self.log.info("etcdwamp: this instance publishes watch events")
        recorded, existed, created = await self._checkpoint()
        if existed and self._known is not None and created != self._known:
            # Deleted and created anew since this instance knew it (its router
            # looked gone to another one's publisher): writes it served may
            # precede the new one.
            existed = False
        self._known = created
        start = recorded + 1
        own = await self._own_positions()
        lost: Deferred[None] = election.lease.lost
        deposed = self._deposed(election)
        for feed in self.feeds:
            # The shared checkpoint may be lowered by hand to replay; a feed's
            # own one is lower when that feed was behind another one.
            position = own.get(self._checkpoint_of(feed))
            resume = start if position is None else min(start, position + 1)
            self._watch(feed, max(resume, feed.published + 1))
        if not existed:
            self._history_unknown(start)
        await self._forget_dead_routers()
        try:
            # Leadership ends when our lease is lost, or, much sooner than the
            # next keep-alive would tell, when our leader key is deleted (the
            # lease revoked or the key removed by an operator): step down at
            # once, so a successor and we overlap as briefly as possible.
            await DeferredList([lost, deposed], fireOnOneCallback=True,
                               fireOnOneErrback=True, consumeErrors=True)
        except FirstError as exc:
            if not exc.subFailure.check(errors.LeaseExpired):
                exc.subFailure.raiseException()
        self.is_publisher = False
        self._stop_watches()
        # Deposed: our lease may still be alive. Lost: no renewal was confirmed
        # in time (the cluster re-elected, say), yet etcd may still hold the
        # lease (a new raft leader extends every lease) and with it our leader
        # key, which every campaign, our own next one included, would wait
        # behind for a whole TTL. Either way, give it up now.
        await self._resign(election)

    def _deposed(self, election: Election) -> Deferred[None]:
        """Fires when the leader key of ``election`` is deleted."""
        leader = election.leader_key
        assert leader is not None
        gone: Deferred[None] = Deferred()

        def on_batch(batch: WatchBatch) -> None:
            if not gone.called and any(ev.type is EventType.DELETE for ev in batch.events):
                gone.callback(None)

        # Leader keys are full keys even under a namespace: watch them from the root.
        self._watches.append(self.client.root.watch(leader.key, on_batch,
                                                    start_revision=leader.rev + 1))
        return gone

    async def _forget_dead_routers(self) -> None:
        """Delete the checkpoint and positions of every other router without a candidate.

        One transaction per router, whose compare holds only while that router's
        election range is empty (etcd compares every key of a range; with none,
        a create revision of 0): a router that campaigns again meanwhile keeps
        its keys. Failures are logged: the next leader tries again."""
        keys = self.keys
        if keys.router is None:
            return
        try:
            found = await self.client.get(KeySet(keys.checkpoints, prefix=True), keys_only=True)
            forgotten = 0
            for router in keys.other_routers([kv.key for kv in found.kvs]):
                dead = keys.of(router)
                deleted = await self.client.txn(Transaction(
                    compare=[CompCreated(KeySet(dead.election + b"/", prefix=True), "==", 0)],
                    success=[OpDel(dead.checkpoint),
                             OpDel(KeySet(dead.checkpoint + b"/", prefix=True))]))
                forgotten += deleted.succeeded
        except errors.EtcdError as exc:
            self.log.warn("etcdwamp: checkpoints of routers gone not deleted ({exc}); the "
                          "next publisher to lead tries again", exc=exc)
            return
        if forgotten:
            self.log.info("etcdwamp: deleted the checkpoints of {n} router(s) gone",
                          n=forgotten)

    # -- watching and publishing ---------------------------------------------------

    def _watch(self, feed: _Feed, start: int) -> None:
        def on_batch(batch: WatchBatch) -> Deferred[None]:
            return Deferred.fromCoroutine(self._publish_batch(batch, feed))

        feed.floor = start - 1
        watch = self.client.watch(feed.keyset, on_batch, start_revision=start,
                                  prev_kv=feed.prev_kv)
        watch.finished.addErrback(lambda f: self._resync(f, feed))
        self._watches.append(watch)
        feed.watch = watch

    async def _publish_batch(self, batch: WatchBatch, feed: _Feed) -> None:
        if not self.is_publisher:
            return
        # Several events may share a revision (a transaction, a lease revoke
        # deleting many keys); etcd delivers a revision whole in one batch, so
        # what this instance published before is what precedes this batch.
        published_before = feed.published
        sent = 0
        for ev in batch.events:
            if ev.revision <= published_before:
                continue  # this instance published it before losing leadership
            feed.published = ev.revision
            if feed.silent or ev.kv.key.startswith(feed.excluded):
                continue
            op = "put" if ev.type is EventType.PUT else "delete"
            options = feed.options
            if feed.owner_of is not None:
                options = PublishOptions(acknowledge=False,
                                         eligible_authrole=feed.options.eligible_authrole,
                                         eligible_authid=[feed.owner_of(ev.kv.key)])
            self._publish(f"{feed.topic}.on_change", feed.event(op, ev.kv, ev.prev_kv,
                                                                ev.revision), options=options)
            sent += 1
        # The checkpoint first: what is published must be recorded whatever a metrics
        # sink does.
        if batch.events:
            self._record_soon(str(batch.events[-1].revision).encode())
        if sent:
            self.metrics.event_published(feed.kind, sent)

    def _record_soon(self, last: bytes) -> None:
        """Record the checkpoint after this batch: one write at a time, the
        newest state when the previous write is done and ``checkpoint_interval``
        has passed since it. A write per batch would flood etcd (and the
        client's connections, which calls share) under a stream of small
        batches: measured with ``benchmarks/wamp.py``, back-to-back checkpoint
        writes doubled etcd's writes under a stream of single puts and put the
        event latency's p99 at 3.3-4.2 ms; 0.1 s apart, 1.8 ms. Writes in
        flight together may also land out of order."""
        self._unrecorded = last
        if not self._recording:
            # Set before starting: the loop may well end before fromCoroutine returns.
            self._recording = True
            self._recorder = Deferred.fromCoroutine(self._record_while_new())
            self._recorder.addErrback(self._crashed)

    async def _record_while_new(self) -> None:
        try:
            while self._unrecorded is not None and not self._stopping:
                last, self._unrecorded = self._unrecorded, None
                try:
                    await self._record(last)
                except errors.EtcdError as exc:
                    # The next batch records again; until then a successor
                    # would resume a little earlier (at least once).
                    self.log.warn("etcdwamp: checkpoint not written: {exc}", exc=exc)
                interval = self.settings.checkpoint_interval
                if interval > 0 and not self._stopping:
                    # Batches arriving meanwhile only move _unrecorded on.
                    self._pause = deferLater(self.clock, interval)
                    try:
                        await self._pause
                    except CancelledError:
                        return  # stopped: the successor resumes from the last one written
                    finally:
                        self._pause = None
                    if not self.is_publisher:
                        # Deposed meanwhile: what is left is ours to record (we
                        # published it), but the successor writes the checkpoint now.
                        self._unrecorded = None
                        return
        finally:
            self._recording = False

    def _checkpoint_of(self, feed: _Feed) -> bytes:
        return self._positions_prefix + feed.keyset.key.hex().encode()

    async def _own_positions(self) -> dict[bytes, int]:
        """Each feed's recorded position, by its key ({} without access to them)."""
        if not self._positions:
            return {}
        try:
            found = await self.client.get(KeySet(self._positions_prefix, prefix=True))
        except errors.PermissionDenied:
            self._without_positions()
            return {}
        return {kv.key: int(kv.value) for kv in found.kvs}

    def _without_positions(self) -> None:
        # An etcd role granting the checkpoint key alone (as before feeds had
        # positions) must not stop the publisher: it works as it used to.
        self._positions = False
        self.log.warn("etcdwamp: no access to the keys under {prefix!r}; feeds resume from "
                      "the shared checkpoint alone, and one behind another may skip events "
                      "after a failover (grant readwrite on that prefix)",
                      prefix=self._positions_prefix)

    async def _record(self, last: bytes) -> None:
        """Write the shared checkpoint and each feed's own position: every event
        of the feed up to it was published (its watch delivered them, or etcd
        said by a progress notification that there were none)."""
        shared = OpSet(self.keys.checkpoint, last)
        moved = []
        for feed in self.feeds if self._positions else ():
            if feed.watch is None:
                continue
            position = max(feed.published, feed.watch.resume_revision(feed.keyset) - 1)
            if position > feed.recorded:
                moved.append((feed, position))
        writes = [shared] + [OpSet(self._checkpoint_of(feed), str(position).encode())
                             for feed, position in moved]
        try:
            for at in range(0, len(writes), _OPS_PER_TXN):
                await self.client.txn(Transaction(success=writes[at:at + _OPS_PER_TXN]))
        except errors.PermissionDenied:
            if not moved:
                raise
            self._without_positions()
            await self.client.txn(Transaction(success=[shared]))
            return
        for feed, position in moved:
            feed.recorded = position

    def _history_unknown(self, start: int) -> None:
        """Without a checkpoint, writes before ``start`` may never have been published:
        every feed tells its subscribers to re-read (what they read is at ``start - 1``
        or later, and the watches deliver everything from ``start`` on)."""
        self.log.warn("etcdwamp: the publisher found no checkpoint it knew; it publishes from "
                      "revision {start} and sends on_resync", start=start)
        for feed in self.feeds:
            if not feed.silent:
                self._publish(f"{feed.topic}.on_resync", {"compact_revision": start},
                              options=feed.options)
                self.metrics.event_published("resync")

    def _resync(self, failure: Any, feed: _Feed) -> None:
        if failure.check(errors.WatchCompacted):
            compacted = failure.value.compact_revision
            self.log.warn("etcdwamp: {topic} lost history to compaction at {rev}; resync",
                          topic=feed.topic, rev=compacted)
            if not feed.silent:
                self._publish(f"{feed.topic}.on_resync", {"compact_revision": compacted},
                              options=feed.options)
                self.metrics.event_published("resync")
            if self.is_publisher and not self._stopping:
                # etcd keeps history from the compaction revision on: resume
                # there, so a write that lands while subscribers re-read is
                # published (they drop what their snapshot already holds),
                # never lost between a snapshot and a later restart point.
                self._watch(feed, max(compacted, feed.published + 1))
        elif not failure.check(errors.WatchCanceled) and not self._stopping:
            self.log.failure("etcdwamp: watch for {topic} ended", failure, topic=feed.topic)
