"""The component's configuration, read from Crossbar's ``extra`` and validated up front.

Example ``extra``::

    {
      "etcd": {"endpoints": ["http://127.0.0.1:2379"], "user": null, "password": null},
      "prefix": "etcd",
      "db_prefix": "app/",
      "maps": {"notes": {"slot": 1, "key": "string", "value": "json"}},
      "kv_prefixes": ["raw/"],
      "prev_value": false,
      "election": "etcdwamp/publisher",
      "range_page": 100
    }
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..pmap.maps import MAP_TYPES, PersistentMap

__all__ = ["MapSpec", "Settings", "SettingsError"]

KEY_TYPES = {"string": "String", "binary": "Binary", "oid": "Oid", "uuid": "Uuid"}
VALUE_TYPES = {"string": "String", "binary": "Binary", "oid": "Oid", "uuid": "Uuid",
               "json": "Json", "cbor": "Cbor"}
_URI_PART = re.compile(r"^[a-z0-9_]+$")


class SettingsError(ValueError):
    """The component's ``extra`` is invalid; the message says which field and why."""


@dataclass(frozen=True)
class MapSpec:
    name: str
    slot: int
    key_type: str
    value_type: str

    def build(self) -> PersistentMap[Any, Any]:
        cls: Any = MAP_TYPES[f"Map{KEY_TYPES[self.key_type]}{VALUE_TYPES[self.value_type]}"]
        built: PersistentMap[Any, Any] = cls(self.slot)
        return built


@dataclass(frozen=True)
class Settings:
    endpoints: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    timeout: float = 10.0
    prefix: str = "etcd"
    db_prefix: bytes = b""
    maps: tuple[MapSpec, ...] = ()
    kv_prefixes: tuple[bytes, ...] = ()
    prev_value: bool = False
    election: bytes = b"etcdwamp/publisher"
    range_page: int = 100
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_extra(cls, extra: Any) -> Settings:
        if not isinstance(extra, Mapping):
            raise SettingsError("component extra must be a JSON object")
        known = {"etcd", "prefix", "db_prefix", "maps", "kv_prefixes", "prev_value",
                 "election", "range_page"}
        # Crossbar adds "cbdir" to every component's extra.
        unknown = sorted(set(extra) - known - {"cbdir"})
        if unknown:
            raise SettingsError(f"unknown extra fields: {', '.join(unknown)}")
        etcd = extra.get("etcd")
        if not isinstance(etcd, Mapping):
            raise SettingsError('extra.etcd must be an object with "endpoints"')
        endpoints = etcd.get("endpoints")
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if (not isinstance(endpoints, list) or not endpoints
                or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                           for u in endpoints)):
            raise SettingsError("extra.etcd.endpoints must be a non-empty list of http(s) URLs")
        user, password = etcd.get("user"), etcd.get("password")
        if (user is None) != (password is None):
            raise SettingsError("extra.etcd needs both user and password, or neither")
        timeout = etcd.get("timeout", 10.0)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise SettingsError("extra.etcd.timeout must be a positive number")
        prefix = extra.get("prefix", "etcd")
        if not isinstance(prefix, str) or not all(_URI_PART.match(p) for p in prefix.split(".")):
            raise SettingsError(f"extra.prefix must be a WAMP URI like 'etcd': {prefix!r}")
        maps = []
        raw_maps = extra.get("maps", {})
        if not isinstance(raw_maps, Mapping):
            raise SettingsError("extra.maps must be an object: name -> {slot, key, value}")
        slots: dict[int, str] = {}
        for name, spec in raw_maps.items():
            where = f"extra.maps.{name}"
            if not _URI_PART.match(str(name)):
                raise SettingsError(f"{where}: map names use a-z, 0-9 and _ only")
            if not isinstance(spec, Mapping):
                raise SettingsError(f"{where} must be an object")
            slot = spec.get("slot")
            if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= 0xFFFF:
                raise SettingsError(f"{where}.slot must be an int in [0, 65535]")
            if slot in slots:
                raise SettingsError(f"{where}.slot {slot} is already used by {slots[slot]}")
            slots[slot] = name
            key, value = str(spec.get("key", "string")), str(spec.get("value", "json"))
            if key not in KEY_TYPES:
                raise SettingsError(f"{where}.key must be one of {sorted(KEY_TYPES)}")
            if value not in VALUE_TYPES:
                raise SettingsError(f"{where}.value must be one of {sorted(VALUE_TYPES)}")
            maps.append(MapSpec(name, slot, key, value))
        kv_prefixes = extra.get("kv_prefixes", [])
        if not isinstance(kv_prefixes, list) or not all(isinstance(p, str) for p in kv_prefixes):
            raise SettingsError("extra.kv_prefixes must be a list of strings")
        db_prefix = extra.get("db_prefix", "")
        if not isinstance(db_prefix, str):
            raise SettingsError("extra.db_prefix must be a string")
        election = extra.get("election", "etcdwamp/publisher")
        if not isinstance(election, str) or not election:
            raise SettingsError("extra.election must be a non-empty string")
        page = extra.get("range_page", 100)
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 10000:
            raise SettingsError("extra.range_page must be an int in [1, 10000]")
        return cls(
            endpoints=tuple(endpoints), user=user, password=password, timeout=float(timeout),
            prefix=prefix, db_prefix=db_prefix.encode(), maps=tuple(maps),
            kv_prefixes=tuple(p.encode() for p in kv_prefixes),
            prev_value=bool(extra.get("prev_value", False)), election=election.encode(),
            range_page=page, extra=dict(extra),
        )
