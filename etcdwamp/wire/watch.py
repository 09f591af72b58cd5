"""Watch streams: request bodies and an incremental, sans-IO frame decoder.

The gateway answers ``POST /v3/watch`` with a never-ending HTTP body holding
one JSON object per message, each followed by a newline::

    {"result":{"header":{...},"watch_id":"1","events":[...]}}\\n

TCP chunks do not respect those boundaries: a chunk may end inside a frame or
hold several frames. :class:`WatchDecoder` keeps the unfinished tail between
``feed()`` calls, so frames are never lost or split.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors as e
from .encoding import b64, get_bool, get_int, int64, require_int, set_flags
from .errors import stream_error
from .keyset import KeySet, as_keyset
from .results import Header, KeyValue, parse_header, parse_key_value

__all__ = [
    "EventType",
    "JsonLinesDecoder",
    "WatchDecoder",
    "WatchEvent",
    "WatchFilter",
    "WatchResponse",
    "parse_watch_frame",
    "watch_cancel_body",
    "watch_create_body",
]

# A frame larger than this is not a watch message but a broken stream; etcd's
# own responses are bounded by its request limit plus the events of a revision.
MAX_FRAME_BYTES = 256 * 1024 * 1024


class EventType(enum.Enum):
    """Whether a watch event is a put or a delete."""

    PUT = "PUT"
    DELETE = "DELETE"


class WatchFilter(enum.Enum):
    """Event kinds the server should *not* send."""

    NOPUT = "NOPUT"
    NODELETE = "NODELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change of a key: ``kv`` after it (for a delete: the key and the delete's revision),
    ``prev_kv`` before it when the watch asked for ``prev_kv``.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        """The revision of the change (for a delete: the revision of the delete)."""
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One message of a watch stream: all events of it belong together."""

    header: Header
    watch_id: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    fragment: bool
    events: tuple[WatchEvent, ...]

    @property
    def is_progress_notify(self) -> bool:
        """A progress notification: no events, only "you are current up to header.revision"."""
        return not (self.events or self.created or self.canceled or self.compact_revision)


def watch_create_body(
    key_or_keyset: bytes | KeySet,
    *,
    start_revision: int = 0,
    prev_kv: bool = False,
    filters: Iterable[WatchFilter | str] = (),
    progress_notify: bool = False,
    watch_id: int = 0,
    fragment: bool = False,
) -> dict[str, Any]:
    """The JSON of a WatchCreateRequest for a key or :class:`KeySet`.

    ``start_revision`` 0 watches from now; ``filters`` name event kinds etcd should not send;
    ``progress_notify`` asks for periodic empty responses carrying the current revision;
    ``watch_id`` 0 lets etcd number the watch. Raises ``TypeError``/``ValueError`` for a bad
    key, revision, id, filter or flag.
    """
    keyset = as_keyset(key_or_keyset)
    key, range_end = keyset.resolve()
    req: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        req["range_end"] = b64(range_end)
    if require_int(start_revision, "start_revision", minimum=0):
        req["start_revision"] = int64(start_revision)
    names = []
    for f in filters:
        if isinstance(f, str):
            try:
                f = WatchFilter[f.upper()]
            except KeyError:
                raise ValueError(f"watch filter must be NOPUT or NODELETE, got {f!r}") from None
        if not isinstance(f, WatchFilter):
            raise TypeError(f"watch filters must be WatchFilter, not {type(f).__name__}")
        names.append(f.value)
    if names:
        req["filters"] = names
    set_flags(req, prev_kv=prev_kv, progress_notify=progress_notify, fragment=fragment)
    if require_int(watch_id, "watch_id", minimum=0):
        req["watch_id"] = int64(watch_id)
    return {"create_request": req}


def watch_cancel_body(watch_id: int) -> dict[str, Any]:
    """The JSON of a WatchCancelRequest for ``watch_id`` (>= 0)."""
    return {"cancel_request": {"watch_id": int64(require_int(watch_id, "watch_id", minimum=0))}}


def _parse_event(obj: Mapping[str, Any]) -> WatchEvent:
    if not isinstance(obj, Mapping):
        raise e.ProtocolError(f"watch event should be an object, got {obj!r}")
    raw_type = obj.get("type", "PUT")  # PUT is the enum default, so it is omitted
    try:
        kind = EventType(raw_type)
    except ValueError:
        raise e.ProtocolError(f"unknown watch event type {raw_type!r}") from None
    prev = obj.get("prev_kv")
    return WatchEvent(type=kind, kv=parse_key_value(obj.get("kv") or {}),
                      prev_kv=None if prev is None else parse_key_value(prev))


def parse_watch_frame(obj: Any) -> WatchResponse:
    """One decoded frame → :class:`WatchResponse`; an error frame raises ``ServerError``."""
    if not isinstance(obj, Mapping):
        raise e.ProtocolError(f"watch frame should be a JSON object, got {obj!r}")
    if "error" in obj:
        raise stream_error(obj["error"])
    result = obj.get("result")
    if not isinstance(result, Mapping):
        raise e.ProtocolError(f"watch frame without a result: {obj!r}")
    events = result.get("events") or []
    if not isinstance(events, list):
        raise e.ProtocolError(f"watch events should be a list, got {events!r}")
    reason = result.get("cancel_reason", "")
    return WatchResponse(
        header=parse_header(result),
        watch_id=get_int(result, "watch_id"),
        created=get_bool(result, "created"),
        canceled=get_bool(result, "canceled"),
        compact_revision=get_int(result, "compact_revision"),
        cancel_reason=reason if isinstance(reason, str) else str(reason),
        fragment=get_bool(result, "fragment"),
        events=tuple(_parse_event(ev) for ev in events),
    )


class JsonLinesDecoder:
    """Incremental decoder of a gateway stream: ``feed(chunk)`` returns the JSON
    values completed by it, or a :class:`ProtocolError` in place of a bad frame."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held back."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Any]:
        """Append ``chunk``; return the values of the frames it completed, in order.

        A frame that is not JSON, or an unfinished one beyond ``max_frame_bytes`` (then dropped),
        is returned as a :class:`ProtocolError` instead of raised.
        """
        self._buffer += chunk
        out: list[Any] = []
        start = 0
        while True:
            nl = self._buffer.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(self._buffer[start:nl]).strip()
            start = nl + 1
            if line:
                out.append(self._decode(line))
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            self._buffer.clear()
            out.append(e.ProtocolError(f"stream frame exceeds {self._max} bytes"))
        return out

    def close(self) -> list[Any]:
        """The stream ended: a last frame without its newline still counts."""
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        return [self._decode(line)] if line else []

    def _decode(self, line: bytes) -> Any:
        try:
            return json.loads(line)
        except ValueError:
            return e.ProtocolError(f"stream frame is not JSON: {line[:200]!r}")


class WatchDecoder(JsonLinesDecoder):
    """Incremental watch-stream decoder: ``feed(chunk)`` returns the
    :class:`WatchResponse` objects completed by it.

    Error frames are returned as exception instances (not raised) so frames
    decoded before them in the same chunk are not lost.
    """

    def feed(self, chunk: bytes) -> list[WatchResponse | e.EtcdError]:
        """Append ``chunk``; return the responses (or errors) of the frames it completed."""
        return [self._response(obj) for obj in super().feed(chunk)]

    def close(self) -> list[WatchResponse | e.EtcdError]:
        """The stream ended: a last frame without its newline still counts."""
        return [self._response(obj) for obj in super().close()]

    @staticmethod
    def _response(obj: Any) -> WatchResponse | e.EtcdError:
        if isinstance(obj, e.EtcdError):
            return obj
        try:
            return parse_watch_frame(obj)
        except e.EtcdError as exc:
            return exc
