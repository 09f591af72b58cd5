"""Gateway requests as data: a path, a JSON body and the parser for the answer.

Nothing here performs I/O. :class:`Request` is what the transport sends; the
builders validate their input at this boundary, so a bad call raises before a
single byte leaves the process.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import RequestTooLarge
from .encoding import b64, int64, require_bytes, require_int, set_flags
from .keyset import KeySet, as_keyset
from .results import (
    CompactResult,
    DeleteResult,
    LeaseGrantResult,
    LeaseInfo,
    LeaseRevokeResult,
    PutResult,
    RangeResult,
    StatusResult,
    parse_compact,
    parse_delete,
    parse_lease_grant,
    parse_lease_info,
    parse_lease_revoke,
    parse_put,
    parse_range,
    parse_status,
)

__all__ = [
    "API_PREFIXES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "Request",
    "SortOrder",
    "SortTarget",
    "check_size",
    "compact_request",
    "delete_body",
    "delete_request",
    "lease_grant_request",
    "lease_revoke_request",
    "lease_ttl_request",
    "put_body",
    "put_request",
    "range_body",
    "range_request",
    "status_request",
]

T = TypeVar("T")

#: etcd's default ``--max-request-bytes``: 1.5 MiB.
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024

# Bytes of protobuf framing we budget per message/op on top of its keys and
# values; generous so our estimate errs towards refusing early.
_OVERHEAD = 64


#: the gateway prefixes request paths are relative to, tried in order: etcd 3.4+, 3.3, 3.2
API_PREFIXES = ("/v3", "/v3beta", "/v3alpha")


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """One gateway call: ``path`` is relative to the API prefix (``/v3``)."""

    path: str
    body: Mapping[str, Any]
    parse: Callable[[Mapping[str, Any]], T]
    #: safe to send again (to another endpoint) when the outcome is unknown:
    #: it changes nothing, or a copy applied late (a member that hung runs what
    #: it buffered after the others applied later changes) undoes nothing
    idempotent: bool
    #: estimated size of the gRPC message etcd will check against its limit
    size: int = _OVERHEAD
    #: seconds to wait for the answer; None: the client's default; inf: no limit
    #: (blocking calls such as lock and campaign wait as long as they must)
    timeout: float | None = None


class SortOrder(enum.Enum):
    """Order of a range's keys; ``NONE`` leaves etcd's key order."""

    NONE = "NONE"
    ASCEND = "ASCEND"
    DESCEND = "DESCEND"


class SortTarget(enum.Enum):
    """The field a range is sorted by (with a :class:`SortOrder` other than ``NONE``)."""

    KEY = "KEY"
    VERSION = "VERSION"
    CREATE = "CREATE"
    MOD = "MOD"
    VALUE = "VALUE"


E = TypeVar("E", bound=enum.Enum)


def _enum(cls: type[E], value: E | str, what: str) -> E:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls[value.upper()]
        except KeyError:
            pass
    names = ", ".join(m.name for m in cls)
    raise ValueError(f"{what} must be one of {names}, got {value!r}")


def check_size(size: int, limit: int) -> None:
    """Raise :class:`RequestTooLarge` if a request of ``size`` bytes exceeds ``limit``."""
    if size > limit:
        raise RequestTooLarge(
            f"request is too large: about {size} bytes, etcd's limit is {limit} bytes "
            "(--max-request-bytes)"
        )


def _key_fields(keyset: KeySet) -> dict[str, Any]:
    key, range_end = keyset.resolve()
    body: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        body["range_end"] = b64(range_end)
    return body


def keyset_size(keyset: KeySet) -> int:
    """Estimated request size of a call naming ``keyset``: its key and range end plus framing."""
    key, range_end = keyset.resolve()
    return len(key) + len(range_end or b"") + _OVERHEAD


def _revision(value: int, what: str) -> int:
    return require_int(value, what, minimum=0)


def range_body(
    key_or_keyset: bytes | KeySet,
    *,
    limit: int = 0,
    revision: int = 0,
    sort_order: SortOrder | str = SortOrder.NONE,
    sort_target: SortTarget | str = SortTarget.KEY,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> dict[str, Any]:
    """The JSON of a RangeRequest (also used inside transactions)."""
    keyset = as_keyset(key_or_keyset)
    body = _key_fields(keyset)
    ints = {
        "limit": limit,
        "revision": revision,
        "min_mod_revision": min_mod_revision,
        "max_mod_revision": max_mod_revision,
        "min_create_revision": min_create_revision,
        "max_create_revision": max_create_revision,
    }
    for name, value in ints.items():
        if _revision(value, name):
            body[name] = int64(value)
    order = _enum(SortOrder, sort_order, "sort_order")
    target = _enum(SortTarget, sort_target, "sort_target")
    if order is not SortOrder.NONE:
        body["sort_order"] = order.value
    if target is not SortTarget.KEY:
        body["sort_target"] = target.value
    set_flags(body, serializable=serializable, keys_only=keys_only, count_only=count_only)
    return body


def range_request(key_or_keyset: bytes | KeySet, **options: Any) -> Request[RangeResult]:
    """A ``/kv/range`` call for a key or :class:`KeySet`; ``options`` as for :func:`range_body`.

    Retried freely (a read is idempotent). Raises ``TypeError``/``ValueError`` for a bad key,
    revision, limit or sort option, before anything is sent.
    """
    keyset = as_keyset(key_or_keyset)
    return Request("/kv/range", range_body(keyset, **options), parse_range,
                   idempotent=True, size=keyset_size(keyset))


def put_body(
    key: bytes,
    value: bytes,
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> dict[str, Any]:
    """The JSON of a PutRequest (also used inside transactions).

    ``ignore_value`` keeps the stored value (then ``value`` must be ``b""``); ``ignore_lease``
    keeps the stored lease (then ``lease`` must be 0). Raises ``TypeError`` for a non-bytes key
    or value, a non-int lease or a non-bool flag; ``ValueError`` for the empty key or a value or
    lease given with the matching ``ignore_*`` flag.
    """
    key = require_bytes(key, "key")
    value = require_bytes(value, "value")
    if not key:
        raise ValueError("the empty key is not a valid etcd key")
    lease = require_int(lease, "lease")
    if ignore_value and value:
        raise ValueError("ignore_value=True keeps the stored value: pass value=b''")
    if ignore_lease and lease:
        raise ValueError("ignore_lease=True keeps the stored lease: pass no lease")
    body: dict[str, Any] = {"key": b64(key)}
    if value:
        body["value"] = b64(value)
    if lease:
        body["lease"] = int64(lease)
    set_flags(body, prev_kv=prev_kv, ignore_value=ignore_value, ignore_lease=ignore_lease)
    return body


def put_request(key: bytes, value: bytes, **options: Any) -> Request[PutResult]:
    """A ``/kv/put`` call; ``options`` are those of :func:`put_body`.

    Not idempotent: the client does not resend it when the outcome is unknown.
    """
    body = put_body(key, value, **options)
    return Request("/kv/put", body, parse_put, idempotent=False,
                   size=len(key) + len(value) + _OVERHEAD)


def delete_body(key_or_keyset: bytes | KeySet, *, prev_kv: bool = False) -> dict[str, Any]:
    """The JSON of a DeleteRangeRequest (also used inside transactions)."""
    body = _key_fields(as_keyset(key_or_keyset))
    set_flags(body, prev_kv=prev_kv)
    return body


def delete_request(key_or_keyset: bytes | KeySet, *,
                   prev_kv: bool = False) -> Request[DeleteResult]:
    """A ``/kv/deleterange`` call for a key or :class:`KeySet`; not resent on an unknown outcome."""
    keyset = as_keyset(key_or_keyset)
    return Request("/kv/deleterange", delete_body(keyset, prev_kv=prev_kv), parse_delete,
                   idempotent=False, size=keyset_size(keyset))


def compact_request(revision: int, *, physical: bool = False) -> Request[CompactResult]:
    """A ``/kv/compaction`` call discarding history before ``revision`` (>= 1).

    ``physical=True`` waits until the space is freed. Raises ``TypeError``/``ValueError`` for a
    revision that is not an int >= 1.
    """
    revision = require_int(revision, "revision", minimum=1)
    body: dict[str, Any] = {"revision": int64(revision)}
    if physical:
        body["physical"] = True
    # Compacting twice at one revision fails harmlessly, so a retry is safe.
    return Request("/kv/compaction", body, parse_compact, idempotent=True)


def status_request() -> Request[StatusResult]:
    """A ``/maintenance/status`` call for the member that answers it."""
    return Request("/maintenance/status", {}, parse_status, idempotent=True)


def lease_grant_request(ttl: int, lease_id: int = 0) -> Request[LeaseGrantResult]:
    """A ``/lease/grant`` call for a lease of ``ttl`` seconds (>= 1).

    ``lease_id`` 0 lets etcd choose the id; a positive one asks for that id.
    Raises ``TypeError``/``ValueError`` for a ``ttl`` < 1 or a negative ``lease_id``.
    """
    ttl = require_int(ttl, "ttl", minimum=1)
    body: dict[str, Any] = {"TTL": int64(ttl)}
    if require_int(lease_id, "lease_id", minimum=0):
        body["ID"] = int64(lease_id)
    return Request("/lease/grant", body, parse_lease_grant, idempotent=False)


def lease_revoke_request(lease_id: int) -> Request[LeaseRevokeResult]:
    """A ``/lease/revoke`` call for ``lease_id`` (>= 1); the keys attached to it are deleted."""
    body = {"ID": int64(require_int(lease_id, "lease_id", minimum=1))}
    return Request("/lease/revoke", body, parse_lease_revoke, idempotent=True)


def lease_ttl_request(lease_id: int, *, keys: bool = False) -> Request[LeaseInfo]:
    """A ``/lease/timetolive`` call for ``lease_id`` (>= 1); ``keys=True`` also lists its keys."""
    body: dict[str, Any] = {"ID": int64(require_int(lease_id, "lease_id", minimum=1))}
    if keys:
        body["keys"] = True
    return Request("/lease/timetolive", body, parse_lease_info, idempotent=True)
