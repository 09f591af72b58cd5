"""Wire :class:`~etcdwamp.wire.KeyValue` objects over ``mvccpb.KeyValue`` messages.

A gRPC range answer's ``kvs`` is a :class:`KeyValues`: a read-only sequence over the
answer's repeated field that builds a key-value when one is asked for. It exists because
a large range is often read for its count, its first keys or a few values, and one
Python object per key-value made up front was most of a 10,000-key range's client CPU
(allocation ~2 ms, and ~3 ms of cyclic GC over 10,000 tracked objects surviving the
read); aetcd hands back the repeated field itself. The sequence keeps the answer's
protobuf arena (the whole answer's bytes) alive for as long as it lives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, SupportsIndex, overload

from ..wire.results import KeyValue

__all__ = ["KeyValues", "decode_key_value", "decode_key_values"]

_new = object.__new__
_set_key, _set_value, _set_create, _set_mod, _set_version, _set_lease = (
    KeyValue.__dict__[name].__set__
    for name in ("key", "value", "create_revision", "mod_revision", "version", "lease"))


def decode_key_value(message: Any) -> KeyValue:
    """The wire :class:`KeyValue` of one ``mvccpb.KeyValue`` message, all fields read."""
    # Slots set without the frozen dataclass's __init__ (which goes through
    # object.__setattr__ per field): this runs once per key-value read.
    kv: KeyValue = _new(KeyValue)
    _set_key(kv, message.key)
    _set_value(kv, message.value)
    _set_create(kv, message.create_revision)
    _set_mod(kv, message.mod_revision)
    _set_version(kv, message.version)
    _set_lease(kv, message.lease)
    return kv


def decode_key_values(messages: Any) -> tuple[KeyValue, ...]:
    """Wire :class:`KeyValue` objects of repeated ``mvccpb.KeyValue`` messages, all built now.

    The numbers are read at once: upb hands them over for ~1 ms per 10,000 key-values,
    while reading them on first use (as the JSON path does, whose numbers are strings)
    cost ~20 ms more for a reader who asks for them (benchmarks/grpc_codec.py).
    """
    return tuple(map(decode_key_value, messages))


class KeyValues(Sequence[KeyValue]):
    """The key-values of a repeated ``mvccpb.KeyValue`` field, each built on first use.

    Behaves as the tuple of the same key-values would: ``len`` (nothing built), index
    (a key-value is built once, then the same object is handed out), iterate, ``in``,
    ``index``, ``count``; a slice is a tuple. Equal to a tuple, list or
    :class:`KeyValues` with equal key-values in the same order, and hashed as that tuple;
    copied and pickled as a tuple.
    """

    __slots__ = ("_built", "_messages")

    _built: list[KeyValue | None] | None

    def __init__(self, messages: Any) -> None:
        self._messages = messages
        # One slot per key-value, made on first use: a range read only for its length
        # allocates nothing more.
        self._built = None

    def __len__(self) -> int:
        return len(self._messages)

    def __bool__(self) -> bool:
        return len(self._messages) > 0

    def _slots(self) -> list[KeyValue | None]:
        built = self._built
        if built is None:
            built = self._built = [None] * len(self._messages)
        return built

    @overload
    def __getitem__(self, index: SupportsIndex) -> KeyValue: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[KeyValue, ...]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> KeyValue | tuple[KeyValue, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self._messages))))
        built = self._built
        if built is None:
            built = self._slots()
        kv = built[index]  # IndexError/TypeError as a tuple's, for the same index
        if kv is None:
            kv = built[index] = decode_key_value(self._messages[index])
        return kv

    def __iter__(self) -> Iterator[KeyValue]:
        built = self._slots()
        messages = self._messages
        for index, kv in enumerate(built):
            if kv is None:
                kv = built[index] = decode_key_value(messages[index])
            yield kv

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (KeyValues, tuple, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                      strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle give the plain tuple (no protobuf message in a pickle).
        return tuple, (tuple(self),)
