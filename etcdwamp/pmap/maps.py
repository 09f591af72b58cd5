"""Persistent maps: typed tables stored in etcd under a 2-byte slot.

Storage layout (the one txaioetcd and zlmdb use, so their data stays
readable): ``db.prefix + slot.to_bytes(2, "big") + key_codec.encode(key)``.

A map is built from a key codec and a value codec; ``MapUuidCbor`` and its
31 siblings are those combinations with a name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred

from .. import errors
from ..wire import KeySet, prefix_range_end
from ..wire.watch import EventType
from .codecs import (
    BinaryKey,
    BinaryValue,
    CborValue,
    Compressed,
    FlatBuffersValue,
    JsonValue,
    KeyCodec,
    OidKey,
    OidValue,
    PickleValue,
    StringKey,
    StringValue,
    UuidKey,
    UuidValue,
    ValueCodec,
)
from .database import Database, MapTransaction

__all__ = ["Index", "MapChange", "PersistentMap", "UniqueViolation"]

K = TypeVar("K")
V = TypeVar("V")


class UniqueViolation(errors.InvalidRequest):
    """A unique index already maps this index key to another record."""


@dataclass(frozen=True, slots=True)
class MapChange(Generic[K, V]):
    """A decoded watch event of a map: ``value`` is None for a deletion."""

    key: K
    value: V | None
    deleted: bool
    revision: int


@dataclass(frozen=True)
class Index:
    name: str
    index_map: PersistentMap[Any, Any]
    fkey: Callable[[Any], Any]
    nullable: bool
    unique: bool


def _escape(data: bytes) -> bytes:
    """Order-preserving, self-delimiting encoding: 0x00 → 0x00 0xFF, end → 0x00 0x01."""
    return data.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


class PersistentMap(Generic[K, V]):
    """A typed map in slot ``slot`` (0 to 65535)."""

    def __init__(self, slot: int, key_codec: KeyCodec[K], value_codec: ValueCodec[V], *,
                 compress: bool = False) -> None:
        if isinstance(slot, bool) or not isinstance(slot, int):
            raise TypeError(f"slot must be an int, not {type(slot).__name__}")
        if not 0 <= slot <= 0xFFFF:
            raise ValueError(f"slot must be in [0, 65535], got {slot}")
        self.slot = slot
        self.key_codec = key_codec
        self.value_codec: ValueCodec[Any] = Compressed(value_codec) if compress else value_codec
        self._slot_bytes = slot.to_bytes(2, "big")
        self.indexes: dict[str, Index] = {}
        # Set on index maps: entries keyed (index key, primary key), not unique.
        self._multi = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slot={self.slot})"

    # -- keys ---------------------------------------------------------------

    def _base(self, txn: MapTransaction) -> bytes:
        return txn.db.prefix + self._slot_bytes

    def key_bytes(self, db: Database, key: K) -> bytes:
        """The etcd key under which ``key`` is stored in ``db``."""
        return db.prefix + self._slot_bytes + self.key_codec.encode(key)

    def _raw_key(self, txn: MapTransaction, key: K) -> bytes:
        return self._base(txn) + self.key_codec.encode(key)

    def _decode_key(self, txn: MapTransaction, raw: bytes) -> K:
        return self.key_codec.decode(raw[len(self._base(txn)):])

    def _keyset(self, txn: MapTransaction, *, prefix: Any = None, from_key: Any = None,
                to_key: Any = None) -> KeySet:
        base = self._base(txn)
        if prefix is not None:
            if from_key is not None or to_key is not None:
                raise ValueError("give prefix, or from_key/to_key, not both")
            encoded = self._encode_prefix(prefix)
            return KeySet(base + encoded, prefix=True)
        start = base + (self.key_codec.encode(from_key) if from_key is not None else b"")
        end = (base + self.key_codec.encode(to_key) if to_key is not None
               else prefix_range_end(base))
        if not start:
            start = b"\x00"
        return KeySet(start, range_end=end)

    def _encode_prefix(self, prefix: Any) -> bytes:
        # A prefix of a string/binary key is a prefix of its encoding; OID and
        # UUID keys are fixed-size, so only a whole key makes sense there.
        if isinstance(self.key_codec, StringKey):
            if not isinstance(prefix, str):
                raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
            return prefix.encode("utf-8")
        if isinstance(self.key_codec, BinaryKey):
            if not isinstance(prefix, (bytes, bytearray)):
                raise TypeError(f"prefix must be bytes, not {type(prefix).__name__}")
            return bytes(prefix)
        return self.key_codec.encode(prefix)

    # -- single records ------------------------------------------------------

    def __getitem__(self, txn_key: tuple[MapTransaction, K]) -> Deferred[V | None]:
        txn, key = txn_key
        return Deferred.fromCoroutine(self.get(txn, key))

    def __setitem__(self, txn_key: tuple[MapTransaction, K], value: V) -> None:
        txn, key = txn_key
        self.put(txn, key, value)

    def __delitem__(self, txn_key: tuple[MapTransaction, K]) -> None:
        txn, key = txn_key
        self.delete(txn, key)

    async def get(self, txn: MapTransaction, key: K) -> V | None:
        """The value at ``key`` as ``txn`` sees it, or None."""
        raw = await txn.get_raw(self._raw_key(txn, key))
        return None if raw is None else self.value_codec.decode(raw)

    def put(self, txn: MapTransaction, key: K, value: V) -> None:
        """Buffer a write (encoded and validated now; sent at commit)."""
        if value is None:
            raise TypeError("value must not be None (use del m[txn, key] to delete)")
        raw_key = self._raw_key(txn, key)
        encoded = self.value_codec.encode(value)
        txn.put_raw(raw_key, encoded)
        self._schedule_index_update(txn, key, raw_key)

    def delete(self, txn: MapTransaction, key: K) -> None:
        raw_key = self._raw_key(txn, key)
        txn.delete_raw(raw_key)
        self._schedule_index_update(txn, key, raw_key)

    def _schedule_index_update(self, txn: MapTransaction, key: K, raw_key: bytes) -> None:
        # Indexes follow the record's final value in this transaction, from the
        # value at the snapshot: one update per record however often it changed.
        if self.indexes:
            txn.defer_until_commit(lambda: self._update_indexes(txn, key, raw_key),
                                   once_per=raw_key)

    # -- ranges --------------------------------------------------------------

    async def select(self, txn: MapTransaction, *, from_key: K | None = None,
                     to_key: K | None = None, prefix: Any = None, limit: int = 0,
                     reverse: bool = False, page_size: int = 500) -> AsyncIterator[tuple[K, V]]:
        """``(key, value)`` pairs in key order, ``from_key`` inclusive, ``to_key``
        exclusive, read page by page."""
        keyset = self._keyset(txn, prefix=prefix, from_key=from_key, to_key=to_key)
        async for raw_key, raw_value in txn.range_raw(keyset, limit=limit, reverse=reverse,
                                                      page_size=page_size):
            assert raw_value is not None
            yield self._decode_key(txn, raw_key), self.value_codec.decode(raw_value)

    async def keys(self, txn: MapTransaction, *, from_key: K | None = None,
                   to_key: K | None = None, prefix: Any = None, limit: int = 0,
                   reverse: bool = False) -> AsyncIterator[K]:
        keyset = self._keyset(txn, prefix=prefix, from_key=from_key, to_key=to_key)
        async for raw_key, _ in txn.range_raw(keyset, limit=limit, reverse=reverse,
                                              keys_only=True):
            yield self._decode_key(txn, raw_key)

    async def count(self, txn: MapTransaction, *, from_key: K | None = None,
                    to_key: K | None = None, prefix: Any = None) -> int:
        return await txn.count_raw(self._keyset(txn, prefix=prefix, from_key=from_key,
                                                to_key=to_key))

    async def delete_range(self, txn: MapTransaction, *, from_key: K | None = None,
                           to_key: K | None = None, prefix: Any = None) -> int:
        """Delete every record in the range (in this transaction); returns how many."""
        doomed = [k async for k in self.keys(txn, from_key=from_key, to_key=to_key,
                                             prefix=prefix)]
        for key in doomed:
            self.delete(txn, key)
        return len(doomed)

    # -- watching ------------------------------------------------------------

    def watch(self, db: Any, callback: Callable[[MapChange[K, V]], object], *,
              start_revision: int = 0) -> Any:
        """Watch the whole map; ``callback`` gets one :class:`MapChange` per event."""
        base = db.prefix + self._slot_bytes

        def on_batch(batch: Any) -> None:
            for ev in batch.events:
                key = self.key_codec.decode(ev.kv.key[len(base):])
                deleted = ev.type is EventType.DELETE
                value = None if deleted else self.value_codec.decode(ev.kv.value)
                callback(MapChange(key, value, deleted, ev.revision))

        return db.client.watch(KeySet(base, prefix=True), on_batch,
                               start_revision=start_revision)

    # -- indexes -------------------------------------------------------------

    def attach_index(self, name: str, index_map: PersistentMap[Any, Any],
                     fkey: Callable[[V], Any], *, nullable: bool = False,
                     unique: bool = False) -> None:
        """Maintain ``index_map`` (index key → primary key) in the same etcd txn as
        every put/delete of this map. Non-unique by default; a unique index refuses
        a second record with the same index key (:class:`UniqueViolation`)."""
        if name in self.indexes:
            raise ValueError(f"index {name!r} is already attached")
        if index_map.slot == self.slot:
            raise ValueError("an index needs a slot of its own")
        index_map._multi = not unique
        self.indexes[name] = Index(name, index_map, fkey, nullable, unique)

    def _index_entry(self, txn: MapTransaction, index: Index, ikey: Any, pk: K) -> bytes:
        imap = index.index_map
        encoded = imap.key_codec.encode(ikey)
        if index.unique:
            return imap._base(txn) + encoded
        return imap._base(txn) + _escape(encoded) + self.key_codec.encode(pk)

    def _index_key(self, index: Index, value: V | None) -> Any:
        if value is None:
            return None
        ikey = index.fkey(value)
        if ikey is None and not index.nullable:
            raise ValueError(f"index {index.name!r}: the indexed field is None "
                             "(attach the index with nullable=True to allow that)")
        return ikey

    async def _update_indexes(self, txn: MapTransaction, key: K, raw_key: bytes) -> None:
        final = txn._writes.get(raw_key)
        value = None if final is None else self.value_codec.decode(final)
        # The value before this transaction touched the record: read at the
        # snapshot (recorded in the read set, so a concurrent change conflicts).
        old_raw = await txn.snapshot_raw(raw_key)
        old = None if old_raw is None else self.value_codec.decode(old_raw)
        for index in self.indexes.values():
            old_ikey = self._index_key(index, old) if old is not None else None
            new_ikey = self._index_key(index, value)
            if old_ikey == new_ikey and old is not None and value is not None:
                continue
            imap = index.index_map
            if old_ikey is not None:
                txn.delete_raw(self._index_entry(txn, index, old_ikey, key))
            if new_ikey is not None:
                entry = self._index_entry(txn, index, new_ikey, key)
                if index.unique:
                    holder = await txn.get_raw(entry)
                    if holder is not None and imap.value_codec.decode(holder) != key:
                        raise UniqueViolation(
                            f"unique index {index.name!r} already maps {new_ikey!r} to "
                            f"{imap.value_codec.decode(holder)!r}"
                        )
                txn.put_raw(entry, imap.value_codec.encode(key))

    async def lookup(self, txn: MapTransaction, index_key: Any) -> list[Any]:
        """On an index map: the primary keys filed under ``index_key``."""
        encoded = self.key_codec.encode(index_key)
        if not self._multi:
            raw = await txn.get_raw(self._base(txn) + encoded)
            return [] if raw is None else [self.value_codec.decode(raw)]
        keyset = KeySet(self._base(txn) + _escape(encoded), prefix=True)
        return [self.value_codec.decode(v) async for _, v in txn.range_raw(keyset)
                if v is not None]


# -- the named combinations ------------------------------------------------------

_KEY_CODECS: dict[str, Callable[[], KeyCodec[Any]]] = {
    "String": StringKey, "Binary": BinaryKey, "Oid": OidKey, "Uuid": UuidKey,
}
_VALUE_CODECS: dict[str, Callable[..., ValueCodec[Any]]] = {
    "String": StringValue, "Binary": BinaryValue, "Oid": OidValue, "Uuid": UuidValue,
    "Json": JsonValue, "Cbor": CborValue, "Pickle": PickleValue,
    "FlatBuffers": FlatBuffersValue,
}


def _named_map(key_name: str, value_name: str) -> type[PersistentMap[Any, Any]]:
    key_codec = _KEY_CODECS[key_name]
    value_codec = _VALUE_CODECS[value_name]

    def __init__(self: PersistentMap[Any, Any], slot: int, *, compress: bool = False,
                 **value_options: Any) -> None:
        PersistentMap.__init__(self, slot, key_codec(), value_codec(**value_options),
                               compress=compress)

    name = f"Map{key_name}{value_name}"
    doc = (f"Map with {key_name} keys and {value_name} values. "
           + {"Json": "Options: marshal, unmarshal.", "Cbor": "Options: marshal, unmarshal.",
              "Pickle": "Options: marshal, unmarshal.",
              "FlatBuffers": "Options: build, cast."}.get(value_name, ""))
    return type(name, (PersistentMap,), {"__init__": __init__, "__doc__": doc,
                                         "__module__": "etcdwamp.pmap"})


MAP_TYPES: dict[str, type[PersistentMap[Any, Any]]] = {
    f"Map{k}{v}": _named_map(k, v) for k in _KEY_CODECS for v in _VALUE_CODECS
}
# zlmdb spells it "Flatbuffers"; accept both.
MAP_TYPES.update({name.replace("FlatBuffers", "Flatbuffers"): cls
                  for name, cls in list(MAP_TYPES.items()) if "FlatBuffers" in name})

