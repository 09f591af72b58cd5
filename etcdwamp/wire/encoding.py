"""Scalar encodings of the etcd JSON gateway: base64 bytes and int64-as-string."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..errors import ProtocolError

__all__ = [
    "b64",
    "get_bool",
    "get_bytes",
    "get_int",
    "int64",
    "require_bytes",
    "require_int",
    "set_flags",
    "text_or_bytes",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def require_bytes(value: object, what: str) -> bytes:
    """Return ``value`` if it is bytes-like, else raise a ``TypeError`` naming ``what``.

    ``str`` is refused on purpose: etcd keys and values are bytes, and guessing
    an encoding would hide bugs.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{what} must be bytes, not str (encode it explicitly, e.g. .encode())")
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def text_or_bytes(value: object, what: str) -> bytes:
    """``value`` as bytes for callers that cannot send bytes (JSON, browsers):
    ``str`` is taken as UTF-8. Anything else raises a ``TypeError`` naming ``what``."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be a string or bytes, not {type(value).__name__}")


def require_int(value: object, what: str, *, minimum: int = INT64_MIN,
                maximum: int = INT64_MAX) -> int:
    """Return ``value`` if it is an int (not bool) within bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be between {minimum} and {maximum}, got {value}")
    return value


def set_flags(body: dict[str, Any], **flags: object) -> None:
    """Check boolean options and put the true ones into ``body`` (the gateway
    treats a missing flag as false, so false ones are left out)."""
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, not {type(flag).__name__}")
        if flag:
            body[name] = True


def b64(data: bytes) -> str:
    """``data`` as the base64 text the gateway expects for bytes fields."""
    return base64.b64encode(data).decode("ascii")


def int64(value: int) -> str:
    """int64 fields travel as JSON strings so no JSON reader rounds them."""
    return str(value)


def _field(obj: Mapping[str, Any], name: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    return obj.get(name)


def get_bytes(obj: Mapping[str, Any], name: str) -> bytes:
    """A base64 field; the gateway omits empty ones."""
    raw = _field(obj, name)
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise ProtocolError(f"field {name!r} should be a base64 string, got {raw!r}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"field {name!r} is not valid base64: {raw!r}") from exc


def get_int(obj: Mapping[str, Any], name: str) -> int:
    """An int64/uint64 field: a JSON string (or number); omitted means 0."""
    raw = _field(obj, name)
    if raw is None:
        return 0
    if isinstance(raw, bool):
        raise ProtocolError(f"field {name!r} should be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw, 10)
        except ValueError as exc:
            raise ProtocolError(f"field {name!r} is not an integer: {raw!r}") from exc
    raise ProtocolError(f"field {name!r} should be an integer, got {raw!r}")


def get_bool(obj: Mapping[str, Any], name: str) -> bool:
    """A boolean field; omitted means false. Raises :class:`ProtocolError` for a non-boolean."""
    raw = _field(obj, name)
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise ProtocolError(f"field {name!r} should be a boolean, got {raw!r}")
    return raw
