"""Floor 4: etcd maps as WAMP procedures and live topics, hosted by Crossbar.

Crossbar runs :class:`EtcdWampComponent` as a ``"type": "class"`` component
configured through ``extra`` (see :mod:`.settings`). URIs below use the default
prefix ``etcd``:

Procedures (registered with ``invoke="roundrobin"``, so several instances
share the load):

- ``etcd.status()``
- ``etcd.map.get(map, key)`` → ``{key, value, revision}``; missing → ``etcd.error.not_found``
- ``etcd.map.put(map, key, value)`` → ``{revision}``
- ``etcd.map.delete(map, key)`` → ``{deleted, revision}``
- ``etcd.map.count(map, from_key=None, to_key=None)`` → int
- ``etcd.map.range(map, from_key=None, to_key=None, limit=0)`` → list of records; with
  ``receive_progress`` each page arrives as a progressive result; cancellable
- ``etcd.map.txn(ops, expect=None)``: ``ops`` = ``[{op: "put"|"delete", map, key, value}]``,
  ``expect`` = ``[{map, key, revision}]`` (0 = must not exist); all or nothing; a stale
  expectation → ``etcd.error.conflict``
- ``etcd.map.get_and_watch(map)`` → ``{revision, items}``: apply only topic events with a
  higher revision, and the snapshot plus events is exact
- ``etcd.kv.get/put/delete/range/txn``: the same for raw keys (str = UTF-8, or bytes)
- ``etcd.presence.put(key, value)``: a key bound to the caller's session, deleted when it leaves

Topics: ``etcd.map.<name>.on_change`` with ``{op, key, value, revision}`` (plus
``prev_value`` when configured), ``etcd.kv.on_change`` for ``kv_prefixes``, and
``etcd.map.<name>.on_resync`` / ``etcd.kv.on_resync`` after a compaction made
the watch lose history (re-read with ``get_and_watch``).

One instance at a time publishes (chosen by an etcd election); it records the
last published revision in etcd, so a successor resumes from there: events
are delivered at least once across a failover and subscribers drop revisions
they have seen.

Under JSON serialization: bytes travel as Autobahn's ``"\\u0000" + base64``
strings (autobahn-js turns them into ``Uint8Array``); revisions are ints (they
stay far below 2**53); lease ids, which use all 63 bits, travel as strings.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .. import errors
from ..client import Client
from ..lease import Lease
from ..lock import Election
from ..pmap import Database, PersistentMap
from ..watch import Watch, WatchBatch
from ..wire import CompModified, KeySet, OpDel, OpSet, Transaction, prefix_range_end
from ..wire.watch import EventType
from .errors import ErrorUris, to_application_error
from .settings import MapSpec, Settings, SettingsError

__all__ = ["EtcdWampComponent"]

T = TypeVar("T")

MAX_OPS_PER_CALL = 128


def _raw_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{what} must be a string or bytes, not {type(value).__name__}")


class _Map:
    """A configured map with the WAMP-side conversions of its keys and values."""

    def __init__(self, spec: MapSpec, db: Database) -> None:
        self.spec = spec
        self.table: PersistentMap[Any, Any] = spec.build()
        self.db = db
        self.base = db.prefix + spec.slot.to_bytes(2, "big")

    def key_in(self, key: Any) -> bytes:
        kind = self.spec.key_type
        if kind == "oid" and isinstance(key, str) and key.isdigit():
            key = int(key)  # JavaScript callers may send big OIDs as strings
        elif kind == "uuid":
            if not isinstance(key, str):
                raise TypeError(f"a uuid key must be a string, not {type(key).__name__}")
            key = uuid.UUID(key)
        return self.table.key_bytes(self.db, key)

    def key_out(self, raw: bytes) -> Any:
        key = self.table.key_codec.decode(raw[len(self.base):])
        return str(key) if isinstance(key, uuid.UUID) else key

    def value_in(self, value: Any) -> bytes:
        if self.spec.value_type == "uuid":
            if not isinstance(value, str):
                raise TypeError(f"a uuid value must be a string, not {type(value).__name__}")
            value = uuid.UUID(value)
        if value is None:
            raise TypeError("value must not be null")
        return self.table.value_codec.encode(value)

    def value_out(self, raw: bytes) -> Any:
        value = self.table.value_codec.decode(raw)
        return str(value) if isinstance(value, uuid.UUID) else value


class EtcdWampComponent(ApplicationSession):
    """The component Crossbar hosts; all configuration comes from ``extra``."""

    log = Logger()

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.settings: Settings | None = None
        self.client: Client | None = None
        self.maps: dict[str, _Map] = {}
        self.uris = ErrorUris("etcd")
        self._presence: dict[int, Lease] = {}
        self._watches: list[Watch] = []
        self._election: Election | None = None
        self._stopping = False
        self.is_publisher = False

    # -- lifecycle ---------------------------------------------------------------

    async def onJoin(self, details: Any) -> None:
        try:
            settings = Settings.from_extra(self.config.extra or {})
        except SettingsError as exc:
            self.log.error("etcdwamp: invalid configuration in extra: {exc}", exc=exc)
            self.leave("wamp.close.configuration_error", str(exc))
            return
        from twisted.internet import reactor

        self.settings = settings
        self.uris = ErrorUris(settings.prefix)
        self.client = Client(reactor, endpoints=list(settings.endpoints), user=settings.user,
                             password=settings.password, timeout=settings.timeout)
        self.db = Database(self.client, prefix=settings.db_prefix)
        self.maps = {spec.name: _Map(spec, self.db) for spec in settings.maps}
        p = settings.prefix
        shared = RegisterOptions(invoke="roundrobin", details_arg="details")
        procedures: dict[str, Callable[..., Any]] = {
            "status": self.status,
            "map.get": self.map_get, "map.put": self.map_put, "map.delete": self.map_delete,
            "map.count": self.map_count, "map.range": self.map_range,
            "map.txn": self.map_txn, "map.get_and_watch": self.map_get_and_watch,
            "kv.get": self.kv_get, "kv.put": self.kv_put, "kv.delete": self.kv_delete,
            "kv.range": self.kv_range, "kv.txn": self.kv_txn,
            "presence.put": self.presence_put,
        }
        for name, fn in procedures.items():
            await self.register(self._guarded(fn), f"{p}.{name}", options=shared)
        await self.subscribe(self._on_session_leave, "wamp.session.on_leave")
        self.log.info("etcdwamp: {n} procedures under {p}, maps {maps}",
                      n=len(procedures), p=p, maps=sorted(self.maps))
        Deferred.fromCoroutine(self._publish_when_elected()).addErrback(
            lambda f: self.log.failure("etcdwamp: publisher loop failed", f))

    async def onLeave(self, details: Any) -> None:
        self._stopping = True
        for watch in self._watches:
            watch.cancel()
        for lease in list(self._presence.values()):
            await lease.revoke()
        if self._election is not None:
            with contextlib.suppress(errors.EtcdError):  # best effort: the lease expires anyway
                await self._election.resign()
        if self.client is not None:
            await self.client.close()
        self.disconnect()

    # -- plumbing --------------------------------------------------------------

    def _guarded(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Deferred[T]]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Deferred[T]:
            async def run() -> T:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    raise to_application_error(self.uris, exc) from None
            return Deferred.fromCoroutine(run())
        return call

    def _map(self, name: Any) -> _Map:
        if not isinstance(name, str) or name not in self.maps:
            raise ApplicationError(self.uris.invalid_argument,
                                   f"no such map: {name!r} (configured: {sorted(self.maps)})")
        return self.maps[name]

    @property
    def _client(self) -> Client:
        assert self.client is not None
        return self.client

    # -- procedures: status and maps ---------------------------------------------

    async def status(self, details: Any = None) -> dict[str, Any]:
        st = await self._client.status()
        return {"version": st.version, "revision": st.revision, "db_size": st.db_size,
                "leader": str(st.leader), "member": str(st.header.member_id),
                "publisher": self.is_publisher}

    async def map_get(self, name: Any, key: Any, details: Any = None) -> dict[str, Any]:
        m = self._map(name)
        raw = m.key_in(key)
        kv = (await self._client.get(raw)).first
        if kv is None:
            raise ApplicationError(self.uris.not_found, f"{name}: no record for {key!r}")
        return {"key": m.key_out(kv.key), "value": m.value_out(kv.value),
                "revision": kv.mod_revision}

    async def map_put(self, name: Any, key: Any, value: Any,
                      details: Any = None) -> dict[str, Any]:
        m = self._map(name)
        result = await self._client.put(m.key_in(key), m.value_in(value))
        return {"revision": result.revision}

    async def map_delete(self, name: Any, key: Any, details: Any = None) -> dict[str, Any]:
        m = self._map(name)
        result = await self._client.delete(m.key_in(key))
        return {"deleted": result.deleted > 0, "revision": result.revision}

    def _map_keyset(self, m: _Map, from_key: Any, to_key: Any) -> KeySet:
        start = m.key_in(from_key) if from_key is not None else m.base
        end = m.key_in(to_key) if to_key is not None else prefix_range_end(m.base)
        return KeySet(start, range_end=end)

    async def map_count(self, name: Any, from_key: Any = None, to_key: Any = None,
                        details: Any = None) -> int:
        m = self._map(name)
        return (await self._client.get(self._map_keyset(m, from_key, to_key),
                                       count_only=True)).count

    async def map_range(self, name: Any, from_key: Any = None, to_key: Any = None,
                        limit: Any = 0, details: Any = None) -> list[dict[str, Any]]:
        m = self._map(name)
        return await self._range(self._map_keyset(m, from_key, to_key), limit, details,
                                 m.key_out, m.value_out)

    async def _range(self, keyset: KeySet, limit: Any, details: Any,
                     key_out: Callable[[bytes], Any],
                     value_out: Callable[[bytes], Any]) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise TypeError("limit must be a non-negative int")
        assert self.settings is not None
        progress = getattr(details, "progress", None)
        page: list[dict[str, Any]] = []
        out: list[dict[str, Any]] = []
        n = 0
        async for kv in self._client.range_iter(keyset, page_size=self.settings.range_page):
            record = {"key": key_out(kv.key), "value": value_out(kv.value),
                      "revision": kv.mod_revision}
            n += 1
            if progress is not None:
                page.append(record)
                if len(page) >= self.settings.range_page:
                    progress(page)  # a progressive result: the caller sees it now
                    page = []
            else:
                out.append(record)
            if limit and n >= limit:
                break
        return page if progress is not None else out

    async def map_txn(self, ops: Any, expect: Any = None,
                      details: Any = None) -> dict[str, Any]:
        def resolve(item: Any) -> tuple[_Map, bytes]:
            m = self._map(item.get("map"))
            return m, m.key_in(item.get("key"))

        return await self._txn(ops, expect, resolve)

    async def _txn(self, ops: Any, expect: Any,
                   resolve: Callable[[Any], tuple[_Map | None, bytes]]) -> dict[str, Any]:
        if not isinstance(ops, list) or not ops:
            raise TypeError("ops must be a non-empty list of {op, ...} objects")
        expect = expect or []
        if not isinstance(expect, list):
            raise TypeError("expect must be a list of {key, revision} objects")
        if len(ops) > MAX_OPS_PER_CALL or len(expect) > MAX_OPS_PER_CALL:
            raise errors.TooManyOps(f"at most {MAX_OPS_PER_CALL} ops and expectations "
                                    "per transaction (etcd's --max-txn-ops)")
        writes: list[OpSet | OpDel] = []
        for item in ops:
            if not isinstance(item, dict):
                raise TypeError("each op must be an object")
            m, raw = resolve(item)
            if item.get("op") == "put":
                value = item.get("value")
                writes.append(OpSet(raw, m.value_in(value) if m else _raw_bytes(value,
                                                                                "value")))
            elif item.get("op") == "delete":
                writes.append(OpDel(raw))
            else:
                raise ValueError(f"op must be 'put' or 'delete', got {item.get('op')!r}")
        compares = []
        for item in expect:
            if not isinstance(item, dict):
                raise TypeError("each expectation must be an object")
            _, raw = resolve(item)
            revision = item.get("revision")
            if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
                raise TypeError("expect revision must be a non-negative int")
            compares.append(CompModified(raw, "==", revision))
        result = await self._client.txn(Transaction(compare=compares, success=writes))
        if not result.succeeded:
            raise ApplicationError(self.uris.conflict,
                                   "an expected revision is stale; nothing was written")
        return {"revision": result.revision}

    async def map_get_and_watch(self, name: Any, details: Any = None) -> dict[str, Any]:
        m = self._map(name)
        keyset = KeySet(m.base, prefix=True)
        first = await self._client.get(keyset, limit=1)
        revision = first.header.revision
        items = [{"key": m.key_out(kv.key), "value": m.value_out(kv.value),
                  "revision": kv.mod_revision}
                 async for kv in self._client.range_iter(keyset, revision=revision)]
        return {"revision": revision, "items": items}

    # -- procedures: raw keys ------------------------------------------------------

    async def kv_get(self, key: Any, details: Any = None) -> dict[str, Any]:
        kv = (await self._client.get(_raw_bytes(key, "key"))).first
        if kv is None:
            raise ApplicationError(self.uris.not_found, f"no key {key!r}")
        return {"key": kv.key, "value": kv.value, "revision": kv.mod_revision,
                "version": kv.version, "lease": str(kv.lease)}

    async def kv_put(self, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        result = await self._client.put(_raw_bytes(key, "key"), _raw_bytes(value, "value"))
        return {"revision": result.revision}

    async def kv_delete(self, key: Any, prefix: Any = False,
                        details: Any = None) -> dict[str, Any]:
        target = KeySet(_raw_bytes(key, "key"), prefix=bool(prefix))
        result = await self._client.delete(target)
        return {"deleted": result.deleted, "revision": result.revision}

    async def kv_range(self, prefix: Any, limit: Any = 0,
                       details: Any = None) -> list[dict[str, Any]]:
        keyset = KeySet(_raw_bytes(prefix, "prefix"), prefix=True)
        return await self._range(keyset, limit, details, lambda k: k, lambda v: v)

    async def kv_txn(self, ops: Any, expect: Any = None,
                     details: Any = None) -> dict[str, Any]:
        def resolve(item: Any) -> tuple[_Map | None, bytes]:
            return None, _raw_bytes(item.get("key"), "key")

        return await self._txn(ops, expect, resolve)

    # -- presence --------------------------------------------------------------------

    async def presence_put(self, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        session = getattr(details, "caller", None)
        if session is None:
            raise ApplicationError(self.uris.invalid_argument,
                                   "presence needs the router to disclose the caller")
        raw_key = (self.settings.db_prefix if self.settings else b"") + b"presence/" \
            + _raw_bytes(key, "key")
        lease = self._presence.get(session)
        if lease is None or lease.is_lost:
            lease = await self._client.lease(10, keep_alive=True)
            self._presence[session] = lease
        result = await self._client.put(raw_key, _raw_bytes(value, "value"), lease=lease.id)
        return {"revision": result.revision, "lease": str(lease.id)}

    async def _on_session_leave(self, session_id: Any, *args: Any, **kwargs: Any) -> None:
        lease = self._presence.pop(session_id, None)
        if lease is not None:
            await lease.revoke()  # the session's presence keys go with it

    # -- publishing watch events -------------------------------------------------------

    def _checkpoint_key(self) -> bytes:
        # Beside the election, never under "<election>/": etcd counts every key
        # under that prefix as a candidate, and a lease-less one would block
        # all campaigns behind it forever.
        assert self.settings is not None
        return self.settings.election + b".checkpoint"

    async def _publish_when_elected(self) -> None:
        assert self.settings is not None
        while not self._stopping:
            election = self._client.election(self.settings.election, ttl=5)
            self._election = election
            await election.campaign(str(self._session_id).encode())
            assert election.lease is not None
            self.is_publisher = True
            self.log.info("etcdwamp: this instance publishes watch events")
            stored = (await self._client.get(self._checkpoint_key())).first
            if stored is not None:
                start = int(stored.value) + 1
            else:
                start = (await self._client.status()).revision + 1
            lost: Deferred[None] = election.lease.lost
            self._start_watches(start)
            with contextlib.suppress(errors.LeaseExpired):  # leadership lost: step down
                await lost
            self.is_publisher = False
            for watch in self._watches:
                watch.cancel()
            self._watches = []

    def _start_watches(self, start: int) -> None:
        assert self.settings is not None
        p = self.settings.prefix
        for m in self.maps.values():
            self._watch(KeySet(m.base, prefix=True), start, f"{p}.map.{m.spec.name}", m)
        for raw_prefix in self.settings.kv_prefixes:
            self._watch(KeySet(raw_prefix, prefix=True), start, f"{p}.kv", None)

    def _watch(self, keyset: KeySet, start: int, topic: str, m: _Map | None) -> None:
        assert self.settings is not None
        prev = self.settings.prev_value

        def on_batch(batch: WatchBatch) -> Deferred[None]:
            return Deferred.fromCoroutine(self._publish(batch, topic, m, prev))

        watch = self._client.watch(keyset, on_batch, start_revision=start, prev_kv=prev)
        watch.finished.addErrback(lambda f: self._resync(f, keyset, topic, m))
        self._watches.append(watch)

    async def _publish(self, batch: WatchBatch, topic: str, m: _Map | None,
                       prev: bool) -> None:
        key_out = m.key_out if m else (lambda k: k)
        value_out = m.value_out if m else (lambda v: v)
        for ev in batch.events:
            event: dict[str, Any] = {
                "op": "put" if ev.type is EventType.PUT else "delete",
                "key": key_out(ev.kv.key),
                "value": value_out(ev.kv.value) if ev.type is EventType.PUT else None,
                "revision": ev.revision,
            }
            if prev:
                event["prev_value"] = value_out(ev.prev_kv.value) if ev.prev_kv else None
            self.publish(f"{topic}.on_change", event, options=PublishOptions(acknowledge=False))
        await self._client.put(self._checkpoint_key(), str(batch.events[-1].revision).encode())

    def _resync(self, failure: Any, keyset: KeySet, topic: str, m: _Map | None) -> None:
        if failure.check(errors.WatchCompacted):
            compacted = failure.value.compact_revision
            self.log.warn("etcdwamp: {topic} lost history to compaction at {rev}; resync",
                          topic=topic, rev=compacted)
            self.publish(f"{topic}.on_resync", {"compact_revision": compacted})
            Deferred.fromCoroutine(self._restart_watch(keyset, topic, m))
        else:
            self.log.failure("etcdwamp: watch for {topic} ended", failure, topic=topic)

    async def _restart_watch(self, keyset: KeySet, topic: str, m: _Map | None) -> None:
        current = (await self._client.status()).revision
        if self.is_publisher and not self._stopping:
            self._watch(keyset, current + 1, topic, m)
