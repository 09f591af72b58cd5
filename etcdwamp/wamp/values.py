"""Values every WAMP client can carry, and the marker a reader gets for one that is not.

The router serializes each event and result once per serializer its receivers
use (JSON, CBOR, msgpack). A value one of them cannot write, or writes so that
another client reads it wrong, must never reach the router: a serialization
failure there stops the delivery of that event to the remaining receivers, and
a msgpack caller whose result cannot be written gets no answer at all. So a
value is carriable only if all three carry it, and every reader gets it back
as it was written:

- ``None``, ``bool``, ``str``, ``bytes``, ``list``/``tuple`` and ``dict`` with
  ``str`` keys; no sets, datetimes, decimals, CBOR tags or ``undefined``;
- ints within ±(2**53 - 1): JavaScript's JSON reader turns larger ones into
  doubles and loses digits, msgpack cannot write beyond 64 bits at all;
- finite floats: NaN and infinities are not JSON (browsers' ``JSON.parse``
  throws on the bare ``NaN`` Python writes);
- strings valid as UTF-8 and not starting with NUL: WAMP's JSON serializer
  marks bytes as a NUL followed by base64, so a JSON reader would get bytes
  (or fail to read the whole message);
- at most :data:`MAX_DEPTH` levels of lists and dicts, so neither this check
  nor a client's parser runs out of stack.

Pure: no I/O, no Twisted.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = [
    "BAD_VALUE_MESSAGE",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "BadValueLog",
    "bad_value_marker",
    "check_carriable",
]

#: the largest integer every JSON reader keeps exact (JavaScript's Number.MAX_SAFE_INTEGER)
MAX_SAFE_INTEGER = 2**53 - 1
#: how many levels of lists and dicts a value may nest
MAX_DEPTH = 32
#: what a reader is told about a stored value it cannot have (nothing about the value)
BAD_VALUE_MESSAGE = "stored value cannot be decoded"

_SCALARS = (type(None), bool, bytes)
_PATH_KEY_CHARS = 40


def check_carriable(value: object, path: str = "value", *, max_depth: int = MAX_DEPTH) -> None:
    """Return if every WAMP serializer carries ``value`` to every reader unchanged.

    :raises TypeError: ``value`` holds a type some serializer cannot carry (a set,
        a datetime, a CBOR tag, ``undefined``, a non-string dict key, ...)
    :raises ValueError: ``value`` holds an int beyond ±(2**53 - 1), a NaN or an
        infinity, a string that is not UTF-8 or starts with NUL, or nests deeper
        than ``max_depth``

    Both name the offending part's path below ``path`` (``value.items[3].n``)
    and its type, never its content.
    """
    if not _carriable(value, max_depth):
        _check(value, path, max_depth)  # the slow walk that names what is wrong


def _carriable(value: Any, depth_left: int) -> bool:
    # The common case, every value put and every row read: no path strings
    # built, no exceptions (measured: 5.7 µs against 9.5 µs for a 12-leaf note).
    kind = type(value)
    if kind is str:
        return _good_str(value)
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[no-any-return]
    if kind is dict:
        if depth_left <= 0:
            return False
        for key, item in value.items():
            if type(key) is not str or not _good_str(key) or not _carriable(item, depth_left - 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth_left <= 0:
            return False
        return all(_carriable(item, depth_left - 1) for item in value)
    if kind is float:
        return math.isfinite(value)
    return kind in _SCALARS


def _good_str(text: str) -> bool:
    if text.startswith("\x00"):
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(value: object, path: str, depth_left: int) -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        assert isinstance(value, int)
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: an integer beyond ±(2**53 - 1), which JavaScript "
                             "readers cannot hold exactly (send it as a string)")
        return
    if kind is float:
        assert isinstance(value, float)
        if not math.isfinite(value):
            raise ValueError(f"{path}: NaN and infinities cannot travel as JSON")
        return
    if kind is str:
        assert isinstance(value, str)
        _check_str(value, path)
        return
    if kind in (list, tuple, dict):
        if depth_left <= 0:
            raise ValueError(f"{path}: nested too deep (lists and maps may nest "
                             f"{MAX_DEPTH} levels)")
        if isinstance(value, dict):
            for key, item in value.items():
                if type(key) is not str:
                    raise TypeError(f"{path}: a map key is a {type(key).__name__}; "
                                    "only strings can be map keys for every client")
                where = _member(path, key)
                _check_str(key, where)
                _check(item, where, depth_left - 1)
        else:
            assert isinstance(value, (list, tuple))
            for index, item in enumerate(value):
                _check(item, f"{path}[{index}]", depth_left - 1)
        return
    raise TypeError(f"{path}: {kind.__name__} cannot be carried to every client (only null, "
                    "booleans, numbers, strings, bytes, lists and maps with string keys)")


def _check_str(text: str, path: str) -> None:
    if text.startswith("\x00"):
        raise ValueError(f"{path}: a string starting with NUL (JSON clients read it as bytes)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: a string that is not valid UTF-8 (a lone surrogate)") from None


def _member(path: str, key: str) -> str:
    if key.isidentifier() and len(key) <= _PATH_KEY_CHARS:
        return f"{path}.{key}"
    shown = key if len(key) <= _PATH_KEY_CHARS else key[:_PATH_KEY_CHARS] + "..."
    return f"{path}[{shown!r}]"


def bad_value_marker(uri: str) -> dict[str, str]:
    """The ``error`` of a row whose stored value no reader can have: ``{uri, message}``."""
    return {"uri": uri, "message": BAD_VALUE_MESSAGE}


class BadValueLog:
    """Which bad stored values to log: each (map, key, revision) once, and at most
    ``burst`` lines per ``interval`` seconds; the others are counted.

    ``now`` is a monotonic clock in seconds; the last ``remember`` sightings are kept.
    """

    def __init__(self, now: Callable[[], float], *, interval: float = 60.0, burst: int = 10,
                 remember: int = 10_000) -> None:
        self._now = now
        self._interval = interval
        self._burst = burst
        self._remember = remember
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._window_start: float | None = None
        self._in_window = 0
        self._held_back = 0

    def admit(self, sighting: Hashable) -> int | None:
        """None if ``sighting`` is not to be logged (seen before, or over the rate), else how
        many sightings were held back since the previous line."""
        if sighting in self._seen:
            self._seen.move_to_end(sighting)
            return None
        self._seen[sighting] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        now = self._now()
        if self._window_start is None or now - self._window_start >= self._interval:
            self._window_start, self._in_window = now, 0
        if self._in_window >= self._burst:
            self._held_back += 1
            return None
        self._in_window += 1
        held_back, self._held_back = self._held_back, 0
        return held_back

