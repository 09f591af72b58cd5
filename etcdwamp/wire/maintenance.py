"""etcd's Maintenance service as data: alarms, defragmentation, hashes,
leadership transfer, and the incremental decoder of a snapshot stream."""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors as e
from .encoding import get_int, int64, require_int
from .errors import stream_error
from .requests import Request
from .results import Header, parse_header
from .watch import JsonLinesDecoder

__all__ = [
    "Alarm",
    "AlarmMember",
    "AlarmResult",
    "DefragmentResult",
    "HashKVResult",
    "HashResult",
    "MoveLeaderResult",
    "SnapshotChunk",
    "SnapshotDecoder",
    "alarm_disarm_request",
    "alarm_list_request",
    "defragment_request",
    "hash_kv_request",
    "hash_request",
    "move_leader_request",
    "parse_alarms",
    "parse_hash",
    "parse_hash_kv",
]

_UINT64_MAX = 2**64 - 1


class Alarm(enum.Enum):
    """A kind of cluster alarm; ``NONE`` is etcd's zero value, never a raised alarm."""

    NONE = "NONE"
    #: the backend exceeded ``--quota-backend-bytes``; writes fail until disarmed
    NOSPACE = "NOSPACE"
    #: a member's data diverged from the others (``--experimental-corrupt-check``)
    CORRUPT = "CORRUPT"


@dataclass(frozen=True, slots=True)
class AlarmMember:
    """One raised alarm: which member and what kind."""

    member_id: int
    alarm: Alarm


@dataclass(frozen=True, slots=True)
class AlarmResult:
    """The alarms raised (list), or the ones a disarm deactivated."""

    header: Header
    alarms: tuple[AlarmMember, ...]


@dataclass(frozen=True, slots=True)
class DefragmentResult:
    """A defragmentation's answer: only the header."""

    header: Header


@dataclass(frozen=True, slots=True)
class HashResult:
    """``Maintenance.Hash``: a hash of the member's whole backend."""

    header: Header
    hash: int


@dataclass(frozen=True, slots=True)
class HashKVResult:
    """``Maintenance.HashKV``: a hash of the key space up to ``revision``;
    equal on every member that applied the same history."""

    header: Header
    hash: int
    compact_revision: int


@dataclass(frozen=True, slots=True)
class MoveLeaderResult:
    """A leadership transfer's answer: only the header."""

    header: Header


def _alarm(value: object) -> Alarm:
    if isinstance(value, Alarm):
        return value
    if isinstance(value, str):
        try:
            return Alarm[value.upper()]
        except KeyError:
            pass
    raise ValueError(f"alarm must be one of NONE, NOSPACE, CORRUPT, got {value!r}")


def parse_alarms(obj: Mapping[str, Any]) -> AlarmResult:
    """An AlarmResponse (a missing alarm field is ``NONE``, etcd's zero value).

    Raises :class:`ProtocolError` for a malformed answer or an unknown alarm.
    """
    raw = obj.get("alarms") or []
    if not isinstance(raw, list):
        raise e.ProtocolError(f"alarms should be a JSON array, got {raw!r}")
    alarms = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise e.ProtocolError(f"an alarm should be a JSON object, got {item!r}")
        # The gateway leaves out the zero value, so an alarm field is missing for NONE.
        name = item.get("alarm", "NONE")
        try:
            kind = _alarm(name)
        except ValueError as exc:
            raise e.ProtocolError(f"unknown alarm {name!r}") from exc
        alarms.append(AlarmMember(member_id=get_int(item, "memberID"), alarm=kind))
    return AlarmResult(header=parse_header(obj), alarms=tuple(alarms))


def alarm_list_request() -> Request[AlarmResult]:
    """A ``/maintenance/alarm`` call listing every raised alarm."""
    return Request("/maintenance/alarm", {"action": "GET"}, parse_alarms, idempotent=True)


def alarm_activate_request(member_id: int, alarm: Alarm | str) -> Request[AlarmResult]:
    """Raise ``alarm`` on ``member_id`` as etcd itself would (a NOSPACE alarm refuses
    every write until disarmed): for testing how a program copes with one."""
    kind = _alarm(alarm)
    if kind is Alarm.NONE:
        raise ValueError("name the alarm to activate (NOSPACE or CORRUPT)")
    body = {"action": "ACTIVATE",
            "memberID": int64(require_int(member_id, "member_id", minimum=1,
                                          maximum=_UINT64_MAX)),
            "alarm": kind.value}
    # Raising an alarm that is raised changes nothing, so a resend is harmless.
    return Request("/maintenance/alarm", body, parse_alarms, idempotent=True)


def alarm_disarm_request(member_id: int, alarm: Alarm | str) -> Request[AlarmResult]:
    """Deactivate ``alarm`` on ``member_id`` (both as listed by :func:`alarm_list_request`)."""
    kind = _alarm(alarm)
    if kind is Alarm.NONE:
        raise ValueError("name the alarm to disarm (NOSPACE or CORRUPT)")
    body = {"action": "DEACTIVATE",
            "memberID": int64(require_int(member_id, "member_id", minimum=1,
                                          maximum=_UINT64_MAX)),
            "alarm": kind.value}
    return Request("/maintenance/alarm", body, parse_alarms, idempotent=True)


def defragment_request() -> Request[DefragmentResult]:
    """A ``/maintenance/defragment`` call for the member it is sent to, without the client's
    default deadline (defragmenting blocks the member for a while); cancellable.
    """
    # Defragmenting a large backend blocks the member for a while: no deadline of
    # the client's default length (the caller's Deferred can still be cancelled).
    return Request("/maintenance/defragment", {},
                   lambda obj: DefragmentResult(header=parse_header(obj)),
                   idempotent=True, timeout=float("inf"))


def _hash_value(obj: Mapping[str, Any]) -> int:
    value = get_int(obj, "hash")
    if not 0 <= value < 2**32:
        raise e.ProtocolError(f"hash should be a uint32, got {value}")
    return value


def parse_hash(obj: Mapping[str, Any]) -> HashResult:
    """A HashResponse. Raises :class:`ProtocolError` if malformed (or not a uint32 hash)."""
    return HashResult(header=parse_header(obj), hash=_hash_value(obj))


def parse_hash_kv(obj: Mapping[str, Any]) -> HashKVResult:
    """A HashKVResponse. Raises :class:`ProtocolError` if malformed (or not a uint32 hash)."""
    return HashKVResult(header=parse_header(obj), hash=_hash_value(obj),
                        compact_revision=get_int(obj, "compact_revision"))


def hash_request() -> Request[HashResult]:
    """A ``/maintenance/hash`` call for the hash of the answering member's whole backend."""
    return Request("/maintenance/hash", {}, parse_hash, idempotent=True)


#: The path HashKV has on gateways that route it (etcd 3.4's gateway maps
#: HashKV onto ``/maintenance/hash`` too, where Hash answers instead).
HASH_KV_PATH = "/maintenance/hashkv"


def hash_kv_request(revision: int = 0) -> Request[HashKVResult]:
    """HashKV at ``revision`` (0: the latest)."""
    rev = require_int(revision, "revision", minimum=0)
    return Request(HASH_KV_PATH, {"revision": int64(rev)}, parse_hash_kv, idempotent=True)


def move_leader_request(target: int) -> Request[MoveLeaderResult]:
    """Transfer leadership to member ``target``; must be sent to the current leader."""
    body = {"targetID": int64(require_int(target, "member_id", minimum=1,
                                          maximum=_UINT64_MAX))}
    return Request("/maintenance/transfer-leadership", body,
                   lambda obj: MoveLeaderResult(header=parse_header(obj)), idempotent=True)


#: the path of the streamed snapshot (relative to the gateway prefix)
SNAPSHOT_PATH = "/maintenance/snapshot"


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One frame of the snapshot stream: ``blob`` bytes of the backend, and
    how many are still to come (0 on the last frame)."""

    blob: bytes
    remaining_bytes: int


class SnapshotDecoder:
    """``feed(bytes)`` returns the :class:`SnapshotChunk` frames completed by it;
    an error frame or a malformed one raises (etcd aborted the snapshot)."""

    def __init__(self, max_frame_bytes: int = 16 * 1024 * 1024) -> None:
        self._lines = JsonLinesDecoder(max_frame_bytes)

    def feed(self, data: bytes) -> list[SnapshotChunk]:
        """Append ``data``; return the chunks of the frames it completed, in order.

        :raises ServerError: etcd sent an error frame (it aborted the snapshot)
        :raises ProtocolError: a malformed or oversized frame
        """
        return [self._chunk(frame) for frame in self._lines.feed(data)]

    def close(self) -> list[SnapshotChunk]:
        """The stream ended: a last frame without its newline still counts.

        :raises ServerError: that frame is an error frame
        :raises ProtocolError: that frame is malformed
        """
        return [self._chunk(frame) for frame in self._lines.close()]

    @staticmethod
    def _chunk(frame: Any) -> SnapshotChunk:
        if isinstance(frame, e.EtcdError):
            raise frame
        if not isinstance(frame, Mapping):
            raise e.ProtocolError(f"snapshot frame should be a JSON object, got {frame!r}")
        if frame.get("error"):
            raise stream_error(frame["error"])
        result = frame.get("result")
        if not isinstance(result, Mapping):
            raise e.ProtocolError(f"snapshot frame without a result: {str(frame)[:200]}")
        raw = result.get("blob", "")
        if not isinstance(raw, str):
            raise e.ProtocolError(f"snapshot blob should be base64, got {raw!r}"[:200])
        try:
            blob = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise e.ProtocolError("snapshot blob is not valid base64") from exc
        return SnapshotChunk(blob=blob, remaining_bytes=get_int(result, "remaining_bytes"))
