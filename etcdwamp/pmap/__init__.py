"""Floor 3: persistent maps over etcd with real (optimistic, conflict-checked) transactions.

::

    users = pmap.MapUuidCbor(1, marshal=lambda u: u.marshal(), unmarshal=User.unmarshal)
    db = Database(client)
    async with db.begin(write=True) as txn:
        users[txn, user.oid] = user

Every ``Map<Key><Value>`` combination of the key types String, Binary, Oid,
Uuid and the value types String, Binary, Oid, Uuid, Json, Cbor, Pickle,
FlatBuffers (also spelled Flatbuffers) is available.
"""

from typing import Any

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
from .database import Database, MapTransaction, TransactionConflict, TransactionTooLarge
from .maps import MAP_TYPES, MapChange, PersistentMap, UniqueViolation

globals().update(MAP_TYPES)


def __getattr__(name: str) -> Any:  # for type checkers: the Map* names are dynamic
    raise AttributeError(f"module 'etcdwamp.pmap' has no attribute {name!r}")


__all__ = [
    "BinaryKey",
    "BinaryValue",
    "CborValue",
    "Compressed",
    "Database",
    "FlatBuffersValue",
    "JsonValue",
    "KeyCodec",
    "MapChange",
    "MapTransaction",
    "OidKey",
    "OidValue",
    "PersistentMap",
    "PickleValue",
    "StringKey",
    "StringValue",
    "TransactionConflict",
    "TransactionTooLarge",
    "UniqueViolation",
    "UuidKey",
    "UuidValue",
    "ValueCodec",
    *sorted(MAP_TYPES),
]
