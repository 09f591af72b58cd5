"""The map service: ``<prefix>.map.*`` procedures over the configured maps.

Each map is reachable two ways, with the same rules:

- generic: ``map.get(map, key)``, ``map.put(map, key, value)``, ``map.delete(map, key)``,
  ``map.count(map, from_key=None, to_key=None)``, ``map.range(map, from_key=None,
  to_key=None, limit=0)``, ``map.get_and_watch(map)``, and ``map.txn(ops, expect=None)``
  across maps;
- per map: ``map.<name>.get(key)``, ``.put(key, value)``, ``.delete(key)``, ``.count(...)``,
  ``.range(...)``, ``.get_and_watch()`` (the map name is in the URI, so Crossbar's URI
  permissions can tell one map from another).

Rules (``read``/``write``/``owner`` in ``extra.maps``) are checked here before
anything is sent to etcd: a txn is refused whole if any op or expectation
breaks one.

Numbers: oid keys and values up to 2**53 - 1 travel as ints; larger ones as
decimal strings, because JSON readers (browsers) turn bigger numbers into
doubles and lose digits. Oids are accepted as ints or decimal strings.

Values: a json, cbor or string value (and a string key) is accepted only if
every WAMP serializer carries it to every reader (:mod:`.values`); anything
else is ``invalid_argument`` naming the offending part. A stored value no
reader can have (written to etcd behind the component's back) reaches readers
as a row ``{key, value: null, revision, error: {uri: <prefix>.error.bad_value,
message}}`` in ``get``, ``range`` and ``get_and_watch``, and is logged once per
key and revision; the other rows are unaffected.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger

from ..client import Client
from ..namespace import Namespace
from ..pmap import Database, PersistentMap
from ..wire import KeySet, KeyValue, prefix_range_end
from .access import Access, Caller
from .errors import ErrorUris
from .ops import TxnItem, parse_txn, read_range, read_snapshot, run_txn
from .quota import Cap, check_sizes
from .reads import ReadBounds
from .settings import MapSpec
from .values import MAX_SAFE_INTEGER, BadValueLog, bad_value_marker, check_carriable

__all__ = ["MAX_SAFE_INTEGER", "MapService", "WampMap"]

# Value types whose values reach callers as they were put (the others are
# converted, or constrained by their codec to what every client carries).
_FREE_VALUES = frozenset({"json", "cbor", "string"})


def _oid_in(value: Any, what: str) -> Any:
    if isinstance(value, str):
        if not value.isdigit():
            raise ValueError(f"{what}: an oid is an int or a decimal string, got {value!r}")
        return int(value)
    return value


def _oid_out(value: Any) -> Any:
    return str(value) if isinstance(value, int) and value > MAX_SAFE_INTEGER else value


class WampMap:
    """A configured map with the WAMP-side conversions of its keys and values.

    ``bad_value`` is the URI in the marker of a stored value no reader can have;
    ``bad_values`` decides which of those are logged (shared by a service's maps).
    """

    log = Logger()

    def __init__(self, spec: MapSpec, db: Database, *, bad_value: str = "etcd.error.bad_value",
                 bad_values: BadValueLog | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.table: PersistentMap[Any, Any] = spec.build()
        self.db = db
        self.base = db.prefix + spec.slot.to_bytes(2, "big")
        self.bad_value = bad_value
        self.bad_values = bad_values if bad_values is not None else BadValueLog(time.monotonic)

    def key_obj(self, key: Any) -> Any:
        """The caller's key as the map's key type (raises TypeError/ValueError)."""
        kind = self.spec.key_type
        if kind == "oid":
            return _oid_in(key, "key")
        if kind == "uuid":
            if not isinstance(key, str):
                raise TypeError(f"a uuid key must be a string, not {type(key).__name__}")
            return uuid.UUID(key)
        if kind == "string":
            check_carriable(key, "key")  # keys travel in every event and row
        return key

    def key_in(self, key: Any) -> bytes:
        """The etcd key of the caller's ``key`` (raises TypeError/ValueError for a bad one)."""
        return self.table.key_bytes(self.db, self.key_obj(key))

    def key_out(self, raw: bytes) -> Any:
        """The caller-facing key of etcd key ``raw`` (UUIDs and large oids as strings)."""
        key = self.table.key_codec.decode(raw[len(self.base):])
        if isinstance(key, uuid.UUID):
            return str(key)
        return _oid_out(key) if self.spec.key_type == "oid" else key

    def value_in(self, value: Any, path: str = "value") -> bytes:
        """The stored bytes of the caller's ``value`` (UUIDs from strings, oids as ints or strings).

        :raises TypeError: ``value`` is null or of the wrong type for the map, or holds a
            type not every client can carry (the message names its ``path``)
        :raises ValueError: ``value`` is out of range or not parseable for the map, or holds
            a number or string not every client can carry
        """
        if value is None:
            raise TypeError(f"{path} must not be null")
        kind = self.spec.value_type
        if kind in _FREE_VALUES:
            check_carriable(value, path)
        elif kind == "uuid":
            if not isinstance(value, str):
                raise TypeError(f"a uuid value must be a string, not {type(value).__name__}")
            value = uuid.UUID(value)
        elif kind == "oid":
            value = _oid_in(value, "value")
        return self.table.value_codec.encode(value)

    def _decoded(self, raw: bytes) -> Any:
        value = self.table.value_codec.decode(raw)
        if isinstance(value, uuid.UUID):
            return str(value)
        return _oid_out(value) if self.spec.value_type == "oid" else value

    def readable(self, kv: KeyValue) -> tuple[Any, dict[str, str] | None]:
        """``(value, None)`` for the stored value of ``kv``; ``(None, marker)`` for one no
        reader can have (it does not decode, or not every client can carry it), logged."""
        try:
            value = self._decoded(kv.value)
        except Exception as exc:  # decoders raise many types for garbage
            why = f"does not decode ({type(exc).__name__})"
        else:
            try:
                check_carriable(value)
                return value, None
            except (TypeError, ValueError) as exc:
                why = f"holds what not every client can carry ({type(exc).__name__})"
        self._report(kv, why)
        return None, bad_value_marker(self.bad_value)

    def _report(self, kv: KeyValue, why: str) -> None:
        # Once per key and revision, whichever of range, get or the publisher
        # meets it first; the value itself never goes to the log.
        held_back = self.bad_values.admit((self.name, kv.key, kv.mod_revision))
        if held_back is None:
            return
        try:
            key = repr(self.key_out(kv.key))
        except Exception:  # a key as corrupt as its value
            key = "(undecodable)"
        self.log.warn("etcdwamp: map {map}: the stored value of key {key} at revision {revision} "
                      "{why}; readers get a bad_value marker{more}",
                      map=self.name, key=key, revision=kv.mod_revision, why=why,
                      more=f" ({held_back} more not logged)" if held_back else "")

    def readable_key(self, kv: KeyValue) -> Any:
        """The caller-facing key of ``kv``, or None for a key no reader can have (written
        behind the component's back: it does not decode, or not every client carries it),
        logged."""
        try:
            key = self.key_out(kv.key)
            check_carriable(key, "key")
        except Exception as exc:  # key codecs raise many types for garbage
            self._report(kv, f"has a key no reader can have ({type(exc).__name__})")
            return None
        return key

    def record(self, kv: KeyValue, *, value: bool = True) -> dict[str, Any]:
        """``{key, value, revision}`` of one stored record, as callers receive it; plus
        ``error`` (with ``value`` null, and ``key`` null if the key is the bad part) for a
        record no reader can have. ``value=False``: ``value`` null (a deleted record)."""
        key = self.readable_key(kv)
        shown, error = self.readable(kv) if value else (None, None)
        out = {"key": key, "value": shown, "revision": kv.mod_revision}
        if error is None and key is None:
            error = bad_value_marker(self.bad_value)
        if error is not None:
            out["error"] = error
        return out

    def keyset(self, from_key: Any = None, to_key: Any = None) -> KeySet:
        """The etcd keys of this map from ``from_key`` (inclusive) to ``to_key`` (exclusive);
        None: from the first or to the last record.
        """
        start = self.key_in(from_key) if from_key is not None else self.base
        end = self.key_in(to_key) if to_key is not None else prefix_range_end(self.base)
        return KeySet(start, range_end=end)


class MapService:
    """``map.*`` procedures; every one checks the map's rules for its caller."""

    def __init__(self, client: Client | Namespace[Client], db: Database, specs: tuple[MapSpec, ...],
                 access: Access, uris: ErrorUris, reads: ReadBounds) -> None:
        self.client = client
        self.access = access
        self.uris = uris
        self.reads = reads
        bad_values = BadValueLog(time.monotonic)
        self.maps = {spec.name: WampMap(spec, db, bad_value=uris.bad_value, bad_values=bad_values)
                     for spec in specs}

    def procedures(self) -> dict[str, Callable[..., Any]]:
        """Relative URI → callable; every callable takes ``details`` as keyword."""
        procs: dict[str, Callable[..., Any]] = {
            "map.get": self.get, "map.put": self.put, "map.delete": self.delete,
            "map.count": self.count, "map.range": self.range, "map.txn": self.txn,
            "map.get_and_watch": self.get_and_watch,
        }
        for name in self.maps:
            for op in ("get", "put", "delete", "count", "range", "get_and_watch"):
                procs[f"map.{name}.{op}"] = functools.partial(getattr(self, op), name)
        return procs

    # -- rules -----------------------------------------------------------------

    def _map(self, name: Any) -> WampMap:
        if not isinstance(name, str) or name not in self.maps:
            # Never list the configured maps: some may be closed to this caller.
            shown = name[:100] if isinstance(name, str) else type(name).__name__
            raise ApplicationError(self.uris.invalid_argument, f"no such map: {shown!r}")
        return self.maps[name]

    def _readable(self, name: Any, details: Any, procedure: str) -> WampMap:
        m = self._map(name)
        self.access.require_role(Caller.of(details), m.spec.read, procedure=procedure,
                                 target=f"map {m.name}", action="read")
        return m

    def _writable(self, m: WampMap, key: Any, caller: Caller, procedure: str) -> bytes:
        """The etcd key of a write of ``key`` to ``m``, if the caller may write it."""
        self.access.require_role(caller, m.spec.write, procedure=procedure,
                                 target=f"map {m.name}", action="write")
        key_obj = m.key_obj(key)
        if m.spec.owner:
            self.access.require_owner(caller, str(key_obj), procedure=procedure,
                                      target=f"map {m.name}")
        return m.table.key_bytes(m.db, key_obj)

    def _sized(self, m: WampMap, raw: bytes, value: bytes | None) -> None:
        check_sizes(self.uris, f"map {m.name}", key=len(raw) - len(m.base),
                    value=None if value is None else len(value),
                    max_key=m.spec.max_key_bytes, max_value=m.spec.max_value_bytes)

    def _cap(self, m: WampMap) -> Cap | None:
        if m.spec.max_keys is None:
            return None
        return Cap(KeySet(m.base, prefix=True), m.spec.max_keys, f"map {m.name}")

    # -- procedures --------------------------------------------------------------

    async def get(self, name: Any, key: Any, details: Any = None) -> dict[str, Any]:
        """``map.get(map, key)``: the record's ``{key, value, revision}`` (with ``error``, as in
        ``range``, for a stored value no reader can have).

        Raises ``ApplicationError`` ``not_found`` for an absent key, ``invalid_argument`` for an
        unknown map, ``permission_denied`` if the read rule does not admit the caller.
        """
        m = self._readable(name, details, "map.get")
        kv = (await self.client.get(m.key_in(key))).first
        if kv is None:
            raise ApplicationError(self.uris.not_found, f"{m.name}: no record for {key!r}")
        return m.record(kv)

    async def put(self, name: Any, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        """``map.put(map, key, value)``: write one record; returns ``{revision}``.

        Checks the write rule, and for an owner-only map that ``key`` is the caller's authid.
        """
        m = self._map(name)
        raw = self._writable(m, key, Caller.of(details), "map.put")
        data = m.value_in(value)
        self._sized(m, raw, data)
        cap = self._cap(m)
        if cap is not None:
            return await run_txn(self.client, self.uris, [TxnItem(raw, "put", data)], [], [cap])
        result = await self.client.put(raw, data)
        return {"revision": result.revision}

    async def delete(self, name: Any, key: Any, details: Any = None) -> dict[str, Any]:
        """``map.delete(map, key)``: delete one record; returns ``{deleted: bool, revision}``.

        Checks the write rule, and for an owner-only map that ``key`` is the caller's authid.
        """
        m = self._map(name)
        raw = self._writable(m, key, Caller.of(details), "map.delete")
        result = await self.client.delete(raw)
        return {"deleted": result.deleted > 0, "revision": result.revision}

    async def count(self, name: Any, from_key: Any = None, to_key: Any = None,
                    details: Any = None) -> int:
        """``map.count(map, from_key=None, to_key=None)``: how many records the range holds."""
        m = self._readable(name, details, "map.count")
        return (await self.client.get(m.keyset(from_key, to_key), count_only=True)).count

    async def range(self, name: Any, from_key: Any = None, to_key: Any = None,
                    limit: Any = 0, details: Any = None) -> list[dict[str, Any]]:
        """``map.range(map, from_key=None, to_key=None, limit=0)``: ``{key, value, revision}``
        of the records in key order, read at one revision (at most ``limit``; 0: no limit).

        Progressive callers get full pages as they are read; cancelling stops the read.
        Other callers get at most ``max_range_rows`` rows, else ``too_large`` (page with
        ``limit`` and ``from_key``).
        """
        m = self._readable(name, details, "map.range")
        return await read_range(self.client, m.keyset(from_key, to_key), limit, details,
                                self.reads, self.uris, m.record)

    async def get_and_watch(self, name: Any, details: Any = None) -> dict[str, Any]:
        """``map.get_and_watch(map)``: every record at one revision, as
        ``{revision, items: [{key, value, revision}]}``.

        Subscribers of the map's ``on_change`` topic apply events with a higher revision to
        continue from this snapshot (its revision is the store's at the first read).
        Progressive callers get it in pages of that shape, the last as the result; other
        callers get at most ``max_snapshot_rows`` rows, else ``too_large``.
        """
        m = self._readable(name, details, "map.get_and_watch")
        return await read_snapshot(self.client, KeySet(m.base, prefix=True), details,
                                   self.reads, self.uris, m.record)

    async def txn(self, ops: Any, expect: Any = None, details: Any = None) -> dict[str, Any]:
        """``map.txn(ops, expect=None)``: all ``ops`` (``{op: "put"|"delete", map, key, value}``)
        at once if every expectation ``{map, key, revision}`` holds (mod revision equal;
        0: absent); returns ``{revision}``.

        Every rule is checked for every item (write for ops, read for expectations) before
        anything is sent. Raises ``ApplicationError`` ``conflict`` when an expectation fails
        (nothing is written).
        """
        ops, expect = parse_txn(ops, expect)
        caller = Caller.of(details)
        writes = []
        caps = []
        for index, item in enumerate(ops):
            m = self._map(item.get("map"))
            raw = self._writable(m, item.get("key"), caller, "map.txn")
            value = (m.value_in(item.get("value"), f"ops[{index}].value")
                     if item["op"] == "put" else None)
            self._sized(m, raw, value)
            writes.append(TxnItem(raw, item["op"], value))
            caps.append(self._cap(m))
        expectations = []
        for item in expect:
            # An expectation reveals whether the record changed: that is a read.
            m = self._readable(item.get("map"), details, "map.txn")
            expectations.append(TxnItem(m.key_in(item.get("key")),
                                        revision=item["revision"]))
        return await run_txn(self.client, self.uris, writes, expectations, caps)
