"""The component's configuration, read from Crossbar's ``extra`` and validated up front.

Example ``extra``::

    {
      "etcd": {"endpoints": ["https://127.0.0.1:2379"], "timeout": 10,
               "ca_file": "/etc/etcd/ca.pem", "user": "web", "password": "${ETCD_PASSWORD}",
               "namespace": "tenant1/"},
      "prefix": "etcd",
      "db_prefix": "app/",
      "maps": {"notes": {"slot": 1, "key": "string", "value": "json",
                         "read": ["guest", "writer"], "write": ["writer"]},
               "profiles": {"slot": 2, "key": "string", "value": "json", "owner": true}},
      "kv_prefixes": ["raw/", {"prefix": "config/", "read": ["writer"], "write": []}],
      "presence": {"prefix": "presence/", "ttl": 10},
      "prev_value": false,
      "election": "etcdwamp/publisher",
      "range_page": 100,
      "max_range_rows": 1000, "max_snapshot_rows": 10000, "max_inflight_bytes": 33554432,
      "checkpoint_interval": 0.1
    }

Every level rejects keys it does not know (naming the closest valid one), so
a typo never silently turns a rule off. Defaults live once, in the dataclass
fields below. ``"${VAR}"`` as ``etcd.user`` or ``etcd.password`` is read from
the environment, so no secret needs to be written into a config file.

``checkpoint_interval`` (seconds, default 0.1) spaces the publisher's
checkpoint writes while events stream in; after a failover the successor may
publish up to about that much again (subscribers drop revisions they have seen).

Reads are bounded (see :mod:`etcdwamp.wamp.reads`): ``range_page`` keys per
etcd request and per progressive result (default 100); a non-progressive
``range`` result carries at most ``max_range_rows`` rows (default 1000) and a
non-progressive ``get_and_watch`` snapshot at most ``max_snapshot_rows``
(default 10000), a bigger one is refused with ``too_large`` (progressive callers
get any size in pages); ``max_inflight_bytes`` (default 32 MiB) bounds the
estimated bytes of all results in flight at once, beyond it a call gets ``busy``.

``etcd.namespace`` runs the component on ``client.namespace(...)``: every key it
keeps (maps, raw keys, presence, the publisher's election and checkpoint) lives
under that prefix, the other prefixes here are inside it, and callers and
subscribers see keys without it.

Bounds (see :mod:`etcdwamp.wamp.limits` and :mod:`etcdwamp.wamp.quota`): each map and
kv prefix takes ``max_value_bytes`` (default 64 KiB), ``max_key_bytes`` (1 KiB) and
``max_keys`` (no cap); ``limits`` sets rates per session and per authid by role. A kv
prefix inside another entry needs ``"nested": true`` (its rules replace the outer one's).

Access rules (``read`` / ``write``: lists of WAMP authroles): absent means
"every role the router lets call the procedure"; present means only those
roles, enforced by the component on every procedure that reaches the data.
``owner``: a caller may only write (put/delete) the key equal to its authid.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from ..budget import DEFAULT_MAX_QUEUED
from ..pmap.maps import MAP_TYPES, PersistentMap
from ..probe import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT
from ..wire import DEFAULT_MAX_REQUEST_BYTES
from .limits import LimitSettings, Rates, RoleLimits

__all__ = ["EtcdSettings", "KvPrefix", "MapSpec", "PresenceSettings", "Settings",
           "SettingsError"]

KEY_TYPES = {"string": "String", "binary": "Binary", "oid": "Oid", "uuid": "Uuid"}
VALUE_TYPES = {"string": "String", "binary": "Binary", "oid": "Oid", "uuid": "Uuid",
               "json": "Json", "cbor": "Cbor"}
_URI_PART = re.compile(r"^[a-z0-9_]+$")
_ENV_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# Crossbar adds these to every component's extra.
_CROSSBAR_ADDED = frozenset({"cbdir"})

Roles = frozenset[str] | None


class SettingsError(ValueError):
    """The component's ``extra`` is invalid; the message says which field and why."""


def _default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(name)


def _check_keys(obj: Mapping[str, Any], allowed: set[str], where: str,
                ignored: frozenset[str] = frozenset()) -> None:
    for key in sorted(set(obj) - allowed - ignored, key=str):
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else \
            f" (valid: {', '.join(sorted(allowed))})"
        raise SettingsError(f"{where}: unknown key {key!r}{hint}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where} must be an object")
    return value


def _roles(value: Any, where: str) -> Roles:
    if value is None:
        return None
    if (not isinstance(value, list)
            or not all(isinstance(r, str) and r for r in value)):
        raise SettingsError(f"{where} must be a list of authrole names")
    return frozenset(value)


def _from_env(value: Any, where: str) -> Any:
    if isinstance(value, str):
        match = _ENV_VAR.match(value)
        if match:
            name = match.group(1)
            if name not in os.environ:
                raise SettingsError(f"{where}: environment variable {name} is not set")
            return os.environ[name]
    return value


def _int_in(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{where} must be an int in [{low}, {high}]")
    return value


def _prefix_bytes(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise SettingsError(f"{where} must be a string")
    return value.encode("utf-8")


#: a value larger than this is refused unless a map or kv prefix sets its own limit: big
#: enough for documents, small enough that a flood of puts cannot fill etcd's quota fast
DEFAULT_MAX_VALUE_BYTES = 64 * 1024
#: keys are names, not payload
DEFAULT_MAX_KEY_BYTES = 1024
#: etcd refuses requests above 1.5 MiB (``--max-request-bytes``); no configured limit
#: may promise more
_ETCD_MAX_REQUEST = DEFAULT_MAX_REQUEST_BYTES
_SIZE_KEYS = ("max_value_bytes", "max_key_bytes", "max_keys")


def _positive_int(raw: Mapping[str, Any], name: str, default: int | None, where: str,
                  highest: int) -> int | None:
    value = raw.get(name, default)
    if value is None and default is None:
        return None
    return _int_in(value, f"{where}.{name}", 1, highest)


def _sizes(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``max_value_bytes``, ``max_key_bytes`` and ``max_keys`` of a map or kv prefix."""
    return {
        "max_value_bytes": _positive_int(raw, "max_value_bytes", DEFAULT_MAX_VALUE_BYTES,
                                         where, _ETCD_MAX_REQUEST - 64 * 1024),
        "max_key_bytes": _positive_int(raw, "max_key_bytes", DEFAULT_MAX_KEY_BYTES, where,
                                       64 * 1024),
        "max_keys": _positive_int(raw, "max_keys", None, where, 10**9),
    }


@dataclass(frozen=True)
class EtcdSettings:
    """``extra.etcd``: how the component reaches etcd."""

    endpoints: tuple[str, ...]
    timeout: float = 10.0
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: concurrent single-key map calls travel as one etcd transaction (see
    #: :mod:`etcdwamp.coalesce`); on by default here, where many browsers call at once
    coalesce: bool = True
    coalesce_window: float = 0.0
    #: every key the component reads, writes, watches, leases or elects on lives
    #: under this prefix and is addressed without it (``client.namespace``); the
    #: other settings' prefixes, and the keys callers and subscribers see, are
    #: inside it. Empty: no namespace.
    namespace: bytes = b""
    #: calls in flight to each etcd member at once, each on its own connection
    #: (:mod:`etcdwamp.budget`): a router worker has 1,024 open files for its
    #: WebSocket clients and everything else, so etcd gets a small share of them
    max_connections: int = 32
    #: calls that may wait for one of those connections; beyond it callers get
    #: ``<prefix>.error.busy`` at once instead of waiting out their timeout
    max_queued: int = DEFAULT_MAX_QUEUED
    #: seconds a read waits on one member before it tries the next (None: an
    #: equal share of ``timeout`` per member; see :class:`etcdwamp.Client`)
    attempt_timeout: float | None = None
    #: seconds between probes of a member that carries the publisher's watch or
    #: presence streams (0: none), and how long one may take: a hung or cut-off
    #: member is left within their sum (see :mod:`etcdwamp.probe`)
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    #: how the component's client speaks to etcd: ``"gateway"`` (its JSON gateway over
    #: HTTP/1.1) or ``"grpc"`` (etcd's gRPC API over one HTTP/2 connection per member;
    #: needs ``etcdwamp[grpc]``)
    transport: str = "gateway"

    @classmethod
    def parse(cls, raw: Any) -> EtcdSettings:
        """Validate ``extra.etcd``; ``user``/``password`` may name ``"${VAR}"`` in the environment.

        :raises SettingsError: an unknown key (naming the closest valid one), no http(s)
            endpoints, user without password, a TLS file that does not exist or TLS files
            with http:// endpoints, a client certificate together with a user login, or
            any field of the wrong type or range
        """
        where = "extra.etcd"
        if not isinstance(raw, Mapping):
            raise SettingsError(f'{where} must be an object with "endpoints"')
        _check_keys(raw, {f.name for f in fields(cls)}, where)
        endpoints = raw.get("endpoints")
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if (not isinstance(endpoints, list) or not endpoints
                or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                           for u in endpoints)):
            raise SettingsError(f"{where}.endpoints must be a non-empty list of http(s) URLs")
        user = _from_env(raw.get("user", _default(cls, "user")), f"{where}.user")
        password = _from_env(raw.get("password", _default(cls, "password")),
                             f"{where}.password")
        for name, value in (("user", user), ("password", password)):
            if value is not None and not isinstance(value, str):
                raise SettingsError(f"{where}.{name} must be a string")
        if (user is None) != (password is None):
            raise SettingsError(f"{where} needs both user and password, or neither")
        timeout = raw.get("timeout", _default(cls, "timeout"))
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise SettingsError(f"{where}.timeout must be a positive number of seconds")
        files: dict[str, str | None] = {}
        for name in ("ca_file", "cert_file", "key_file"):
            value = raw.get(name, _default(cls, name))
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise SettingsError(f"{where}.{name} must be a file path")
                if not os.path.isfile(value):
                    raise SettingsError(f"{where}.{name}: no such file: {value}")
            files[name] = value
        if (files["cert_file"] is None) != (files["key_file"] is None):
            raise SettingsError(f"{where} needs both cert_file and key_file, or neither")
        if files["cert_file"] is not None and user is not None:
            # Refused here, at start-up, rather than by etcd at the first call.
            raise SettingsError(
                f"{where}: give cert_file/key_file or user/password, not both "
                "(etcd's gateway does not accept a client certificate together with a "
                "user login)")
        if any(files.values()) and not all(u.startswith("https://") for u in endpoints):
            raise SettingsError(f"{where}: ca_file/cert_file/key_file need https:// endpoints")
        coalesce = raw.get("coalesce", _default(cls, "coalesce"))
        if not isinstance(coalesce, bool):
            raise SettingsError(f"{where}.coalesce must be true or false")
        window = raw.get("coalesce_window", _default(cls, "coalesce_window"))
        if (isinstance(window, bool) or not isinstance(window, (int, float))
                or not 0 <= window <= 1):
            raise SettingsError(f"{where}.coalesce_window must be a number of seconds in [0, 1]")
        attempt = raw.get("attempt_timeout", _default(cls, "attempt_timeout"))
        if attempt is not None and (isinstance(attempt, bool)
                                    or not isinstance(attempt, (int, float))
                                    or not 0 < attempt <= timeout):
            raise SettingsError(f"{where}.attempt_timeout must be a positive number of seconds, "
                                "at most timeout")
        probing: dict[str, float] = {}
        for name, low in (("probe_interval", 0.0), ("probe_timeout", 0.1)):
            value = raw.get(name, _default(cls, name))
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not low <= value <= 60):
                raise SettingsError(f"{where}.{name} must be a number of seconds "
                                    f"in [{low:g}, 60]")
            probing[name] = float(value)
        limits: dict[str, int] = {}
        for name, least in (("max_connections", 1), ("max_queued", 0)):
            value = raw.get(name, _default(cls, name))
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SettingsError(f"{where}.{name} must be an integer of at least {least}")
            limits[name] = value
        transport = raw.get("transport", _default(cls, "transport"))
        if transport not in ("gateway", "grpc"):
            raise SettingsError(f'{where}.transport must be "gateway" or "grpc"')
        if transport == "grpc":
            try:
                from ..grpc import pb  # noqa: F401 - generates etcd's modules if needed
            except ImportError as exc:
                raise SettingsError(f'{where}.transport "grpc" needs etcdwamp[grpc]: '
                                    f"{exc}") from None
        namespace = raw.get("namespace")
        if namespace is not None and (not isinstance(namespace, str)
                                      or not namespace.endswith("/")):
            raise SettingsError(f'{where}.namespace must be a key prefix ending in "/", like '
                                '"tenant1/" (so that no namespace is a prefix of another, as '
                                '"tenant1" is of "tenant10")')
        return cls(endpoints=tuple(endpoints), timeout=float(timeout), user=user,
                   password=password, coalesce=coalesce, coalesce_window=float(window),
                   namespace=b"" if namespace is None else namespace.encode("utf-8"),
                   max_connections=limits["max_connections"],
                   max_queued=limits["max_queued"],
                   attempt_timeout=None if attempt is None else float(attempt),
                   probe_interval=probing["probe_interval"],
                   probe_timeout=probing["probe_timeout"], transport=transport, **files)


@dataclass(frozen=True)
class MapSpec:
    """One entry of ``extra.maps``."""

    name: str
    slot: int
    key_type: str = "string"
    value_type: str = "json"
    read: Roles = None
    write: Roles = None
    owner: bool = False
    #: who receives a key's change events: every role in ``read`` ("readers"), or
    #: only the sessions whose authid is the key ("owner")
    events: str = "readers"
    #: the largest encoded value a put may store (bytes)
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: the largest encoded key a put may create (bytes, without the map's prefix)
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    #: at most this many keys in the map: a put creating one more is refused (None: no cap)
    max_keys: int | None = None

    # the JSON names of the fields above
    _KEYS = frozenset({"slot", "key", "value", "read", "write", "owner", "events",
                       *_SIZE_KEYS})
    _EVENTS = frozenset({"readers", "owner"})

    @classmethod
    def parse(cls, name: Any, raw: Any) -> MapSpec:
        """Validate the entry ``name`` of ``extra.maps``.

        :raises SettingsError: a name outside a-z, 0-9 and _, an unknown key, a slot outside
            0..65535, an unknown key or value type, or ``owner``/``events: "owner"`` with keys
            that are not strings or UUIDs
        """
        where = f"extra.maps.{name}"
        if not isinstance(name, str) or not _URI_PART.match(name):
            raise SettingsError(f"{where}: map names use a-z, 0-9 and _ only")
        raw = _object(raw, where)
        _check_keys(raw, set(cls._KEYS), where)
        slot = raw.get("slot")
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= 0xFFFF:
            raise SettingsError(f"{where}.slot must be an int in [0, 65535]")
        key = raw.get("key", _default(cls, "key_type"))
        value = raw.get("value", _default(cls, "value_type"))
        if key not in KEY_TYPES:
            raise SettingsError(f"{where}.key must be one of {sorted(KEY_TYPES)}")
        if value not in VALUE_TYPES:
            raise SettingsError(f"{where}.value must be one of {sorted(VALUE_TYPES)}")
        owner = raw.get("owner", _default(cls, "owner"))
        if not isinstance(owner, bool):
            raise SettingsError(f"{where}.owner must be true or false")
        if owner and key not in ("string", "uuid"):
            raise SettingsError(f"{where}.owner needs string or uuid keys (compared with "
                                "the caller's authid)")
        events = raw.get("events", _default(cls, "events"))
        if events not in cls._EVENTS:
            raise SettingsError(f"{where}.events must be one of {sorted(cls._EVENTS)}")
        if events == "owner" and key not in ("string", "uuid"):
            raise SettingsError(f"{where}.events 'owner' needs string or uuid keys "
                                "(compared with the subscriber's authid)")
        return cls(name=name, slot=slot, key_type=key, value_type=value,
                   read=_roles(raw.get("read"), f"{where}.read"),
                   write=_roles(raw.get("write"), f"{where}.write"), owner=owner,
                   events=events, **_sizes(raw, where))

    def build(self) -> PersistentMap[Any, Any]:
        """A new :class:`PersistentMap` of this spec's key and value types in its slot."""
        cls: Any = MAP_TYPES[f"Map{KEY_TYPES[self.key_type]}{VALUE_TYPES[self.value_type]}"]
        built: PersistentMap[Any, Any] = cls(self.slot)
        return built


@dataclass(frozen=True)
class KvPrefix:
    """One entry of ``extra.kv_prefixes``: raw keys callers may reach.

    ``name`` names its topics (``<prefix>.kv.<name>.on_change``), so each
    prefix's events can carry its own read rule; by default it is the prefix
    with every run of other characters than a-z, 0-9 turned into ``_``."""

    prefix: bytes
    name: str
    read: Roles = None
    write: Roles = None
    #: this prefix lies inside another entry's on purpose (its rules take over there);
    #: without it, such an entry is refused as a likely mistake
    nested: bool = False
    #: the largest value a put may store (bytes)
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: the largest key a put may write (bytes, the whole key)
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    #: at most this many keys under the prefix: a put creating one more is refused
    max_keys: int | None = None

    @classmethod
    def parse(cls, index: int, raw: Any) -> KvPrefix:
        """Validate entry ``index`` of ``extra.kv_prefixes``: a prefix string or an object
        ``{prefix, name, read, write, nested, max_value_bytes, max_key_bytes, max_keys}``.

        :raises SettingsError: an empty prefix, a topic name outside a-z, 0-9 and _, an
            unknown key or a malformed role list
        """
        where = f"extra.kv_prefixes[{index}]"
        if isinstance(raw, str):
            raw = {"prefix": raw}
        raw = _object(raw, where)
        _check_keys(raw, {"prefix", "name", "read", "write", "nested", *_SIZE_KEYS}, where)
        prefix = _prefix_bytes(raw.get("prefix"), f"{where}.prefix")
        if not prefix:
            raise SettingsError(f"{where}.prefix must not be empty (it would expose every key)")
        name = raw.get("name")
        if name is None:
            name = re.sub(r"[^a-z0-9]+", "_", prefix.decode("utf-8", "replace").lower())
            name = name.strip("_") or f"prefix{index}"
        if not isinstance(name, str) or not _URI_PART.match(name):
            raise SettingsError(f"{where}.name must use a-z, 0-9 and _ only: {name!r}")
        nested = raw.get("nested", _default(cls, "nested"))
        if not isinstance(nested, bool):
            raise SettingsError(f"{where}.nested must be true or false")
        return cls(prefix=prefix, name=name, read=_roles(raw.get("read"), f"{where}.read"),
                   write=_roles(raw.get("write"), f"{where}.write"), nested=nested,
                   **_sizes(raw, where))

    def covers(self, key: bytes) -> bool:
        """Whether ``key`` lies under this prefix."""
        return key.startswith(self.prefix)


@dataclass(frozen=True)
class PresenceSettings:
    """``extra.presence``: per-session keys that vanish with their session."""

    prefix: bytes = b"etcdwamp/presence/"
    ttl: int = 10
    read: Roles = None
    write: Roles = None
    #: the largest stored presence value (bytes, CBOR with the authid): a status, not a file
    max_value_bytes: int = 4096
    #: keys one session may hold at once (over every instance: counted in etcd)
    max_keys: int = 16

    @classmethod
    def parse(cls, raw: Any) -> PresenceSettings | None:
        """Validate ``extra.presence``: None or false turn presence off, true takes the defaults.

        :raises SettingsError: an unknown key, an empty prefix, a ``ttl`` outside 2..3600
            seconds or a malformed role list
        """
        where = "extra.presence"
        if raw is None or raw is False:
            return None
        if raw is True:
            raw = {}
        raw = _object(raw, where)
        _check_keys(raw, {"prefix", "ttl", "read", "write", "max_value_bytes", "max_keys"},
                    where)
        prefix = _prefix_bytes(raw.get("prefix", _default(cls, "prefix").decode()),
                               f"{where}.prefix")
        if not prefix:
            raise SettingsError(f"{where}.prefix must not be empty")
        ttl = raw.get("ttl", _default(cls, "ttl"))
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 2 <= ttl <= 3600:
            raise SettingsError(f"{where}.ttl must be an int in [2, 3600] seconds")
        max_value = _positive_int(raw, "max_value_bytes", _default(cls, "max_value_bytes"),
                                  where, _ETCD_MAX_REQUEST - 64 * 1024)
        max_keys = _positive_int(raw, "max_keys", _default(cls, "max_keys"), where, 10_000)
        assert max_value is not None and max_keys is not None
        return cls(prefix=prefix, ttl=ttl, read=_roles(raw.get("read"), f"{where}.read"),
                   write=_roles(raw.get("write"), f"{where}.write"),
                   max_value_bytes=max_value, max_keys=max_keys)


def _rates(raw: Any, base: Rates, where: str) -> Rates:
    """``base`` with the fields ``raw`` names (numbers > 0, or null for no limit)."""
    raw = _object(raw, where)
    _check_keys(raw, {f.name for f in fields(Rates)}, where)
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        whole = name == "in_flight"
        allowed = int if whole else (int, float)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)
                                  or value <= 0):
            kind = "a positive int" if whole else "a positive number"
            raise SettingsError(f"{where}.{name} must be {kind} or null (no limit)")
        changes[name] = value if value is None or whole else float(value)
    return replace(base, **changes)


def _role_limits(raw: Any, base: RoleLimits, where: str) -> RoleLimits:
    raw = _object(raw, where)
    _check_keys(raw, {"session", "authid", "role"}, where)
    return RoleLimits(session=_rates(raw.get("session", {}), base.session, f"{where}.session"),
                      authid=_rates(raw.get("authid", {}), base.authid, f"{where}.authid"),
                      role=_rates(raw.get("role", {}), base.role, f"{where}.role"))


def parse_limits(raw: Any) -> LimitSettings:
    """Validate ``extra.limits`` (absent: the defaults for every role; see
    :mod:`etcdwamp.wamp.limits`)."""
    where = "extra.limits"
    if raw is None:
        return LimitSettings()
    raw = _object(raw, where)
    _check_keys(raw, {"default", "roles"}, where)
    default = _role_limits(raw.get("default", {}), RoleLimits(), f"{where}.default")
    roles: dict[str, RoleLimits | None] = {}
    for role, value in _object(raw.get("roles", {}), f"{where}.roles").items():
        if not isinstance(role, str) or not role:
            raise SettingsError(f"{where}.roles: role names are non-empty strings")
        roles[role] = None if value is None else _role_limits(value, default,
                                                              f"{where}.roles.{role}")
    return LimitSettings(default=default, roles=roles)


def _overlap(a: bytes, b: bytes) -> bool:
    return a.startswith(b) or b.startswith(a)


def _check_nesting(prefixes: list[KvPrefix]) -> None:
    """Refuse a kv prefix listed twice, or inside another entry without ``nested: true``:
    the inner entry's rules replace the outer one's for its keys, so an entry added by
    mistake (without rules) would open what the outer one guards."""
    for i, inner in enumerate(prefixes):
        for j, outer in enumerate(prefixes):
            if i == j or not inner.prefix.startswith(outer.prefix):
                continue
            shown = (f"extra.kv_prefixes[{i}] {inner.prefix.decode(errors='replace')!r} and "
                     f"extra.kv_prefixes[{j}] {outer.prefix.decode(errors='replace')!r}")
            if inner.prefix == outer.prefix:
                raise SettingsError(f"{shown} are the same prefix: list it once")
            if not inner.nested:
                raise SettingsError(f"{shown}: the first lies inside the second and its rules "
                                    "would replace the second's there; if that is meant, set "
                                    '"nested": true on the first')


@dataclass(frozen=True)
class Settings:
    """The validated ``extra`` of the component; build it with :meth:`from_extra`."""

    etcd: EtcdSettings
    prefix: str = "etcd"
    db_prefix: bytes = b""
    maps: tuple[MapSpec, ...] = ()
    kv_prefixes: tuple[KvPrefix, ...] = ()
    presence: PresenceSettings | None = None
    prev_value: bool = False
    election: bytes = b"etcdwamp/publisher"
    range_page: int = 100
    #: seconds at least between two checkpoint writes of the publisher while events
    #: stream in (a quiet publisher records at once); a successor may publish up to
    #: about that much again after a failover (at least once), and etcd is spared a
    #: write for every published batch
    checkpoint_interval: float = 0.1
    #: rates per session and per authid, by role (:mod:`etcdwamp.wamp.limits`)
    limits: LimitSettings = field(default_factory=LimitSettings)
    #: rows a non-progressive range result may carry (more: too_large)
    max_range_rows: int = 1000
    #: rows a non-progressive get_and_watch snapshot may carry (more: too_large)
    max_snapshot_rows: int = 10000
    #: estimated bytes of all read results in flight at once (more: busy)
    max_inflight_bytes: int = 32 * 1024 * 1024
    #: report to ``prometheus_client``'s default registry (:mod:`etcdwamp.wamp.prometheus`,
    #: the ``metrics`` extra); etcd is checked every ``health_interval`` seconds either
    #: way, for ``/health`` and the publisher lag (:mod:`etcdwamp.wamp.metrics_web`)
    metrics: bool = False
    health_interval: float = 5.0
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = frozenset({"etcd", "prefix", "db_prefix", "maps", "kv_prefixes", "presence",
                       "prev_value", "election", "range_page", "checkpoint_interval",
                       "limits", "max_range_rows", "max_snapshot_rows",
                       "max_inflight_bytes", "metrics", "health_interval"})

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The etcd endpoints (``extra.etcd.endpoints``)."""
        return self.etcd.endpoints

    @property
    def checkpoint_key(self) -> bytes:
        """The publisher's checkpoint without a router id, and the start of every
        router's (``<this>/<router>``, see :mod:`etcdwamp.wamp.routers`): the overlap
        checks below treat it as a prefix, so they cover every router's keys, as
        ``<election>/`` covers every router's election."""
        # Beside the election, never under "<election>/": etcd counts every key
        # under that prefix as a candidate, and a lease-less one would block
        # all campaigns behind it forever.
        return self.election + b".checkpoint"

    @classmethod
    def from_extra(cls, extra: Any) -> Settings:
        """Validate a component's whole ``extra``; keys Crossbar adds itself are ignored.

        :raises SettingsError: the first problem found, naming the field: unknown keys,
            malformed sections, a slot or topic name used twice, or kv prefixes that overlap
            the maps, the publisher's election or checkpoint, or the presence keys
        """
        if not isinstance(extra, Mapping):
            raise SettingsError("component extra must be a JSON object")
        _check_keys(extra, set(cls._KEYS), "extra", ignored=_CROSSBAR_ADDED)
        etcd = EtcdSettings.parse(extra.get("etcd"))
        prefix = extra.get("prefix", _default(cls, "prefix"))
        if not isinstance(prefix, str) or not all(_URI_PART.match(p) for p in prefix.split(".")):
            raise SettingsError(f"extra.prefix must be a WAMP URI like 'etcd': {prefix!r}")
        raw_maps = extra.get("maps", {})
        if not isinstance(raw_maps, Mapping):
            raise SettingsError("extra.maps must be an object: name -> {slot, key, value}")
        maps = [MapSpec.parse(name, spec) for name, spec in raw_maps.items()]
        slots: dict[int, str] = {}
        for spec in maps:
            if spec.slot in slots:
                raise SettingsError(f"extra.maps.{spec.name}.slot {spec.slot} is already "
                                    f"used by {slots[spec.slot]}")
            slots[spec.slot] = spec.name
        raw_kv = extra.get("kv_prefixes", [])
        if not isinstance(raw_kv, list):
            raise SettingsError("extra.kv_prefixes must be a list of prefixes")
        kv_prefixes = [KvPrefix.parse(i, p) for i, p in enumerate(raw_kv)]
        _check_nesting(kv_prefixes)
        names: dict[str, bytes] = {}
        for i, kv in enumerate(kv_prefixes):
            if kv.name in names:
                raise SettingsError(f"extra.kv_prefixes[{i}]: topic name {kv.name!r} is already "
                                    f"used by {names[kv.name].decode(errors='replace')!r}; "
                                    "give it a \"name\"")
            names[kv.name] = kv.prefix
        db_prefix = _prefix_bytes(extra.get("db_prefix", ""), "extra.db_prefix")
        election = extra.get("election", _default(cls, "election").decode())
        if not isinstance(election, str) or not election:
            raise SettingsError("extra.election must be a non-empty string")
        page = extra.get("range_page", _default(cls, "range_page"))
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 10000:
            raise SettingsError("extra.range_page must be an int in [1, 10000]")
        interval = extra.get("checkpoint_interval", _default(cls, "checkpoint_interval"))
        if (isinstance(interval, bool) or not isinstance(interval, (int, float))
                or not 0 <= interval <= 60):
            raise SettingsError("extra.checkpoint_interval must be a number of seconds in "
                                "[0, 60]")
        bounds = {name: _int_in(extra.get(name, _default(cls, name)), f"extra.{name}", low, high)
                  for name, low, high in (("max_range_rows", 1, 10**6),
                                          ("max_snapshot_rows", 1, 10**7),
                                          ("max_inflight_bytes", 2**16, 2**40))}
        prev_value = extra.get("prev_value", _default(cls, "prev_value"))
        if not isinstance(prev_value, bool):
            raise SettingsError("extra.prev_value must be true or false")
        metrics = extra.get("metrics", _default(cls, "metrics"))
        if not isinstance(metrics, bool):
            raise SettingsError("extra.metrics must be true or false")
        health = extra.get("health_interval", _default(cls, "health_interval"))
        if (isinstance(health, bool) or not isinstance(health, (int, float))
                or not 0.1 <= health <= 300):
            raise SettingsError("extra.health_interval must be a number of seconds in "
                                "[0.1, 300]")
        settings = cls(
            etcd=etcd, prefix=prefix, db_prefix=db_prefix, maps=tuple(maps),
            kv_prefixes=tuple(kv_prefixes), presence=PresenceSettings.parse(
                extra.get("presence")),
            prev_value=prev_value, election=election.encode(), range_page=page,
            checkpoint_interval=float(interval), limits=parse_limits(extra.get("limits")),
            metrics=metrics, health_interval=float(health), **bounds, extra=dict(extra),
        )
        settings._check_disjoint()
        return settings

    def _check_disjoint(self) -> None:
        """Raw keys must never reach the maps, the publisher's election and
        checkpoint, or presence keys: those have rules of their own."""
        reserved: list[tuple[str, bytes]] = [
            ("db_prefix (the maps)", self.db_prefix),
            ("the election", self.election + b"/"),
            ("the publisher checkpoint", self.checkpoint_key),
        ]
        if self.presence is not None:
            reserved.append(("presence.prefix", self.presence.prefix))
        for i, kv in enumerate(self.kv_prefixes):
            for what, taken in reserved:
                if _overlap(kv.prefix, taken):
                    raise SettingsError(
                        f"extra.kv_prefixes[{i}] {kv.prefix.decode(errors='replace')!r} "
                        f"overlaps {what} {taken.decode(errors='replace')!r}: raw keys "
                        "must stay out of the component's own keys")
        # The maps occupy db_prefix + slot; the publisher's keys and presence
        # keys must not fall inside a configured map.
        own = [("the election", self.election + b"/"),
               ("the publisher checkpoint", self.checkpoint_key)]
        if self.presence is not None:
            own.append(("presence.prefix", self.presence.prefix))
            for what, taken in own[:2]:
                if _overlap(self.presence.prefix, taken):
                    raise SettingsError(
                        f"extra.presence.prefix {self.presence.prefix.decode()!r} overlaps "
                        f"{what} {taken.decode(errors='replace')!r}")
        for spec in self.maps:
            base = self.db_prefix + spec.slot.to_bytes(2, "big")
            for what, taken in own:
                if _overlap(base, taken):
                    raise SettingsError(
                        f"{what} {taken.decode(errors='replace')!r} lies inside map "
                        f"{spec.name!r} (db_prefix + slot {spec.slot}): move it out of "
                        "extra.db_prefix")
