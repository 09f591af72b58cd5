"""``Lease.LeaseLeases``: the ids of every lease the cluster holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from .encoding import get_int
from .requests import Request
from .results import Header, parse_header

__all__ = ["LeaseListResult", "lease_leases_request", "parse_lease_leases"]


@dataclass(frozen=True, slots=True)
class LeaseListResult:
    """The ids of every lease the cluster holds."""

    header: Header
    ids: tuple[int, ...]


def parse_lease_leases(obj: Mapping[str, Any]) -> LeaseListResult:
    """A LeaseLeasesResponse. Raises :class:`ProtocolError` for a malformed one."""
    raw = obj.get("leases") or []
    if not isinstance(raw, list) or not all(isinstance(x, Mapping) for x in raw):
        raise ProtocolError(f"leases should be a list of objects, got {raw!r}"[:300])
    return LeaseListResult(header=parse_header(obj), ids=tuple(get_int(x, "ID") for x in raw))


def lease_leases_request() -> Request[LeaseListResult]:
    """A ``/lease/leases`` call listing every lease of the cluster."""
    return Request("/lease/leases", {}, parse_lease_leases, idempotent=True)
