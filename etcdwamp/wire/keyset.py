"""Key ranges: a single key, ``[key, range_end)``, a prefix, or every key."""

from __future__ import annotations

from dataclasses import dataclass

from .encoding import require_bytes

__all__ = ["KeySet", "prefix_range_end"]

# etcd's convention: range_end "\0" means "every key >= key"; key "\0" with
# range_end "\0" therefore means every key.
_ALL = b"\x00"


def prefix_range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``.

    Trailing 0xFF bytes cannot be incremented, so they are dropped first; a
    prefix made only of 0xFF bytes (or empty) has no upper bound, which etcd
    spells ``b"\\0"``.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return _ALL
    return stripped[:-1] + bytes([stripped[-1] + 1])


@dataclass(frozen=True, init=False)
class KeySet:
    """A set of keys, resolved to etcd's ``(key, range_end)`` pair.

    - ``KeySet(b"k")``: the single key ``k``
    - ``KeySet(b"a", range_end=b"b")``: keys in ``[a, b)``
    - ``KeySet(b"p/", prefix=True)``: keys starting with ``p/`` (the empty prefix = all keys)
    - ``KeySet.all()``: every key
    """

    key: bytes
    range_end: bytes | None
    prefix: bool

    def __init__(self, key: bytes, range_end: bytes | None = None, *,
                 prefix: bool = False) -> None:
        key = require_bytes(key, "key")
        if range_end is not None:
            range_end = require_bytes(range_end, "range_end")
            if prefix:
                raise ValueError("give either range_end or prefix=True, not both")
        if not prefix and not key:
            raise ValueError("the empty key is not a valid etcd key "
                             "(use KeySet(b'', prefix=True) or KeySet.all() for every key)")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "range_end", range_end)
        object.__setattr__(self, "prefix", bool(prefix))

    @classmethod
    def all(cls) -> KeySet:
        """Every key in the store."""
        return cls(b"", prefix=True)

    @property
    def is_single(self) -> bool:
        """Whether this names exactly one key (no range end, not a prefix)."""
        return self.range_end is None and not self.prefix

    def resolve(self) -> tuple[bytes, bytes | None]:
        """``(key, range_end)`` as etcd wants them; ``range_end`` is None for one key."""
        if self.prefix:
            if not self.key:
                return _ALL, _ALL
            return self.key, prefix_range_end(self.key)
        return self.key, self.range_end

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` falls in this set."""
        start, end = self.resolve()
        if end is None:
            return key == start
        if end == _ALL:
            return key >= start
        return start <= key < end


def as_keyset(key_or_keyset: bytes | KeySet) -> KeySet:
    """``key_or_keyset`` as a :class:`KeySet`: bytes become a single key.

    Raises ``TypeError`` for anything else, ``ValueError`` for the empty key.
    """
    if isinstance(key_or_keyset, KeySet):
        return key_or_keyset
    return KeySet(require_bytes(key_or_keyset, "key"))
