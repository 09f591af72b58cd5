"""Frozen dataclasses for gateway responses, and the parsers that build them.

Each parser takes the decoded JSON object of a 200 answer. The gateway omits
every field that holds its default (0, false, empty), so a missing field is
never an error here; a field of the wrong type is a :class:`ProtocolError`.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from .encoding import get_bool, get_bytes, get_int

__all__ = [
    "CompactResult",
    "DeleteResult",
    "Header",
    "KeyValue",
    "LeaseGrantResult",
    "LeaseInfo",
    "LeaseRevokeResult",
    "PutResult",
    "RangeResult",
    "StatusResult",
    "TxnResult",
    "parse_compact",
    "parse_delete",
    "parse_header",
    "parse_key_value",
    "parse_put",
    "parse_range",
    "parse_status",
    "parse_txn",
]

JSON = Mapping[str, Any]

_a2b = binascii.a2b_base64


@dataclass(frozen=True, slots=True)
class Header:
    """Which cluster and member answered, at which store revision and Raft term."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True, eq=False)
class KeyValue:
    """One stored key: its value, revisions, version and lease; immutable.

    Key-values parsed from an answer decode ``key`` and ``value`` at once (a
    bad base64 field is a :class:`ProtocolError` there) and their four numbers
    on first use of any of them (a malformed one raises :class:`ProtocolError`
    then): a range of thousands of keys is mostly read for keys and values,
    and converting numbers nobody asked for was half of its decoding time.
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    def _fields(self) -> tuple[bytes, bytes, int, int, int, int]:
        return (self.key, self.value, self.create_revision, self.mod_revision, self.version,
                self.lease)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyValue):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return ("KeyValue(key={!r}, value={!r}, create_revision={}, mod_revision={}, "
                "version={}, lease={})").format(*self._fields())


# The slots of KeyValue's four numbers, read and written below the properties
# of _ParsedKeyValue that shadow them.
_NUMBER_SLOTS = tuple(KeyValue.__dict__[name] for name in
                      ("create_revision", "mod_revision", "version", "lease"))
_JSON_NAMES = ("create_revision", "mod_revision", "version", "lease")


def _number(index: int) -> property:
    slot = _NUMBER_SLOTS[index]

    def get(self: _ParsedKeyValue) -> int:
        try:
            value: int = slot.__get__(self)
        except AttributeError:
            self._decode_numbers()
            value = slot.__get__(self)
        return value

    def set_(self: _ParsedKeyValue, value: int) -> None:
        slot.__set__(self, value)  # dataclass __init__/replace/unpickling

    return property(get, set_)


class _ParsedKeyValue(KeyValue):
    """A :class:`KeyValue` from a gateway answer, its numbers decoded on first use."""

    __slots__ = ("_json",)

    create_revision = _number(0)
    mod_revision = _number(1)
    version = _number(2)
    lease = _number(3)

    def _decode_numbers(self) -> None:
        obj = _JSON_SLOT.__get__(self)
        for slot, name in zip(_NUMBER_SLOTS, _JSON_NAMES, strict=True):
            slot.__set__(self, get_int(obj, name))
        _JSON_SLOT.__set__(self, None)  # the answer's dict is not needed any more


_new = object.__new__
_JSON_SLOT: Any = _ParsedKeyValue.__dict__["_json"]
_set_json = _JSON_SLOT.__set__
_set_key = KeyValue.__dict__["key"].__set__
_set_value = KeyValue.__dict__["value"].__set__


def _parsed_kv(obj: dict[str, Any], key: bytes, value: bytes) -> KeyValue:
    kv = _new(_ParsedKeyValue)
    _set_key(kv, key)
    _set_value(kv, value)
    _set_json(kv, obj)
    return kv


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A range's answer: ``kvs`` as served (at most ``limit``), ``more`` if the limit cut it
    short, ``count`` the number of keys in the whole range.

    ``kvs`` is a sequence of :class:`KeyValue`: index, iterate, ``len``; slices give
    tuples. The gateway's is a tuple; gRPC's builds each key-value on first use
    (:class:`etcdwamp.grpc.keyvalues.KeyValues`), equal to and hashed as the tuple.
    """

    header: Header
    kvs: Sequence[KeyValue]
    more: bool
    count: int

    @property
    def revision(self) -> int:
        """The store revision the range was served at."""
        return self.header.revision

    @property
    def first(self) -> KeyValue | None:
        """The first key-value served, or None if the range is empty."""
        return self.kvs[0] if self.kvs else None


@dataclass(frozen=True, slots=True)
class PutResult:
    """A put's answer; ``prev_kv`` is the key's previous state if asked for (``prev_kv=True``)."""

    header: Header
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        """The revision this put created."""
        return self.header.revision


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A delete's answer: how many keys were ``deleted``, and their previous states if asked for."""

    header: Header
    deleted: int
    prev_kvs: tuple[KeyValue, ...]

    @property
    def revision(self) -> int:
        """The store revision after the delete."""
        return self.header.revision


@dataclass(frozen=True, slots=True)
class TxnResult:
    """``succeeded`` tells which branch ran; ``responses`` has one result per op of it."""

    header: Header
    succeeded: bool
    responses: tuple[OpResult, ...]

    @property
    def revision(self) -> int:
        """The store revision after the transaction."""
        return self.header.revision


OpResult = RangeResult | PutResult | DeleteResult | TxnResult


@dataclass(frozen=True, slots=True)
class CompactResult:
    """A compaction's answer: only the header."""

    header: Header


@dataclass(frozen=True, slots=True)
class StatusResult:
    """A member's status: its etcd version, database sizes, Raft position and leader, errors."""

    header: Header
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    db_size_in_use: int
    is_learner: bool
    errors: tuple[str, ...]

    @property
    def revision(self) -> int:
        """The store revision at the answering member."""
        return self.header.revision


@dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    """A granted lease: its ``id`` and the ``ttl`` in seconds etcd chose."""

    header: Header
    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResult:
    """A revocation's answer: only the header."""

    header: Header


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """TimeToLive answer: ``ttl`` is -1 once the lease has expired or was revoked."""

    header: Header
    id: int
    ttl: int
    granted_ttl: int
    keys: tuple[bytes, ...]


def _obj(value: Any, what: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} should be a JSON object, got {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProtocolError(f"{what} should be a JSON array, got {value!r}")
    return value


def parse_header(obj: JSON) -> Header:
    """The header of an answer; missing fields are 0. Raises :class:`ProtocolError` for bad ones."""
    h = obj.get("header")
    if type(h) is dict:  # the shape json.loads produces: the fast path
        try:
            return Header(int(h.get("cluster_id", "0"), 10), int(h.get("member_id", "0"), 10),
                          int(h.get("revision", "0"), 10), int(h.get("raft_term", "0"), 10))
        except (TypeError, ValueError):
            pass  # the checked path below explains what is wrong
    h = _obj(h, "header")
    return Header(
        cluster_id=get_int(h, "cluster_id"),
        member_id=get_int(h, "member_id"),
        revision=get_int(h, "revision"),
        raft_term=get_int(h, "raft_term"),
    )


def parse_key_value(obj: JSON) -> KeyValue:
    """One key-value of an answer. Raises :class:`ProtocolError` for a malformed one."""
    if type(obj) is dict:
        # Fast path for well-formed answers (ranges of many keys spend most of
        # their time here); a failure falls through to the checked path
        # below, which raises the precise ProtocolError.
        get = obj.get
        try:
            return _parsed_kv(obj, _a2b(get("key", ""), strict_mode=True),
                              _a2b(get("value", ""), strict_mode=True))
        except (TypeError, ValueError):  # binascii.Error is a ValueError
            pass
    obj = _obj(obj, "kv")
    return KeyValue(
        key=get_bytes(obj, "key"),
        value=get_bytes(obj, "value"),
        create_revision=get_int(obj, "create_revision"),
        mod_revision=get_int(obj, "mod_revision"),
        version=get_int(obj, "version"),
        lease=get_int(obj, "lease"),
    )


def _kvs(obj: JSON, name: str) -> tuple[KeyValue, ...]:
    raw = obj.get(name)
    if raw is None:
        return ()
    if type(raw) is list:
        # One loop with everything bound locally: this runs once per key of
        # a range, so each attribute lookup saved counts.
        a2b, new, cls = _a2b, _new, _ParsedKeyValue
        set_key, set_value, set_json = _set_key, _set_value, _set_json
        out: list[KeyValue] = []
        append = out.append
        try:
            for kv in raw:
                parsed = new(cls)
                set_key(parsed, a2b(kv["key"], strict_mode=True))  # etcd keys are never empty
                try:
                    set_value(parsed, a2b(kv["value"], strict_mode=True))
                except KeyError:  # the gateway omits empty values
                    set_value(parsed, b"")
                set_json(parsed, kv)
                append(parsed)
            return tuple(out)
        except (TypeError, ValueError, KeyError):
            pass  # the checked path explains what is wrong
    return tuple(parse_key_value(kv) for kv in _list(raw, name))


def parse_range(obj: JSON) -> RangeResult:
    """A RangeResponse. Raises :class:`ProtocolError` for a malformed one."""
    return RangeResult(
        header=parse_header(obj),
        kvs=_kvs(obj, "kvs"),
        more=get_bool(obj, "more"),
        count=get_int(obj, "count"),
    )


def parse_put(obj: JSON) -> PutResult:
    """A PutResponse. Raises :class:`ProtocolError` for a malformed one."""
    prev = obj.get("prev_kv")
    return PutResult(
        header=parse_header(obj),
        prev_kv=None if prev is None else parse_key_value(prev),
    )


def parse_delete(obj: JSON) -> DeleteResult:
    """A DeleteRangeResponse. Raises :class:`ProtocolError` for a malformed one."""
    return DeleteResult(
        header=parse_header(obj),
        deleted=get_int(obj, "deleted"),
        prev_kvs=_kvs(obj, "prev_kvs"),
    )


def _parse_op_response(obj: JSON, outer: Header) -> OpResult:
    obj = _obj(obj, "response op")
    # Inner responses of a txn carry at most a partial header (revision only);
    # the txn's header is the one that applies to all of them.
    for name, parse in (
        ("response_range", parse_range),
        ("response_put", parse_put),
        ("response_delete_range", parse_delete),
    ):
        if name in obj:
            inner = dict(_obj(obj[name], name))
            inner["header"] = _header_json(outer)
            return parse(inner)
    if "response_txn" in obj:
        inner = dict(_obj(obj["response_txn"], "response_txn"))
        inner["header"] = _header_json(outer)
        return parse_txn(inner)
    raise ProtocolError(f"unknown txn response op: {sorted(obj)}")


def _header_json(h: Header) -> dict[str, str]:
    return {
        "cluster_id": str(h.cluster_id),
        "member_id": str(h.member_id),
        "revision": str(h.revision),
        "raft_term": str(h.raft_term),
    }


def parse_txn(obj: JSON) -> TxnResult:
    """A TxnResponse, each inner response carrying the transaction's header.

    Raises :class:`ProtocolError` for a malformed answer or an unknown response op.
    """
    header = parse_header(obj)
    return TxnResult(
        header=header,
        succeeded=get_bool(obj, "succeeded"),
        responses=tuple(
            _parse_op_response(r, header) for r in _list(obj.get("responses"), "responses")
        ),
    )


def parse_compact(obj: JSON) -> CompactResult:
    """A CompactionResponse. Raises :class:`ProtocolError` for a malformed header."""
    return CompactResult(header=parse_header(obj))


def _str(obj: JSON, name: str) -> str:
    raw = obj.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ProtocolError(f"field {name!r} should be a string, got {raw!r}")
    return raw


def parse_status(obj: JSON) -> StatusResult:
    """A StatusResponse, accepting camelCase and snake_case field names.

    Raises :class:`ProtocolError` for a malformed answer.
    """
    errors = _list(obj.get("errors"), "errors")
    return StatusResult(
        header=parse_header(obj),
        version=_str(obj, "version"),
        db_size=get_int(obj, "dbSize") or get_int(obj, "db_size"),
        leader=get_int(obj, "leader"),
        raft_index=get_int(obj, "raftIndex") or get_int(obj, "raft_index"),
        raft_term=get_int(obj, "raftTerm") or get_int(obj, "raft_term"),
        raft_applied_index=(get_int(obj, "raftAppliedIndex")
                            or get_int(obj, "raft_applied_index")),
        db_size_in_use=get_int(obj, "dbSizeInUse") or get_int(obj, "db_size_in_use"),
        is_learner=get_bool(obj, "isLearner") or get_bool(obj, "is_learner"),
        errors=tuple(str(e) for e in errors),
    )


def parse_lease_grant(obj: JSON) -> LeaseGrantResult:
    if obj.get("error"):
        raise ProtocolError(f"lease grant failed: {obj['error']}")
    return LeaseGrantResult(header=parse_header(obj), id=get_int(obj, "ID"),
                            ttl=get_int(obj, "TTL"))


def parse_lease_revoke(obj: JSON) -> LeaseRevokeResult:
    return LeaseRevokeResult(header=parse_header(obj))


def parse_lease_info(obj: JSON) -> LeaseInfo:
    keys = tuple(get_bytes({"k": k}, "k") for k in _list(obj.get("keys"), "keys"))
    return LeaseInfo(
        header=parse_header(obj),
        id=get_int(obj, "ID"),
        ttl=get_int(obj, "TTL"),
        granted_ttl=get_int(obj, "grantedTTL"),
        keys=keys,
    )
