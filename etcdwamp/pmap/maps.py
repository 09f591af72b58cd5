"""Persistent maps: typed tables stored in etcd under a 2-byte slot.

Storage layout (the one txaioetcd and zlmdb use, so their data stays
readable): ``db.prefix + slot.to_bytes(2, "big") + key_codec.encode(key)``.

A map is built from a key codec and a value codec; ``MapUuidCbor`` and its
siblings, listed at the end of this module, are combinations with a name.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from twisted.internet.defer import Deferred

from .. import errors
from .._deferred import Dual, deferred, dual
from ..wire import KeySet, prefix_range_end
from ..wire.watch import EventType
from .codecs import (
    BinaryKey,
    BinaryValue,
    Bytes16Key,
    Bytes16Value,
    Bytes20Key,
    Bytes20Value,
    Bytes32Key,
    Bytes32Value,
    CborValue,
    CompositeKey,
    CompositeValue,
    Compressed,
    FlatBuffersValue,
    JsonValue,
    KeyCodec,
    OidKey,
    OidSetValue,
    OidValue,
    PickleValue,
    SlotKey,
    StringKey,
    StringValue,
    TimestampKey,
    TimestampValue,
    UuidKey,
    UuidSetValue,
    UuidValue,
    ValueCodec,
)
from .database import Database, MapTransaction

__all__ = ["MAP_TYPES", "Index", "MapChange", "PersistentMap", "UniqueViolation"]

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
    """An index attached to a map: ``fkey(value)`` is the index key stored in ``index_map``.

    ``nullable``: a record whose ``fkey`` is None has no entry (else that is a ``ValueError``);
    ``unique``: one record per index key at most.
    """

    name: str
    index_map: PersistentMap[Any, Any]
    fkey: Callable[[Any], Any]
    nullable: bool
    unique: bool


async def _in_order(pending: list[Awaitable[object]]) -> None:
    """Await each in turn (a Deferred as a Dual: an asyncio task may run this);
    after a failure, close the coroutines that will not run."""
    for i, step in enumerate(pending):
        try:
            await (dual(step) if isinstance(step, Deferred) else step)
        except BaseException:
            for rest in pending[i + 1:]:
                if inspect.iscoroutine(rest):
                    rest.close()
            raise


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
        if isinstance(self.key_codec, CompositeKey):
            # A tuple of leading parts: (u1,) selects every (u1, *) key.
            return self.key_codec.encode_prefix(prefix)
        return self.key_codec.encode(prefix)

    # -- single records ------------------------------------------------------

    def __getitem__(self, txn_key: tuple[MapTransaction, K]) -> Dual[V | None]:
        txn, key = txn_key
        return self.get(txn, key)

    def __setitem__(self, txn_key: tuple[MapTransaction, K], value: V) -> None:
        txn, key = txn_key
        self.put(txn, key, value)

    def __delitem__(self, txn_key: tuple[MapTransaction, K]) -> None:
        txn, key = txn_key
        self.delete(txn, key)

    @deferred
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
        """Buffer the deletion of ``key`` (sent at commit; deleting an absent key is no error)."""
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
        """The keys in key order, ``from_key`` inclusive, ``to_key`` exclusive (no values read)."""
        keyset = self._keyset(txn, prefix=prefix, from_key=from_key, to_key=to_key)
        async for raw_key, _ in txn.range_raw(keyset, limit=limit, reverse=reverse,
                                              keys_only=True):
            yield self._decode_key(txn, raw_key)

    @deferred
    async def count(self, txn: MapTransaction, *, from_key: K | None = None,
                    to_key: K | None = None, prefix: Any = None) -> int:
        """How many records the range holds as ``txn`` sees them."""
        return await txn.count_raw(self._keyset(txn, prefix=prefix, from_key=from_key,
                                                to_key=to_key))

    @deferred
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
        """Watch the whole map; ``callback`` gets one :class:`MapChange` per event.

        An ``async def`` callback (or one returning a Deferred) runs on the
        client's loop, as the client's watch runs one: the changes of a batch
        one after the other, in order; a failure skips the batch's remaining
        changes and is logged."""
        base = db.prefix + self._slot_bytes

        def on_batch(batch: Any) -> Coroutine[Any, Any, None] | None:
            pending: list[Awaitable[object]] = []
            for ev in batch.events:
                key = self.key_codec.decode(ev.kv.key[len(base):])
                deleted = ev.type is EventType.DELETE
                value = None if deleted else self.value_codec.decode(ev.kv.value)
                result = callback(MapChange(key, value, deleted, ev.revision))
                if isinstance(result, Deferred) or inspect.iscoroutine(result):
                    pending.append(result)
            # The watch runs a returned coroutine on the client's loop.
            return _in_order(pending) if pending else None

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

    @deferred
    async def lookup(self, txn: MapTransaction, index_key: Any) -> list[Any]:
        """On an index map: the primary keys filed under ``index_key``."""
        encoded = self.key_codec.encode(index_key)
        if not self._multi:
            raw = await txn.get_raw(self._base(txn) + encoded)
            return [] if raw is None else [self.value_codec.decode(raw)]
        keyset = KeySet(self._base(txn) + _escape(encoded), prefix=True)
        return [self.value_codec.decode(v) async for _, v in txn.range_raw(keyset)
                if v is not None]


# -- the named maps ------------------------------------------------------------

KeyFactory = Callable[[], KeyCodec[Any]]
ValueFactory = Callable[..., ValueCodec[Any]]


class _NamedMap(PersistentMap[K, V]):
    """A map whose class names its codecs (``class MapX(..., key=..., value=...)``)."""

    #: the factories of this class's key and value codecs
    codecs: ClassVar[tuple[KeyFactory, ValueFactory]]

    def __init_subclass__(cls, *, key: KeyFactory | None = None,
                          value: ValueFactory | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is None or value is None:
            return  # an intermediate base
        cls.codecs = (key, value)
        cls.__module__ = "etcdwamp.pmap"
        if cls.__doc__ is None:
            cls.__doc__ = (f"Map with {key().name} keys and {value().name} values "
                           f"(``{cls.__name__}(slot, ...)``).")


class _PlainMap(_NamedMap[K, V]):
    def __init__(self, slot: int, *, compress: bool = False) -> None:
        super().__init__(slot, self.codecs[0](), self.codecs[1](), compress=compress)


class _MarshalledMap(_NamedMap[K, Any]):
    """Values turned into plain data by ``marshal``, back by ``unmarshal``."""

    def __init__(self, slot: int, *, compress: bool = False,
                 marshal: Callable[[Any], Any] | None = None,
                 unmarshal: Callable[[Any], Any] | None = None) -> None:
        super().__init__(slot, self.codecs[0](),
                         self.codecs[1](marshal=marshal, unmarshal=unmarshal),
                         compress=compress)


class _FlatBuffersMap(_NamedMap[K, Any]):
    """``build(obj, builder) -> offset`` writes a value, ``cast(buf)`` reads one."""

    def __init__(self, slot: int, *, compress: bool = False,
                 build: Callable[[Any, Any], int] | None = None,
                 cast: Callable[[bytes], Any] | None = None) -> None:
        super().__init__(slot, self.codecs[0](), self.codecs[1](build=build, cast=cast),
                         compress=compress)


# The simple codecs by name: every key with every value is a map class below
# (the CLI's --key-type/--value-type use these names too).
_KEY_CODECS: dict[str, KeyFactory] = {
    "String": StringKey, "Binary": BinaryKey, "Oid": OidKey, "Uuid": UuidKey,
}
_VALUE_CODECS: dict[str, ValueFactory] = {
    "String": StringValue, "Binary": BinaryValue, "Oid": OidValue, "Uuid": UuidValue,
    "Json": JsonValue, "Cbor": CborValue, "Pickle": PickleValue,
    "FlatBuffers": FlatBuffersValue,
}

_SLOT_UUID = partial(CompositeKey, SlotKey(), UuidKey())
_UUID_UUID = partial(CompositeKey, UuidKey(), UuidKey())
_UUID_STRING = partial(CompositeKey, UuidKey(), StringKey())
_UUID_UUID_STRING = partial(CompositeKey, UuidKey(), UuidKey(), StringKey())
_UUID_UUID_UUID_STRING = partial(CompositeKey, UuidKey(), UuidKey(), UuidKey(), StringKey())
_STRING_OID = partial(CompositeKey, StringKey(), OidKey())
_OID_OID = partial(CompositeKey, OidKey(), OidKey())
_OID3 = partial(CompositeKey, OidKey(), OidKey(), OidKey())
_OID_STRING = partial(CompositeKey, OidKey(), StringKey())
_BYTES32_UUID = partial(CompositeKey, Bytes32Key(), UuidKey())
_BYTES32_BYTES32 = partial(CompositeKey, Bytes32Key(), Bytes32Key())
_BYTES32_STRING = partial(CompositeKey, Bytes32Key(), StringKey())
_BYTES20_BYTES20 = partial(CompositeKey, Bytes20Key(), Bytes20Key())
_BYTES20_STRING = partial(CompositeKey, Bytes20Key(), StringKey())
_TS_UUID = partial(CompositeKey, TimestampKey(), UuidKey())
_TS_UUID_STRING = partial(CompositeKey, TimestampKey(), UuidKey(), StringKey())
_TS_BYTES32 = partial(CompositeKey, TimestampKey(), Bytes32Key())
_TS_STRING = partial(CompositeKey, TimestampKey(), StringKey())
_STRING_TS = partial(CompositeKey, StringKey(), TimestampKey())
_UUID_TS = partial(CompositeKey, UuidKey(), TimestampKey())
# zlmdb writes the timestamp of its (OID, Timestamp...) keys in the machine's byte
# order and cannot split those keys again itself; here they are big-endian like
# every other timestamp, so they sort by time.
_OID_TS = partial(CompositeKey, OidKey(), TimestampKey())
_OID_TS_STRING = partial(CompositeKey, OidKey(), TimestampKey(), StringKey())
_BYTES20_TS = partial(CompositeKey, Bytes20Key(), TimestampKey())
_BYTES16_TS = partial(CompositeKey, Bytes16Key(), TimestampKey())
_BYTES20_TS_VALUE = partial(CompositeValue, Bytes20Key(), TimestampKey())

# Written out (generated once) so that type checkers see every name: a
# misspelled map class is an error before anything runs. A unit test checks
# that this list is complete.
# Every simple key type with every value type.
class MapStringString(_PlainMap[str, str], key=StringKey, value=StringValue): ...
class MapStringBinary(_PlainMap[str, bytes], key=StringKey, value=BinaryValue): ...
class MapStringOid(_PlainMap[str, int], key=StringKey, value=OidValue): ...
class MapStringUuid(_PlainMap[str, UUID], key=StringKey, value=UuidValue): ...
class MapStringJson(_MarshalledMap[str], key=StringKey, value=JsonValue): ...
class MapStringCbor(_MarshalledMap[str], key=StringKey, value=CborValue): ...
class MapStringPickle(_MarshalledMap[str], key=StringKey, value=PickleValue): ...
class MapStringFlatBuffers(_FlatBuffersMap[str], key=StringKey, value=FlatBuffersValue): ...
class MapBinaryString(_PlainMap[bytes, str], key=BinaryKey, value=StringValue): ...
class MapBinaryBinary(_PlainMap[bytes, bytes], key=BinaryKey, value=BinaryValue): ...
class MapBinaryOid(_PlainMap[bytes, int], key=BinaryKey, value=OidValue): ...
class MapBinaryUuid(_PlainMap[bytes, UUID], key=BinaryKey, value=UuidValue): ...
class MapBinaryJson(_MarshalledMap[bytes], key=BinaryKey, value=JsonValue): ...
class MapBinaryCbor(_MarshalledMap[bytes], key=BinaryKey, value=CborValue): ...
class MapBinaryPickle(_MarshalledMap[bytes], key=BinaryKey, value=PickleValue): ...
class MapBinaryFlatBuffers(_FlatBuffersMap[bytes], key=BinaryKey, value=FlatBuffersValue): ...
class MapOidString(_PlainMap[int, str], key=OidKey, value=StringValue): ...
class MapOidBinary(_PlainMap[int, bytes], key=OidKey, value=BinaryValue): ...
class MapOidOid(_PlainMap[int, int], key=OidKey, value=OidValue): ...
class MapOidUuid(_PlainMap[int, UUID], key=OidKey, value=UuidValue): ...
class MapOidJson(_MarshalledMap[int], key=OidKey, value=JsonValue): ...
class MapOidCbor(_MarshalledMap[int], key=OidKey, value=CborValue): ...
class MapOidPickle(_MarshalledMap[int], key=OidKey, value=PickleValue): ...
class MapOidFlatBuffers(_FlatBuffersMap[int], key=OidKey, value=FlatBuffersValue): ...
class MapUuidString(_PlainMap[UUID, str], key=UuidKey, value=StringValue): ...
class MapUuidBinary(_PlainMap[UUID, bytes], key=UuidKey, value=BinaryValue): ...
class MapUuidOid(_PlainMap[UUID, int], key=UuidKey, value=OidValue): ...
class MapUuidUuid(_PlainMap[UUID, UUID], key=UuidKey, value=UuidValue): ...
class MapUuidJson(_MarshalledMap[UUID], key=UuidKey, value=JsonValue): ...
class MapUuidCbor(_MarshalledMap[UUID], key=UuidKey, value=CborValue): ...
class MapUuidPickle(_MarshalledMap[UUID], key=UuidKey, value=PickleValue): ...
class MapUuidFlatBuffers(_FlatBuffersMap[UUID], key=UuidKey, value=FlatBuffersValue): ...
# zlmdb's and txaioetcd's composite keys, set values and fixed-size bytes.
class MapSlotUuidUuid(_PlainMap[tuple[int, UUID], UUID], key=_SLOT_UUID, value=UuidValue): ...
class MapUuidUuidCbor(_MarshalledMap[tuple[UUID, UUID]], key=_UUID_UUID, value=CborValue): ...
class MapUuidUuidUuid(_PlainMap[tuple[UUID, UUID], UUID], key=_UUID_UUID, value=UuidValue): ...
class MapUuidStringUuid(_PlainMap[tuple[UUID, str], UUID], key=_UUID_STRING, value=UuidValue): ...
class MapUuidStringOid(_PlainMap[tuple[UUID, str], int], key=_UUID_STRING, value=OidValue): ...
class MapUuidUuidStringUuid(_PlainMap[tuple[UUID, UUID, str], UUID], key=_UUID_UUID_STRING, value=UuidValue): ...  # noqa: E501
class MapUuidUuidStringFlatBuffers(_FlatBuffersMap[tuple[UUID, UUID, str]], key=_UUID_UUID_STRING, value=FlatBuffersValue): ...  # noqa: E501
class MapUuidUuidUuidStringUuid(_PlainMap[tuple[UUID, UUID, UUID, str], UUID], key=_UUID_UUID_UUID_STRING, value=UuidValue): ...  # noqa: E501
class MapUuidUuidSet(_PlainMap[UUID, set[UUID]], key=UuidKey, value=UuidSetValue): ...
class MapStringOidOid(_PlainMap[tuple[str, int], int], key=_STRING_OID, value=OidValue): ...
class MapOidOidOid(_PlainMap[tuple[int, int], int], key=_OID_OID, value=OidValue): ...
class MapOidOidFlatBuffers(_FlatBuffersMap[tuple[int, int]], key=_OID_OID, value=FlatBuffersValue): ...  # noqa: E501
class MapOid3FlatBuffers(_FlatBuffersMap[tuple[int, int, int]], key=_OID3, value=FlatBuffersValue): ...  # noqa: E501
class MapOidStringOid(_PlainMap[tuple[int, str], int], key=_OID_STRING, value=OidValue): ...
class MapOidOidSet(_PlainMap[int, set[int]], key=OidKey, value=OidSetValue): ...
class MapBytes32Uuid(_PlainMap[bytes, UUID], key=Bytes32Key, value=UuidValue): ...
class MapBytes32Bytes32(_PlainMap[bytes, bytes], key=Bytes32Key, value=Bytes32Value): ...
class MapBytes32FlatBuffers(_FlatBuffersMap[bytes], key=Bytes32Key, value=FlatBuffersValue): ...
class MapBytes32UuidFlatBuffers(_FlatBuffersMap[tuple[bytes, UUID]], key=_BYTES32_UUID, value=FlatBuffersValue): ...  # noqa: E501
class MapBytes32Bytes32FlatBuffers(_FlatBuffersMap[tuple[bytes, bytes]], key=_BYTES32_BYTES32, value=FlatBuffersValue): ...  # noqa: E501
class MapBytes32StringFlatBuffers(_FlatBuffersMap[tuple[bytes, str]], key=_BYTES32_STRING, value=FlatBuffersValue): ...  # noqa: E501
class MapBytes20Bytes20(_PlainMap[bytes, bytes], key=Bytes20Key, value=Bytes20Value): ...
class MapBytes20Uuid(_PlainMap[bytes, UUID], key=Bytes20Key, value=UuidValue): ...
class MapBytes20Bytes16(_PlainMap[bytes, bytes], key=Bytes20Key, value=Bytes16Value): ...
class MapBytes20FlatBuffers(_FlatBuffersMap[bytes], key=Bytes20Key, value=FlatBuffersValue): ...
class MapBytes20Bytes20FlatBuffers(_FlatBuffersMap[tuple[bytes, bytes]], key=_BYTES20_BYTES20, value=FlatBuffersValue): ...  # noqa: E501
class MapBytes20StringFlatBuffers(_FlatBuffersMap[tuple[bytes, str]], key=_BYTES20_STRING, value=FlatBuffersValue): ...  # noqa: E501
class MapBytes16FlatBuffers(_FlatBuffersMap[bytes], key=Bytes16Key, value=FlatBuffersValue): ...
# Timestamps: ints of nanoseconds since the epoch (see TimestampKey).
class MapTimestampFlatBuffers(_FlatBuffersMap[int], key=TimestampKey, value=FlatBuffersValue): ...
class MapTimestampUuidFlatBuffers(_FlatBuffersMap[tuple[int, UUID]], key=_TS_UUID, value=FlatBuffersValue): ...  # noqa: E501
class MapTimestampUuidCbor(_MarshalledMap[tuple[int, UUID]], key=_TS_UUID, value=CborValue): ...
class MapTimestampUuidStringFlatBuffers(_FlatBuffersMap[tuple[int, UUID, str]], key=_TS_UUID_STRING, value=FlatBuffersValue): ...  # noqa: E501
class MapTimestampBytes32FlatBuffers(_FlatBuffersMap[tuple[int, bytes]], key=_TS_BYTES32, value=FlatBuffersValue): ...  # noqa: E501
class MapTimestampStringFlatBuffers(_FlatBuffersMap[tuple[int, str]], key=_TS_STRING, value=FlatBuffersValue): ...  # noqa: E501
class MapTimestampStringCbor(_MarshalledMap[tuple[int, str]], key=_TS_STRING, value=CborValue): ...
class MapStringTimestampCbor(_MarshalledMap[tuple[str, int]], key=_STRING_TS, value=CborValue): ...
class MapUuidTimestampBytes32(_PlainMap[tuple[UUID, int], bytes], key=_UUID_TS, value=Bytes32Value): ...  # noqa: E501
class MapUuidTimestampFlatBuffers(_FlatBuffersMap[tuple[UUID, int]], key=_UUID_TS, value=FlatBuffersValue): ...  # noqa: E501
class MapUuidTimestampCbor(_MarshalledMap[tuple[UUID, int]], key=_UUID_TS, value=CborValue): ...
class MapOidTimestampOid(_PlainMap[tuple[int, int], int], key=_OID_TS, value=OidValue): ...
class MapOidTimestampFlatBuffers(_FlatBuffersMap[tuple[int, int]], key=_OID_TS, value=FlatBuffersValue): ...  # noqa: E501
class MapOidTimestampStringOid(_PlainMap[tuple[int, int, str], int], key=_OID_TS_STRING, value=OidValue): ...  # noqa: E501
class MapBytes32Timestamp(_PlainMap[bytes, int], key=Bytes32Key, value=TimestampValue): ...
class MapBytes20Bytes20Timestamp(_PlainMap[bytes, tuple[bytes, int]], key=Bytes20Key, value=_BYTES20_TS_VALUE): ...  # noqa: E501
class MapBytes20TimestampBytes20(_PlainMap[tuple[bytes, int], bytes], key=_BYTES20_TS, value=Bytes20Value): ...  # noqa: E501
class MapBytes20TimestampUuid(_PlainMap[tuple[bytes, int], UUID], key=_BYTES20_TS, value=UuidValue): ...  # noqa: E501
class MapBytes16TimestampUuid(_PlainMap[tuple[bytes, int], UUID], key=_BYTES16_TS, value=UuidValue): ...  # noqa: E501
# zlmdb spells FlatBuffers "Flatbuffers" too.
MapStringFlatbuffers = MapStringFlatBuffers
MapBinaryFlatbuffers = MapBinaryFlatBuffers
MapOidFlatbuffers = MapOidFlatBuffers
MapUuidFlatbuffers = MapUuidFlatBuffers
MapUuidUuidStringFlatbuffers = MapUuidUuidStringFlatBuffers
MapOidOidFlatbuffers = MapOidOidFlatBuffers
MapOid3Flatbuffers = MapOid3FlatBuffers
MapBytes32Flatbuffers = MapBytes32FlatBuffers
MapBytes32UuidFlatbuffers = MapBytes32UuidFlatBuffers
MapBytes32Bytes32Flatbuffers = MapBytes32Bytes32FlatBuffers
MapBytes32StringFlatbuffers = MapBytes32StringFlatBuffers
MapBytes20Flatbuffers = MapBytes20FlatBuffers
MapBytes20Bytes20Flatbuffers = MapBytes20Bytes20FlatBuffers
MapBytes20StringFlatbuffers = MapBytes20StringFlatBuffers
MapBytes16Flatbuffers = MapBytes16FlatBuffers

MapTimestampFlatbuffers = MapTimestampFlatBuffers
MapTimestampUuidFlatbuffers = MapTimestampUuidFlatBuffers
MapTimestampUuidStringFlatbuffers = MapTimestampUuidStringFlatBuffers
MapTimestampBytes32Flatbuffers = MapTimestampBytes32FlatBuffers
MapTimestampStringFlatbuffers = MapTimestampStringFlatBuffers
MapUuidTimestampFlatbuffers = MapUuidTimestampFlatBuffers
MapOidTimestampFlatbuffers = MapOidTimestampFlatBuffers

MAP_TYPES: dict[str, type[PersistentMap[Any, Any]]] = {
    name: obj for name, obj in globals().items()
    if name.startswith("Map") and isinstance(obj, type) and issubclass(obj, _NamedMap)
}
