"""Leases' keep-alive, and the gateway's lock and election services (v3lock, v3election)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors as e
from .encoding import b64, get_bytes, get_int, int64, require_bytes, require_int
from .errors import stream_error
from .requests import Request
from .results import Header, KeyValue, parse_header, parse_key_value

__all__ = [
    "LeaderKey",
    "LeaseKeepAliveResult",
    "LockResult",
    "campaign_request",
    "leader_request",
    "lease_keepalive_request",
    "lock_request",
    "observe_body",
    "parse_leader_frame",
    "proclaim_request",
    "resign_request",
    "unlock_request",
]


@dataclass(frozen=True, slots=True)
class LeaseKeepAliveResult:
    """``ttl`` 0 means the lease no longer exists: it expired or was revoked."""

    header: Header
    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LockResult:
    """``key`` is the holder's key; its create revision is the fencing token."""

    header: Header
    key: bytes


@dataclass(frozen=True, slots=True)
class LeaderKey:
    """Identifies one campaign's leadership (needed to proclaim and resign)."""

    name: bytes
    key: bytes
    rev: int
    lease: int

    def to_json(self) -> dict[str, str]:
        """The JSON of this leadership as the gateway's ``leader`` field."""
        return {"name": b64(self.name), "key": b64(self.key), "rev": int64(self.rev),
                "lease": int64(self.lease)}


def _stream_result(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Streaming RPCs answer ``{"result": {...}}`` (or ``{"error": {...}}``)."""
    if "error" in obj:
        raise stream_error(obj["error"])
    result = obj.get("result", obj)
    if not isinstance(result, Mapping):
        raise e.ProtocolError(f"expected a result object, got {result!r}")
    return result


def _parse_keepalive(obj: Mapping[str, Any]) -> LeaseKeepAliveResult:
    result = _stream_result(obj)
    return LeaseKeepAliveResult(header=parse_header(result), id=get_int(result, "ID"),
                                ttl=get_int(result, "TTL"))


def lease_keepalive_request(lease_id: int) -> Request[LeaseKeepAliveResult]:
    """A ``/lease/keepalive`` call renewing ``lease_id`` (>= 1) once; a ``ttl`` of 0 in the answer
    means the lease is gone.
    """
    body = {"ID": int64(require_int(lease_id, "lease_id", minimum=1))}
    return Request("/lease/keepalive", body, _parse_keepalive, idempotent=True)


def _parse_lock(obj: Mapping[str, Any]) -> LockResult:
    return LockResult(header=parse_header(obj), key=get_bytes(obj, "key"))


def _name(name: bytes) -> str:
    name = require_bytes(name, "name")
    if not name:
        raise ValueError("lock/election name must not be empty")
    return b64(name)


def lock_request(name: bytes, lease_id: int) -> Request[LockResult]:
    """A ``/lock/lock`` call that waits until the lock ``name`` is held under ``lease_id``.

    The lock is released by :func:`unlock_request` or when the lease ends. Not resent on an
    unknown outcome (a second attempt would queue a second waiter). Raises
    ``TypeError``/``ValueError`` for an empty or non-bytes name or a ``lease_id`` < 1.
    """
    body = {"name": _name(name), "lease": int64(require_int(lease_id, "lease_id", minimum=1))}
    # Not idempotent: a second attempt would queue a second waiter.
    return Request("/lock/lock", body, _parse_lock, idempotent=False,
                   size=len(name) + 64)


def unlock_request(key: bytes) -> Request[Header]:
    """A ``/lock/unlock`` call releasing the lock whose holder key is ``key``."""
    body = {"key": b64(require_bytes(key, "key"))}
    return Request("/lock/unlock", body, parse_header, idempotent=True)


def _parse_leader_key(obj: Any) -> LeaderKey:
    if not isinstance(obj, Mapping):
        raise e.ProtocolError(f"leader should be an object, got {obj!r}")
    return LeaderKey(name=get_bytes(obj, "name"), key=get_bytes(obj, "key"),
                     rev=get_int(obj, "rev"), lease=get_int(obj, "lease"))


def _parse_campaign(obj: Mapping[str, Any]) -> LeaderKey:
    return _parse_leader_key(obj.get("leader"))


def campaign_request(name: bytes, lease_id: int, value: bytes) -> Request[LeaderKey]:
    """A ``/election/campaign`` call that waits until this candidate leads election ``name``.

    ``value`` is announced as the leader's value; the leadership lasts as long as ``lease_id``.
    Not resent on an unknown outcome. Raises ``TypeError``/``ValueError`` for bad arguments.
    """
    body = {"name": _name(name), "lease": int64(require_int(lease_id, "lease_id", minimum=1)),
            "value": b64(require_bytes(value, "value"))}
    return Request("/election/campaign", body, _parse_campaign, idempotent=False,
                   size=len(name) + len(value) + 64)


def proclaim_request(leader: LeaderKey, value: bytes) -> Request[Header]:
    """A ``/election/proclaim`` call setting the value the current ``leader`` announces;
    not resent on an unknown outcome."""
    body = {"leader": leader.to_json(), "value": b64(require_bytes(value, "value"))}
    # Not idempotent: a member that hung applies a copy it buffered late, after
    # later proclaims; resent elsewhere, that copy would replace a newer value.
    return Request("/election/proclaim", body, parse_header, idempotent=False,
                   size=len(value) + 64)


def _parse_leader(obj: Mapping[str, Any]) -> KeyValue:
    kv = obj.get("kv")
    if not isinstance(kv, Mapping):
        raise e.ProtocolError(f"leader answer without kv: {obj!r}")
    return parse_key_value(kv)


def leader_request(name: bytes) -> Request[KeyValue]:
    """A ``/election/leader`` call for the key-value of election ``name``'s current leader."""
    return Request("/election/leader", {"name": _name(name)}, _parse_leader, idempotent=True)


def resign_request(leader: LeaderKey) -> Request[Header]:
    """A ``/election/resign`` call giving up ``leader``'s leadership."""
    return Request("/election/resign", {"leader": leader.to_json()}, parse_header,
                   idempotent=True)


def observe_body(name: bytes) -> dict[str, str]:
    """The JSON of an ``/election/observe`` stream for election ``name``."""
    return {"name": _name(name)}


def parse_leader_frame(obj: Mapping[str, Any]) -> KeyValue:
    """One frame of an ``observe`` stream: the current leader's key-value."""
    return _parse_leader(_stream_result(obj))
