"""The resume bookkeeping of a watch stream, as pure state (no I/O).

A watch stream carries one create request per key set (watch id = its index
in the stream's list). :class:`WatchState` remembers, per key set, the
revision to resume from: after the last delivered event, after the last
progress notification, or after the revision the watch was created at. Feed it
each decoded frame with :meth:`WatchState.receive`; it answers what the frame
means for the caller (a batch to deliver, "every key set created", an error
that ends the stream, or nothing), and :meth:`WatchState.create_body` builds
the body that re-creates every key set exactly where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import (
    EtcdError,
    ProtocolError,
    Unauthenticated,
    WatchCanceled,
    WatchCompacted,
)
from .keyset import KeySet
from .watch import WatchEvent, WatchFilter, WatchResponse, watch_create_body

__all__ = ["ALL_CREATED", "AllCreated", "WatchBatch", "WatchState", "WatchTarget",
           "stream_body", "token_refused"]

_compact = json.JSONEncoder(separators=(",", ":")).encode


def stream_body(requests: Iterable[Mapping[str, Any]]) -> bytes:
    """The gateway's body of a stream's first requests (their JSON objects): compact
    JSON, one after another."""
    return b"".join(_compact(request).encode() for request in requests)


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """The events of one etcd watch response, delivered together.

    ``revision`` is the store revision of the response header; every event's
    own revision is ``event.revision`` (a batch may span several revisions
    when catching up from an old ``start_revision``; a revision is never split).
    """

    keyset: KeySet
    revision: int
    events: tuple[WatchEvent, ...]


class AllCreated:
    """What :meth:`WatchState.receive` answers once etcd confirmed every key set."""

    def __repr__(self) -> str:
        return "ALL_CREATED"


ALL_CREATED = AllCreated()


@dataclass(slots=True)
class WatchTarget:
    """One watched key set and the revision it resumes from; ``created`` once etcd confirmed it."""

    keyset: KeySet
    next_revision: int  # 0: "from now" (not yet created)
    created: bool = False


def token_refused(reason: str) -> bool:
    """Whether a cancel reason is etcd refusing the stream's auth token (the
    gRPC status travels only as text inside the reason)."""
    return "code = Unauthenticated" in reason or "invalid auth token" in reason


class WatchState:
    """Per key set resume revisions of one watch, and the frame handling of
    its current stream (:meth:`start_stream` begins one)."""

    def __init__(self, keysets: Sequence[KeySet], start_revision: int = 0) -> None:
        self.targets = [WatchTarget(ks, start_revision) for ks in keysets]
        self._stream: list[WatchTarget] = list(self.targets)

    @property
    def keysets(self) -> tuple[KeySet, ...]:
        """The watched key sets, in watch-id order."""
        return tuple(t.keyset for t in self.targets)

    def resume_revision(self, keyset: KeySet) -> int:
        """The revision ``keyset`` resumes from (0 = not created yet).

        :raises KeyError: ``keyset`` is not watched
        """
        for t in self.targets:
            if t.keyset == keyset:
                return t.next_revision
        raise KeyError(keyset)

    def __contains__(self, keyset: object) -> bool:
        return any(t.keyset == keyset for t in self.targets)

    def add(self, keyset: KeySet, start_revision: int) -> None:
        """Watch one more key set (from the next stream on)."""
        if keyset in self:
            raise ValueError(f"{keyset!r} is already watched")
        self.targets.append(WatchTarget(keyset, start_revision))

    def remove(self, keyset: KeySet) -> None:
        """Stop watching ``keyset`` (from the next stream on).

        :raises KeyError: ``keyset`` is not watched
        """
        remaining = [t for t in self.targets if t.keyset != keyset]
        if len(remaining) == len(self.targets):
            raise KeyError(keyset)
        self.targets = remaining

    def create_requests(self, *, prev_kv: bool = False,
                        filters: Iterable[WatchFilter | str] = (),
                        progress_notify: bool = True) -> list[dict[str, Any]]:
        """The create requests (the JSON of :func:`~.watch.watch_create_body`) of a
        stream that (re-)creates every key set at its resume revision; watch id
        ``i`` is the ``i``-th key set."""
        filters = tuple(filters)
        return [watch_create_body(t.keyset, start_revision=t.next_revision, prev_kv=prev_kv,
                                  filters=filters, progress_notify=progress_notify,
                                  watch_id=wid)
                for wid, t in enumerate(self.targets)]

    def create_body(self, *, prev_kv: bool = False, filters: Iterable[WatchFilter | str] = (),
                    progress_notify: bool = True) -> bytes:
        """:meth:`create_requests` as the gateway's request body (concatenated JSON)."""
        return stream_body(self.create_requests(prev_kv=prev_kv, filters=filters,
                                                progress_notify=progress_notify))

    def start_stream(self) -> None:
        """A new stream is opened with :meth:`create_body`'s key sets: frames
        from now on refer to them by index."""
        self._stream = list(self.targets)

    @property
    def stream_created(self) -> bool:
        """Whether etcd confirmed every key set of the current stream."""
        return all(t.created for t in self._stream)

    def receive(self, resp: WatchResponse) -> WatchBatch | AllCreated | EtcdError | None:
        """Account for one frame of the current stream.

        Returns a :class:`WatchBatch` to deliver (events at or past the resume
        revision only, so nothing is ever delivered twice), :data:`ALL_CREATED`
        when this frame completed the creation of every key set, an error that
        ends the stream (compaction, cancellation by etcd, a refused token, a
        frame for an unknown watch id), or ``None``.
        """
        targets = self._stream
        if resp.watch_id == -1 and resp.canceled and token_refused(resp.cancel_reason):
            return Unauthenticated(resp.cancel_reason, code=16)
        if not 0 <= resp.watch_id < len(targets):
            return ProtocolError(f"watch response for unknown watch id {resp.watch_id}")
        target = targets[resp.watch_id]
        if resp.canceled:
            if resp.compact_revision:
                return WatchCompacted(resp.compact_revision, target.keyset)
            return WatchCanceled(resp.cancel_reason or "watch canceled by etcd")
        if resp.compact_revision:
            return WatchCompacted(resp.compact_revision, target.keyset)
        if resp.created:
            target.created = True
            if not target.next_revision:
                target.next_revision = resp.header.revision + 1
            return ALL_CREATED if self.stream_created else None
        if not resp.events:
            # Progress notification: everything up to this revision was sent.
            target.next_revision = max(target.next_revision, resp.header.revision + 1)
            return None
        # A reconnect resumes at next_revision, so older events cannot come
        # back; the filter is the guarantee against repeats all the same.
        events = tuple(ev for ev in resp.events if ev.revision >= target.next_revision)
        if not events:
            return None
        target.next_revision = events[-1].revision + 1
        return WatchBatch(target.keyset, resp.header.revision, events)
