"""Key and value codecs: how a map's Python keys and values become etcd bytes.

Keys must encode so that byte order equals key order (etcd ranges sort by
bytes): strings as UTF-8, OIDs as 8-byte big-endian, UUIDs as their 16 bytes.
Every codec validates before encoding, so a wrong type or an out-of-range value
raises ``TypeError``/``ValueError`` before anything is written.
"""

from __future__ import annotations

import json
import pickle
import uuid
import zlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cbor2

__all__ = [
    "BinaryKey",
    "BinaryValue",
    "Bytes16Key",
    "Bytes16Value",
    "Bytes20Key",
    "Bytes20Value",
    "Bytes32Key",
    "Bytes32Value",
    "CborValue",
    "CompositeKey",
    "CompositeValue",
    "Compressed",
    "FlatBuffersValue",
    "JsonValue",
    "KeyCodec",
    "OidKey",
    "OidSetValue",
    "OidValue",
    "PickleValue",
    "SlotKey",
    "StringKey",
    "StringValue",
    "TimestampKey",
    "TimestampValue",
    "UuidKey",
    "UuidSetValue",
    "UuidValue",
    "ValueCodec",
]

K = TypeVar("K")
V = TypeVar("V")

OID_MAX = 2**64 - 1


class KeyCodec(Generic[K]):
    """Encodes map keys; ``encode`` must preserve order."""

    name = "key"

    def encode(self, key: K) -> bytes:
        """The bytes of ``key``.

        Raises ``TypeError``/``ValueError`` for a key this codec cannot hold.
        """
        raise NotImplementedError

    def decode(self, data: bytes) -> K:
        """The key stored as ``data``; raises ``ValueError`` for bytes this codec did not write."""
        raise NotImplementedError


class ValueCodec(Generic[V]):
    """Encodes map values."""

    name = "value"

    def encode(self, value: V) -> bytes:
        """The bytes of ``value``.

        Raises ``TypeError``/``ValueError`` for a value this codec cannot hold.
        """
        raise NotImplementedError

    def decode(self, data: bytes) -> V:
        """The value stored as ``data``.

        Raises ``ValueError`` for bytes this codec did not write.
        """
        raise NotImplementedError


def _type_error(what: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{what} must be {expected}, not {type(value).__name__}")


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _type_error(what, "str", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise ValueError(f"{what} is not encodable as UTF-8: {exc}") from None
    return value


def _check_bytes(value: object, what: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, bytes):
        raise _type_error(what, "bytes", value)
    return value


def _check_oid(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(what, "an int (OID)", value)
    if not 0 <= value <= OID_MAX:
        raise ValueError(f"{what} must be an OID in [0, 2**64 - 1], got {value}")
    return value


def _check_uuid(value: object, what: str) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise _type_error(what, "a uuid.UUID", value)
    return value


class StringKey(KeyCodec[str]):
    """``str`` keys as UTF-8 (byte order is code point order)."""

    name = "String"

    def encode(self, key: str) -> bytes:
        """``key`` as UTF-8; ``TypeError`` for a non-str, ``ValueError`` for a lone surrogate."""
        return _check_str(key, "key").encode("utf-8")

    def decode(self, data: bytes) -> str:
        """The UTF-8 text of ``data``.

        ``UnicodeDecodeError`` (a ``ValueError``) for invalid UTF-8.
        """
        return data.decode("utf-8")


class BinaryKey(KeyCodec[bytes]):
    """``bytes`` keys stored as they are."""

    name = "Binary"

    def encode(self, key: bytes) -> bytes:
        """``key`` itself (bytearray/memoryview copied to bytes).

        ``TypeError`` for anything else.
        """
        return _check_bytes(key, "key")

    def decode(self, data: bytes) -> bytes:
        """``data`` itself."""
        return data


class OidKey(KeyCodec[int]):
    """Unsigned 64-bit ids, big-endian so that keys sort numerically."""

    name = "Oid"

    def encode(self, key: int) -> bytes:
        """``key`` as 8 bytes big-endian.

        ``TypeError`` for a non-int, ``ValueError`` outside 0..2**64-1.
        """
        return _check_oid(key, "key").to_bytes(8, "big")

    def decode(self, data: bytes) -> int:
        """The OID of 8 big-endian bytes; ``ValueError`` for another length."""
        if len(data) != 8:
            raise ValueError(f"an OID key has 8 bytes, got {len(data)}")
        return int.from_bytes(data, "big")


class UuidKey(KeyCodec[uuid.UUID]):
    """``uuid.UUID`` keys as their 16 bytes."""

    name = "Uuid"

    def encode(self, key: uuid.UUID) -> bytes:
        """The 16 bytes of ``key``; ``TypeError`` for anything but a ``uuid.UUID``."""
        return _check_uuid(key, "key").bytes

    def decode(self, data: bytes) -> uuid.UUID:
        """The UUID of 16 bytes; ``ValueError`` for another length."""
        return uuid.UUID(bytes=data)


class SlotKey(KeyCodec[int]):
    """A 16-bit unsigned number, 2 bytes big-endian (zlmdb's slot component)."""

    name = "Slot"

    def encode(self, key: int) -> bytes:
        """``key`` as 2 bytes big-endian.

        ``TypeError`` for a non-int, ``ValueError`` outside 0..65535.
        """
        if isinstance(key, bool) or not isinstance(key, int):
            raise _type_error("key", "an int (slot)", key)
        if not 0 <= key <= 0xFFFF:
            raise ValueError(f"a slot must be in [0, 65535], got {key}")
        return key.to_bytes(2, "big")

    def decode(self, data: bytes) -> int:
        """The slot of 2 big-endian bytes; ``ValueError`` for another length."""
        if len(data) != 2:
            raise ValueError(f"a slot has 2 bytes, got {len(data)}")
        return int.from_bytes(data, "big")


class _FixedBytes(KeyCodec[bytes], ValueCodec[bytes]):
    """Exactly ``size`` bytes, as key or value (hashes, public keys)."""

    size = 0

    def encode(self, key: bytes) -> bytes:
        """``key`` itself.

        ``TypeError`` for non-bytes, ``ValueError`` if not exactly ``size`` bytes.
        """
        data = _check_bytes(key, "key")
        if len(data) != self.size:
            raise ValueError(f"{self.name} needs exactly {self.size} bytes, got {len(data)}")
        return data

    def decode(self, data: bytes) -> bytes:
        """``data`` itself; ``ValueError`` if not exactly ``size`` bytes."""
        if len(data) != self.size:
            raise ValueError(f"{self.name} has {self.size} bytes, got {len(data)}")
        return bytes(data)


class Bytes32Key(_FixedBytes):
    """Exactly 32 bytes (e.g. a SHA-256 hash or an Ed25519 public key), as key or value."""

    name, size = "Bytes32", 32


class Bytes20Key(_FixedBytes):
    """Exactly 20 bytes (e.g. an Ethereum address or a SHA-1 hash), as key or value."""

    name, size = "Bytes20", 20


class Bytes16Key(_FixedBytes):
    """Exactly 16 bytes, as key or value."""

    name, size = "Bytes16", 16


Bytes32Value, Bytes20Value, Bytes16Value = Bytes32Key, Bytes20Key, Bytes16Key


class TimestampKey(KeyCodec[int], ValueCodec[int]):
    """A point in time as an int of nanoseconds since the epoch, 8 bytes signed
    big-endian: the bytes zlmdb writes for a ``numpy.datetime64[ns]`` (convert
    with ``int(dt.astype("int64"))`` and ``numpy.datetime64(n, "ns")``). Times
    from 1970 on sort in byte order."""

    name = "Timestamp"

    def encode(self, key: int) -> bytes:
        """``key`` as 8 bytes signed big-endian.

        ``TypeError`` for a non-int, ``ValueError`` beyond 64 bits.
        """
        if isinstance(key, bool) or not isinstance(key, int):
            raise _type_error("timestamp", "an int (nanoseconds since the epoch)", key)
        if not -(2**63) <= key < 2**63:
            raise ValueError(f"a timestamp must fit in 64 signed bits, got {key}")
        return key.to_bytes(8, "big", signed=True)

    def decode(self, data: bytes) -> int:
        """The nanoseconds of 8 signed big-endian bytes; ``ValueError`` for another length."""
        if len(data) != 8:
            raise ValueError(f"a timestamp has 8 bytes, got {len(data)}")
        return int.from_bytes(data, "big", signed=True)


TimestampValue = TimestampKey


class CompositeKey(KeyCodec[tuple[Any, ...]]):
    """A tuple key: its parts' encodings concatenated (the zlmdb/txaioetcd layout,
    e.g. ``(UUID, UUID)`` as 32 bytes, ``(UUID, str)`` as 16 bytes + UTF-8).

    At most one part may have a variable size (a string); the others are
    fixed, so the key splits back without separators. Fixed-size parts before
    the variable one keep tuple order in byte order; a string *before* a
    fixed part (``StringOid``) does not, as in zlmdb."""

    def __init__(self, *parts: KeyCodec[Any]) -> None:
        if len(parts) < 2:
            raise ValueError("a composite key has at least two parts")
        sizes = [_fixed_size(p) for p in parts]
        if sizes.count(None) > 1:
            raise ValueError("at most one part of a composite key may vary in size")
        self.parts = parts
        self.sizes = sizes
        self.name = "".join(p.name for p in parts)

    def encode(self, key: tuple[Any, ...]) -> bytes:
        """Each part's encoding, concatenated.

        :raises TypeError: ``key`` is not a tuple, or a part has the wrong type
        :raises ValueError: ``key`` has the wrong number of parts, or a part is out of range
        """
        if not isinstance(key, tuple):
            raise _type_error("key", f"a tuple of {len(self.parts)}", key)
        if len(key) != len(self.parts):
            raise ValueError(f"{self.name} key needs {len(self.parts)} parts, got {len(key)}")
        return self.encode_prefix(key)

    def encode_prefix(self, key: tuple[Any, ...]) -> bytes:
        """The encoding of the first ``len(key)`` parts: every key starting
        with them starts with these bytes (for ``prefix=`` reads)."""
        if not isinstance(key, tuple):
            raise _type_error("prefix", "a tuple", key)
        if len(key) > len(self.parts):
            raise ValueError(f"{self.name} key has {len(self.parts)} parts, got {len(key)}")
        return b"".join(p.encode(k) for p, k in zip(self.parts, key, strict=False))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """The tuple stored as ``data``, split by the fixed sizes of its parts.

        :raises ValueError: ``data`` is shorter than the fixed parts (or, with only fixed
            parts, not exactly their size)
        """
        fixed = sum(s for s in self.sizes if s is not None)
        if None not in self.sizes and len(data) != fixed:
            raise ValueError(f"{self.name} key has {fixed} bytes, got {len(data)}")
        if len(data) < fixed:
            raise ValueError(f"{self.name} key has at least {fixed} bytes, got {len(data)}")
        out, pos = [], 0
        for part, size in zip(self.parts, self.sizes, strict=True):
            n = size if size is not None else len(data) - fixed
            out.append(part.decode(data[pos:pos + n]))
            pos += n
        return tuple(out)


class StringValue(ValueCodec[str]):
    """``str`` values as UTF-8."""

    name = "String"

    def encode(self, value: str) -> bytes:
        """``value`` as UTF-8; ``TypeError`` for a non-str, ``ValueError`` for a lone surrogate."""
        return _check_str(value, "value").encode("utf-8")

    def decode(self, data: bytes) -> str:
        """The UTF-8 text of ``data``.

        ``UnicodeDecodeError`` (a ``ValueError``) for invalid UTF-8.
        """
        return data.decode("utf-8")


class BinaryValue(ValueCodec[bytes]):
    """``bytes`` values stored as they are."""

    name = "Binary"

    def encode(self, value: bytes) -> bytes:
        """``value`` itself (bytearray/memoryview copied to bytes).

        ``TypeError`` for anything else.
        """
        return _check_bytes(value, "value")

    def decode(self, data: bytes) -> bytes:
        """``data`` itself."""
        return data


class OidValue(ValueCodec[int]):
    """Unsigned 64-bit ids as 8 bytes big-endian."""

    name = "Oid"

    def encode(self, value: int) -> bytes:
        """``value`` as 8 bytes big-endian.

        ``TypeError`` for a non-int, ``ValueError`` outside 0..2**64-1.
        """
        return _check_oid(value, "value").to_bytes(8, "big")

    def decode(self, data: bytes) -> int:
        """The big-endian unsigned number ``data`` holds."""
        return int.from_bytes(data, "big")


class UuidValue(ValueCodec[uuid.UUID]):
    """``uuid.UUID`` values as their 16 bytes."""

    name = "Uuid"

    def encode(self, value: uuid.UUID) -> bytes:
        """The 16 bytes of ``value``; ``TypeError`` for anything but a ``uuid.UUID``."""
        return _check_uuid(value, "value").bytes

    def decode(self, data: bytes) -> uuid.UUID:
        """The UUID of 16 bytes; ``ValueError`` for another length."""
        return uuid.UUID(bytes=data)


class CompositeValue(CompositeKey, ValueCodec[tuple[Any, ...]]):
    """A tuple value, laid out like :class:`CompositeKey` (zlmdb's
    ``(Bytes20, Timestamp)`` values)."""


class UuidSetValue(ValueCodec[set[uuid.UUID]]):
    """A set of UUIDs as their 16-byte forms back to back (zlmdb's layout;
    written in sorted order so equal sets encode equally)."""

    name = "UuidSet"

    def encode(self, value: set[uuid.UUID]) -> bytes:
        """The members' 16 bytes each, sorted.

        ``TypeError`` for a non-set or a member that is not a ``uuid.UUID``.
        """
        if not isinstance(value, (set, frozenset)):
            raise _type_error("value", "a set of UUIDs", value)
        return b"".join(sorted(_check_uuid(u, "set member").bytes for u in value))

    def decode(self, data: bytes) -> set[uuid.UUID]:
        """The set of UUIDs in ``data``; ``ValueError`` if its length is not a multiple of 16."""
        if len(data) % 16:
            raise ValueError(f"a UUID set has a multiple of 16 bytes, got {len(data)}")
        return {uuid.UUID(bytes=data[i:i + 16]) for i in range(0, len(data), 16)}


class OidSetValue(ValueCodec[set[int]]):
    """A set of OIDs as 8-byte big-endian numbers back to back (zlmdb's layout)."""

    name = "OidSet"

    def encode(self, value: set[int]) -> bytes:
        """The members as 8 bytes big-endian each, in numeric order.

        ``TypeError`` for a non-set or a non-int member, ``ValueError`` for one outside 0..2**64-1.
        """
        if not isinstance(value, (set, frozenset)):
            raise _type_error("value", "a set of OIDs", value)
        return b"".join(_check_oid(v, "set member").to_bytes(8, "big") for v in sorted(value))

    def decode(self, data: bytes) -> set[int]:
        """The set of OIDs in ``data``; ``ValueError`` if its length is not a multiple of 8."""
        if len(data) % 8:
            raise ValueError(f"an OID set has a multiple of 8 bytes, got {len(data)}")
        return {int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data), 8)}


class _Marshalled(ValueCodec[Any]):
    """Values turned into plain data by ``marshal`` first, back by ``unmarshal``."""

    def __init__(self, marshal: Callable[[Any], Any] | None = None,
                 unmarshal: Callable[[Any], Any] | None = None) -> None:
        self.marshal = marshal
        self.unmarshal = unmarshal

    def encode(self, value: Any) -> bytes:
        """``marshal(value)`` (or ``value`` itself) serialised.

        :raises TypeError: the data cannot be serialised in this format
        """
        data = self.marshal(value) if self.marshal is not None else value
        try:
            return self._dump(data)
        # pickle raises AttributeError for a local class or function
        except (TypeError, ValueError, OverflowError, AttributeError, pickle.PicklingError,
                cbor2.CBOREncodeError) as exc:
            raise TypeError(f"{self.name} cannot encode {type(value).__name__}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        """The deserialised data, passed through ``unmarshal`` if given."""
        obj = self._load(data)
        return self.unmarshal(obj) if self.unmarshal is not None else obj

    def _dump(self, data: Any) -> bytes:
        raise NotImplementedError

    def _load(self, data: bytes) -> Any:
        raise NotImplementedError


class JsonValue(_Marshalled):
    """Values as compact UTF-8 JSON (NaN and infinities refused); ``marshal``/``unmarshal``
    convert to and from plain data.
    """

    name = "Json"

    def _dump(self, data: Any) -> bytes:
        # allow_nan=False: NaN is not JSON, and other readers would choke on it.
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")

    def _load(self, data: bytes) -> Any:
        return json.loads(data)


class CborValue(_Marshalled):
    """Values as CBOR; ``marshal``/``unmarshal`` convert to and from plain data."""

    name = "Cbor"

    def _dump(self, data: Any) -> bytes:
        return cbor2.dumps(data)

    def _load(self, data: bytes) -> Any:
        return cbor2.loads(data)


class PickleValue(_Marshalled):
    """Pickled values. Only for data this application wrote itself: unpickling
    data from an untrusted writer runs arbitrary code."""

    name = "Pickle"

    def _dump(self, data: Any) -> bytes:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)

    def _load(self, data: bytes) -> Any:
        return pickle.loads(data)  # trusted data only: see the class docstring


class FlatBuffersValue(ValueCodec[Any]):
    """FlatBuffers values: ``build(obj, builder) -> offset`` writes the table,
    ``cast(buf) -> obj`` reads it (typically ``Table.GetRootAs(buf, 0)``)."""

    name = "FlatBuffers"

    def __init__(self, build: Callable[[Any, Any], int] | None = None,
                 cast: Callable[[bytes], Any] | None = None) -> None:
        self.build = build
        self.cast = cast

    def encode(self, value: Any) -> bytes:
        """The finished buffer ``build`` writes for ``value``; without ``build``, ``value`` must be
        a finished buffer already (else ``TypeError``).
        """
        if self.build is None:
            if isinstance(value, (bytes, bytearray)):
                return bytes(value)  # an already finished buffer
            raise TypeError("FlatBuffers map without build= takes finished buffers (bytes)")
        import flatbuffers

        builder = flatbuffers.Builder(256)
        offset = self.build(value, builder)
        builder.Finish(offset)
        return bytes(builder.Output())

    def decode(self, data: bytes) -> Any:
        """``cast(data)``, or the buffer itself without ``cast``."""
        return self.cast(data) if self.cast is not None else data


class Compressed(ValueCodec[V]):
    """Wraps a value codec with zlib compression (one flag byte marks raw/compressed,
    so small values that do not shrink are stored as they are).

    Also reads what txaioetcd's and zlmdb's ``COMPRESS_ZLIB`` maps wrote: a bare
    zlib stream without the flag byte. Its first byte (0x78 for zlib's 32 KiB
    window) can never be one of the flags, so the two formats cannot be confused.
    """

    _RAW, _ZLIB = b"\x00", b"\x01"

    def __init__(self, inner: ValueCodec[V], *, level: int = 6, min_size: int = 64) -> None:
        self.inner = inner
        self.level = level
        self.min_size = min_size
        self.name = f"{inner.name}+zlib"

    def encode(self, value: V) -> bytes:
        """The inner encoding behind a flag byte, zlib-compressed if at least ``min_size`` bytes
        long and compression makes it smaller.
        """
        raw = self.inner.encode(value)
        if len(raw) >= self.min_size:
            packed = zlib.compress(raw, self.level)
            if len(packed) < len(raw):
                return self._ZLIB + packed
        return self._RAW + raw

    def decode(self, data: bytes) -> V:
        """The inner codec's value of ``data`` (flagged, or a bare zlib stream as zlmdb wrote).

        :raises ValueError: ``data`` starts with neither flag nor a zlib header, or its zlib
            stream is broken
        """
        flag, body = data[:1], data[1:]
        if flag == self._ZLIB:
            return self.inner.decode(_inflate(body))
        if flag == self._RAW:
            return self.inner.decode(body)
        if _is_zlib_stream(data):
            return self.inner.decode(_inflate(data))
        raise ValueError("compressed value has an unknown flag byte")


def _inflate(stream: bytes) -> bytes:
    # zlib.error is no ValueError: every codec's decode promises one for foreign bytes.
    try:
        return zlib.decompress(stream)
    except zlib.error as exc:
        raise ValueError(f"compressed value is not a valid zlib stream: {exc}") from None


def _is_zlib_stream(data: bytes) -> bool:
    # RFC 1950: deflate with a 32 KiB window, and a header checksum (CMF*256 + FLG) % 31 == 0.
    return len(data) >= 2 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0


def _fixed_size(codec: KeyCodec[Any]) -> int | None:
    if isinstance(codec, _FixedBytes):
        return codec.size
    return {UuidKey: 16, OidKey: 8, SlotKey: 2, TimestampKey: 8}.get(type(codec))
